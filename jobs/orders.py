"""Jobs that move an order through the workflow."""

from __future__ import annotations

from app.orders import actions
from jobs.context import JobContext


def triage_order(ctx: JobContext) -> None:
    actions.triage(ctx.session, ctx.int_arg("order_id"))
