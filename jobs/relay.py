"""The outbox relay: enqueue committed outbox rows on RQ, and sweep up whatever was left behind."""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app import outbox
from app.models import OutboxEvent
from app.runtime import Runtime
from app.store import utcnow
from jobs.ingest import wake_if_stuck as wake_ingest_if_stuck
from jobs.reconcile import schedule_due as schedule_due_reconciliations
from jobs.registry import spec_for
from jobs.slack import schedule_digests as schedule_slack_digests
from jobs.tracking import schedule_due_polls

log = structlog.get_logger("orderline.relay")

# RQ states in which the job will still run by itself; anything else means the row needs a new job.
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
RUNNER = "jobs.runner.run_outbox"
# RQ stops a job that runs longer than this (a hung call); a batch gets as long for each of its rows.
JOB_TIMEOUT_SECONDS = 600


def _new_job_id(outbox_id: int) -> str:
    return f"outbox-{outbox_id}-{secrets.token_hex(3)}"


def _whole_second_after(delay: float) -> datetime:
    # RQ keeps scheduled times in whole seconds, truncating: round up, so a retry never runs early.
    return datetime.fromtimestamp(math.ceil(utcnow().timestamp() + delay), tz=UTC)


def _enqueue(runtime: Runtime, outbox_id: int, job: str, *, delay: float | None = None) -> str:
    queue = Queue(str(spec_for(job).queue), connection=runtime.redis)
    job_id = _new_job_id(outbox_id)
    # The job outlives its first failure by long enough for the sweeper to read its status.
    description = f"{job} (outbox {outbox_id})"
    if delay and delay > 0:
        queue.enqueue_at(_whole_second_after(delay), RUNNER, outbox_id, job_id=job_id, result_ttl=3600,
                         failure_ttl=7 * 24 * 3600, job_timeout=JOB_TIMEOUT_SECONDS, description=description)
    else:
        queue.enqueue(RUNNER, outbox_id, job_id=job_id, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                      job_timeout=JOB_TIMEOUT_SECONDS, description=description)
    return job_id


def _mark_enqueued(runtime: Runtime, marks: dict[int, str]) -> None:
    if not marks:
        return
    now = utcnow()
    with runtime.db.session() as session:
        # One executemany instead of a statement per row: a busy batch publishes a hundred rows at once.
        session.execute(update(OutboxEvent), [{"id": outbox_id, "enqueued_at": now, "rq_job_id": job_id}
                                              for outbox_id, job_id in marks.items()])


def publish(runtime: Runtime, outbox_ids: Iterable[int]) -> int:
    """Enqueue these committed rows now, in one Redis round trip. Redis being down only delays them: the
    sweeper retries."""
    ids = list(outbox_ids)
    if not ids:
        return 0
    with runtime.db.session() as session:
        found = session.execute(select(OutboxEvent.id, OutboxEvent.job, OutboxEvent.next_attempt_at).where(
            OutboxEvent.id.in_(ids), OutboxEvent.status == "pending")).all()
    # A row that asked to wait (a debounced Slack card, a text held for the morning) goes to RQ's scheduler.
    soon = utcnow() + timedelta(seconds=1)
    later = [(outbox_id, job, due) for outbox_id, job, due in found if due is not None and due > soon]
    rows = [(outbox_id, job) for outbox_id, job, due in found if due is None or due <= soon]
    marks: dict[int, str] = {}
    by_queue: dict[str, list[Any]] = {}
    for job, batch in _batches(rows):
        job_id = _new_job_id(batch[0])
        marks.update(dict.fromkeys(batch, job_id))
        by_queue.setdefault(str(spec_for(job).queue), []).append(Queue.prepare_data(
            RUNNER, tuple(batch), job_id=job_id, result_ttl=3600, failure_ttl=7 * 24 * 3600,
            timeout=JOB_TIMEOUT_SECONDS * len(batch), description=f"{job} (outbox {', '.join(map(str, batch))})"))
    try:
        with runtime.redis.pipeline() as pipe:
            for name, jobs in by_queue.items():
                Queue(name, connection=runtime.redis).enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        for outbox_id, job, due in later:
            marks[outbox_id] = _enqueue(runtime, outbox_id, job, delay=(due - utcnow()).total_seconds())
    except RedisError as error:
        log.warning("relay.redis_unavailable", error=str(error), waiting=len(found))
        return 0
    _mark_enqueued(runtime, marks)
    return len(marks)


