"""The outbox and its jobs: nothing acknowledged is lost, nothing runs twice, failures retry or surface.

Redis outages run against a private redis-server (tests/helpers_redis.py) that the test stops and starts;
the shared Redis is never touched. Everything that writes to the store runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import func, select, update

from app import create_app
from app import runtime as runtime_module
from app.api.auth import create_token
from app.config import Settings
from app.failures import Busy, PermanentError, TransientError
from app.models import Order, OrderEvent, OutboxEvent, Shop
from app.orders.errors import VersionConflict
from app.orders.types import Role
from app.outbox import JobName, add_coalesced, add_job
from app.runtime import Runtime
from app.store import utcnow
from jobs import registry as job_registry
from jobs import relay
from jobs.context import JobContext
from jobs.queues import ALL_QUEUES, QueueName
from jobs.relay import FORK_GUARD, Sweeper, sweep
from jobs.retry import RetryPolicy, classify
from jobs.runner import run_outbox
from jobs.worker import ForkSafeWorker
from tests.conftest import order_payload
from tests.helpers_redis import PrivateRedis

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ------------------------------------------------------------------------------------------------


class _BurstWorker(SimpleWorker):
    # No command channel: a burst run in a test takes no commands, and closing it costs a second.
    def subscribe(self) -> None:
        pass


def run_all_jobs(runtime: Runtime) -> bool:
    """What a worker does: run everything queued, in this process, against `runtime`'s Redis."""
    assert runtime_module.current() is runtime, "jobs must find the runtime the test is using"
    queues = [Queue(str(name), connection=runtime.redis) for name in ALL_QUEUES]
    return bool(_BurstWorker(queues, connection=runtime.redis).work(burst=True, logging_level="WARNING"))


def register_job(monkeypatch: pytest.MonkeyPatch, name: str, func: Callable[[JobContext], None],
                 queue: QueueName = QueueName.BACKGROUND, *, local: bool = False) -> None:
    monkeypatch.setitem(job_registry.JOBS, name, job_registry.JobSpec(func, queue, local=local))


def add_outbox_job(runtime: Runtime, name: str, **payload: Any) -> int:
    """Record a job the way an action does; the commit publishes it."""
    with runtime.db.session() as session:
        row = add_job(session, name, **payload)  # type: ignore[arg-type]
    return row.id  # given by the commit


def outbox_row(runtime: Runtime, outbox_id: int) -> OutboxEvent:
    with runtime.db.session() as session:
        row = session.get(OutboxEvent, outbox_id)
        assert row is not None
        return row


def triage_row(runtime: Runtime, order_id: int) -> OutboxEvent:
    with runtime.db.session() as session:
        rows = [r for r in session.execute(select(OutboxEvent).where(OutboxEvent.job == "triage_order"))
                .scalars() if r.payload.get("order_id") == order_id]
    assert len(rows) == 1, rows
    return rows[0]


def events(runtime: Runtime, order_id: int, type_: str) -> int:
    with runtime.db.session() as session:
        query = (select(func.count()).select_from(OrderEvent)
                 .where(OrderEvent.order_id == order_id, OrderEvent.type == type_))
        return int(session.execute(query).scalar_one())


def order_status(runtime: Runtime, order_id: int) -> tuple[str, int]:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.status, order.version


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Poll until `condition` holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


@dataclass
class Stack:
    """An app whose Redis is the private one, installed as the runtime jobs find."""

    app: Flask
    runtime: Runtime
    client: FlaskClient
    headers: dict[str, str]
    shop_id: int
    redis: PrivateRedis

    def run_jobs(self) -> bool:
        return run_all_jobs(self.runtime)

    def create_order(self, **overrides: Any) -> int:
        response = self.client.post("/api/v1/orders", json=order_payload(self.shop_id, **overrides),
                                    headers=self.headers)
        assert response.status_code == 201, response.json
        return int(response.json["id"])


