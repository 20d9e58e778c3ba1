"""What each Shopify webhook topic means to Orderline: a dict of pure handlers, plus the topics we ignore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.base import (
    AppUninstalled,
    ChannelEvent,
    CustomerDataRequest,
    CustomerRedact,
    OrderRemoved,
    OrderSnapshot,
    PayloadError,
    RefundCreated,
    ShopRedact,
    TopicHandler,
)
from integrations.shopify.mapping import map_order, map_refund, numeric_id, text


def _body(payload: Any, topic: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise PayloadError(f"a {topic} body must be a JSON object")
    return payload


def order_snapshot(payload: Any) -> ChannelEvent:
    # Every orders/* topic but delete carries the whole Order, so each is a full snapshot.
    return OrderSnapshot(map_order(payload))


def order_deleted(payload: Any) -> ChannelEvent:
    # Shopify sends only {"id": N} for a deleted order.
    return OrderRemoved(numeric_id(_body(payload, "orders/delete").get("id"), "order id"), reason="deleted")


def refund_created(payload: Any) -> ChannelEvent:
    body = _body(payload, "refunds/create")
    return RefundCreated(order_external_id=numeric_id(body.get("order_id"), "refund order_id"),
                         refund=map_refund(body))


def app_uninstalled(payload: Any) -> ChannelEvent:
    return AppUninstalled()


def _customer(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    customer = body.get("customer") or {}
    if not isinstance(customer, Mapping):
        raise PayloadError("customer is not an object")
    return text(customer.get("email")), text(customer.get("phone"))


def _order_ids(body: Mapping[str, Any], name: str) -> list[str]:
    values = body.get(name) or []
    if not isinstance(values, list):
        raise PayloadError(f"{name} is not a list")
    return [numeric_id(value, f"{name} entry") for value in values]


def customer_data_request(payload: Any) -> ChannelEvent:
    body = _body(payload, "customers/data_request")
    email, phone = _customer(body)
    request = body.get("data_request")
    request_id = request.get("id") if isinstance(request, Mapping) else None
    return CustomerDataRequest(customer_email=email, customer_phone=phone,
                               order_external_ids=_order_ids(body, "orders_requested"),
                               request_id=None if request_id is None else str(request_id))


def customer_redact(payload: Any) -> ChannelEvent:
    body = _body(payload, "customers/redact")
    email, phone = _customer(body)
    return CustomerRedact(customer_email=email, customer_phone=phone,
                          order_external_ids=_order_ids(body, "orders_to_redact"))


def shop_redact(payload: Any) -> ChannelEvent:
    return ShopRedact()


TOPIC_HANDLERS: dict[str, TopicHandler] = {
    "orders/create": order_snapshot,
    "orders/updated": order_snapshot,
    "orders/paid": order_snapshot,
    "orders/cancelled": order_snapshot,
    "orders/fulfilled": order_snapshot,
    "orders/partially_fulfilled": order_snapshot,
    "orders/delete": order_deleted,
    "refunds/create": refund_created,
    "app/uninstalled": app_uninstalled,
    # Mandatory privacy topics: set in the app's configuration, not subscribed through the API.
    "customers/data_request": customer_data_request,
    "customers/redact": customer_redact,
    "shop/redact": shop_redact,
}

COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})

IGNORED_TOPICS = frozenset({
    # An edit is always followed by orders/updated with the whole edited order.
    "orders/edited",
    # Abandoned checkouts and carts are not orders.
    "checkouts/create",
    "carts/update",
})
