"""Order statuses and the transitions between them: the one table every change is checked against."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "received"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"
    ON_HOLD = "on_hold"
    ALLOCATED = "allocated"
    BACKORDERED = "backordered"
    PICKING = "picking"
    PACKED = "packed"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"
    REFUNDED = "refunded"


S = OrderStatus

# Holding and cancelling are possible until the goods leave; releasing a hold resumes the held-from
# status, so ON_HOLD may go back to any status it can be entered from.
HOLDABLE = frozenset({S.RECEIVED, S.NEEDS_REVIEW, S.APPROVED, S.ALLOCATED, S.BACKORDERED, S.PICKING, S.PACKED})
CANCELLABLE = HOLDABLE | {S.ON_HOLD}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.NEEDS_REVIEW, S.APPROVED}),
    S.NEEDS_REVIEW: frozenset({S.APPROVED}),
    S.APPROVED: frozenset({S.ALLOCATED, S.BACKORDERED}),
    S.BACKORDERED: frozenset({S.ALLOCATED}),
    S.ALLOCATED: frozenset({S.PICKING, S.BACKORDERED}),
    S.PICKING: frozenset({S.PACKED}),
    S.PACKED: frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED}),
    S.PARTIALLY_SHIPPED: frozenset({S.SHIPPED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.RETURN_REQUESTED}),
    S.DELIVERED: frozenset({S.RETURN_REQUESTED}),
    S.RETURN_REQUESTED: frozenset({S.RETURNED, S.DELIVERED}),
    S.RETURNED: frozenset({S.REFUNDED}),
    S.ON_HOLD: HOLDABLE,
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
for _status in HOLDABLE:
    TRANSITIONS[_status] = TRANSITIONS[_status] | {S.ON_HOLD}
for _status in CANCELLABLE:
    TRANSITIONS[_status] = TRANSITIONS[_status] | {S.CANCELLED}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def can_transition(current: OrderStatus | str, target: OrderStatus | str) -> bool:
    return OrderStatus(target) in TRANSITIONS[OrderStatus(current)]
