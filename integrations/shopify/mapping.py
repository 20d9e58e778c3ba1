"""Shopify's REST Order and Refund JSON (webhook bodies) → Orderline's NewOrder and NewRefund. Pure functions.

Money is read from the shop-currency strings (`*_set.shop_money.amount`, else the plain string field), so an
order sold in another presentment currency is stored in the shop's currency, as Shopify's own reports do.

Totals follow Orderline's rule `total = Σ(unit_price × qty − line discount) + shipping + tax − discounts`:
  - a line's discount is the sum of its `discount_allocations` (order-level codes included, as Shopify
    allocates them), so `subtotal` equals Shopify's `subtotal_price`;
  - `discount_total` is what is left of `total_discounts` (discounts on shipping);
  - with `taxes_included` the tax is already inside the prices, so `tax_total` is 0 there: adding it again
    would make the total wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.orders.types import NewAddress, NewLineItem, NewOrder, NewRefund
from integrations.base import PayloadError

# Shopify financial_status (REST) → Orderline. An expired authorisation took no money: voided.
SHOPIFY_FINANCIAL_STATUS_MAP: dict[str | None, str] = {
    None: "pending",
    "pending": "pending",
    "authorized": "authorized",
    "partially_paid": "partially_paid",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
    "expired": "voided",
}

# Shopify fulfillment_status (REST). "pending" is what Shopify's test notification still sends.
SHOPIFY_FULFILLMENT_STATUS_MAP: dict[str | None, str] = {
    None: "unfulfilled",
    "unfulfilled": "unfulfilled",
    "pending": "unfulfilled",
    "restocked": "unfulfilled",
    "partial": "partial",
    "fulfilled": "fulfilled",
}

# Fulfillments that did not (or will not) ship anything.
FAILED_FULFILLMENT_STATUSES = frozenset({"cancelled", "error", "failure"})

# First match wins; checked against the shipping line's title and code, lower-cased. Order matters:
# "express pickup" is a pickup, "next day express" is overnight.
SHIPPING_LEVEL_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("pickup", "pickup"),
    ("pick up", "pickup"),
    ("pick-up", "pickup"),
    ("click & collect", "pickup"),
    ("collect", "pickup"),
    ("overnight", "overnight"),
    ("next day", "overnight"),
    ("next-day", "overnight"),
    ("same day", "overnight"),
    ("express", "express"),
    ("expedited", "express"),
    ("priority", "express"),
    ("2-day", "express"),
    ("two day", "express"),
    ("economy", "economy"),
    ("saver", "economy"),
    ("budget", "economy"),
    ("standard", "standard"),
)
DEFAULT_SHIPPING_LEVEL = "standard"


# --- small readers, shared with the GraphQL mapping -----------------------------------------------------


def money(value: Any, what: str) -> Decimal:
    """A money amount from Shopify's decimal string; a missing amount is zero."""
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{what}: {value!r} is not an amount")
    try:
        # A float only appears in fields Shopify also sends as strings; str() keeps its short decimal form.
        return Decimal(str(value))
    except InvalidOperation as error:
        raise PayloadError(f"{what}: {value!r} is not an amount") from error


def timestamp(value: Any, what: str) -> datetime:
    """An ISO-8601 time with an offset, as aware UTC."""
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise PayloadError(f"{what}: {value!r} is not an ISO-8601 time") from error
    if moment.tzinfo is None:
        raise PayloadError(f"{what}: {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def optional_timestamp(value: Any, what: str) -> datetime | None:
    return None if value in (None, "") else timestamp(value, what)


def text(value: Any) -> str | None:
    """A string with surrounding space removed; empty becomes None (Shopify sends "" for "no email")."""
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def first_text(*values: Any) -> str | None:
    for value in values:
        found = text(value)
        if found:
            return found
    return None


def full_name(first: Any, last: Any) -> str | None:
    return text(" ".join(part for part in (text(first), text(last)) if part))


def translate(table: Mapping[str | None, str], value: Any, what: str) -> str:
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{what}: {value!r} is not a status")
    try:
        return table[value]
    except KeyError:
        known = ", ".join(sorted(k for k in table if k))
        raise PayloadError(f"unknown {what} {value!r}; known: {known}") from None


def shipping_level(labels: Iterable[str | None]) -> str:
    """Orderline's shipping level for the shipping lines' titles and codes."""
    haystack = " | ".join(label.lower() for label in labels if label)
    for keyword, level in SHIPPING_LEVEL_KEYWORDS:
        if keyword in haystack:
            return level
    return DEFAULT_SHIPPING_LEVEL


def shipping_labels(lines: Iterable[Mapping[str, Any]]) -> list[str | None]:
    return [label for line in lines for label in (line.get("title"), line.get("code"))]


def split_tags(value: Any) -> list[str]:
    """Shopify's comma-separated tag string (GraphQL already gives a list)."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [tag for tag in (str(item).strip() for item in items) if tag]


def order_level_discount(total_discounts: Decimal, line_discounts: Iterable[Decimal]) -> Decimal:
    """The part of the order's discounts not allocated to any line (shipping discounts)."""
    return max(Decimal("0"), total_discounts - sum(line_discounts, Decimal("0")))


def numeric_id(value: Any, what: str) -> str:
    """A Shopify id as a string: 5324790137142 or "gid://shopify/Order/5324790137142" → "5324790137142"."""
    if isinstance(value, bool) or value is None or value == "":
        raise PayloadError(f"{what} is missing")
    tail = str(value).rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise PayloadError(f"{what}: {value!r} is not a Shopify id")
    return tail


# --- REST shapes ----------------------------------------------------------------------------------------


def _shop_amount(data: Mapping[str, Any], name: str, what: str) -> Decimal:
    money_set = data.get(f"{name}_set")
    if isinstance(money_set, Mapping) and isinstance(money_set.get("shop_money"), Mapping):
        return money(money_set["shop_money"].get("amount"), what)
    return money(data.get(name), what)


def json_object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"{name} is not an object")
    return value


