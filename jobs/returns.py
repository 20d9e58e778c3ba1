"""Return jobs: buy the return label, and push the refund to the channel, each exactly once.

Both claim a key in the database and commit it before calling out; a retry (a timeout, a worker killed
after the call) looks the label or refund up by that key before making another (app/returns.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

import structlog

from app import returns, tracking
from app.alerts import raise_alert
from app.failures import PermanentError
from app.models import Return
from app.orders import actions
from app.orders.errors import OrderError
from app.orders.types import Actor
from integrations.base import PushedRefund, RefundingClient, RefundRequest
from jobs.context import JobContext
from jobs.ingest import client_for

log = structlog.get_logger("orderline.returns")
ACTOR = Actor.system("Returns")
# A label bought just before the claim's clock reading (clock skew with the carrier) is still found.
FIND_MARGIN = timedelta(minutes=10)
T = TypeVar("T")


def _stop(ctx: JobContext, return_id: int, step: str, error: Exception) -> None:
    """A permanent failure: the provider's message on the order's timeline and a staff alert, in their own
    transaction (the job's is rolled back). Staff fix the cause and requeue the job."""
    message = str(error)[:2000]
    with ctx.runtime.db.session() as session:
        parcel = session.get(Return, return_id)
        if parcel is None:
            return
        parcel.error = message
        entry = actions.record_event(session, parcel.order, ACTOR, "order.step_failed",
                                     f"{step} for return {parcel.rma} failed: {message}", step=step,
                                     permanent=True, return_id=return_id)
        entry.data = {**entry.data, "message": message}  # `message` is also record_event's own parameter
        raise_alert(session, "return_step_failed", f"return:{return_id}:{step}",
                    f"Order {parcel.order.number}: {step} for return {parcel.rma} failed: {message}",
                    order_id=parcel.order_id, return_id=return_id)


def _guarded(ctx: JobContext, return_id: int, step: str, work: Callable[[], T]) -> T:
    try:
        return work()
    except (PermanentError, OrderError) as error:
        _stop(ctx, return_id, step, error)
        raise PermanentError(str(error)) from error


def buy_return_label(ctx: JobContext) -> None:
    """Buy the return's label (once), and record it as `return.label_ready`."""
    return_id = ctx.int_arg("return_id")
    with ctx.runtime.db.session() as claim:  # committed before any carrier call
        claimed = returns.claim_label(claim, return_id)
    if claimed is None:
        return
    reference, claimed_at = claimed
    parcel = ctx.session.get(Return, return_id)
    assert parcel is not None and parcel.carrier is not None
    client = tracking.carrier_client(ctx.runtime.settings, parcel.carrier)

    def buy() -> None:
        label = client.find_label(reference, since=claimed_at - FIND_MARGIN)
        if label is None:
            label = client.return_label(returns.outbound_request(ctx.session, parcel))
        returns.record_label(ctx.session, return_id, label, ACTOR)

    _guarded(ctx, return_id, "return label", buy)


def push_refund(ctx: JobContext) -> None:
    """Refund the inspected return on the channel (once), and record it as `order.refunded`."""
    return_id = ctx.int_arg("return_id")
    with ctx.runtime.db.session() as claim:  # the key is committed before any channel call
        parcel = returns.claim_refund(claim, return_id)
        if parcel is None:
            return
        order = parcel.order
        assert parcel.refund_key is not None
        request = RefundRequest(
            key=parcel.refund_key, order_external_id=order.external_id,
            amount=str(parcel.refund_amount or Decimal("0")), currency=order.currency,
            line_items=returns.refund_lines(parcel), note=f"Return {parcel.rma} ({parcel.refund_key})",
            restock=bool(parcel.restocked))
        shop = order.shop
    if shop.channel == "manual":
        refund = PushedRefund(external_id=f"manual-{request.key}", amount=request.amount)
    else:
        client = client_for(ctx.runtime, shop)
        if not hasattr(client, "find_refund"):
            raise PermanentError(f"{shop.channel} refunds are not supported")
        refunding: RefundingClient = client  # type: ignore[assignment]

        def push() -> PushedRefund:
            return refunding.find_refund(request.order_external_id, request.key) or refunding.create_refund(request)

        refund = _guarded(ctx, return_id, "refund", push)
    returns.record_refund(ctx.session, return_id, refund.external_id, Decimal(refund.amount), ACTOR)
