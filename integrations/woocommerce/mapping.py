"""WooCommerce REST v3 order JSON (a webhook body or `GET /wc/v3/orders/<id>`) → `NewOrder`. Pure.

Money: WooCommerce sends amounts as strings ("29.35"); they become Decimals rounded half up to the
currency's minor units (a shop's price-decimals setting may carry more places than the currency has).
Line totals are ex-tax and the order's tax is one figure (`total_tax`), so Orderline's total
`Σ(unit_price × qty − line discount) + shipping + tax − discount_total` equals WooCommerce's `total`:
  - a line's discount is `subtotal − total` (coupons are spread over the lines by WooCommerce);
  - `discount_total` is whatever of WooCommerce's `discount_total` the lines do not carry, plus negative fees;
  - positive fees (gift wrap, payment surcharges) become lines that need no shipping.
Times: the `*_gmt` fields are UTC without an offset; the plain ones are the site's local time and only a
fallback. WooCommerce orders have no tags, no locale and no per-line refund quantities in the order JSON.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

from app.money import minor_units
from app.orders.types import NewAddress, NewLineItem, NewOrder, NewRefund
from integrations.base import PayloadError

Json = Mapping[str, Any]


class StatusRule(NamedTuple):
    # None: decided by whether WooCommerce recorded a payment (`date_paid_gmt`).
    financial: str | None
    fulfilled: bool = False
    cancelled: bool = False
    cancel_reason: str | None = None


# The statuses WooCommerce core knows (`wc_get_order_statuses()` plus the block checkout's draft).
ORDER_STATUS_RULES: dict[str, StatusRule] = {
    "pending": StatusRule("pending"),                # awaiting payment
    "checkout-draft": StatusRule("pending"),         # block checkout not finished yet
    "on-hold": StatusRule("pending"),                # awaiting a manual payment (bank transfer, cheque)
    "processing": StatusRule("paid"),
    "completed": StatusRule("paid", fulfilled=True),
    "refunded": StatusRule("refunded"),
    "failed": StatusRule("voided"),
    "cancelled": StatusRule(None, cancelled=True),
    "trash": StatusRule(None, cancelled=True, cancel_reason="trashed on WooCommerce"),
}
# Plugins add statuses ("shipped", "awaiting-shipment"): judged by the payment date alone, never refused.
UNKNOWN_STATUS_RULE = StatusRule(None)

# WooCommerce's own pickup methods; everything else is judged by the method's title.
SHIPPING_METHOD_LEVELS: dict[str, str] = {
    "local_pickup": "pickup",
    "pickup_location": "pickup",
    "local_pickup_plus": "pickup",
}
# First match in the method title wins; anything else is standard.
SHIPPING_TITLE_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("pickup", "pickup"), ("pick up", "pickup"), ("pick-up", "pickup"), ("collect", "pickup"),
    ("overnight", "overnight"), ("next day", "overnight"), ("next-day", "overnight"),
    ("same day", "overnight"),
    ("express", "express"), ("priority", "express"), ("expedited", "express"), ("2 day", "express"),
    ("economy", "economy"), ("saver", "economy"), ("slow", "economy"),
)


# --- small readers ----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = html.unescape(str(value)).strip()
    return text or None


def _minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def money(value: Any, currency: str, field: str) -> Decimal:
    """A WooCommerce amount string as a Decimal in the currency's minor units (empty → 0).

    Raises:
        PayloadError: the value is not a decimal string (floats are refused: they are not exact).
    """
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{field} is not an amount string: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise PayloadError(f"{field} is not an amount: {value!r}")
    return amount.quantize(_minor_unit(currency), rounding=ROUND_HALF_UP)


def utc_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time as aware UTC; a string without an offset (the `*_gmt` fields) is UTC.

    Raises:
        PayloadError: the value is not an ISO 8601 time.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{field} is not a time: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(f"{field} is not an ISO 8601 time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _gmt_time(order: Json, name: str) -> datetime | None:
    # The site-local field has no offset either: reading it as UTC is off by the site's offset, which
    # beats no time at all for the rare payload without the _gmt twin.
    return utc_time(order.get(f"{name}_gmt"), f"{name}_gmt") or utc_time(order.get(name), name)


def _list(order: Json, name: str) -> list[Json]:
    value = order.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, Mapping) for entry in value):
        raise PayloadError(f"{name} is not a list of objects")
    return value


def _id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise PayloadError(f"{field} is not a WooCommerce id: {value!r}")
    return str(int(value))


# --- parts of an order ------------------------------------------------------------------------------------


def address(raw: Any, field: str) -> NewAddress | None:
    """A WooCommerce billing/shipping object, or None when it is blank (virtual orders have no shipping).

    Raises:
        PayloadError: the country is not an ISO 3166-1 alpha-2 code.
    """
    if not isinstance(raw, Mapping):
        return None
    country = _text(raw.get("country"))
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise PayloadError(f"{field}.country is not an ISO 3166-1 alpha-2 code: {country!r}")
    name = " ".join(part for part in (_text(raw.get("first_name")), _text(raw.get("last_name"))) if part)
    result = NewAddress(
        name=name or None,
        company=_text(raw.get("company")),
        line1=_text(raw.get("address_1")),
        line2=_text(raw.get("address_2")),
        city=_text(raw.get("city")),
        region=_text(raw.get("state")),
        postal_code=_text(raw.get("postcode")),
        country_code=country.upper() if country else None,
        phone=_text(raw.get("phone")),
    )
    return result if any(getattr(result, key) for key in NewAddress.__dataclass_fields__) else None


def unit_price(subtotal: Decimal, quantity: int, currency: str) -> Decimal:
    """The line's pre-discount price per unit, rounded up so that `unit × qty` never falls short of
    the line subtotal (WooCommerce keeps line totals, not unit prices; 10.00 for 3 is 3.34 each)."""
    return (subtotal / quantity).quantize(_minor_unit(currency), rounding=ROUND_CEILING)


def _variant_title(item: Json) -> str | None:
    # A variation's chosen attributes are its visible (not underscore) meta entries.
    if not item.get("variation_id"):
        return None
    values = []
    for meta in item.get("meta_data") or []:
        if not isinstance(meta, Mapping) or str(meta.get("key", "")).startswith("_"):
            continue
        value = _text(meta.get("display_value", meta.get("value")))
        if value:
            values.append(value)
    return " / ".join(values) or None


def line_item(item: Json, currency: str, *, shippable: bool, fulfilled: bool) -> NewLineItem:
    """One `line_items[]` entry.

    Raises:
        PayloadError: the quantity is not a whole positive number, or an amount is not a number.
    """
    line_id = _id(item.get("id"), "line_items[].id")
    what = f"line item {line_id}"
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise PayloadError(f"{what} quantity is not a positive whole number: {quantity!r}")
    subtotal = money(item.get("subtotal"), currency, f"{what} subtotal")
    total = money(item.get("total"), currency, f"{what} total")
    price = unit_price(subtotal, quantity, currency)
    return NewLineItem(
        external_id=line_id,
        sku=_text(item.get("sku")),
        title=_text(item.get("parent_name")) or _text(item.get("name")) or f"Item {line_id}",
        variant_title=_variant_title(item),
        quantity=quantity,
        unit_price=price,
        # A price a plugin raised after the coupons would be a negative discount: the line keeps its total.
        total_discount=max(price * quantity - total, Decimal("0")),
        requires_shipping=shippable,
        fulfilled_quantity=quantity if fulfilled else 0,
    )


def fee_line(fee: Json, currency: str) -> NewLineItem:
    """A positive `fee_lines[]` entry as a line that needs no shipping."""
    fee_id = _id(fee.get("id"), "fee_lines[].id")
    return NewLineItem(
        external_id=fee_id,
        title=_text(fee.get("name")) or "Fee",
        quantity=1,
        unit_price=money(fee.get("total"), currency, f"fee {fee_id} total"),
        requires_shipping=False,
    )


def shipping_level(shipping_lines: Sequence[Json]) -> str:
    """economy / standard / express / overnight / pickup, from the first shipping line."""
    if not shipping_lines:
        return "standard"
    first = shipping_lines[0]
    method_id = str(first.get("method_id") or "").lower()
    if method_id in SHIPPING_METHOD_LEVELS:
        return SHIPPING_METHOD_LEVELS[method_id]
    title = str(first.get("method_title") or "").lower()
    return next((level for keyword, level in SHIPPING_TITLE_KEYWORDS if keyword in title), "standard")


def refund(entry: Json, currency: str) -> NewRefund:
    """An order's `refunds[]` summary ({id, reason, total: "-5.00"}); it names no line quantities."""
    refund_id = _id(entry.get("id"), "refunds[].id")
    return NewRefund(
        external_id=refund_id,
        amount=abs(money(entry.get("total"), currency, f"refund {refund_id} total")),
        reason=_text(entry.get("reason")),
    )


