"""Runs outbox rows' jobs: exactly-once database effects on top of RQ's at-least-once delivery.

One RQ job may carry several rows of the same kind (the relay groups them, `JobSpec.batch`): they are claimed
by one statement and run in one transaction, each in a savepoint of its own, so a busy hour pays for a claim,
a lock, a commit and an RQ job per batch instead of per order, and one row's failure is still its own."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, event, inspect, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import events, outbox
from app import runtime as runtime_module
from app.alerts import raise_alert
from app.failures import Busy
from app.models import OutboxEvent
from app.requestctx import bind_request_id, clear_request_id
from app.runtime import Runtime
from app.store import Database, transaction_info, utcnow
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
# In id order, so two runners that share rows (a sweep's copy) always lock them in the same order.
_LOCK_ROWS = (select(OutboxEvent).where(OutboxEvent.id.in_(bindparam("outbox_ids", expanding=True)))
              .order_by(OutboxEvent.id).with_for_update())
_CLAIM_ROWS = (update(OutboxEvent)
               .where(OutboxEvent.id.in_(bindparam("outbox_ids", expanding=True)), OutboxEvent.status == "pending",
                      or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= bindparam("due")))
               .values(attempts=OutboxEvent.attempts + 1)
               .returning(OutboxEvent.id, OutboxEvent.attempts, OutboxEvent.job, OutboxEvent.request_id))
_ROW_STATUS = select(OutboxEvent.status).where(OutboxEvent.id == bindparam("outbox_id"))


def _locked(session: Session, outbox_id: int) -> OutboxEvent | None:
    # FOR UPDATE: a second copy of this job (RQ delivers at least once) waits here, then sees "done".
    return session.execute(_LOCK_ROW, {"outbox_id": outbox_id}).scalar_one_or_none()


# The next steps of an order's fulfilment run in the same process right after the step that asked for them
# (triage → allocate → pick and pack → label → push), instead of a trip through Redis and a fork each: an
# order is one RQ job instead of five; likewise a text's send after its claim. Each step keeps its own outbox
# row, savepoint, lease and retries; steps left over when the budget runs out, or when the process dies, are
# published or swept as usual. Keyed by the queue of the job that ran: the queues whose new jobs follow it.
_FULFILMENT = frozenset({QueueName.FULFILMENT, QueueName.PROVIDERS})
INLINE_AFTER: dict[QueueName, frozenset[QueueName]] = {
    QueueName.FULFILMENT: _FULFILMENT, QueueName.PROVIDERS: _FULFILMENT,
    QueueName.NOTIFY: frozenset({QueueName.NOTIFY}),
}
# Rounds of follow-ups one RQ job runs (a round: a batch of follow-ups of one kind), and for how long.
INLINE_MAX_STEPS = 8
INLINE_MAX_SECONDS = 60.0
# Local steps (JobSpec.local: the database only) go further: they run inside the very transaction of the step
# that asked for them, as nobody else can see their rows before it commits. An order's triage and allocation
# are one transaction instead of two pairs. At most this many for each row the transaction ran.
LOCAL_MAX_STEPS = 8
# Once a batch has run this long it commits before its next row and goes on in a new transaction: the orders
# it has locked wait for staff no longer than this and one provider call. Ten sandbox labels take a fraction
# of it; an EasyPost label (around half a second) takes a transaction of its own.
TRANSACTION_SECONDS = 0.25


@dataclass(frozen=True)
class _Claim:
    attempt: int
    job: str
    request_id: str | None


@dataclass
class _Outcome:
    """What one round did: each row's result, the follow-ups to run next (id, job), the errors to surface."""

    results: dict[int, str] = field(default_factory=dict)
    next_steps: list[tuple[int, str]] = field(default_factory=list)
    failed: list[Exception] = field(default_factory=list)


def run_outbox(*outbox_ids: int) -> str:
    """The RQ entry point for every job: the outbox rows it runs (several when the relay batched them).
    Returns what happened, for RQ's result and the logs."""
    runtime = runtime_module.current()
    deadline = time.monotonic() + INLINE_MAX_SECONDS
    with relay.held_leases(runtime, outbox_ids):
        first = _run(runtime, list(outbox_ids))
    failed, next_steps, rounds = list(first.failed), first.next_steps, 1
    while next_steps:
        if rounds >= INLINE_MAX_STEPS or time.monotonic() >= deadline:
            relay.publish(runtime, [outbox_id for outbox_id, _job in next_steps])  # over budget: through Redis
            break
        group, next_steps = _one_kind(next_steps)
        with relay.held_leases(runtime, group):
            outcome = _run(runtime, group)
        failed.extend(outcome.failed)
        next_steps.extend(outcome.next_steps)
        rounds += 1
    if failed:
        raise failed[0]  # re-raised so RQ keeps the traceback in its failed-job registry too
    return _summary([first.results.get(outbox_id, "skipped: already closed") for outbox_id in outbox_ids])


