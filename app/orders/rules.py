"""Approval rules: which orders a person must look at before they ship.

A shop that approves automatically (`settings.auto_approve`) still sends an order to `needs_review` when
one of its rules flags it; every flag names the rule and says why, so the reviewer knows what to check.
The rules live in the shop's `settings.approval` object (all optional):

    {"max_order_value": "500.00",            # orders above this total (in the order's currency)
     "review_risk_levels": ["medium", "high"],  # the channel's fraud risk
     "first_time_express": true,             # a new customer who paid for express or overnight
     "international": true,                  # shipping outside the shop's home country...
     "home_country": "SE",                   # ...which defaults to the shop's first stock location's country
     "review_skus": ["GIFTCARD-*"],          # SKU patterns (shell-style) that always need a look
     "review_tags": ["check-address"]}       # order tags that do

The address check is always on: an order whose goods need shipping and whose address cannot be shipped to
as given (no street, city or country, or a postal code missing or malformed for its country) is flagged.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry

from app.models import Address, Order

RISK_LEVELS = ("low", "medium", "high")
EXPRESS_LEVELS = frozenset({"express", "overnight"})

# Countries whose addresses carry no postal code (UPU list, abridged to those a shop is likely to ship to).
NO_POSTAL_CODE = frozenset({
    "AE", "AG", "AO", "AW", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CK", "CM", "DJ",
    "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "JM", "KI", "KM", "KN", "KP", "LC", "ML", "MO",
    "MR", "MW", "NR", "NU", "QA", "RW", "SB", "SC", "SL", "SO", "SR", "SS", "ST", "SY", "TD", "TF", "TG", "TK",
    "TL", "TO", "TT", "TV", "UG", "VU", "YE", "ZW",
})
# Formats for the countries most orders go to; others only need a postal code to be present.
POSTAL_CODE_FORMATS: dict[str, re.Pattern[str]] = {
    code: re.compile(pattern, re.IGNORECASE) for code, pattern in {
        "US": r"\d{5}(-?\d{4})?",
        "CA": r"[A-Z]\d[A-Z] ?\d[A-Z]\d",
        "GB": r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
        "SE": r"\d{3} ?\d{2}",
        "NO": r"\d{4}",
        "DK": r"\d{4}",
        "FI": r"\d{5}",
        "DE": r"\d{5}",
        "FR": r"\d{5}",
        "NL": r"\d{4} ?[A-Z]{2}",
        "AU": r"\d{4}",
    }.items()
}


@dataclass(frozen=True)
class ReviewReason:
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class ApprovalRules:
    max_order_value: Decimal | None = None
    review_risk_levels: frozenset[str] = frozenset({"high"})
    first_time_express: bool = True
    international: bool = False
    home_country: str | None = None
    review_skus: tuple[str, ...] = ()
    review_tags: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ApprovalRules:
        """Read `settings["approval"]`; raises ValueError naming the bad key, for the API to refuse."""
        raw = (settings or {}).get("approval") or {}
        if not isinstance(raw, Mapping):
            raise ValueError("approval: must be an object")
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"approval: unknown rule {unknown[0]!r}; rules are {', '.join(cls.__dataclass_fields__)}")
        return cls(
            max_order_value=_amount(raw.get("max_order_value")),
            review_risk_levels=frozenset(_strings(raw, "review_risk_levels", ["high"], allowed=RISK_LEVELS)),
            first_time_express=_flag(raw, "first_time_express", True),
            international=_flag(raw, "international", False),
            home_country=_country(raw.get("home_country")),
            review_skus=tuple(_strings(raw, "review_skus", [])),
            review_tags=frozenset(tag.lower() for tag in _strings(raw, "review_tags", [])),
        )


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, str | int):
        raise ValueError("approval.max_order_value: give the amount as a decimal string, e.g. \"500.00\"")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"approval.max_order_value: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("approval.max_order_value: must be zero or more")
    return amount


def _flag(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"approval.{key}: must be true or false")
    return value


def _strings(raw: Mapping[str, Any], key: str, default: list[str], *, allowed: Iterable[str] = ()) -> list[str]:
    value = raw.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"approval.{key}: must be a list of non-empty strings")
    allowed = tuple(allowed)
    if allowed:
        value = [v.lower() for v in value]
        wrong = [v for v in value if v not in allowed]
        if wrong:
            raise ValueError(f"approval.{key}: {wrong[0]!r} is not one of {', '.join(allowed)}")
    return list(value)


def _country(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or pycountry.countries.get(alpha_2=value.upper()) is None:
        raise ValueError(f"approval.home_country: {value!r} is not an ISO 3166 country code")
    return value.upper()


def address_problem(address: Address | None) -> str | None:
    """Why the goods cannot be shipped to `address` as given, or None."""
    if address is None:
        return "there is no shipping address"
    missing = [label for label, value in (("street", address.line1), ("city", address.city),
                                          ("country", address.country_code)) if not (value or "").strip()]
    if missing:
        return f"the shipping address has no {' or '.join(missing)}"
    country = (address.country_code or "").upper()
    if pycountry.countries.get(alpha_2=country) is None:
        return f"'{address.country_code}' is not a country code"
    postal = (address.postal_code or "").strip()
    if not postal:
        return None if country in NO_POSTAL_CODE else f"the shipping address has no postal code ({country} uses them)"
    pattern = POSTAL_CODE_FORMATS.get(country)
    if pattern is not None and not pattern.fullmatch(postal):
        return f"'{postal}' is not a valid {country} postal code"
    return None


def review_reasons(order: Order, rules: ApprovalRules, *, first_time_customer: bool,
                   home_country: str | None) -> list[ReviewReason]:
    """Every rule the order trips, in a fixed order so the reviewer sees the same list every time."""
    reasons: list[ReviewReason] = []
    if rules.max_order_value is not None and order.total > rules.max_order_value:
        reasons.append(ReviewReason("max_order_value", f"Total {order.currency} {order.total} is above the "
                                                       f"{rules.max_order_value} limit"))
    risk = (order.risk_level or "").lower()
    if risk and risk in rules.review_risk_levels:
        reasons.append(ReviewReason("risk", f"The channel rates this order's fraud risk {risk}"))
    if rules.first_time_express and first_time_customer and order.shipping_level in EXPRESS_LEVELS:
        reasons.append(ReviewReason("first_time_express",
                                    f"First order from this customer, with {order.shipping_level} shipping"))
    ships = any(item.requires_shipping for item in order.line_items)
    shipping = order.address("shipping")
    if ships:
        problem = address_problem(shipping)
        if problem:
            reasons.append(ReviewReason("address", f"Cannot ship as given: {problem}"))
    home = rules.home_country or home_country
    destination = (shipping.country_code or "").upper() if shipping else ""
    if ships and rules.international and home and destination and destination != home:
        reasons.append(ReviewReason("international", f"Ships abroad: {destination} (home country {home})"))
    flagged_skus = sorted({item.sku for item in order.line_items if item.sku
                           and any(fnmatch.fnmatchcase(item.sku, pattern) for pattern in rules.review_skus)})
    if flagged_skus:
        reasons.append(ReviewReason("sku", f"Contains {', '.join(flagged_skus)}, which always need a look"))
    flagged_tags = sorted({tag for tag in order.tags or [] if tag.lower() in rules.review_tags})
    if flagged_tags:
        reasons.append(ReviewReason("tag", f"Tagged {', '.join(flagged_tags)}"))
    return reasons