def _batches(rows: Sequence[tuple[int, str]]) -> Iterator[tuple[str, list[int]]]:
    """The rows as RQ jobs: rows of a job that batches (`JobSpec.batch`) go in groups of up to that many."""
    by_job: dict[str, list[int]] = {}
    for outbox_id, job in sorted(rows):
        by_job.setdefault(job, []).append(outbox_id)
    for job, ids in by_job.items():
        size = spec_for(job).batch
        for start in range(0, len(ids), size):
            yield job, ids[start:start + size]


def schedule_retry(runtime: Runtime, outbox_id: int) -> None:
    with runtime.db.session() as session:
        row = session.get(OutboxEvent, outbox_id)
        if row is None or row.status != "pending" or row.next_attempt_at is None:
            return
        delay = (row.next_attempt_at - utcnow()).total_seconds()
    try:
        _mark_enqueued(runtime, {outbox_id: _enqueue(runtime, outbox_id, row.job, delay=delay)})
    except RedisError as error:
        log.warning("relay.retry_not_scheduled", outbox_id=outbox_id, error=str(error))


# --- leases: how the sweeper tells a running job from one whose worker was killed ---------------------------
#
# RQ notices a SIGKILLed worker only when its started-registry entry expires (a minute and a half at
# best, RELIABILITY.md §2). A running job instead holds a short lease in Redis, renewed from a thread while
# it runs; a job RQ still calls "started" whose lease has lapsed is dead, and the sweeper runs it again.
# A wrong guess (a job frozen longer than the lease) costs nothing: the second copy waits on the row lock
# and then finds the row closed.


def lease_key(outbox_id: int) -> str:
    return f"orderline:lease:outbox:{outbox_id}"


def lease_seconds(runtime: Runtime) -> int:
    return max(int(runtime.settings.worker_ttl_seconds), 2)


# Every lease this process holds, renewed by one thread of its own (not a thread per job).
_held: dict[int, tuple[Any, int]] = {}
_held_lock = threading.Lock()
_keeper_pid: int | None = None


def _renew_all(redis: Any, outbox_ids: Sequence[int], ttl: int) -> None:
    """Set or extend the leases, in one round trip."""
    if not outbox_ids:
        return
    try:
        with redis.pipeline(transaction=False) as pipe:
            for outbox_id in outbox_ids:
                pipe.set(lease_key(outbox_id), "1", ex=ttl)
            pipe.execute()
    except RedisError as error:
        log.warning("lease.not_renewed", outbox_ids=list(outbox_ids), error=str(error))


def _keep_renewing() -> None:
    while True:
        with _held_lock:
            holds = list(_held.items())
        by_client: dict[int, tuple[Any, int, list[int]]] = {}
        for outbox_id, (redis, ttl) in holds:
            by_client.setdefault(id(redis), (redis, ttl, []))[2].append(outbox_id)
        for redis, ttl, ids in by_client.values():
            _renew_all(redis, ids, ttl)
        # As often as the shortest lease needs (a third of it); idle, it looks for new ones every second.
        time.sleep(min((ttl / 3 for _, (_, ttl) in holds), default=1.0))


def _forget_parent_leases() -> None:
    global _held_lock, _keeper_pid
    _held.clear()
    _held_lock, _keeper_pid = threading.Lock(), None  # the parent's thread (and its lock's state) stayed behind


os.register_at_fork(after_in_child=_forget_parent_leases)


@contextmanager
def held_leases(runtime: Runtime, outbox_ids: Iterable[int]) -> Iterator[None]:
    """Hold the leases of these outbox rows while the block runs. Redis being down only skips renewals."""
    global _keeper_pid
    ids = list(outbox_ids)
    ttl = lease_seconds(runtime)
    _renew_all(runtime.redis, ids, ttl)
    with _held_lock:
        _held.update(dict.fromkeys(ids, (runtime.redis, ttl)))
        if _keeper_pid != os.getpid():
            _keeper_pid = os.getpid()
            threading.Thread(target=_keep_renewing, name="orderline-leases", daemon=True).start()
    try:
        yield
    finally:
        with _held_lock:
            for outbox_id in ids:
                _held.pop(outbox_id, None)


