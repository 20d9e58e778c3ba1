"""Jobs of the shipping chain (logic in app/shipping.py): pick and pack for 3PL shops, buy and void labels,
tell the channel. A provider's refusal (PermanentError) stops the step with its message on the order's
timeline and an alert, and closes the job: `orderline orders retry <id>` resumes it. Transient errors
propagate, so the runner retries with backoff (honouring Retry-After)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import shipping
from app.failures import PermanentError
from app.models import Shipment
from app.orders import actions
from app.runtime import Runtime
from jobs.context import JobContext


def auto_pick_pack(ctx: JobContext) -> None:
    shipping.auto_pick_pack(ctx.session, ctx.int_arg("order_id"))


def lock_orders_of_shipments(session: Session, payloads: Sequence[dict[str, Any]]) -> None:
    """Before a batch of steps that take a `shipment_id`: the parcels locked, then their orders (read with
    their lines, addresses and parcels), each in id order. A parcel before its order, as a void and a
    tracking update take them: the other way round, the two would wait on each other."""
    ids = [p["shipment_id"] for p in payloads if isinstance(p.get("shipment_id"), int)]
    order_ids = session.execute(select(Shipment.order_id).where(Shipment.id.in_(ids)).order_by(Shipment.id)
                                .with_for_update()).scalars().all()
    actions.lock_orders(session, order_ids)


def _order_of(ctx: JobContext, shipment_id: int) -> int | None:
    return ctx.session.execute(select(Shipment.order_id).where(Shipment.id == shipment_id)).scalar()


def _step(ctx: JobContext, step: str, work: Callable[[Runtime, Session, int], str]) -> None:
    """Run `work` in a savepoint: a PermanentError drops what it wrote and records the failure instead."""
    shipment_id = ctx.int_arg("shipment_id")
    try:
        with ctx.session.begin_nested():
            work(ctx.runtime, ctx.session, shipment_id)
    except PermanentError as error:
        order_id = _order_of(ctx, shipment_id)
        if order_id is not None:
            shipping.step_failed(ctx.session, order_id, step, str(error), shipment_id=shipment_id)


def buy_label(ctx: JobContext) -> None:
    look_first = ctx.may_have_run_before
    _step(ctx, "buy_label", lambda runtime, session, shipment_id: shipping.buy_label(
        runtime, session, shipment_id, look_first=look_first))


def void_label(ctx: JobContext) -> None:
    _step(ctx, "void_label", shipping.void_label)


def push_fulfilment(ctx: JobContext) -> None:
    _step(ctx, "push_fulfilment", shipping.push_fulfilment)
