"""BigCommerce REST v2 order (plus its products, shipping addresses and v3 refunds) → `NewOrder`. Pure.

Money: the v2 API sends amounts as strings with four decimals ("55.9900"); they become Decimals rounded half
up to the currency's minor units. Line prices are ex-tax and tax is carried in `tax_total`, so Orderline's
total (lines + shipping + tax − discounts) matches BigCommerce's `total_inc_tax` when the store's numbers add
up. Gift wrapping and custom fees have no place in the unified order and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from app.money import minor_units
from app.orders.types import NewAddress, NewLineItem, NewOrder, NewRefund
from integrations.base import PayloadError

Json = Mapping[str, Any]


class StatusRule(NamedTuple):
    financial: str
    # None: count shipped quantities instead (the status says nothing about shipping).
    fulfilment: str | None
    cancelled: bool = False
    cancel_reason: str | None = None


# BigCommerce's fixed status ids (custom status labels still map onto these).
INCOMPLETE_STATUS_ID = 0
STATUS_RULES: dict[int, StatusRule] = {
    1: StatusRule("pending", None),                 # Pending
    2: StatusRule("paid", "fulfilled"),             # Shipped
    3: StatusRule("paid", "partial"),               # Partially Shipped
    4: StatusRule("refunded", None),                # Refunded
    5: StatusRule("voided", None, True),            # Cancelled
    6: StatusRule("voided", None, True, "declined by the merchant"),  # Declined
    7: StatusRule("pending", None),                 # Awaiting Payment
    8: StatusRule("paid", None),                    # Awaiting Pickup
    9: StatusRule("paid", None),                    # Awaiting Shipment
    10: StatusRule("paid", "fulfilled"),            # Completed
    11: StatusRule("paid", None),                   # Awaiting Fulfillment
    12: StatusRule("pending", None),                # Manual Verification Required
    13: StatusRule("paid", None),                   # Disputed
    14: StatusRule("partially_refunded", None),     # Partially Refunded
}
# Statuses that say more about the money than payment_status does.
_REFUND_STATUSES = {4, 14}

PAYMENT_STATUS_MAP: dict[str, str] = {
    "authorized": "authorized",
    "capture pending": "authorized",
    "captured": "paid",
    "paid": "paid",
    "partially refunded": "partially_refunded",
    "refunded": "refunded",
    "void": "voided",
    "void pending": "voided",
    "pending": "pending",
    "declined": "pending",
    "held for review": "pending",
}

# First match in the shipping method's name wins; anything else is standard.
SHIPPING_LEVEL_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("pickup", "pickup"), ("pick up", "pickup"), ("pick-up", "pickup"), ("collect", "pickup"),
    ("overnight", "overnight"), ("next day", "overnight"), ("next-day", "overnight"), ("1 day", "overnight"),
    ("same day", "overnight"), ("express", "express"), ("priority", "express"), ("expedited", "express"),
    ("2 day", "express"), ("2nd day", "express"), ("two day", "express"),
    ("economy", "economy"), ("free", "economy"), ("saver", "economy"),
)

_SHIPPABLE_TYPES = {"physical"}


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    return text[:limit] if limit else text


def money(value: Any, currency: str, field: str) -> Decimal:
    """A BigCommerce amount (string, or Decimal from a v3 JSON number) rounded to the currency's places.

    Raises:
        PayloadError: the value is not a number.
    """
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, float):
        value = repr(value)  # only reached when a caller parsed JSON without parse_float=Decimal
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise PayloadError(f"{field} is not an amount: {value!r}")
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def rfc2822_utc(value: Any, field: str) -> datetime | None:
    """BigCommerce v2 dates ("Tue, 05 Mar 2019 21:40:11 +0000") as aware UTC.

    Raises:
        PayloadError: the value is not an RFC-2822 date.
    """
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise PayloadError(f"{field} is not an RFC-2822 date: {text!r}") from None
    # "-0000" means UTC with the zone unknown; parsedate_to_datetime returns it naive.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_utc(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def address(raw: Json | None) -> NewAddress | None:
    if not raw:
        return None
    name = " ".join(p for p in (_text(raw.get("first_name")), _text(raw.get("last_name"))) if p)
    country = (_text(raw.get("country_iso2")) or "").upper()
    return NewAddress(
        name=name[:255] or None,
        company=_text(raw.get("company"), 255),
        line1=_text(raw.get("street_1"), 255),
        line2=_text(raw.get("street_2"), 255),
        city=_text(raw.get("city"), 128),
        region=_text(raw.get("state"), 128),
        postal_code=_text(raw.get("zip"), 32),
        country_code=country if len(country) == 2 and country.isalpha() else None,
        phone=_text(raw.get("phone"), 32),
    )


def _variant_title(product: Json) -> str | None:
    options = [f"{_text(o.get('display_name'))}: {_text(o.get('display_value'))}"
               for o in product.get("product_options") or []
               if _text(o.get("display_name")) and _text(o.get("display_value"))]
    return ", ".join(options)[:255] or None


def _quantity(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise PayloadError(f"{field} is not a whole number: {value!r}")
    return int(value)


def line_item(product: Json, currency: str) -> NewLineItem:
    """One order product. Its `id` (the order_product_id shipments refer to) is the line's external id."""
    line_id = product.get("id")
    title = _text(product.get("name_merchant")) or _text(product.get("name"))
    if line_id is None or title is None:
        raise PayloadError(f"order product {line_id!r} has no id or no name")
    discounts = sum((money(d.get("amount"), currency, f"product {line_id} applied_discounts")
                     for d in product.get("applied_discounts") or []), Decimal("0"))
    return NewLineItem(
        external_id=str(line_id),
        sku=_text(product.get("sku"), 128),
        title=title[:500],
        variant_title=_variant_title(product),
        quantity=_quantity(product.get("quantity"), f"product {line_id} quantity"),
        unit_price=money(product.get("price_ex_tax"), currency, f"product {line_id} price_ex_tax"),
        total_discount=discounts,
        requires_shipping=product.get("type", "physical") in _SHIPPABLE_TYPES,
        fulfilled_quantity=_quantity(product.get("quantity_shipped") or 0,
                                     f"product {line_id} quantity_shipped"),
    )


