"""Return jobs: buy the return label, and push the refund to the channel, each exactly once.

Both use a key claimed and committed before the job runs (with the request, with the inspection); every
attempt (after a timeout, a worker killed after the call) looks the label or refund up by that key before
making one (app/returns.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

import structlog

from app import returns
from app.alerts import raise_alert
from app.carrier_accounts import carrier_client
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
    """A permanent failure: the provider's message on the order's timeline and a staff alert, and the step
    stops (the job ends; nothing is retried blindly). Staff fix the cause and resume it with the
    `return_retry` action."""
    message = str(error)[:2000]
    parcel = ctx.session.get(Return, return_id)
    if parcel is None:
        return
    parcel.error = message
    entry = actions.record_event(ctx.session, parcel.order, ACTOR, "order.step_failed",
                                 f"{step} for return {parcel.rma} failed: {message}", step=step,
                                 permanent=True, return_id=return_id)
    entry.data = {**entry.data, "message": message}  # `message` is also record_event's own parameter
    raise_alert(ctx.session, "return_step_failed", f"return:{return_id}:{step}",
                f"Order {parcel.order.number}: {step} for return {parcel.rma} failed: {message}",
                order_id=parcel.order_id, return_id=return_id)
    log.warning("returns.step_failed", step=step, return_id=return_id, error=message)


def _guarded(ctx: JobContext, return_id: int, step: str, work: Callable[[], T]) -> T | None:
    """Run the provider step; a permanent failure is recorded (in the job's own transaction, which then
    commits) and None returned. Transient errors propagate: the job retries with backoff."""
    savepoint = ctx.session.begin_nested()
    try:
        result = work()
    except (PermanentError, OrderError) as error:
        savepoint.rollback()
        _stop(ctx, return_id, step, error)
        return None
    savepoint.commit()
    return result


def buy_return_label(ctx: JobContext) -> None:
    """Buy the return's label (once), and record it as `return.label_ready`."""
    return_id = ctx.int_arg("return_id")
    parcel = returns.needing_label(ctx.session, return_id)
    if parcel is None:
        return
    assert parcel.carrier and parcel.label_reference and parcel.label_claimed_at
    reference, since = parcel.label_reference, parcel.label_claimed_at - FIND_MARGIN
    client = carrier_client(ctx.runtime.settings, parcel.carrier, parcel.order.shop)

    def buy() -> bool:
        label = client.find_label(reference, since=since)
        if label is None:
            label = client.return_label(returns.outbound_request(ctx.session, parcel))
        returns.record_label(ctx.session, ctx.runtime.settings, return_id, label, ACTOR)
        return True

    _guarded(ctx, return_id, "return label", buy)


def push_refund(ctx: JobContext) -> None:
    """Refund the inspected return on the channel (once), and record it as `order.refunded`."""
    return_id = ctx.int_arg("return_id")
    parcel = returns.needing_refund(ctx.session, return_id)
    if parcel is None:
        return
    order, shop = parcel.order, parcel.order.shop
    assert parcel.refund_key is not None
    request = RefundRequest(
        key=parcel.refund_key, order_external_id=order.external_id,
        amount=str(returns.exact(parcel.refund_amount or Decimal("0"), order.currency)), currency=order.currency,
        line_items=returns.refund_lines(parcel), note=f"Return {parcel.rma} ({parcel.refund_key})",
        restock=bool(parcel.restocked), gateway=str((shop.settings or {}).get("refund_gateway") or "manual"))
    if shop.channel == "manual":
        refund = PushedRefund(external_id=f"manual-{request.key}", amount=request.amount)
    else:
        client = client_for(ctx.runtime, shop)
        if not hasattr(client, "find_refund"):
            raise PermanentError(f"{shop.channel} refunds are not supported")
        refunding: RefundingClient = client  # type: ignore[assignment]

        def push() -> PushedRefund:
            return refunding.find_refund(request.order_external_id, request.key) or refunding.create_refund(request)

        pushed = _guarded(ctx, return_id, "refund", push)
        if pushed is None:
            return
        refund = pushed
    returns.record_refund(ctx.session, return_id, refund.external_id, Decimal(refund.amount), ACTOR)
