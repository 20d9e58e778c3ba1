"""Reconciliation: poll each shop's channel for orders changed since its watermark, and count what the
webhooks missed. Backfill is the same poll over the last N days, counting nothing as missed."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import outbox
from app.alerts import raise_alert
from app.models import Order, OutboxEvent, ReconcileRun, Shop
from app.orders import actions
from app.orders.types import NewOrder
from app.runtime import Runtime
from app.store import utcnow
from integrations.base import ChannelClient
from jobs.context import JobContext
from jobs.ingest import client_for

log = structlog.get_logger("orderline.reconcile")

# Orders changed in the last moments may still have their webhook in flight: they wait for the next poll.
SETTLE = timedelta(minutes=2)
# Overlap with the previous poll, against clock skew between the channel and us.
OVERLAP = timedelta(minutes=5)
FIRST_POLL_LOOKBACK = timedelta(days=1)
MAX_PAGES = 200


def reconcile_shop(ctx: JobContext) -> None:
    shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
    if shop is None or not shop.active or shop.channel == "manual":
        return
    days = ctx.payload.get("backfill_days")
    if isinstance(days, int) and days > 0:
        poll(ctx.runtime, ctx.session, shop, since=utcnow() - timedelta(days=days), kind="backfill")
    else:
        since = (shop.reconciled_until - OVERLAP) if shop.reconciled_until else utcnow() - FIRST_POLL_LOOKBACK
        poll(ctx.runtime, ctx.session, shop, since=since, kind="reconcile")


def poll(runtime: Runtime, session: Session, shop: Shop, *, since: datetime, kind: str) -> ReconcileRun:
    """Apply every order the channel changed after `since`, up to now minus the settle time."""
    until = utcnow() - SETTLE
    run = ReconcileRun(shop_id=shop.id, kind=kind, since=since, until=until,
                       orders_seen=0, missed_creates=0, missed_updates=0)
    session.add(run)
    # Every page is read before any order is touched: applying an order locks its row until this job commits,
    # and no row should stay locked (holding up its fulfilment) while the channel is paged or throttles us.
    polled = [order for order in _changed_orders(client_for(runtime, shop), since)
              if not (order.channel_updated_at and order.channel_updated_at > until)]  # too fresh: webhook on its way
    run.orders_seen = len(polled)
    for order in _not_yet_stored(session, shop, polled):
        _order, outcome = actions.apply_channel_order(session, shop, order)
        if kind == "reconcile" and outcome == "created":
            run.missed_creates += 1
        elif kind == "reconcile" and outcome == "updated":
            run.missed_updates += 1
    run.finished_at = utcnow()
    if kind == "reconcile" and (run.missed_creates or run.missed_updates):
        raise_alert(session, "missed_webhooks", f"shop:{shop.id}",
                    f"Reconciliation of {shop.name} found {run.missed_creates} order(s) and {run.missed_updates} "
                    f"update(s) that webhooks did not deliver", shop_id=shop.id, run_id=run.id)
        log.warning("reconcile.missed_webhooks", shop_id=shop.id, count=run.missed_creates + run.missed_updates)
    shop.reconciled_until = max(until, shop.reconciled_until or until) if kind == "reconcile" else shop.reconciled_until
    return run


def _changed_orders(client: ChannelClient, since: datetime) -> list[NewOrder]:
    orders: list[NewOrder] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        page = client.changed_orders(since, cursor)
        orders.extend(page.orders)
        cursor = page.next_cursor
        if not cursor:
            break
    return orders


def _not_yet_stored(session: Session, shop: Shop, polled: list[NewOrder]) -> list[NewOrder]:
    """The polled orders that are missing here or newer than what is stored. Most of a poll is orders the
    webhooks already brought: they are skipped without locking their rows (a stored order only ever moves
    forward, so one seen as current here cannot become stale)."""
    stored: dict[str | None, datetime | None] = {}
    ids = [order.external_id for order in polled]
    for chunk in range(0, len(ids), 500):
        rows = session.execute(select(Order.external_id, Order.channel_updated_at).where(
            Order.shop_id == shop.id, Order.external_id.in_(ids[chunk:chunk + 500])))
        stored.update({external_id: updated_at for external_id, updated_at in rows})

    def newer(order: NewOrder) -> bool:
        have = stored.get(order.external_id)
        return have is None or order.channel_updated_at is None or order.channel_updated_at > have

    return [order for order in polled if newer(order)]


def schedule_due(runtime: Runtime) -> int:
    """Ask for a reconciliation of every active shop whose last poll is older than the interval."""
    interval = timedelta(seconds=runtime.settings.reconcile_interval_seconds)
    now = utcnow()
    scheduled = 0
    with runtime.db.session() as session:
        waiting = {row.payload.get("shop_id") for row in session.execute(
            select(OutboxEvent).where(OutboxEvent.job == str(outbox.JobName.RECONCILE_SHOP),
                                      OutboxEvent.status == "pending")).scalars()}
        for shop in session.execute(select(Shop).where(Shop.active.is_(True), Shop.channel != "manual")).scalars():
            due = shop.reconciled_until is None or shop.reconciled_until + SETTLE + interval <= now
            if due and shop.id not in waiting:
                outbox.add_job(session, outbox.JobName.RECONCILE_SHOP, shop_id=shop.id)
                scheduled += 1
    return scheduled