def order_level_discount(discount_total: Decimal, items: Sequence[Json], fees: Sequence[Decimal],
                         currency: str) -> Decimal:
    """What the lines do not already carry of `discount_total`, plus negative fees (a discount by hand)."""
    on_lines = sum((money(i.get("subtotal"), currency, "line subtotal")
                    - money(i.get("total"), currency, "line total") for i in items), Decimal("0"))
    return max(discount_total - on_lines, Decimal("0")) + sum((-fee for fee in fees if fee < 0), Decimal("0"))


def financial_status(rule: StatusRule, *, paid: bool, refunded: Decimal, total: Decimal) -> str:
    """The payment state a status means, refined by the refunds WooCommerce lists."""
    status = rule.financial or ("paid" if paid else "voided" if rule.cancelled else "pending")
    if status != "paid" or refunded <= 0:
        return status
    return "refunded" if refunded >= total else "partially_refunded"


# --- the whole order --------------------------------------------------------------------------------------


def _currency(order: Json) -> str:
    currency = order.get("currency")
    if not isinstance(currency, str) or not currency.strip():
        raise PayloadError("the order has no currency")
    return currency.strip().upper()


def _customer_name(billing: NewAddress | None, shipping: NewAddress | None) -> str | None:
    return (billing.name if billing else None) or (shipping.name if shipping else None)