def _one_kind(steps: list[tuple[int, str]]) -> tuple[list[int], list[tuple[int, str]]]:
    """The next round: as many of `steps` as one batch of the first one's kind takes; and the others."""
    kind = steps[0][1]
    group = [outbox_id for outbox_id, job in steps if job == kind][:spec_for(kind).batch]
    taken = set(group)
    return group, [(outbox_id, job) for outbox_id, job in steps if outbox_id not in taken]


def _summary(results: Sequence[str]) -> str:
    if len(results) == 1:
        return results[0]
    return ", ".join(f"{n} {result}" for result, n in Counter(results).items())


def _claim(db: Database, outbox_ids: list[int]) -> dict[int, _Claim]:
    """Count an attempt on each row that is pending and due, in one statement of its own transaction:
    counted before running, so a job that kills its worker every time still runs out of attempts. A second
    copy of a running job waits here on the rows' locks. Returns the rows claimed."""
    engine = db.autocommit_engine if db.dialect == "postgresql" else db.engine
    with engine.begin() as connection:
        claimed = connection.execute(_CLAIM_ROWS, {"outbox_ids": outbox_ids,
                                                   "due": utcnow() + timedelta(seconds=1)}).all()
    return {row.id: _Claim(row.attempts, row.job, row.request_id) for row in claimed}


def _why_not_claimed(db: Database, outbox_id: int) -> str:
    with db.engine.connect() as connection:
        status = connection.execute(_ROW_STATUS, {"outbox_id": outbox_id}).scalar()
    return "skipped: not due yet" if status == "pending" else "skipped: already closed"


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


def _run_local_steps(runtime: Runtime, session: Session, after: QueueName, budget: int) -> None:
    """Run the local steps this transaction asked for (and those they ask for in turn) inside it, each in a
    savepoint: one that fails is rolled back alone and stays pending, to be published after the commit and
    run as its own job, its error in the log."""
    tried: set[int] = set()
    while len(tried) < budget and (row := _next_local_step(session, after, tried)) is not None:
        tried.add(row.id)
        bind_request_id(row.request_id)  # what it asks for next carries the request that started it all
        try:
            with session.begin_nested():
                spec_for(row.job).func(JobContext(row.id, dict(row.payload), session, runtime))
                row.status, row.attempts, row.finished_at = "done", 1, utcnow()
                events.dispatch(session)
        except Exception as error:
            log.warning("job.local_step_failed", outbox_id=row.id, job=row.job,
                        error=f"{type(error).__name__}: {error}"[:500])
            continue
        finally:
            clear_request_id()
        session.info[outbox.SESSION_KEY].remove(row)  # closed: nothing for the relay to publish
        log.info("job.done", outbox_id=row.id, job=row.job, attempt=1, local=True)


def _inline_steps(session: Session, after: QueueName) -> list[tuple[int, str]]:
    """The follow-ups (`_follow_ups`) to run in-process next, a batch of each kind in a transaction of its
    own; the relay publishes the others after the commit."""
    chosen = _follow_ups(session, after)
    session.info[outbox.SESSION_KEY] = [row for row in session.info.get(outbox.SESSION_KEY, []) if row not in chosen]
    return [(row.id, row.job) for row in chosen]


def _run(runtime: Runtime, outbox_ids: list[int]) -> _Outcome:
    """Claim the rows, run each in a savepoint of a shared transaction (a new one every TRANSACTION_SECONDS),
    then retry or fail the ones that raised."""
    outcome = _Outcome()
    policy = policy_for(runtime)
    claimed = _claim(runtime.db, outbox_ids)
    for outbox_id in outbox_ids:
        if outbox_id not in claimed:
            outcome.results[outbox_id] = _why_not_claimed(runtime.db, outbox_id)
    errors: dict[int, Exception] = {
        outbox_id: RuntimeError(f"gave up after {policy.max_attempts} attempts")
        for outbox_id, claim in claimed.items() if claim.attempt > policy.max_attempts}
    batch = _Batch(claimed, outcome, errors)
    waiting = [outbox_id for outbox_id in outbox_ids if outbox_id in claimed and outbox_id not in errors]
    while waiting:
        attempted: list[int] = []
        try:
            waiting = _run_in_one_transaction(runtime, waiting, batch, attempted)
        except Exception as failure:  # the transaction itself failed: its commit, or the database gone
            if len(attempted) > 1:
                # One row may have broken it for all (its stock update at the commit, a lost connection): each
                # runs again in a transaction of its own, knowing it may have reached a provider already.
                for outbox_id in attempted:
                    errors.pop(outbox_id, None)
                batch.rows_per_transaction = 1
                batch.ran_before.update(attempted)
                continue
            for outbox_id in attempted or waiting:
                errors.setdefault(outbox_id, failure)
            waiting = [outbox_id for outbox_id in waiting if outbox_id not in attempted] if attempted else []
    for outbox_id, error in errors.items():
        claim = claimed[outbox_id]
        bind_request_id(claim.request_id)
        log_ = log.bind(outbox_id=outbox_id, job=claim.job, attempt=claim.attempt)
        retry, retry_after = classify(error)
        try:
            outcome.results[outbox_id] = _after_failure(runtime, outbox_id, claim.attempt, error, retry,
                                                        retry_after, policy, log_)
        except Exception as final:
            outcome.results[outbox_id] = "failed"
            outcome.failed.append(final)
        finally:
            clear_request_id()
    return outcome