def _list(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise PayloadError(f"{name} is not a list of objects")
    return value


def map_address(data: Mapping[str, Any]) -> NewAddress | None:
    """A Shopify address (REST snake_case or GraphQL MailingAddress) → NewAddress; None when empty."""
    if not data:
        return None
    country = first_text(data.get("country_code"), data.get("countryCodeV2"))
    return NewAddress(
        name=first_text(data.get("name"), full_name(data.get("first_name", data.get("firstName")),
                                                    data.get("last_name", data.get("lastName")))),
        company=text(data.get("company")),
        line1=text(data.get("address1")),
        line2=text(data.get("address2")),
        city=text(data.get("city")),
        region=first_text(data.get("province_code"), data.get("provinceCode"), data.get("province")),
        postal_code=text(data.get("zip")),
        country_code=country.upper() if country else None,
        phone=text(data.get("phone")),
    )


def _fulfilled_quantities(order: Mapping[str, Any]) -> dict[str, int]:
    shipped: dict[str, int] = {}
    for fulfillment in _list(order, "fulfillments"):
        if str(fulfillment.get("status") or "").lower() in FAILED_FULFILLMENT_STATUSES:
            continue
        for line in _list(fulfillment, "line_items"):
            key = numeric_id(line.get("id"), "fulfillment line item id")
            shipped[key] = shipped.get(key, 0) + int(line.get("quantity") or 0)
    return shipped


def _line_discount(line: Mapping[str, Any], what: str) -> Decimal:
    if "discount_allocations" in line:
        allocations = _list(line, "discount_allocations")
        return sum((_shop_amount(a, "amount", f"{what} discount") for a in allocations), Decimal("0"))
    # Payloads older than discount allocations (Shopify's test notification) only carry total_discount.
    return _shop_amount(line, "total_discount", f"{what} total_discount")


def refunded_units(refunds: Iterable[NewRefund]) -> dict[str, int]:
    """Units of each line item the refunds took back."""
    units: dict[str, int] = {}
    for refund in refunds:
        for line_id, count in refund.line_items.items():
            units[line_id] = units.get(line_id, 0) + count
    return units


def quantity_after_edits(quantity: int, current: int, refunded: int) -> int:
    """A line's quantity as Orderline keeps it: what was ordered, less what order edits removed.

    Shopify keeps `quantity` as first ordered and lowers `current_quantity` (REST, API 2024-01 on) /
    `currentQuantity` (GraphQL) for units an edit removed *and* for refunded ones. Orderline counts refunded
    units apart (`refunded_quantity`, from the refunds' own line items), so those are added back:
    quantity − refunded_quantity is then exactly what is still on the order."""
    return max(0, min(quantity, current + refunded))


def _whole(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{what} {value!r} is not a whole number")
    return value


def map_line_item(line: Mapping[str, Any], shipped: Mapping[str, int],
                  refunded: Mapping[str, int] | None = None) -> NewLineItem:
    """`refunded`: units of each line the order's own refunds took back (they count as refunds, not edits)."""
    external_id = numeric_id(line.get("id"), "line item id")
    what = f"line item {external_id}"
    quantity = _whole(line.get("quantity"), f"{what}: quantity")
    if "current_quantity" in line:
        current = _whole(line.get("current_quantity"), f"{what}: current_quantity")
        quantity = quantity_after_edits(quantity, current, (refunded or {}).get(external_id, 0))
    fulfilled = shipped.get(external_id, 0)
    if not fulfilled and line.get("fulfillment_status") == "fulfilled":
        fulfilled = quantity
    return NewLineItem(
        external_id=external_id,
        title=text(line.get("title")) or text(line.get("name")) or "(untitled)",
        sku=text(line.get("sku")),
        variant_title=text(line.get("variant_title")),
        quantity=quantity,
        unit_price=_shop_amount(line, "price", f"{what} price"),
        total_discount=_line_discount(line, what),
        requires_shipping=bool(line.get("requires_shipping", True)),
        fulfilled_quantity=min(fulfilled, quantity),
    )


def map_refund(refund: Mapping[str, Any]) -> NewRefund:
    """A Shopify Refund (the `refunds/create` body, or one entry of an order's `refunds`)."""
    external_id = numeric_id(refund.get("id"), "refund id")
    what = f"refund {external_id}"
    # Only money that actually went back counts: failed or pending refund transactions do not.
    amount = sum((money(t.get("amount"), f"{what} transaction amount") for t in _list(refund, "transactions")
                  if t.get("kind") == "refund" and t.get("status") == "success"), Decimal("0"))
    items: dict[str, int] = {}
    for line in _list(refund, "refund_line_items"):
        key = numeric_id(line.get("line_item_id"), f"{what} line_item_id")
        items[key] = items.get(key, 0) + int(line.get("quantity") or 0)
    return NewRefund(
        external_id=external_id,
        amount=amount,
        line_items=items,
        reason=text(refund.get("note")),
        created_at=optional_timestamp(refund.get("processed_at") or refund.get("created_at"), f"{what} time"),
    )


def _customer_contact(order: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    customer = json_object(order, "customer")
    shipping, billing = json_object(order, "shipping_address"), json_object(order, "billing_address")
    name = first_text(full_name(customer.get("first_name"), customer.get("last_name")),
                      shipping.get("name"), billing.get("name"))
    email = first_text(order.get("email"), order.get("contact_email"), customer.get("email"))
    phone = first_text(order.get("phone"), customer.get("phone"), shipping.get("phone"), billing.get("phone"))
    return name, email, phone


def _shipping_total(order: Mapping[str, Any], shipping_lines: list[Mapping[str, Any]]) -> Decimal:
    if isinstance(order.get("total_shipping_price_set"), Mapping):
        return _shop_amount(order, "total_shipping_price", "total_shipping_price_set")
    # Older payloads (Shopify's test notification) have only the shipping lines.
    return sum((_shop_amount(line, "price", "shipping line price") for line in shipping_lines), Decimal("0"))


def map_order(order: Any) -> NewOrder:
    """A Shopify REST Order (the `orders/*` webhook body) → NewOrder.

    Raises:
        PayloadError: the body is not an order, or a field Orderline needs is missing or unreadable.
    """
    if not isinstance(order, Mapping):
        raise PayloadError("an orders/* body must be a JSON object")
    external_id = numeric_id(order.get("id"), "order id")
    currency = text(order.get("currency"))
    if not currency:
        raise PayloadError(f"order {external_id} has no currency")
    shipped = _fulfilled_quantities(order)
    refunds = [map_refund(refund) for refund in _list(order, "refunds")]
    refunded = refunded_units(refunds)
    lines = [map_line_item(line, shipped, refunded) for line in _list(order, "line_items")]
    shipping_lines = _list(order, "shipping_lines")
    name, email, phone = _customer_contact(order)
    return NewOrder(
        external_id=external_id,
        number=first_text(order.get("name"), order.get("order_number")),
        currency=currency.upper(),
        line_items=lines,
        customer_name=name,
        customer_email=email,
        customer_phone=phone,
        customer_locale=text(order.get("customer_locale")),
        shipping_address=map_address(json_object(order, "shipping_address")),
        billing_address=map_address(json_object(order, "billing_address")),
        shipping_level=shipping_level(shipping_labels(shipping_lines)),
        shipping_total=_shipping_total(order, shipping_lines),
        tax_total=Decimal(0) if order.get("taxes_included") else _shop_amount(order, "total_tax", "tax"),
        discount_total=order_level_discount(_shop_amount(order, "total_discounts", "total_discounts"),
                                            (line.total_discount for line in lines)),
        financial_status=translate(SHOPIFY_FINANCIAL_STATUS_MAP, order.get("financial_status"),
                                   "financial_status"),
        fulfillment_status=translate(SHOPIFY_FULFILLMENT_STATUS_MAP, order.get("fulfillment_status"),
                                     "fulfillment_status"),
        note=text(order.get("note")),
        tags=split_tags(order.get("tags")),
        placed_at=optional_timestamp(order.get("processed_at") or order.get("created_at"), "processed_at"),
        channel_updated_at=timestamp(order.get("updated_at"), f"order {external_id} updated_at"),
        cancelled=bool(order.get("cancelled_at")),
        cancel_reason=text(order.get("cancel_reason")) if order.get("cancelled_at") else None,
        refunds=refunds,
    )
