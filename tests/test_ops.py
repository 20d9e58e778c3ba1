"""Operations: liveness, readiness, Prometheus metrics that move, request ids that follow into jobs, and
logs that never carry a customer's personal data."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app import create_app
from app.config import Settings
from app.failures import PermanentError
from app.models import OrderEvent, OutboxEvent
from app.runtime import Runtime
from jobs.context import JobContext
from tests.conftest import order_payload
from tests.helpers_redis import free_port
from tests.test_outbox import add_outbox_job, register_job, run_all_jobs

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def run_jobs(runtime: Runtime) -> Callable[[], bool]:
    """conftest's run_jobs, minus the second RQ spends closing a command channel a burst never uses."""
    return lambda: run_all_jobs(runtime)


def scrape(client: Any) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain" and "version=" in response.content_type
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} is not in the scrape"
    return samples[key]


def create_order(client: Any, auth: Any, shop_id: int, headers: dict[str, str] | None = None,
                 **overrides: Any) -> Any:
    response = client.post("/api/v1/orders", json=order_payload(shop_id, **overrides),
                           headers={**auth("operator"), **(headers or {})})
    assert response.status_code == 201, response.json
    return response


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --- health and readiness -----------------------------------------------------------------------------------


def test_healthz_says_the_process_is_up(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_200_when_database_and_redis_answer(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_naming_redis_when_redis_is_unreachable(settings: Settings) -> None:
    app = create_app(settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    client = app.test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3, "readiness must answer quickly, not hang on a dead Redis"
    assert response.status_code == 503
    assert response.json["status"] == "degraded"
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"].startswith("unreachable: ")
    assert client.get("/healthz").status_code == 200, "liveness does not depend on Redis"

    # /metrics still answers: it says Redis is down and still reports the outbox from the database.
    samples = scrape(client)
    assert value(samples, "orderline_redis_up") == 0
    assert value(samples, "orderline_outbox_rows", status="pending") == 0
    app.extensions["orderline"].db.dispose()


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=f"postgresql://orderline@127.0.0.1:{free_port()}/orderline",
                        redis_url=redis_url, instance_dir=tmp_path, secret_key="test-key")
    response = create_app(settings).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("unreachable: ")
    assert response.json["checks"]["redis"] == "ok"


# --- metrics ------------------------------------------------------------------------------------------------


def test_metrics_move_with_the_queue_the_outbox_and_the_requests(client: Any, auth: Any, manual_shop: int,
                                                                  run_jobs: Any, runtime: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = scrape(client)
    for queue in ("ingest", "staff", "fulfilment", "providers", "notify", "background"):
        assert value(before, "orderline_queue_depth", queue=queue) == 0
    assert value(before, "orderline_outbox_rows", status="pending") == 0
    assert value(before, "orderline_outbox_rows", status="failed") == 0
    assert value(before, "orderline_outbox_lag_seconds") == 0
    assert value(before, "orderline_redis_up") == 1

    create_order(client, auth, manual_shop)  # no worker is running
    time.sleep(0.25)
    waiting = scrape(client)
    assert value(waiting, "orderline_queue_depth", queue="fulfilment") == 1
    assert value(waiting, "orderline_queue_depth", queue="ingest") == 0
    assert value(waiting, "orderline_outbox_rows", status="pending") == 1
    assert 0.2 <= value(waiting, "orderline_outbox_lag_seconds") < 30
    post = {"method": "POST", "endpoint": "/api/v1/orders"}
    assert value(waiting, "orderline_http_requests_total", **post, status="201") == 1
    assert value(waiting, "orderline_http_request_duration_seconds_count", **post) == 1
    assert value(waiting, "orderline_http_request_duration_seconds_bucket", **post, le="+Inf") == 1
    assert value(waiting, "orderline_http_request_duration_seconds_sum", **post) > 0
    scrapes = {"method": "GET", "endpoint": "/metrics", "status": "200"}
    assert value(waiting, "orderline_http_requests_total", **scrapes) == 1

    assert run_jobs()
    after = scrape(client)
    assert value(after, "orderline_queue_depth", queue="fulfilment") == 0
    assert value(after, "orderline_outbox_rows", status="pending") == 0
    assert value(after, "orderline_outbox_lag_seconds") == 0

    def broken(ctx: JobContext) -> None:
        raise PermanentError("Twilio 21610: the recipient unsubscribed")

    register_job(monkeypatch, "test_broken_sms", broken)
    add_outbox_job(runtime, "test_broken_sms")
    run_jobs()
    failed = scrape(client)
    assert value(failed, "orderline_outbox_rows", status="failed") == 1
    assert value(failed, "orderline_rq_failed_jobs", queue="background") == 1


def test_unknown_paths_share_one_metrics_label(client: Any) -> None:
    for n in range(3):
        assert client.get(f"/no/such/page/{n}").status_code == 404
    samples = scrape(client)
    unmatched = {"method": "GET", "endpoint": "unmatched", "status": "404"}
    assert value(samples, "orderline_http_requests_total", **unmatched) == 3
    assert not any("/no/such" in str(labels) for _name, labels in samples)


# --- request ids and logs -----------------------------------------------------------------------------------


def test_every_response_carries_a_request_id(client: Any) -> None:
    made = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", made)
    assert client.get("/healthz").headers["X-Request-ID"] != made
    assert client.get("/healthz", headers={"X-Request-ID": "edge-7f3a9c21.1"}).headers["X-Request-ID"] \
        == "edge-7f3a9c21.1", "a well-formed id from the proxy is kept"
    for bad in ("short", "x" * 65, "has spaces in it", "quote\"and;semicolon"):
        given = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{16}", given), bad


def test_request_id_follows_the_order_into_its_job(client: Any, auth: Any, manual_shop: int, run_jobs: Any,
                                                   runtime: Any, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    trace = "lb-trace-0123abcd"
    response = create_order(client, auth, manual_shop, headers={"X-Request-ID": trace})
    assert response.headers["X-Request-ID"] == trace
    assert run_jobs()
    lines = json_lines(capfd.readouterr().err)

    [request_line] = [line for line in lines if line["event"] == "request" and line["method"] == "POST"]
    assert request_line["request_id"] == trace and request_line["status"] == 201
    [job_line] = [line for line in lines if line["event"] == "job.done"]
    assert job_line["job"] == "triage_order" and job_line["request_id"] == trace
    with runtime.db.session() as session:
        assert session.execute(select(OutboxEvent.request_id)).scalar_one() == trace
        triaged = session.execute(select(OrderEvent)
                                  .where(OrderEvent.type == "order.needs_review")).scalar_one()
        assert triaged.request_id == trace, "the job's timeline entry names the request that caused it"
    # …and the job's id does not leak into what the worker logs next.
    assert all(line.get("request_id") in (None, trace) for line in lines)


def test_logs_never_carry_the_customers_personal_data(client: Any, auth: Any, manual_shop: int, run_jobs: Any,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    customer = {"name": "Quirina Vandermeulen-Ostrova", "email": "qv.4417.unusual@example.invalid",
                "phone": "+46 70 999 41 17"}
    address = {"name": customer["name"], "line1": "Ekvägen 4417 B", "city": "Mölndal",
               "postal_code": "431 99", "country_code": "SE"}
    order_id = create_order(client, auth, manual_shop, customer=customer, shipping_address=address).json["id"]
    run_jobs()
    client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer"))
    client.post(f"/api/v1/orders/{order_id}/actions/hold", json={"reason": "check the address"},
                headers=auth("operator"))
    # A refused order, with the same customer, logs its refusal without them.
    refused = client.post("/api/v1/orders", headers=auth("operator"),
                          json=order_payload(manual_shop, customer=customer, currency="XXQ"))
    assert refused.status_code == 422
    out, err = capfd.readouterr()
    logged = out + err
    assert len(json_lines(err)) >= 4, "the requests were logged, so their absence below means something"
    for secret in (customer["email"], "qv.4417", customer["phone"], "999 41 17", "Vandermeulen", "Ekvägen",
                   "Ekv\\u00e4gen", "431 99"):
        assert secret not in logged, f"{secret!r} reached the logs"


def test_a_providers_error_quoting_the_customer_is_kept_for_staff_but_not_logged(
        runtime: Runtime, run_jobs: Any, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    message = "Twilio 21211: The 'To' number +46 70 999 41 17 is not valid (customer qv.4417@example.invalid)"

    def send_sms(ctx: JobContext) -> None:
        raise PermanentError(message)

    register_job(monkeypatch, "test_send_sms", send_sms)
    capfd.readouterr()
    outbox_id = add_outbox_job(runtime, "test_send_sms")
    run_jobs()
    out, err = capfd.readouterr()
    with runtime.db.session() as session:
        row = session.get(OutboxEvent, outbox_id)
        assert row is not None and row.last_error == f"PermanentError: {message}", "staff see the whole message"
    lines = json_lines(err)
    assert any(line["event"] == "job.failed" for line in lines)
    assert any("Traceback" in line["event"] for line in lines), "RQ logged the traceback too"
    for secret in ("+46 70 999 41 17", "999 41 17", "qv.4417@example.invalid"):
        assert secret not in out + err
    assert "Twilio 21211: The 'To' number [phone] is not valid (customer [email])" in err


@pytest.mark.parametrize(("text", "logged"), [
    ("number +46701234567 unreachable", "number [phone] unreachable"),
    ("call 070-123 45 67 or (555) 123-4567", "call [phone] or [phone]"),
    ("from anna.berg+shop@example.se", "from [email]"),
    ("order 5678901234567 not ingested yet", "order 5678901234567 not ingested yet"),
    ("retry at 2026-11-26 06:43:32 for outbox-12-a1b2c3", "retry at 2026-11-26 06:43:32 for outbox-12-a1b2c3"),
    ("Error 111 connecting to 127.0.0.1:51915.", "Error 111 connecting to 127.0.0.1:51915."),
    ("job outbox-1-093521: exception raised", "job outbox-1-093521: exception raised"),
    ("total 1234.50 SEK for 3 items", "total 1234.50 SEK for 3 items"),
])
def test_log_scrubbing_masks_contacts_and_keeps_ids_and_times(text: str, logged: str) -> None:
    from app.logs import scrub_text

    assert scrub_text(text) == logged
