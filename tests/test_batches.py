"""Batched jobs: rows of one kind share an RQ job and a transaction, and each row still fails, retries and
counts its attempts alone (jobs/runner.py, jobs/relay.py). On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.failures import PermanentError, TransientError
from app.models import OutboxEvent, Shop
from app.outbox import add_job
from app.requestctx import bind_request_id, clear_request_id, current_request_id
from app.runtime import Runtime
from app.store import once_per_transaction
from jobs import registry as job_registry
from jobs import relay, runner
from jobs.context import JobContext
from jobs.queues import QueueName
from tests.test_order_locks import statements

JOB = "test_batched_rename"


def register(monkeypatch: pytest.MonkeyPatch, func: Callable[[JobContext], None], batch: int = 3) -> None:
    monkeypatch.setitem(job_registry.JOBS, JOB, job_registry.JobSpec(func, QueueName.FULFILMENT, batch=batch))


def shops(runtime: Runtime, count: int) -> list[int]:
    with runtime.db.session() as session:
        made = [Shop(channel="manual", name=f"Shop {n}", external_id=f"shop-{n}", currency="SEK")
                for n in range(count)]
        session.add_all(made)
        session.flush()
        return [shop.id for shop in made]


def ask_in_one_transaction(runtime: Runtime, shop_ids: list[int]) -> list[int]:
    """One rename job per shop, recorded together as a busy transaction (an ingest batch) records them."""
    with runtime.db.session() as session:
        rows = [add_job(session, JOB, shop_id=shop_id) for shop_id in shop_ids]  # type: ignore[arg-type]
    return [row.id for row in rows]


def rename(seen: list[Any], fail: Callable[[int], Exception | None] = lambda _: None) -> Callable[[JobContext], None]:
    def job(ctx: JobContext) -> None:
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))
        assert shop is not None
        shop.name = f"renamed by {ctx.outbox_id}"
        seen.append((ctx.outbox_id, ctx.session))
        error = fail(ctx.int_arg("shop_id"))
        if error is not None:
            raise error
    return job


def rows(runtime: Runtime, ids: list[int]) -> dict[int, OutboxEvent]:
    with runtime.db.session() as session:
        return {row.id: row for row in session.execute(select(OutboxEvent).where(OutboxEvent.id.in_(ids))).scalars()}


def names(runtime: Runtime, shop_ids: list[int]) -> dict[int, str]:
    with runtime.db.session() as session:
        return dict(session.execute(select(Shop.id, Shop.name).where(Shop.id.in_(shop_ids))).all())


def test_rows_of_one_kind_share_an_rq_job_and_a_transaction(runtime: Runtime, run_jobs: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    register(monkeypatch, rename(seen), batch=3)
    shop_ids = shops(runtime, 7)
    ids = ask_in_one_transaction(runtime, shop_ids)
    queue = Queue(str(QueueName.FULFILMENT), connection=runtime.redis)
    assert queue.count == 3, "seven rows in RQ jobs of at most three"
    assert [job.timeout for job in queue.jobs] == [3 * relay.JOB_TIMEOUT_SECONDS] * 2 + [relay.JOB_TIMEOUT_SECONDS], \
        "as long for each row as a job of its own would have"
    assert run_jobs()
    done = rows(runtime, ids)
    assert [(done[i].status, done[i].attempts) for i in ids] == [("done", 1)] * 7
    assert sorted(outbox_id for outbox_id, _ in seen) == ids, "each row ran once"
    sessions = [session for _, session in seen]
    assert [len({id(s) for s in sessions[k:k + 3]}) for k in (0, 3, 6)] == [1, 1, 1], "a transaction per batch"
    assert len({id(s) for s in sessions}) == 3
    assert names(runtime, shop_ids) == {shop_id: f"renamed by {outbox_id}" for shop_id, outbox_id
                                        in zip(shop_ids, ids, strict=True)}


def test_a_failing_row_is_rolled_back_and_retried_alone(runtime: Runtime, run_jobs: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shop_ids = shops(runtime, 3)
    seen: list[Any] = []
    register(monkeypatch, rename(seen, lambda shop_id: TransientError("carrier timed out", retry_after=0.5)
                                 if shop_id == shop_ids[1] and len(seen) < 4 else None))
    ids = ask_in_one_transaction(runtime, shop_ids)
    started = time.monotonic()
    assert run_jobs()
    after_first = rows(runtime, ids)
    assert [after_first[i].status for i in ids] == ["done", "pending", "done"]
    assert after_first[ids[1]].attempts == 1 and "carrier timed out" in (after_first[ids[1]].last_error or "")
    assert names(runtime, shop_ids) == {shop_ids[0]: f"renamed by {ids[0]}", shop_ids[1]: "Shop 1",
                                        shop_ids[2]: f"renamed by {ids[2]}"}, "only the failed row's write undone"
    time.sleep(max(0.0, 0.6 - (time.monotonic() - started)))
    assert runner.run_outbox(ids[1]) == "done", "what RQ's scheduler runs once Retry-After has passed"
    retried = rows(runtime, [ids[1]])[ids[1]]
    assert (retried.status, retried.attempts, retried.last_error) == ("done", 2, None)
    assert [outbox_id for outbox_id, _ in seen].count(ids[0]) == 1, "the rest of the batch did not run again"
    assert names(runtime, [shop_ids[1]]) == {shop_ids[1]: f"renamed by {ids[1]}"}


def test_a_permanent_failure_fails_its_row_and_reaches_rq_while_the_batch_commits(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_ids = shops(runtime, 3)
    register(monkeypatch, rename([], lambda shop_id: PermanentError("address refused")
                                 if shop_id == shop_ids[0] else None))
    ids = ask_in_one_transaction(runtime, shop_ids)
    run_jobs()
    after = rows(runtime, ids)
    assert [after[i].status for i in ids] == ["failed", "done", "done"]
    assert after[ids[0]].rq_job_id == after[ids[1]].rq_job_id, "one RQ job carried them"
    failed = FailedJobRegistry(queue=Queue(str(QueueName.FULFILMENT), connection=runtime.redis))
    assert failed.get_job_ids() == [after[ids[0]].rq_job_id], "RQ keeps the error's traceback"
    assert names(runtime, shop_ids)[shop_ids[0]] == "Shop 0"


def test_a_slow_batch_commits_every_transaction_seconds(runtime: Runtime, run_jobs: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows that call a slow provider do not keep the earlier rows' orders locked for the whole batch."""
    seen: list[Any] = []
    slow = rename(seen)

    def slow_rename(ctx: JobContext) -> None:
        slow(ctx)
        time.sleep(0.3)

    register(monkeypatch, slow_rename, batch=5)
    monkeypatch.setattr(runner, "TRANSACTION_SECONDS", 0.5)
    ids = ask_in_one_transaction(runtime, shops(runtime, 5))
    assert run_jobs()
    assert all(row.status == "done" for row in rows(runtime, ids).values())
    sessions = [id(session) for _, session in seen]
    assert [sessions[0] == sessions[1], sessions[1] == sessions[2]] == [True, False], "two rows, then commit"
    assert len(set(sessions)) == 3