@pytest.fixture
def run_jobs(runtime: Runtime) -> Callable[[], bool]:
    """conftest's run_jobs, minus the second RQ spends closing a command channel a burst never uses."""
    return lambda: run_all_jobs(runtime)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "private-redis")
    server.start()
    yield server
    server.stop()


def build_stack(settings: Settings, server: PrivateRedis) -> Stack:
    app = create_app(settings.with_overrides(redis_url=server.url))
    app.config["TESTING"] = True
    runtime: Runtime = app.extensions["orderline"]
    with runtime.db.session() as session:
        token = create_token(session, "outage tester", Role.MANAGER)
        shop = Shop(channel="manual", name="Phone sales", external_id="phone", currency="SEK")
        session.add(shop)
        session.flush()
        shop_id = shop.id
    return Stack(app, runtime, app.test_client(), {"Authorization": f"Bearer {token}"}, shop_id, server)


@pytest.fixture
def stack(settings: Settings, private_redis: PrivateRedis) -> Iterator[Stack]:
    built = build_stack(settings, private_redis)
    yield built
    built.runtime.db.dispose()


# --- Redis stopped and restarted ----------------------------------------------------------------------------


def test_redis_stopped_between_action_and_job_nothing_lost_nothing_twice(stack: Stack) -> None:
    runtime = stack.runtime
    stack.redis.stop()

    started = time.monotonic()
    order_id = stack.create_order()
    assert time.monotonic() - started < 3, "a Redis outage must not hang the request"
    row = triage_row(runtime, order_id)
    assert (row.status, row.enqueued_at, row.rq_job_id) == ("pending", None, None), "stored, waits for Redis"

    ready = stack.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"] == "ok"
    assert ready.json["checks"]["redis"].startswith("unreachable")

    sweeper = Sweeper(runtime, interval=0.05)
    sweeper.start()
    try:
        time.sleep(0.3)
        assert sweeper.is_alive(), "sweeps failing while Redis is down must not kill the sweeper"
        assert triage_row(runtime, order_id).enqueued_at is None
        stack.redis.start()
        wait_for(lambda: triage_row(runtime, order_id).enqueued_at is not None, 5, "the sweeper to enqueue")
    finally:
        sweeper.stop()
        sweeper.join(timeout=5)
    assert stack.client.get("/readyz").status_code == 200
    assert order_status(runtime, order_id)[0] == "received", "enqueued, not yet run"

    assert stack.run_jobs()
    status, version = order_status(runtime, order_id)
    assert status == "needs_review"
    assert events(runtime, order_id, "order.needs_review") == 1
    row = triage_row(runtime, order_id)
    assert (row.status, row.attempts) == ("done", 1) and row.finished_at is not None

    assert sweep(runtime) == 0, "a finished row is never enqueued again"

    # RQ delivers at least once: the same outbox job delivered again changes nothing.
    duplicate = Queue(str(QueueName.FULFILMENT), connection=runtime.redis).enqueue(relay.RUNNER, row.id)
    assert stack.run_jobs()
    assert Job.fetch(duplicate.id, connection=runtime.redis).return_value() == "skipped: already closed"
    assert order_status(runtime, order_id) == (status, version)
    assert events(runtime, order_id, "order.needs_review") == 1
    assert triage_row(runtime, order_id).attempts == 1


def test_job_lost_by_a_redis_restart_is_found_by_the_sweep(stack: Stack) -> None:
    runtime = stack.runtime
    order_id = stack.create_order()
    first = triage_row(runtime, order_id)
    assert first.enqueued_at is not None and first.rq_job_id
    assert sweep(runtime) == 0, "a queued job is alive: the sweep leaves it alone"

    stack.redis.stop()
    stack.redis.start()  # nothing persisted: the queued job is gone
    assert Queue(str(QueueName.FULFILMENT), connection=runtime.redis).count == 0

    assert sweep(runtime) == 1
    again = triage_row(runtime, order_id)
    assert again.rq_job_id != first.rq_job_id
    assert stack.run_jobs()
    assert order_status(runtime, order_id)[0] == "needs_review"
    assert events(runtime, order_id, "order.needs_review") == 1
    assert sweep(runtime) == 0


