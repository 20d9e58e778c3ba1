"""`orderline jobs …`: staff see what failed, with the provider's message, and run it again once fixed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from rq import Queue
from rq.registry import FailedJobRegistry

from app.cli import cli
from app.failures import PermanentError
from app.runtime import Runtime
from jobs.context import JobContext
from jobs.queues import QueueName
from tests.test_outbox import add_outbox_job, outbox_row, register_job, run_all_jobs


@pytest.fixture
def run_jobs(runtime: Runtime) -> Callable[[], bool]:
    """conftest's run_jobs, minus the second RQ spends closing a command channel a burst never uses."""
    return lambda: run_all_jobs(runtime)


def orderline(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


@pytest.fixture
def carrier(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A label job that fails until the cause is fixed, counting the labels it bought."""
    state: dict[str, Any] = {"fixed": False, "labels": []}

    def buy_label(ctx: JobContext) -> None:
        if not state["fixed"]:
            raise PermanentError(f"EasyPost 422: to_address.zip '{ctx.payload['zip']}' is not valid")
        state["labels"].append(ctx.outbox_id)

    register_job(monkeypatch, "test_buy_label", buy_label)
    return state


def test_jobs_failed_lists_each_failure_with_its_message(app: Flask, runtime: Runtime, run_jobs: Any,
                                                         carrier: dict[str, Any]) -> None:
    assert orderline(app, "jobs", "failed").output.strip() == "no failed jobs"
    first = add_outbox_job(runtime, "test_buy_label", zip="4110")
    second = add_outbox_job(runtime, "test_buy_label", zip="ABC")
    run_jobs()

    result = orderline(app, "jobs", "failed")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == [first, second]
    assert "test_buy_label" in lines[0] and "attempts=1" in lines[0]
    assert "PermanentError: EasyPost 422: to_address.zip '4110' is not valid" in lines[0]

    listed = json.loads(orderline(app, "jobs", "failed", "--json").output)
    assert [(j["id"], j["job"], j["payload"], j["attempts"]) for j in listed] == [
        (first, "test_buy_label", {"zip": "4110"}, 1), (second, "test_buy_label", {"zip": "ABC"}, 1)]
    assert listed[1]["error"] == "PermanentError: EasyPost 422: to_address.zip 'ABC' is not valid"


def test_requeue_one_job_runs_it_again_once_fixed(app: Flask, runtime: Runtime, run_jobs: Any,
                                                  carrier: dict[str, Any]) -> None:
    first = add_outbox_job(runtime, "test_buy_label", zip="4110")
    second = add_outbox_job(runtime, "test_buy_label", zip="4111")
    run_jobs()
    failed = FailedJobRegistry(queue=Queue(str(QueueName.BACKGROUND), connection=runtime.redis))
    assert failed.count == 2

    carrier["fixed"] = True
    result = orderline(app, "jobs", "requeue", str(first))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "requeued 1 job(s)"
    row = outbox_row(runtime, first)
    assert (row.status, row.attempts, row.enqueued_at is not None) == ("pending", 0, True)
    assert failed.count == 1, "the requeued job's old failure leaves RQ's failed registry"

    assert run_jobs()
    assert carrier["labels"] == [first], "one label, for the requeued job only"
    assert outbox_row(runtime, first).status == "done"
    assert outbox_row(runtime, second).status == "failed"
    listed = orderline(app, "jobs", "failed").output.splitlines()
    assert [int(line.split("\t")[0]) for line in listed] == [second]

    again = orderline(app, "jobs", "requeue", str(first), "999")
    assert again.output.strip() == f"requeued 0 job(s); not failed or unknown: [{first}, 999]"
    assert not run_jobs(), "a done job is not run again"
    assert carrier["labels"] == [first]


def test_requeue_all(app: Flask, runtime: Runtime, run_jobs: Any, carrier: dict[str, Any]) -> None:
    ids = [add_outbox_job(runtime, "test_buy_label", zip=str(n)) for n in range(3)]
    run_jobs()
    carrier["fixed"] = True
    result = orderline(app, "jobs", "requeue", "--all")
    assert result.output.strip() == "requeued 3 job(s)"
    assert run_jobs()
    assert sorted(carrier["labels"]) == ids
    assert orderline(app, "jobs", "failed").output.strip() == "no failed jobs"
    assert FailedJobRegistry(queue=Queue(str(QueueName.BACKGROUND), connection=runtime.redis)).count == 0


def test_requeue_needs_ids_or_all(app: Flask) -> None:
    result = orderline(app, "jobs", "requeue")
    assert result.exit_code == 2
    assert "name the job ids to requeue, or pass --all" in result.output


def test_a_requeued_job_that_fails_again_is_listed_again(app: Flask, runtime: Runtime, run_jobs: Any,
                                                         carrier: dict[str, Any]) -> None:
    outbox_id = add_outbox_job(runtime, "test_buy_label", zip="0")
    run_jobs()
    orderline(app, "jobs", "requeue", str(outbox_id))
    run_jobs()
    row = outbox_row(runtime, outbox_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert orderline(app, "jobs", "failed").output.startswith(f"{outbox_id}\t")
