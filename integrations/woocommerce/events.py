"""WooCommerce webhook topics → channel events. Pure functions of the parsed JSON body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.base import OrderRemoved, OrderSnapshot, PayloadError, TopicHandler
from integrations.woocommerce.mapping import parse_order


def order_snapshot(body: Any) -> OrderSnapshot:
    """order.created / order.updated / order.restored: the body is the whole REST v3 order."""
    return OrderSnapshot(parse_order(body))


def order_deleted(body: Any) -> OrderRemoved:
    """order.deleted (also sent when an order is moved to the trash): the body is only `{"id": N}`.

    Raises:
        PayloadError: the body has no order id.
    """
    order_id = body.get("id") if isinstance(body, Mapping) else None
    if isinstance(order_id, bool) or not isinstance(order_id, int | str) or not str(order_id).isdigit():
        raise PayloadError(f"an order.deleted body is {{\"id\": <order id>}}, got {str(body)[:200]}")
    return OrderRemoved(str(int(order_id)), reason="deleted")


TOPIC_HANDLERS: dict[str, TopicHandler] = {
    "order.created": order_snapshot,
    "order.updated": order_snapshot,
    "order.restored": order_snapshot,
    "order.deleted": order_deleted,
}

# WooCommerce's other core topics (`wc_get_webhook_topics()`): a merchant may point any webhook at the same
# URL, and these say nothing about orders. Custom `action.*` topics stay unknown and fail loudly.
IGNORED_TOPICS: frozenset[str] = frozenset({
    "coupon.created", "coupon.updated", "coupon.deleted", "coupon.restored",
    "customer.created", "customer.updated", "customer.deleted",
    "product.created", "product.updated", "product.deleted", "product.restored",
})