def _job_alive(runtime: Runtime, job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=runtime.redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status != JobStatus.STARTED:
        return status in _ALIVE
    outbox_id = _outbox_id_of(job_id)
    if outbox_id is None or runtime.redis.exists(lease_key(outbox_id)):
        return True
    # No lease: dead, unless it started so recently that its first renewal may still be on its way.
    started = job.started_at
    return started is None or utcnow() - started < timedelta(seconds=lease_seconds(runtime))


def _outbox_id_of(job_id: str) -> int | None:
    parts = job_id.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "outbox" and parts[1].isdigit() else None


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
            marks[row.id] = _enqueue(runtime, row.id, row.job)
    except RedisError as error:
        log.warning("sweep.redis_unavailable", error=str(error))
    _mark_enqueued(runtime, marks)
    if marks:
        log.info("sweep.requeued", count=len(marks))
    return len(marks)


def requeue_failed(runtime: Runtime, outbox_ids: Iterable[int] | None = None) -> list[int]:
    """Make failed rows pending again (all of them, or the ones named) and enqueue them."""
    with runtime.db.session() as session:
        query = (select(OutboxEvent.id, OutboxEvent.job, OutboxEvent.rq_job_id)
                 .where(OutboxEvent.status == "failed"))
        if outbox_ids is not None:
            query = query.where(OutboxEvent.id.in_(list(outbox_ids)))
        rows = session.execute(query).all()
        ids = [row.id for row in rows]
        if ids:
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(
                status="pending", attempts=0, next_attempt_at=None, finished_at=None, enqueued_at=None))
    _forget_failed_rq_jobs(runtime, [(row.job, row.rq_job_id) for row in rows])
    publish(runtime, ids)
    return ids


def _forget_failed_rq_jobs(runtime: Runtime, jobs: list[tuple[str, str | None]]) -> None:
    """Drop the requeued rows' old jobs from RQ's failed registry, so its count means "still failed"."""
    try:
        for job, rq_job_id in jobs:
            if not rq_job_id:
                continue
            try:
                queue = Queue(str(spec_for(job).queue), connection=runtime.redis)
            except LookupError:
                continue
            registry = FailedJobRegistry(queue=queue)
            if rq_job_id in registry:
                registry.remove(rq_job_id, delete_job=True)
    except RedisError as error:
        log.warning("relay.failed_registry_not_cleaned", error=str(error))


def install_after_commit(runtime: Runtime) -> None:
    """Publish every session's new outbox rows right after it commits."""

    def after_commit(session: Session) -> None:
        # SQLAlchemy fires this for a SAVEPOINT's release too; only the outermost commit makes rows visible.
        if session.in_nested_transaction():
            return
        ids = outbox.take_committed_ids(session)
        if ids:
            try:
                publish(runtime, ids)
            except Exception:  # the sweeper will find the rows; the commit itself succeeded
                log.exception("relay.publish_failed", outbox_ids=ids)

    def after_rollback(session: Session) -> None:
        outbox.take_committed_ids(session)

    event.listen(runtime.db.sessionmaker, "after_commit", after_commit)
    # A rolled-back SAVEPOINT leaves the outer transaction's rows to publish; only a full rollback drops them.
    event.listen(runtime.db.sessionmaker, "after_soft_rollback",
                 lambda s, previous: None if previous.nested else after_rollback(s))


# Held by the sweeper thread while it uses the database, and by a worker while it forks a work horse.
FORK_GUARD = threading.Lock()


class Sweeper(threading.Thread):
    """Sweeps the outbox and asks for due reconciliations on an interval; a Redis lock keeps one sweep at
    a time across all workers."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        super().__init__(name="orderline-sweeper", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if self.runtime.redis.set("orderline:sweeper", "1", nx=True, ex=max(int(self.interval), 1)):
                    with FORK_GUARD:  # no work horse is forked mid-transaction (jobs/worker.py)
                        sweep(self.runtime)
                        wake_ingest_if_stuck(self.runtime)
                        schedule_due_reconciliations(self.runtime)
                        schedule_due_polls(self.runtime)
                        schedule_slack_digests(self.runtime)  # Slack: daily digests at each shop's morning time
            except RedisError as error:
                log.warning("sweep.skipped", error=str(error))
            except Exception:
                log.exception("sweep.crashed")

    def stop(self) -> None:
        self.stopped.set()