@dataclass
class _Batch:
    claimed: dict[int, _Claim]
    outcome: _Outcome
    errors: dict[int, Exception]
    rows_per_transaction: int = 1_000_000
    ran_before: set[int] = field(default_factory=set)  # in a transaction that then failed


def _run_in_one_transaction(runtime: Runtime, outbox_ids: list[int], batch: _Batch, attempted: list[int]) -> list[int]:
    """Run the rows in id order, each in a savepoint, in one transaction until TRANSACTION_SECONDS have
    passed, or a row's database error leaves the rest for a new one; returns the rows left. Each row run is
    noted in `attempted`. Results and follow-ups count once the transaction has committed."""
    started = time.monotonic()
    left: list[int] = []
    done: list[int] = []
    with runtime.db.session() as session:
        if spec_for(batch.claimed[outbox_ids[0]].job).batch > 1:
            transaction_info(session)[_KEPT] = []
        rows = session.execute(_LOCK_ROWS, {"outbox_ids": outbox_ids}).scalars().all()
        prepare = spec_for(batch.claimed[outbox_ids[0]].job).prepare
        if prepare is not None:
            _prepare(session, prepare, [row.payload for row in rows[:batch.rows_per_transaction]
                                        if row.status == "pending"])
        for row in rows:
            if attempted and (time.monotonic() - started > TRANSACTION_SECONDS
                              or len(attempted) >= batch.rows_per_transaction
                              or isinstance(batch.errors.get(attempted[-1]), DBAPIError)):
                left.append(row.id)
                continue
            attempted.append(row.id)
            if row.status != "pending":
                batch.outcome.results[row.id] = "skipped: already closed"
            elif _run_one(runtime, session, row, batch.claimed[row.id], batch.errors,
                          ran_before=row.id in batch.ran_before):
                done.append(row.id)
        after = spec_for(rows[0].job).queue if rows else QueueName.BACKGROUND
        _run_local_steps(runtime, session, after, LOCAL_MAX_STEPS * len(done))
        next_steps = _inline_steps(session, after)
    batch.outcome.results.update(dict.fromkeys(done, "done"))
    batch.outcome.next_steps.extend(next_steps)
    return left


def _prepare(session: Session, prepare: Callable[[Session, Sequence[dict[str, Any]]], None],
             payloads: Sequence[dict[str, Any]]) -> None:
    """Lock and read what the batch's rows will (JobSpec.prepare), in a savepoint: if that fails (a deadlock
    with another batch), each row locks what it needs itself, as a row of its own would."""
    try:
        with session.begin_nested():
            prepare(session, payloads)
    except Exception as error:
        log.warning("job.prepare_failed", error=f"{type(error).__name__}: {error}"[:500])


# The session's identity map holds objects weakly: what a row loaded (the shop, its locations) would be gone
# when the row ends, and read again by the next row. A batch's session keeps them until it commits instead.
_KEPT = "orderline.batch_kept"


@event.listens_for(Session, "loaded_as_persistent")
def _keep_for_the_batch(session: Session, instance: object) -> None:
    kept = transaction_info(session).get(_KEPT)
    if kept is not None:
        kept.append(instance)


def _run_one(runtime: Runtime, session: Session, row: OutboxEvent, claim: _Claim,
             errors: dict[int, Exception], *, ran_before: bool = False) -> bool:
    """Run one row's job in a savepoint and close the row; an error rolls back its savepoint alone."""
    bind_request_id(claim.request_id)
    maybe_ran = ran_before or claim.attempt > 1 or row.last_error is not None
    try:
        with session.begin_nested():
            spec_for(claim.job).func(JobContext(row.id, dict(row.payload), session, runtime,
                                                may_have_run_before=maybe_ran))
            row.status, row.finished_at, row.last_error = "done", utcnow(), None
            events.dispatch(session)  # the listeners' jobs too (a label after packing, …)
    except Exception as error:
        errors[row.id] = error
        return False
    else:
        log.info("job.done", outbox_id=row.id, job=claim.job, attempt=claim.attempt)
        return True
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
    raise error