def test_sweep_reruns_a_started_job_whose_lease_lapsed_and_spares_a_live_one(stack: Stack) -> None:
    runtime = stack.runtime
    order_id = stack.create_order()
    row = triage_row(runtime, order_id)
    # Make RQ believe a worker took the job long ago and then vanished (SIGKILL leaves exactly this behind).
    queue = Queue(str(QueueName.FULFILMENT), connection=runtime.redis)
    job = Job.fetch(row.rq_job_id, connection=runtime.redis)
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    job.started_at = utcnow() - timedelta(seconds=relay.lease_seconds(runtime) + 5)
    job.save()

    runtime.redis.set(relay.lease_key(row.id), "1", ex=30)
    assert sweep(runtime) == 0, "a started job holding its lease is alive"
    runtime.redis.delete(relay.lease_key(row.id))
    assert sweep(runtime) == 1, "a started job without a lease is dead: run it again"
    assert stack.run_jobs()
    assert events(runtime, order_id, "order.needs_review") == 1


# --- a worker killed mid-job --------------------------------------------------------------------------------

# Runs the real `orderline worker`, with triage made slow enough to be killed in the middle of.
WORKER = """
import os, sys, time
from jobs import orders, registry
from jobs.queues import QueueName

def slow_triage(ctx):
    ctx.runtime.redis.rpush("test:triage-started", os.getpid())
    time.sleep(float(os.environ["TEST_JOB_SECONDS"]))
    orders.triage_order(ctx)

registry.JOBS["triage_order"] = registry.JobSpec(slow_triage, QueueName.FULFILMENT)
sys.argv = ["orderline", "worker"]
from app.cli import main
main()
"""


FAST_RECOVERY = {"ORDERLINE_WORKER_TTL_SECONDS": "3", "ORDERLINE_SWEEP_INTERVAL_SECONDS": "0.5",
                 "ORDERLINE_SWEEP_GRACE_SECONDS": "0"}


def start_worker(settings: Settings, server: PrivateRedis, log_path: Path,
                 tuning: dict[str, str] = FAST_RECOVERY) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": server.url,
           "ORDERLINE_INSTANCE_DIR": str(settings.instance_dir), "ORDERLINE_SECRET_KEY": "test-key",
           "TEST_JOB_SECONDS": "1.5", "PYTHONPATH": str(ROOT), **tuning}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=log, stderr=log,
                                start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_worker_killed_mid_job_the_job_still_runs_exactly_once(stack: Stack, settings: Settings,
                                                               tmp_path: Path) -> None:
    runtime = stack.runtime
    order_id = stack.create_order()
    row = triage_row(runtime, order_id)
    log_path = tmp_path / "workers.log"
    first = start_worker(settings, stack.redis, log_path)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: runtime.redis.llen("test:triage-started") == 1, 20, "the first worker to start it")
        horse = int(runtime.redis.lindex("test:triage-started", 0) or 0)
        assert horse not in (0, os.getpid(), first.pid), "the work horse is a process of its own"
        # The machine goes: the worker, its scheduler, and the work horse (in a process group of its own).
        os.killpg(first.pid, signal.SIGKILL)
        os.killpg(horse, signal.SIGKILL)
        first.wait(timeout=5)
        killed = time.monotonic()
        assert triage_row(runtime, order_id).status == "pending"
        assert order_status(runtime, order_id)[0] == "received", "the killed job's transaction rolled back"

        second = start_worker(settings, stack.redis, log_path)
        wait_for(lambda: triage_row(runtime, order_id).status != "pending", 40,
                 "the second worker to finish it", step=0.2)
        recovery = time.monotonic() - killed
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    done = triage_row(runtime, order_id)
    assert done.status == "done", (done.status, done.last_error, log_path.read_text()[-3000:])
    assert done.attempts == 2 and done.rq_job_id != row.rq_job_id
    assert runtime.redis.llen("test:triage-started") == 2, "run twice"
    assert events(runtime, order_id, "order.needs_review") == 1, "one effect"
    assert order_status(runtime, order_id)[0] == "needs_review"
    print(f"recovered {recovery:.1f} s after SIGKILL")
    # About the lease (the workers' TTL, 3 s) plus a sweep interval and the job's own 1.5 s.
    assert recovery < 20, log_path.read_text()[-3000:]