def test_a_second_copy_of_a_batch_runs_nothing_twice(runtime: Runtime, run_jobs: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    register(monkeypatch, rename(seen))
    ids = ask_in_one_transaction(runtime, shops(runtime, 3))
    assert run_jobs()
    Queue(str(QueueName.FULFILMENT), connection=runtime.redis).enqueue(relay.RUNNER, *ids)  # RQ's redelivery
    assert run_jobs()
    assert len(seen) == 3
    assert runner.run_outbox(*ids) == "3 skipped: already closed"


def test_what_one_row_loaded_the_next_row_of_the_batch_finds_without_reading_it_again(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (shop_id,) = shops(runtime, 1)

    def read_shop(ctx: JobContext) -> None:
        shop = ctx.session.get(Shop, ctx.int_arg("shop_id"))  # by key: the identity map first
        assert shop is not None and shop.name == "Shop 0"

    register(monkeypatch, read_shop, batch=4)
    ask_in_one_transaction(runtime, [shop_id] * 4)
    with statements(runtime) as seen:
        assert run_jobs()
    assert len([s for s in seen if s.startswith("SELECT shops.")]) == 1, "four rows, one read of their shop"


def test_a_row_that_breaks_the_commit_fails_alone_and_the_others_run_again_knowing_it(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row's effects can fail the whole transaction at its commit (shipped units leave the stock rows
    then): each row runs again in a transaction of its own, told it may already have called its provider."""
    shop_ids = shops(runtime, 3)
    looked_first: list[tuple[int, bool]] = []
    renaming = rename([])

    def job(ctx: JobContext) -> None:
        looked_first.append((ctx.int_arg("shop_id"), ctx.may_have_run_before))
        renaming(ctx)
        if ctx.int_arg("shop_id") == shop_ids[1]:
            ctx.session.info["test.breaks_commit"] = True

    def refuse(session: Any) -> None:
        if not session.in_nested_transaction() and session.info.pop("test.breaks_commit", False):
            raise PermanentError("the stock row refused the update")

    register(monkeypatch, job)
    sa_event.listen(runtime.db.sessionmaker, "before_commit", refuse)
    try:
        ids = ask_in_one_transaction(runtime, shop_ids)
        run_jobs()
    finally:
        sa_event.remove(runtime.db.sessionmaker, "before_commit", refuse)
    after = rows(runtime, ids)
    assert [(after[i].status, after[i].attempts) for i in ids] == [("done", 1), ("failed", 1), ("done", 1)]
    assert "the stock row refused" in (after[ids[1]].last_error or "")
    assert looked_first == [(shop_ids[0], False), (shop_ids[1], False), (shop_ids[2], False),
                            (shop_ids[0], True), (shop_ids[1], True), (shop_ids[2], True)]
    assert names(runtime, shop_ids)[shop_ids[1]] == "Shop 1"


def test_after_a_database_error_the_rest_of_the_batch_runs_in_a_new_transaction(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_ids = shops(runtime, 3)
    seen: list[Any] = []
    register(monkeypatch, rename(seen, lambda shop_id: OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly")) if shop_id == shop_ids[0]
        and len(seen) == 1 else None))
    ids = ask_in_one_transaction(runtime, shop_ids)
    run_jobs()
    after = rows(runtime, ids)
    assert [after[i].status for i in ids] == ["pending", "done", "done"], "the first retries, the rest ran"
    assert seen[0][1] is not seen[1][1] and seen[1][1] is seen[2][1], "not in the session the error left behind"


def test_the_request_id_follows_a_batch_into_its_local_steps_and_what_they_ask_for(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []

    def step(name: str, then: str | None) -> Callable[[JobContext], None]:
        def job(ctx: JobContext) -> None:
            seen.append((name, current_request_id()))
            if then:
                add_job(ctx.session, then, shop_id=ctx.int_arg("shop_id"))  # type: ignore[arg-type]
        return job

    monkeypatch.setitem(job_registry.JOBS, "test_first", job_registry.JobSpec(
        step("first", "test_local"), QueueName.FULFILMENT, batch=3))
    monkeypatch.setitem(job_registry.JOBS, "test_local", job_registry.JobSpec(
        step("local", "test_next"), QueueName.FULFILMENT, local=True, batch=3))
    monkeypatch.setitem(job_registry.JOBS, "test_next", job_registry.JobSpec(
        step("next", None), QueueName.FULFILMENT, batch=3))
    (shop_id,) = shops(runtime, 1)
    bind_request_id("lb-trace-batch-0001")
    try:
        with runtime.db.session() as session:
            add_job(session, "test_first", shop_id=shop_id)  # type: ignore[arg-type]
    finally:
        clear_request_id()
    assert run_jobs()
    assert seen == [("first", "lb-trace-batch-0001"), ("local", "lb-trace-batch-0001"),
                    ("next", "lb-trace-batch-0001")]


def test_reference_data_is_read_once_a_transaction_and_again_in_the_next(runtime: Runtime) -> None:
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    with runtime.db.session() as session:
        assert once_per_transaction(session, "answer", read) == 1
        with session.begin_nested():  # the next row of a batch
            assert once_per_transaction(session, "answer", read) == 1
    with runtime.db.session() as session:
        assert once_per_transaction(session, "answer", read) == 2, "a new transaction asks again"


def test_a_batch_prepares_once_for_all_its_rows_before_the_first_runs(runtime: Runtime, run_jobs: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    happened: list[Any] = []
    shop_ids = shops(runtime, 3)
    monkeypatch.setitem(job_registry.JOBS, JOB, job_registry.JobSpec(
        lambda ctx: happened.append(("run", ctx.int_arg("shop_id"))), QueueName.FULFILMENT, batch=3,
        prepare=lambda session, payloads: happened.append(("prepare", [p["shop_id"] for p in payloads]))))
    ask_in_one_transaction(runtime, shop_ids)
    assert run_jobs()
    assert happened == [("prepare", shop_ids), *(("run", shop_id) for shop_id in shop_ids)]


def test_when_preparing_fails_each_row_still_runs_with_one_attempt(runtime: Runtime, run_jobs: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def deadlocked(session: Any, payloads: Any) -> None:
        session.execute(select(Shop.id).limit(1))
        raise OperationalError("SELECT … FOR UPDATE", {}, Exception("deadlock detected"))

    seen: list[Any] = []
    monkeypatch.setitem(job_registry.JOBS, JOB, job_registry.JobSpec(
        rename(seen), QueueName.FULFILMENT, batch=3, prepare=deadlocked))
    shop_ids = shops(runtime, 3)
    ids = ask_in_one_transaction(runtime, shop_ids)
    assert run_jobs()
    after = rows(runtime, ids)
    assert [(after[i].status, after[i].attempts) for i in ids] == [("done", 1)] * 3
    assert len({id(session) for _, session in seen}) == 1, "in the batch's one transaction, as without it"
