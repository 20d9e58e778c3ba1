"""A Shopify Admin GraphQL `Order` node (as `queries.ORDER_FIELDS` selects it) → NewOrder. Pure.

Same output as `mapping.map_order` for the same order: ids are the numeric REST ids (so webhook and API
copies of an order update the same rows), money is `*Set.shopMoney`, statuses come from the display enums.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.orders.types import NewLineItem, NewOrder, NewRefund
from integrations.base import PayloadError
from integrations.shopify.mapping import (
    first_text,
    full_name,
    json_object,
    map_address,
    money,
    numeric_id,
    optional_timestamp,
    order_level_discount,
    quantity_after_edits,
    refunded_units,
    shipping_labels,
    shipping_level,
    split_tags,
    text,
    timestamp,
    translate,
)

GRAPHQL_FINANCIAL_STATUS_MAP: dict[str | None, str] = {
    None: "pending",
    "PENDING": "pending",
    "AUTHORIZED": "authorized",
    "PARTIALLY_PAID": "partially_paid",
    "PAID": "paid",
    "PARTIALLY_REFUNDED": "partially_refunded",
    "REFUNDED": "refunded",
    "VOIDED": "voided",
    "EXPIRED": "voided",
}

# Everything short of goods leaving is "unfulfilled" to Orderline: holds, scheduling and requests included.
GRAPHQL_FULFILLMENT_STATUS_MAP: dict[str | None, str] = {
    None: "unfulfilled",
    "UNFULFILLED": "unfulfilled",
    "OPEN": "unfulfilled",
    "IN_PROGRESS": "unfulfilled",
    "ON_HOLD": "unfulfilled",
    "PENDING_FULFILLMENT": "unfulfilled",
    "REQUEST_DECLINED": "unfulfilled",
    "RESTOCKED": "unfulfilled",
    "SCHEDULED": "unfulfilled",
    "PARTIALLY_FULFILLED": "partial",
    "FULFILLED": "fulfilled",
}


def _nodes(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The items of a connection (`{nodes: [...]}`) or of a plain list field."""
    value = data.get(name)
    if isinstance(value, Mapping):
        value = value.get("nodes")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise PayloadError(f"{name} is not a list of objects")
    return value


def shop_money(data: Mapping[str, Any], name: str) -> Decimal:
    """`<name> { shopMoney { amount } }` as a Decimal; a missing MoneyBag is zero."""
    return money(json_object(json_object(data, name), "shopMoney").get("amount"), name)


