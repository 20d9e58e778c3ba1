"""Jobs of the fulfilment chain: allocation now; pick, pack, rate, label and push to follow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.orders import actions
from jobs.context import JobContext


def allocate_order(ctx: JobContext) -> None:
    """Reserve stock for an approved (or backordered) order; a repeat finds it allocated and does nothing."""
    actions.allocate(ctx.session, ctx.int_arg("order_id"))


def lock_orders(session: Session, payloads: Sequence[dict[str, Any]]) -> None:
    """Before a batch of steps that take an `order_id`: its orders locked and read together."""
    actions.lock_orders(session, [p["order_id"] for p in payloads if isinstance(p.get("order_id"), int)])
