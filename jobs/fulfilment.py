"""Jobs of the fulfilment chain: allocation now; pick, pack, rate, label and push to follow."""

from __future__ import annotations

from app.orders import actions
from jobs.context import JobContext


def allocate_order(ctx: JobContext) -> None:
    """Reserve stock for an approved (or backordered) order; a repeat finds it allocated and does nothing."""
    actions.allocate(ctx.session, ctx.int_arg("order_id"))