def test_a_work_horse_is_not_forked_while_the_sweeper_holds_the_sqlite_lock(runtime: Runtime, client: Any,
                                                                           auth: Any, manual_shop: int) -> None:
    """SQLite's locks are per process: a horse forked mid-transaction would wait out the busy timeout (30 s)
    and fail with "database is locked", though the parent let go long before."""
    if runtime.db.dialect != "sqlite":
        pytest.skip("PostgreSQL's locks belong to connections, which the horse does not share")
    order_id = client.post("/api/v1/orders", json=order_payload(manual_shop), headers=auth()).json["id"]
    holding = threading.Event()

    def sweeper_writing() -> None:
        with FORK_GUARD, runtime.db.session() as session:
            session.execute(update(Shop).where(Shop.id == manual_shop).values(name="Phone sales"))
            holding.set()
            time.sleep(0.5)

    thread = threading.Thread(target=sweeper_writing)
    thread.start()
    holding.wait(5)
    started = time.monotonic()
    queues = [Queue(str(name), connection=runtime.redis) for name in ALL_QUEUES]
    assert ForkSafeWorker(queues, connection=runtime.redis).work(burst=True, logging_level="WARNING")
    thread.join()
    assert time.monotonic() - started < 10
    assert triage_row(runtime, order_id).status == "done"
    assert order_status(runtime, order_id)[0] == "needs_review"


# --- retries and failures -----------------------------------------------------------------------------------


def scheduler_tick(runtime: Runtime) -> None:
    """One pass of RQ's scheduler: move the scheduled jobs that are due onto their queues."""
    scheduler = RQScheduler([str(q) for q in ALL_QUEUES], connection=runtime.redis, logging_level="WARNING")
    scheduler.acquire_locks()
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()


def release_retries(runtime: Runtime, queue: QueueName = QueueName.BACKGROUND) -> None:
    """As if the retry's time had come: move every scheduled job onto its queue now."""
    registry = ScheduledJobRegistry(queue=Queue(str(queue), connection=runtime.redis))
    for job_id in registry.get_job_ids():
        registry.requeue(job_id)


def test_retry_after_is_honoured_by_the_row_and_rq_scheduler(runtime: Runtime, run_jobs: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def rate_limited(ctx: JobContext) -> None:
        calls.append(ctx.outbox_id)
        raise TransientError("Slack answered 429 Too Many Requests", retry_after=30)

    register_job(monkeypatch, "test_rate_limited", rate_limited)
    outbox_id = add_outbox_job(runtime, "test_rate_limited", channel="C123")
    before = utcnow()
    assert run_jobs()
    after = utcnow()

    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "TransientError: Slack answered 429 Too Many Requests"
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=30) <= row.next_attempt_at <= after + timedelta(seconds=30)
    scheduled = ScheduledJobRegistry(queue=Queue(str(QueueName.BACKGROUND), connection=runtime.redis))
    assert scheduled.get_job_ids() == [row.rq_job_id]
    assert scheduled.get_scheduled_time(row.rq_job_id) >= row.next_attempt_at
    assert not run_jobs(), "nothing is due yet"

    # Delivered early anyway (a duplicate, a sweep): the runner refuses to run it before its time.
    assert run_outbox(outbox_id) == "skipped: not due yet"
    assert outbox_row(runtime, outbox_id).attempts == 1 and calls == [outbox_id]
    assert sweep(runtime) == 0, "a row waiting for its retry is not the sweeper's business"