def shipping_level(method: Any) -> str:
    name = (_text(method) or "").lower()
    for keyword, level in SHIPPING_LEVEL_KEYWORDS:
        if keyword in name:
            return level
    return "standard"


def _fulfilment(rule: StatusRule, lines: Sequence[NewLineItem]) -> str:
    if rule.fulfilment is not None:
        return rule.fulfilment
    shipped = sum(min(i.fulfilled_quantity, i.quantity) for i in lines)
    if shipped == 0:
        return "unfulfilled"
    return "fulfilled" if shipped >= sum(i.quantity for i in lines) else "partial"


def _financial(order: Json, status_id: int, rule: StatusRule, currency: str) -> str:
    refunded = money(order.get("refunded_amount"), currency, "refunded_amount")
    if refunded > 0:
        total = money(order.get("total_inc_tax"), currency, "total_inc_tax")
        return "refunded" if refunded >= total else "partially_refunded"
    if status_id in _REFUND_STATUSES:
        return rule.financial
    payment_status = (_text(order.get("payment_status")) or "").lower()
    return PAYMENT_STATUS_MAP.get(payment_status, rule.financial)


def has_refunds(order: Json) -> bool:
    """Whether the order reports money refunded (then its v3 refund list is worth reading)."""
    try:
        return Decimal(str(order.get("refunded_amount") or "0")) > 0
    except InvalidOperation:
        return False


