"""The operations page: queue depths, failed jobs, the webhook inbox, reconciliation per shop, open alerts.

Read-only views here; requeue and replay go through the same functions as the API and the CLI
(`jobs.relay.requeue_failed`, `app.inbox.replay` + `jobs.ingest.wake`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Alert, InboundEvent, OutboxEvent, ReconcileRun, Shop
from app.runtime import Runtime
from app.store import utcnow
from jobs.queues import ALL_QUEUES

LIST_LIMIT = 50
_DAY = timedelta(days=1)


def queue_depths(runtime: Runtime) -> dict[str, Any]:
    """Per RQ queue: jobs waiting, running, scheduled (retries waiting for their time); None when Redis is down."""
    try:
        queues = []
        for name in ALL_QUEUES:
            queue = Queue(str(name), connection=runtime.redis)
            queues.append({"name": str(name), "queued": queue.count,
                           "started": queue.started_job_registry.count,
                           "scheduled": queue.scheduled_job_registry.count})
        return {"redis": "ok", "queues": queues}
    except RedisError as error:
        return {"redis": f"unreachable: {type(error).__name__}", "queues": None}


def outbox_summary(session: Session) -> dict[str, Any]:
    """Outbox rows by status, and how long the oldest pending row has waited (the outbox lag)."""
    counts = dict(session.execute(select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)).all())
    oldest = session.execute(select(func.min(OutboxEvent.created_at))
                             .where(OutboxEvent.status == "pending")).scalar()
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0), "done": counts.get("done", 0),
            "lag_seconds": round(lag, 1)}


def failed_jobs(session: Session) -> list[OutboxEvent]:
    return list(session.execute(select(OutboxEvent).where(OutboxEvent.status == "failed")
                                .order_by(OutboxEvent.id.desc()).limit(LIST_LIMIT)).scalars())


def inbox_problems(session: Session) -> list[InboundEvent]:
    """Deliveries that did not become order changes: failed (with the reason) and ignored, newest first."""
    return list(session.execute(select(InboundEvent).where(InboundEvent.status.in_(("failed", "ignored")))
                                .order_by(InboundEvent.id.desc()).limit(LIST_LIMIT)).scalars())


def inbox_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(InboundEvent.status, func.count()).group_by(InboundEvent.status)).all())


def reconciliation(session: Session) -> list[dict[str, Any]]:
    """Per shop: its latest reconciliation run, and the webhooks missed over the last day."""
    latest = (select(ReconcileRun.shop_id, func.max(ReconcileRun.id).label("run_id"))
              .group_by(ReconcileRun.shop_id).subquery())
    runs = {run.shop_id: run for run in session.execute(
        select(ReconcileRun).join(latest, latest.c.run_id == ReconcileRun.id)).scalars()}
    day_ago = utcnow().replace(microsecond=0) - _DAY
    missed = dict(session.execute(
        select(ReconcileRun.shop_id, func.sum(ReconcileRun.missed_creates + ReconcileRun.missed_updates))
        .where(ReconcileRun.started_at >= day_ago).group_by(ReconcileRun.shop_id)).all())
    result = []
    for shop in session.execute(select(Shop).where(Shop.channel != "manual").order_by(Shop.id)).scalars():
        run = runs.get(shop.id)
        result.append({"shop": shop, "run": run, "missed_last_day": int(missed.get(shop.id) or 0)})
    return result


def open_alerts(session: Session) -> list[Alert]:
    return list(session.execute(select(Alert).where(Alert.resolved_at.is_(None))
                                .order_by(Alert.last_seen_at.desc()).limit(LIST_LIMIT)).scalars())