def test_retry_runs_no_sooner_than_retry_after_then_succeeds(runtime: Runtime, run_jobs: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ran_at: list[float] = []

    def flaky(ctx: JobContext) -> None:
        ran_at.append(time.time())
        if len(ran_at) == 1:
            raise TransientError("503 from the carrier", retry_after=1.2)

    register_job(monkeypatch, "test_flaky", flaky)
    outbox_id = add_outbox_job(runtime, "test_flaky")
    assert run_jobs()
    due = ran_at[0] + 1.2
    # RQ's own scheduler, ticking as a worker's would, until the job has run again.
    while len(ran_at) == 1 and time.time() < due + 5:
        scheduler_tick(runtime)
        run_jobs()
        time.sleep(0.05)
    assert len(ran_at) == 2
    assert ran_at[1] >= due, f"retried {due - ran_at[1]:.2f} s before Retry-After allowed"
    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts, row.last_error) == ("done", 2, None)


def test_transient_failures_stop_after_max_attempts(runtime: Runtime, run_jobs: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(job_max_attempts=3))

    def unreachable(ctx: JobContext) -> None:
        raise ConnectionError("carrier API unreachable")

    register_job(monkeypatch, "test_unreachable", unreachable)
    outbox_id = add_outbox_job(runtime, "test_unreachable")
    for attempt in (1, 2):
        assert run_jobs()
        row = outbox_row(runtime, outbox_id)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.next_attempt_at is not None
        release_retries(runtime)
    assert run_jobs()
    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "ConnectionError: carrier API unreachable" and row.finished_at is not None
    queue = Queue(str(QueueName.BACKGROUND), connection=runtime.redis)
    assert FailedJobRegistry(queue=queue).get_job_ids() == [row.rq_job_id]
    assert ScheduledJobRegistry(queue=queue).count == 0
    assert sweep(runtime) == 0, "a failed row waits for staff, not for the sweeper"


@pytest.mark.parametrize("error", [PermanentError("422 from EasyPost: postal code is not valid"),
                                   KeyError("carrier_account")], ids=["permanent", "bug"])
def test_permanent_error_fails_at_once_and_reaches_rq_failed_registry(runtime: Runtime, run_jobs: Any,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      error: Exception) -> None:
    calls: list[int] = []

    def broken(ctx: JobContext) -> None:
        calls.append(1)
        raise error

    register_job(monkeypatch, "test_broken", broken)
    outbox_id = add_outbox_job(runtime, "test_broken")
    assert run_jobs()
    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts, calls) == ("failed", 1, [1])
    assert row.last_error == f"{type(error).__name__}: {error}"
    assert row.next_attempt_at is None and row.finished_at is not None
    failed = FailedJobRegistry(queue=Queue(str(QueueName.BACKGROUND), connection=runtime.redis))
    assert failed.get_job_ids() == [row.rq_job_id]
    job = Job.fetch(row.rq_job_id, connection=runtime.redis)
    assert type(error).__name__ in (job.latest_result().exc_string or "")
    assert not run_jobs(), "nothing is retried"


def test_a_failed_job_does_not_undo_or_half_apply_its_writes(runtime: Runtime, run_jobs: Any,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             manual_shop: int) -> None:
    def half_done(ctx: JobContext) -> None:
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
        assert shop is not None
        shop.name = "renamed by a job that then failed"
        raise PermanentError("validation failed after the write")

    register_job(monkeypatch, "test_half_done", half_done)
    outbox_id = add_outbox_job(runtime, "test_half_done", shop_id=manual_shop)
    assert run_jobs()
    assert outbox_row(runtime, outbox_id).status == "failed"
    with runtime.db.session() as session:
        shop = session.get(Shop, manual_shop)
        assert shop is not None and shop.name == "Phone sales", "the job's writes rolled back with it"


