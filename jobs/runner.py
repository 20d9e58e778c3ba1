"""Runs one outbox row's job: exactly-once database effects on top of RQ's at-least-once delivery."""

from __future__ import annotations

import time
from datetime import timedelta

import structlog
from sqlalchemy import bindparam, inspect, or_, select, update
from sqlalchemy.orm import Session

from app import events, outbox
from app import runtime as runtime_module
from app.alerts import raise_alert
from app.failures import Busy
from app.models import OutboxEvent
from app.requestctx import bind_request_id, clear_request_id
from app.runtime import Runtime
from app.store import Database, utcnow
from jobs import relay
from jobs.context import JobContext
from jobs.queues import QueueName
from jobs.registry import spec_for
from jobs.retry import RetryPolicy, classify

log = structlog.get_logger("orderline.jobs")


def policy_for(runtime: Runtime) -> RetryPolicy:
    s = runtime.settings
    return RetryPolicy(s.job_max_attempts, s.job_backoff_base_seconds, s.job_backoff_cap_seconds)


# Built once: every step of every order runs these, and building a statement costs more than binding one.
_LOCK_ROW = select(OutboxEvent).where(OutboxEvent.id == bindparam("outbox_id")).with_for_update()
_CLAIM_ROW = (update(OutboxEvent)
              .where(OutboxEvent.id == bindparam("outbox_id"), OutboxEvent.status == "pending",
                     or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= bindparam("due")))
              .values(attempts=OutboxEvent.attempts + 1)
              .returning(OutboxEvent.attempts, OutboxEvent.job, OutboxEvent.request_id))
_ROW_STATUS = select(OutboxEvent.status).where(OutboxEvent.id == bindparam("outbox_id"))


def _locked(session: Session, outbox_id: int) -> OutboxEvent | None:
    # FOR UPDATE: a second copy of this job (RQ delivers at least once) waits here, then sees "done".
    return session.execute(_LOCK_ROW, {"outbox_id": outbox_id}).scalar_one_or_none()


# The next steps of an order's fulfilment run in the same process right after the step that asked for them
# (triage → allocate → pick and pack → label → push), instead of a trip through Redis and a fork each: an
# order is one RQ job instead of five; likewise a text's send after its claim. Each step keeps its own outbox
# row, transaction, lease and retries; a step left over when the budget runs out, or when the process dies, is
# published or swept as usual. Keyed by the queue of the job that ran: the queues whose new jobs follow it.
_FULFILMENT = frozenset({QueueName.FULFILMENT, QueueName.PROVIDERS})
INLINE_AFTER: dict[QueueName, frozenset[QueueName]] = {
    QueueName.FULFILMENT: _FULFILMENT, QueueName.PROVIDERS: _FULFILMENT,
    QueueName.NOTIFY: frozenset({QueueName.NOTIFY}),
}
INLINE_MAX_STEPS = 8
INLINE_MAX_SECONDS = 60.0
# Local steps (JobSpec.local: the database only) go further: they run inside the very transaction of the step
# that asked for them, as nobody else can see their rows before it commits. An order's triage and allocation
# are one transaction instead of two pairs. At most this many per transaction.
LOCAL_MAX_STEPS = 8


def run_outbox(outbox_id: int) -> str:
    """The RQ entry point for every job. Returns what happened, for RQ's result and the logs."""
    runtime = runtime_module.current()
    deadline = time.monotonic() + INLINE_MAX_SECONDS
    # The lease tells the sweeper this job is alive; if the worker is killed, it lapses within seconds.
    with relay.held_lease(runtime, outbox_id):
        result, next_steps = _run(runtime, outbox_id, inline=INLINE_MAX_STEPS)
    steps = 1
    while next_steps:
        step = next_steps.pop(0)
        left = INLINE_MAX_STEPS - steps if time.monotonic() < deadline else 0
        if left <= 0:
            relay.publish(runtime, [step, *next_steps])  # over budget: the rest goes through Redis
            break
        with relay.held_lease(runtime, step):
            _, more = _run(runtime, step, inline=left)
        next_steps.extend(more)
        steps += 1
    return result


def _claim(db: Database, outbox_id: int) -> tuple[int, str, str | None] | str:
    """Count an attempt on the row if it is pending and due, in one statement of its own transaction:
    counted before running, so a job that kills its worker every time still runs out of attempts. A second
    copy of a running job waits here on the row's lock. Returns (attempt, job, request id), or why not."""
    engine = db.autocommit_engine if db.dialect == "postgresql" else db.engine
    with engine.begin() as connection:
        claimed = connection.execute(_CLAIM_ROW, {"outbox_id": outbox_id,
                                                  "due": utcnow() + timedelta(seconds=1)}).first()
        if claimed is None:
            status = connection.execute(_ROW_STATUS, {"outbox_id": outbox_id}).scalar()
            return "skipped: not due yet" if status == "pending" else "skipped: already closed"
    return claimed.attempts, claimed.job, claimed.request_id


