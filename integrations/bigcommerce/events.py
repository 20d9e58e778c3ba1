"""What each BigCommerce webhook scope means for Orderline: pure functions of the parsed body.

Order payloads are thin (`data.id` only), so every order scope becomes `FetchOrder`: the ingest job reads the
order from the API, which always gives its newest state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.base import FetchOrder, OrderRemoved, PayloadError, TopicHandler


def order_id(payload: Any) -> str:
    """The BigCommerce order id a thin order payload names, as a string.

    Raises:
        PayloadError: the body has no `data` object with an integer order `id`.
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        raise PayloadError("the payload has no 'data' object")
    if data.get("type", "order") != "order":
        raise PayloadError(f"data.type is '{data.get('type')}', not 'order'")
    value = data.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise PayloadError(f"data.id {value!r} is not a BigCommerce order id")
    return str(int(value))


def fetch_order(payload: Any) -> FetchOrder:
    return FetchOrder(order_id(payload))


def order_archived(payload: Any) -> OrderRemoved:
    return OrderRemoved(order_id(payload), reason="archived")


TOPIC_HANDLERS: dict[str, TopicHandler] = {
    "store/order/created": fetch_order,
    "store/order/updated": fetch_order,
    "store/order/statusUpdated": fetch_order,
    # A refund changes refunded_amount and the refund list, which the fetched order carries.
    "store/order/refund/created": fetch_order,
    "store/order/archived": order_archived,
}

# Scopes a store may send (through a wildcard hook such as store/order/* or store/cart/*) that Orderline
# does not act on. Shipments and transactions also change the order, which fires store/order/updated.
IGNORED_TOPICS: frozenset[str] = frozenset({
    "store/order/message/created",
    "store/order/transaction/created",
    "store/order/transaction/updated",
    "store/order/metafield/created",
    "store/order/metafield/updated",
    "store/order/metafield/deleted",
    "store/shipment/created",
    "store/shipment/updated",
    "store/shipment/deleted",
    "store/cart/created",
    "store/cart/updated",
    "store/cart/deleted",
    "store/cart/couponApplied",
    "store/cart/abandoned",
    "store/cart/converted",
})