def refund(raw: Json, currency: str) -> NewRefund:
    """One v3 payment-actions refund; its product items become {order product id: quantity}."""
    refund_id = raw.get("id")
    if refund_id is None:
        raise PayloadError("a refund has no id")
    items: dict[str, int] = {}
    for item in raw.get("items") or []:
        if item.get("item_type") == "PRODUCT" and item.get("item_id") is not None and item.get("quantity"):
            key = str(item["item_id"])
            items[key] = items.get(key, 0) + _quantity(item["quantity"], f"refund {refund_id} quantity")
    amount = money(raw.get("total_amount"), currency, f"refund {refund_id} total_amount")
    return NewRefund(external_id=str(refund_id), amount=amount, line_items=items,
                     reason=_text(raw.get("reason")), created_at=iso_utc(raw.get("created")))


def status_rule(order: Json) -> tuple[int, StatusRule]:
    """The order's status id and what it means.

    Raises:
        PayloadError: an Incomplete order (a checkout never finished) or an unknown status id.
    """
    status_id = _quantity(order.get("status_id"), "status_id")
    if status_id == INCOMPLETE_STATUS_ID:
        raise PayloadError(f"order {order.get('id')} is Incomplete on BigCommerce (checkout not finished); "
                           "it is taken in when its status changes")
    rule = STATUS_RULES.get(status_id)
    if rule is None:
        raise PayloadError(f"unknown BigCommerce status_id {status_id} ('{order.get('status')}')")
    return status_id, rule


def map_order(order: Json, products: Sequence[Json], shipping_addresses: Sequence[Json],
              refunds: Sequence[Json] = ()) -> NewOrder:
    """Map a v2 order with its sub-resources to `NewOrder`.

    With several shipping addresses (a multi-address order) the first is the order's shipping address.

    Raises:
        PayloadError: the order cannot be mapped (no id, no currency, a bad amount or date, Incomplete).
    """
    if order.get("id") is None:
        raise PayloadError("the order has no id")
    currency = (_text(order.get("currency_code")) or _text(order.get("default_currency_code")) or "").upper()
    if not currency:
        raise PayloadError(f"order {order['id']} has no currency_code")
    status_id, rule = status_rule(order)
    lines = [line_item(p, currency) for p in products]
    line_discounts = sum((i.total_discount for i in lines), Decimal("0"))
    order_discounts = (money(order.get("discount_amount"), currency, "discount_amount")
                       + money(order.get("coupon_discount"), currency, "coupon_discount"))
    billing = order.get("billing_address") or {}
    billing_address = address(billing)
    first_shipping = shipping_addresses[0] if shipping_addresses else None
    return NewOrder(
        external_id=str(order["id"]),
        number=str(order["id"]),
        currency=currency,
        line_items=lines,
        customer_name=billing_address.name if billing_address else None,
        customer_email=_text(billing.get("email"), 320),
        customer_phone=_text(billing.get("phone"), 32),
        customer_locale=_text(order.get("customer_locale"), 16),
        shipping_address=address(first_shipping),
        billing_address=billing_address,
        shipping_level=shipping_level(first_shipping.get("shipping_method") if first_shipping else None),
        shipping_total=(money(order.get("shipping_cost_ex_tax"), currency, "shipping_cost_ex_tax")
                        + money(order.get("handling_cost_ex_tax"), currency, "handling_cost_ex_tax")),
        tax_total=money(order.get("total_tax"), currency, "total_tax"),
        # Discounts BigCommerce already spread over the lines are in the lines' total_discount.
        discount_total=max(order_discounts - line_discounts, Decimal("0")),
        financial_status=_financial(order, status_id, rule, currency),
        fulfillment_status=_fulfilment(rule, lines),
        note=_text(order.get("customer_message")),
        tags=[f"source:{source}"] if (source := _text(order.get("order_source"), 57)) else [],
        placed_at=rfc2822_utc(order.get("date_created"), "date_created"),
        channel_updated_at=rfc2822_utc(order.get("date_modified"), "date_modified"),
        cancelled=rule.cancelled,
        cancel_reason=rule.cancel_reason,
        refunds=[refund(r, currency) for r in refunds],
    )