def _rename_shop_then_ask_for(next_job: str) -> Callable[[JobContext], None]:
    def step(ctx: JobContext) -> None:
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
        assert shop is not None
        shop.name = "renamed by the first step"
        add_job(ctx.session, next_job, shop_id=shop.id)  # type: ignore[arg-type]
    return step


def test_a_local_step_runs_inside_the_transaction_that_asked_for_it(runtime: Runtime, run_jobs: Any,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    manual_shop: int) -> None:
    seen: list[str] = []

    def local(ctx: JobContext) -> None:
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
        assert shop is not None
        seen.append(shop.name)  # the first step's write, not yet committed
        shop.currency = "EUR"

    register_job(monkeypatch, "test_first", _rename_shop_then_ask_for("test_local"), QueueName.FULFILMENT)
    register_job(monkeypatch, "test_local", local, QueueName.FULFILMENT, local=True)
    first = add_outbox_job(runtime, "test_first", shop_id=manual_shop)
    assert run_jobs()
    with runtime.db.session() as session:
        rows = session.execute(select(OutboxEvent).where(OutboxEvent.job == "test_local")).scalars().all()
        shop = session.get(Shop, manual_shop)
        assert shop is not None and (shop.name, shop.currency) == ("renamed by the first step", "EUR")
    assert seen == ["renamed by the first step"]
    assert [(r.status, r.attempts, r.rq_job_id) for r in rows] == [("done", 1, None)], "never went through Redis"
    assert outbox_row(runtime, first).status == "done"


def test_a_failing_local_step_is_rolled_back_alone_and_then_runs_as_a_job(runtime: Runtime, run_jobs: Any,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         manual_shop: int) -> None:
    calls: list[int] = []

    def flaky_local(ctx: JobContext) -> None:
        calls.append(ctx.outbox_id)
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
        assert shop is not None
        shop.currency = "EUR"
        if len(calls) == 1:
            raise ConnectionError("lost the database in the middle")

    register_job(monkeypatch, "test_first", _rename_shop_then_ask_for("test_flaky_local"), QueueName.FULFILMENT)
    register_job(monkeypatch, "test_flaky_local", flaky_local, QueueName.FULFILMENT, local=True)
    first = add_outbox_job(runtime, "test_first", shop_id=manual_shop)
    assert run_jobs()
    assert outbox_row(runtime, first).status == "done", "the step that asked is not undone"
    assert len(calls) == 2 and calls[0] == calls[1], "the same row ran again, in a transaction of its own"
    row = outbox_row(runtime, calls[0])
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)
    with runtime.db.session() as session:
        shop = session.get(Shop, manual_shop)
        assert shop is not None and (shop.name, shop.currency) == ("renamed by the first step", "EUR")


# --- the retry policy ---------------------------------------------------------------------------------------


class _Edge(random.Random):
    def __init__(self, pick: str) -> None:
        super().__init__(0)
        self.pick = pick

    def uniform(self, a: float, b: float) -> float:
        return b if self.pick == "high" else a


def test_retry_delay_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=12, base_seconds=2, cap_seconds=60)
    high = [policy.delay(n, rng=_Edge("high")) for n in range(1, 8)]
    assert high == [2, 4, 8, 16, 32, 60, 60]
    low = [policy.delay(n, rng=_Edge("low")) for n in range(1, 8)]
    assert low == [1, 2, 4, 8, 16, 30, 30]


def test_retry_delay_is_jittered_within_half_to_full_ceiling() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=600)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(600, 2 * 2 ** (attempt - 1))
        samples = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert max(samples) - min(samples) > ceiling / 4, "jitter spreads retries out"


