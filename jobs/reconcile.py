"""Reconciliation: poll each shop's channel for orders changed since its watermark, and count what the
webhooks missed. Backfill is the same poll over the last N days, counting nothing as missed."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import outbox
from app.alerts import raise_alert
from app.models import OutboxEvent, ReconcileRun, Shop
from app.orders import actions
from app.runtime import Runtime
from app.store import utcnow
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
    client = client_for(runtime, shop)
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        page = client.changed_orders(since, cursor)
        for order in page.orders:
            if order.channel_updated_at and order.channel_updated_at > until:
                continue  # too fresh: its webhook may be on the way
            run.orders_seen += 1
            _order, outcome = actions.apply_channel_order(session, shop, order)
            if kind == "reconcile" and outcome == "created":
                run.missed_creates += 1
            elif kind == "reconcile" and outcome == "updated":
                run.missed_updates += 1
        cursor = page.next_cursor
        if not cursor:
            break
    run.finished_at = utcnow()
    if kind == "reconcile" and (run.missed_creates or run.missed_updates):
        raise_alert(session, "missed_webhooks", f"shop:{shop.id}",
                    f"Reconciliation of {shop.name} found {run.missed_creates} order(s) and {run.missed_updates} "
                    f"update(s) that webhooks did not deliver", shop_id=shop.id, run_id=run.id)
        log.warning("reconcile.missed_webhooks", shop_id=shop.id, count=run.missed_creates + run.missed_updates)
    shop.reconciled_until = max(until, shop.reconciled_until or until) if kind == "reconcile" else shop.reconciled_until
    return run


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