def _follow_ups(session: Session, after: QueueName) -> list[OutboxEvent]:
    """The outbox rows this transaction added (and kept) that run in-process after a job of queue `after`
    (see INLINE_AFTER), flushed: with their ids and state."""
    session.flush()
    follows = INLINE_AFTER.get(after, frozenset())
    added: list[OutboxEvent] = session.info.get(outbox.SESSION_KEY, [])
    return [row for row in added if inspect(row).persistent and spec_for(row.job).queue in follows]


def _next_local_step(session: Session, after: QueueName, tried: set[int]) -> OutboxEvent | None:
    return next((row for row in _follow_ups(session, after)
                 if spec_for(row.job).local and row.id not in tried and row.status == "pending"), None)


def _run_local_steps(runtime: Runtime, session: Session, after: QueueName) -> None:
    """Run the local steps this transaction asked for (and those they ask for in turn) inside it, each in a
    savepoint: one that fails is rolled back alone and stays pending, to be published after the commit and
    run as its own job, its error in the log."""
    tried: set[int] = set()
    while len(tried) < LOCAL_MAX_STEPS and (row := _next_local_step(session, after, tried)) is not None:
        tried.add(row.id)
        try:
            with session.begin_nested():
                spec_for(row.job).func(JobContext(row.id, dict(row.payload), session, runtime))
                row.status, row.attempts, row.finished_at = "done", 1, utcnow()
                events.dispatch(session)
        except Exception as error:
            log.warning("job.local_step_failed", outbox_id=row.id, job=row.job,
                        error=f"{type(error).__name__}: {error}"[:500])
            continue
        session.info[outbox.SESSION_KEY].remove(row)  # closed: nothing for the relay to publish
        log.info("job.done", outbox_id=row.id, job=row.job, attempt=1, local=True)


def _inline_steps(session: Session, budget: int, after: QueueName) -> list[int]:
    """Take up to `budget` of the follow-ups (`_follow_ups`) to run in-process next, each in a transaction of
    its own; the relay publishes the others after the commit."""
    chosen = _follow_ups(session, after)[:budget]
    session.info[outbox.SESSION_KEY] = [row for row in session.info.get(outbox.SESSION_KEY, []) if row not in chosen]
    return [row.id for row in chosen]


def _run(runtime: Runtime, outbox_id: int, *, inline: int = 0) -> tuple[str, list[int]]:
    db = runtime.db
    claimed = _claim(db, outbox_id)
    if isinstance(claimed, str):
        return claimed, []
    attempt, job, request_id = claimed
    bind_request_id(request_id)
    log_ = log.bind(outbox_id=outbox_id, job=job, attempt=attempt)
    policy = policy_for(runtime)
    try:
        if attempt > policy.max_attempts:
            raise RuntimeError(f"gave up after {policy.max_attempts} attempts")
        with db.session() as session:
            row = _locked(session, outbox_id)
            if row is None or row.status != "pending":
                return "skipped: already closed", []
            spec_for(job).func(JobContext(outbox_id, dict(row.payload), session, runtime,
                                          may_have_run_before=attempt > 1 or row.last_error is not None))
            row.status, row.finished_at, row.last_error = "done", utcnow(), None
            if inline:
                events.dispatch(session)  # the listeners' jobs too (a label after packing, …)
                _run_local_steps(runtime, session, spec_for(job).queue)
            next_steps = _inline_steps(session, inline, spec_for(job).queue) if inline else []
        log_.info("job.done")
        return "done", next_steps
    except Exception as error:
        retry, retry_after = classify(error)
        return _after_failure(runtime, outbox_id, attempt, error, retry, retry_after, policy, log_), []
    finally:
        clear_request_id()


def _after_failure(runtime: Runtime, outbox_id: int, attempt: int, error: Exception, retry: bool,
                   retry_after: float | None, policy: RetryPolicy, log_: structlog.BoundLogger) -> str:
    message = f"{type(error).__name__}: {error}"[:2000]
    with runtime.db.session() as session:
        row = _locked(session, outbox_id)
        if row is None or row.status != "pending":
            return "skipped: already closed"
        row.last_error = message
        if isinstance(error, Busy):
            row.attempts = max(row.attempts - 1, 0)  # waiting its turn is not a failed attempt
            row.next_attempt_at = utcnow() + timedelta(seconds=retry_after or 1.0)
            log_.info("job.busy", error=message)
        elif retry and not policy.gives_up_after(attempt):
            delay = policy.delay(attempt, retry_after)
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            log_.warning("job.retry_scheduled", error=message, delay_seconds=round(delay, 2))
        else:
            row.status, row.finished_at = "failed", utcnow()
            log_.error("job.failed", error=message, retryable=retry)
            # Staff hear of it (Slack's ops channel): one alert per job kind, counting repeats, not one per row.
            raise_alert(session, "job_failed", row.job, f"Job {row.job} failed: {message[:300]}", job=row.job,
                        outbox_id=row.id, order_id=(row.payload or {}).get("order_id"))
    if isinstance(error, Busy) or (retry and not policy.gives_up_after(attempt)):
        relay.schedule_retry(runtime, outbox_id)
        return "retry scheduled"
    # Re-raised so RQ keeps the traceback in its failed-job registry too.
    raise error