def _int(data: Mapping[str, Any], name: str, what: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{what}: {name} {value!r} is not a whole number")
    return value


def map_line_item_node(node: Mapping[str, Any], refunded: Mapping[str, int] | None = None) -> NewLineItem:
    """`refunded`: units of each line the order's refunds took back (see mapping.quantity_after_edits)."""
    external_id = numeric_id(node.get("id"), "line item id")
    what = f"line item {external_id}"
    quantity = _int(node, "quantity", what)
    # currentQuantity leaves out refunded and removed units; what is left and not unfulfilled has shipped.
    current = node.get("currentQuantity")
    unfulfilled = node.get("unfulfilledQuantity")
    fulfilled = current - unfulfilled if isinstance(current, int) and isinstance(unfulfilled, int) else 0
    if isinstance(current, int):
        quantity = quantity_after_edits(quantity, current, (refunded or {}).get(external_id, 0))
    return NewLineItem(
        external_id=external_id,
        title=first_text(node.get("title"), node.get("name")) or "(untitled)",
        sku=text(node.get("sku")),
        variant_title=text(node.get("variantTitle")),
        quantity=quantity,
        unit_price=shop_money(node, "originalUnitPriceSet"),
        total_discount=sum((shop_money(a, "allocatedAmountSet") for a in _nodes(node, "discountAllocations")),
                           Decimal("0")),
        requires_shipping=bool(node.get("requiresShipping", True)),
        fulfilled_quantity=max(0, min(fulfilled, quantity)),
    )


def map_refund_node(node: Mapping[str, Any]) -> NewRefund:
    external_id = numeric_id(node.get("legacyResourceId") or node.get("id"), "refund id")
    items: dict[str, int] = {}
    for line in _nodes(node, "refundLineItems"):
        key = numeric_id(json_object(line, "lineItem").get("id"), f"refund {external_id} line item id")
        items[key] = items.get(key, 0) + _int(line, "quantity", f"refund {external_id}")
    return NewRefund(
        external_id=external_id,
        amount=shop_money(node, "totalRefundedSet"),
        line_items=items,
        reason=text(node.get("note")),
        created_at=optional_timestamp(node.get("processedAt") or node.get("createdAt"), "refund processedAt"),
    )


def _contact(node: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    customer = json_object(node, "customer")
    shipping, billing = json_object(node, "shippingAddress"), json_object(node, "billingAddress")
    name = first_text(full_name(customer.get("firstName"), customer.get("lastName")),
                      shipping.get("name"), billing.get("name"))
    email = first_text(node.get("email"), json_object(customer, "defaultEmailAddress").get("emailAddress"))
    phone = first_text(node.get("phone"), json_object(customer, "defaultPhoneNumber").get("phoneNumber"),
                       shipping.get("phone"), billing.get("phone"))
    return name, email, phone


def map_order_node(node: Any, extra_line_items: list[Mapping[str, Any]] | None = None) -> NewOrder:
    """An `Order` node → NewOrder; `extra_line_items` are nodes from later `lineItems` pages.

    Raises:
        PayloadError: the node lacks a field Orderline needs, or holds an unreadable value.
    """
    if not isinstance(node, Mapping):
        raise PayloadError("an Order node must be an object")
    external_id = numeric_id(node.get("legacyResourceId") or node.get("id"), "order id")
    currency = text(node.get("currencyCode"))
    if not currency:
        raise PayloadError(f"order {external_id} has no currencyCode")
    refunds = [map_refund_node(refund) for refund in _nodes(node, "refunds")]
    refunded = refunded_units(refunds)
    lines = [map_line_item_node(item, refunded)
             for item in [*_nodes(node, "lineItems"), *(extra_line_items or [])]]
    shipping_lines = _nodes(node, "shippingLines")
    name, email, phone = _contact(node)
    cancelled = bool(node.get("cancelledAt"))
    reason = text(node.get("cancelReason"))
    return NewOrder(
        external_id=external_id,
        number=text(node.get("name")),
        currency=currency.upper(),
        line_items=lines,
        customer_name=name,
        customer_email=email,
        customer_phone=phone,
        customer_locale=text(node.get("customerLocale")),
        shipping_address=map_address(json_object(node, "shippingAddress")),
        billing_address=map_address(json_object(node, "billingAddress")),
        shipping_level=shipping_level(shipping_labels(shipping_lines)),
        shipping_total=shop_money(node, "totalShippingPriceSet"),
        tax_total=Decimal("0") if node.get("taxesIncluded") else shop_money(node, "totalTaxSet"),
        discount_total=order_level_discount(shop_money(node, "totalDiscountsSet"),
                                            (line.total_discount for line in lines)),
        financial_status=translate(GRAPHQL_FINANCIAL_STATUS_MAP, node.get("displayFinancialStatus"),
                                   "displayFinancialStatus"),
        fulfillment_status=translate(GRAPHQL_FULFILLMENT_STATUS_MAP, node.get("displayFulfillmentStatus"),
                                     "displayFulfillmentStatus"),
        note=text(node.get("note")),
        tags=split_tags(node.get("tags")),
        placed_at=optional_timestamp(node.get("processedAt") or node.get("createdAt"), "processedAt"),
        channel_updated_at=timestamp(node.get("updatedAt"), f"order {external_id} updatedAt"),
        cancelled=cancelled,
        # The enum is upper case (CUSTOMER); webhooks say "customer": one spelling in the store.
        cancel_reason=reason.lower() if cancelled and reason else None,
        refunds=refunds,
    )
