"""The outbox relay: enqueue committed outbox rows on RQ, and sweep up whatever was left behind."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from datetime import timedelta

import structlog
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app import outbox
from app.models import OutboxEvent
from app.runtime import Runtime
from app.store import utcnow
from jobs.registry import spec_for

log = structlog.get_logger("orderline.relay")

# RQ states in which the job will still run by itself; anything else means the row needs a new job.
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
RUNNER = "jobs.runner.run_outbox"


def _new_job_id(outbox_id: int) -> str:
    return f"outbox-{outbox_id}-{secrets.token_hex(3)}"


def _enqueue(runtime: Runtime, row: OutboxEvent, *, delay: float | None = None) -> str:
    queue = Queue(str(spec_for(row.job).queue), connection=runtime.redis)
    job_id = _new_job_id(row.id)
    # The job outlives its first failure by long enough for the sweeper to read its status.
    options = dict(job_id=job_id, result_ttl=3600, failure_ttl=7 * 24 * 3600, job_timeout=600,
                   description=f"{row.job} (outbox {row.id})")
    if delay and delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), RUNNER, row.id, **options)
    else:
        queue.enqueue(RUNNER, row.id, **options)
    return job_id


def _mark_enqueued(runtime: Runtime, marks: dict[int, str]) -> None:
    if not marks:
        return
    now = utcnow()
    with runtime.db.session() as session:
        for outbox_id, job_id in marks.items():
            session.execute(update(OutboxEvent).where(OutboxEvent.id == outbox_id)
                            .values(enqueued_at=now, rq_job_id=job_id))


def publish(runtime: Runtime, outbox_ids: Iterable[int]) -> int:
    """Enqueue these committed rows now. Redis being down only delays them: the sweeper retries."""
    ids = list(outbox_ids)
    if not ids:
        return 0
    marks: dict[int, str] = {}
    with runtime.db.session() as session:
        rows = session.execute(select(OutboxEvent).where(OutboxEvent.id.in_(ids),
                                                         OutboxEvent.status == "pending")).scalars().all()
    try:
        for row in rows:
            marks[row.id] = _enqueue(runtime, row)
    except RedisError as error:
        log.warning("relay.redis_unavailable", error=str(error), waiting=len(rows) - len(marks))
    _mark_enqueued(runtime, marks)
    return len(marks)


def schedule_retry(runtime: Runtime, outbox_id: int) -> None:
    with runtime.db.session() as session:
        row = session.get(OutboxEvent, outbox_id)
        if row is None or row.status != "pending" or row.next_attempt_at is None:
            return
        delay = (row.next_attempt_at - utcnow()).total_seconds()
    try:
        _mark_enqueued(runtime, {outbox_id: _enqueue(runtime, row, delay=delay)})
    except RedisError as error:
        log.warning("relay.retry_not_scheduled", outbox_id=outbox_id, error=str(error))


def _job_alive(runtime: Runtime, job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        status = Job.fetch(job_id, connection=runtime.redis).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return status in _ALIVE


def sweep(runtime: Runtime, *, limit: int = 500) -> int:
    """Re-enqueue pending rows whose job never reached Redis or has vanished from it. Returns the count."""
    now = utcnow()
    grace = timedelta(seconds=runtime.settings.sweep_grace_seconds)
    with runtime.db.session() as session:
        rows = session.execute(
            select(OutboxEvent)
            .where(OutboxEvent.status == "pending")
            .where(or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now))
            .where(or_(OutboxEvent.enqueued_at.is_(None), OutboxEvent.enqueued_at <= now - grace))
            .order_by(OutboxEvent.id)
            .limit(limit)
        ).scalars().all()
    marks: dict[int, str] = {}
    try:
        for row in rows:
            if row.enqueued_at is not None and _job_alive(runtime, row.rq_job_id):
                continue
            marks[row.id] = _enqueue(runtime, row)
    except RedisError as error:
        log.warning("sweep.redis_unavailable", error=str(error))
    _mark_enqueued(runtime, marks)
    if marks:
        log.info("sweep.requeued", count=len(marks))
    return len(marks)


def requeue_failed(runtime: Runtime, outbox_ids: Iterable[int] | None = None) -> list[int]:
    """Make failed rows pending again (all of them, or the ones named) and enqueue them."""
    with runtime.db.session() as session:
        query = select(OutboxEvent.id).where(OutboxEvent.status == "failed")
        if outbox_ids is not None:
            query = query.where(OutboxEvent.id.in_(list(outbox_ids)))
        ids = list(session.execute(query).scalars())
        if ids:
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(
                status="pending", attempts=0, next_attempt_at=None, finished_at=None, enqueued_at=None))
    publish(runtime, ids)
    return ids


def install_after_commit(runtime: Runtime) -> None:
    """Publish every session's new outbox rows right after it commits."""

    def after_commit(session: Session) -> None:
        ids = outbox.take_committed_ids(session)
        if ids:
            try:
                publish(runtime, ids)
            except Exception:  # the sweeper will find the rows; the commit itself succeeded
                log.exception("relay.publish_failed", outbox_ids=ids)

    def after_rollback(session: Session) -> None:
        outbox.take_committed_ids(session)

    event.listen(runtime.db.sessionmaker, "after_commit", after_commit)
    event.listen(runtime.db.sessionmaker, "after_soft_rollback", lambda s, _t: after_rollback(s))


class Sweeper(threading.Thread):
    """Sweeps on an interval; a Redis lock keeps one sweep at a time across all workers."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        super().__init__(name="orderline-sweeper", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if self.runtime.redis.set("orderline:sweeper", "1", nx=True, ex=max(int(self.interval), 1)):
                    sweep(self.runtime)
            except RedisError as error:
                log.warning("sweep.skipped", error=str(error))
            except Exception:
                log.exception("sweep.crashed")

    def stop(self) -> None:
        self.stopped.set()