def test_retry_delay_is_never_below_retry_after() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=600)
    assert policy.delay(1, retry_after=45, rng=_Edge("high")) == 45
    assert policy.delay(7, retry_after=45, rng=_Edge("low")) == 64, "a longer backoff still wins"
    assert policy.delay(1, retry_after=0, rng=_Edge("low")) == 1
    assert all(policy.delay(a, retry_after=120) >= 120 for a in range(1, 10))


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_classify_retries_the_network_and_stops_on_the_rest() -> None:
    import redis
    import requests
    from sqlalchemy.exc import OperationalError

    assert classify(TransientError("429", retry_after=12)) == (True, 12)
    for error in (ConnectionError("reset"), TimeoutError("read"), redis.ConnectionError("down"),
                  redis.TimeoutError("slow"), requests.ConnectionError("refused"), requests.Timeout("read"),
                  OperationalError("SELECT 1", {}, Exception("server closed the connection")),
                  VersionConflict(1, expected=1, current=2)):
        assert classify(error) == (True, None), error
    for error in (PermanentError("422"), ValueError("bad payload"), KeyError("x"), RuntimeError("bug")):
        assert classify(error) == (False, None), error


def test_a_coalesced_request_joins_the_waiting_job_but_never_one_being_run(runtime: Runtime) -> None:
    def ask(reason: str) -> int:
        with runtime.db.session() as session:
            row = add_coalesced(session, JobName.SLACK_SYNC_CARD, "slack:card:7", order_id=7, reason=reason)
        return row.id

    first = ask("info")
    assert ask("update") == first, "a second request while the first waits is the same job"
    assert outbox_row(runtime, first).payload == {"order_id": 7, "reason": "update"}
    if runtime.db.dialect == "postgresql":
        with runtime.db.session() as worker:  # a worker is running the job: the runner holds its row
            worker.execute(select(OutboxEvent).where(OutboxEvent.id == first).with_for_update())
            second = ask("update")
        assert second != first, "a job already running may have read the order before this change"
    with runtime.db.session() as session:
        session.execute(update(OutboxEvent).values(status="done"))
    assert ask("update") not in (first,), "a finished job is never joined"


def test_a_job_waiting_its_turn_never_runs_out_of_attempts(runtime: Runtime, run_jobs: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[int] = []

    def queued_behind_others(ctx: JobContext) -> None:
        turns.append(ctx.outbox_id)
        if len(turns) <= runtime.settings.job_max_attempts + 2:
            raise Busy("channel C1 is busy posting", retry_after=5)

    register_job(monkeypatch, "test_busy", queued_behind_others)
    outbox_id = add_outbox_job(runtime, "test_busy")
    for _ in range(runtime.settings.job_max_attempts + 3):
        run_jobs()
        row = outbox_row(runtime, outbox_id)
        if row.status != "pending":
            break
        assert row.next_attempt_at is not None and row.next_attempt_at > utcnow() + timedelta(seconds=3)
        with runtime.db.session() as session:  # its time has come
            session.execute(update(OutboxEvent).where(OutboxEvent.id == outbox_id).values(next_attempt_at=utcnow()))
        release_retries(runtime)
    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts) == ("done", 1), "waiting for a slot is not a failed attempt"
    assert len(turns) == runtime.settings.job_max_attempts + 3


def test_slack_cards_are_served_before_the_bulk_of_the_work(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        add_job(session, JobName.SEND_SMS, message_id=1)
        card_row = add_job(session, JobName.SLACK_SYNC_CARD, order_id=1, reason="needs_person")
    card = card_row.id
    staff = Queue(str(QueueName.STAFF), connection=runtime.redis)
    assert [job.args[0] for job in staff.get_jobs()] == [card]
    # a worker takes from the first queue with work, in this order: a card never waits behind a busy day's
    # fulfilment steps or texts
    assert ALL_QUEUES.index(QueueName.STAFF) < ALL_QUEUES.index(QueueName.FULFILMENT) < ALL_QUEUES.index(
        QueueName.NOTIFY)