def parse_order(order: Any) -> NewOrder:
    """A WooCommerce order (REST v3 JSON) as Orderline's `NewOrder`.

    Raises:
        PayloadError: the JSON is not an order, or a field cannot be read.
    """
    if not isinstance(order, Mapping):
        raise PayloadError(f"a WooCommerce order is a JSON object, got {type(order).__name__}")
    external_id = _id(order.get("id"), "id")
    currency = _currency(order)
    status = str(order.get("status") or "")
    rule = ORDER_STATUS_RULES.get(status, UNKNOWN_STATUS_RULE)
    shipping_lines = _list(order, "shipping_lines")
    items = _list(order, "line_items")
    lines = [line_item(item, currency, shippable=bool(shipping_lines), fulfilled=rule.fulfilled)
             for item in items]
    fees = [(fee, money(fee.get("total"), currency, "fee total")) for fee in _list(order, "fee_lines")]
    lines += [fee_line(fee, currency) for fee, amount in fees if amount > 0]
    discount = order_level_discount(money(order.get("discount_total"), currency, "discount_total"),
                                    items, [amount for _fee, amount in fees], currency)
    refunds = [refund(entry, currency) for entry in _list(order, "refunds")]
    billing = address(order.get("billing"), "billing")
    shipping = address(order.get("shipping"), "shipping")
    raw_billing: Json = order["billing"] if isinstance(order.get("billing"), Mapping) else {}
    return NewOrder(
        external_id=external_id,
        number=_text(order.get("number")) or external_id,
        currency=currency,
        line_items=lines,
        customer_name=_customer_name(billing, shipping),
        customer_email=_text(raw_billing.get("email")),
        customer_phone=_text(raw_billing.get("phone")),
        shipping_address=shipping,
        billing_address=billing,
        shipping_level=shipping_level(shipping_lines),
        shipping_total=money(order.get("shipping_total"), currency, "shipping_total"),
        tax_total=money(order.get("total_tax"), currency, "total_tax"),
        discount_total=discount,
        financial_status=financial_status(
            rule, paid=_gmt_time(order, "date_paid") is not None,
            refunded=sum((r.amount for r in refunds), Decimal("0")),
            total=money(order.get("total"), currency, "total")),
        note=_text(order.get("customer_note")),
        placed_at=_gmt_time(order, "date_created"),
        channel_updated_at=_gmt_time(order, "date_modified"),
        fulfillment_status="fulfilled" if rule.fulfilled else "unfulfilled",
        cancelled=rule.cancelled,
        cancel_reason=rule.cancel_reason,
        refunds=refunds,
    )
