"""POST /webhooks/bigcommerce/<shop id> end to end: real signing, the inbox, the ingest job, the fake API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.models import InboundEvent, Order, OutboxEvent
from app.store import utcnow
from integrations import channel
from integrations.bigcommerce.fake import FakeBigCommerce, rfc2822
from jobs.queues import QueueName
from tests.integrations.bigcommerce.conftest import (
    STORE_HASH,
    WEBHOOK_SECRET,
    fixture_for,
    load,
    raw,
    secret_header,
    standard_headers,
    stock_order,
)

SPEC = channel("bigcommerce")


def post(client: Any, shop_id: int, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/webhooks/bigcommerce/{shop_id}", data=body, headers=headers)


def inbox(runtime: Any) -> list[InboundEvent]:
    with runtime.db.session() as session:
        rows = session.execute(select(InboundEvent).order_by(InboundEvent.id)).scalars().all()
        session.expunge_all()
        return list(rows)


def count(runtime: Any, model: Any) -> int:
    with runtime.db.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def the_order(client: Any, auth: Any, runtime: Any, external_id: str = "250") -> dict[str, Any]:
    with runtime.db.session() as session:
        order_id = session.execute(select(Order.id).where(Order.external_id == external_id)).scalar_one()
    response = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer"))
    assert response.status_code == 200
    return dict(response.json)


def test_order_created_is_acknowledged_then_fetched_with_products_and_address(
        client: Any, auth: Any, runtime: Any, run_jobs: Any, fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    body = raw("store_order_created.json")
    response = post(client, shop, body, standard_headers(body))
    assert response.status_code == 200 and response.json["status"] == "accepted"
    assert not fake.requests, "the receiver itself never calls BigCommerce"
    run_jobs()
    assert [(e.status, e.order_external_id) for e in inbox(runtime)] == [("processed", "250")]
    order = the_order(client, auth, runtime)
    assert (order["channel"], order["number"], order["currency"]) == ("bigcommerce", "250", "USD")
    assert [(i["sku"], i["quantity"]) for i in order["line_items"]] == [("S-ORAN", 1), ("ABS", 1)]
    assert order["shipping_address"]["line1"] == "666 Sussex St"
    assert order["shipping_address"]["country_code"] == "US"
    assert order["billing_address"]["name"] == "Jane Doe"
    assert order["financial_status"] == "authorized"
    assert [r.path for r in fake.requests] == [f"/stores/{STORE_HASH}/v2/orders/250",
                                               f"/stores/{STORE_HASH}/v2/orders/250/products",
                                               f"/stores/{STORE_HASH}/v2/orders/250/shipping_addresses"]


def test_the_shared_secret_header_is_accepted_too(client: Any, runtime: Any, run_jobs: Any,
                                                  fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    response = post(client, shop, raw("store_order_statusUpdated.json"), secret_header())
    assert response.status_code == 200
    run_jobs()
    assert [e.status for e in inbox(runtime)] == ["processed"]
    assert count(runtime, Order) == 1


def test_the_same_hash_twice_is_one_inbox_row_and_one_order(client: Any, runtime: Any, run_jobs: Any,
                                                            fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    body = raw("store_order_created.json")
    first = post(client, shop, body, secret_header())
    second = post(client, shop, body, secret_header())
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json == {"status": "duplicate"}
    run_jobs()
    assert count(runtime, InboundEvent) == 1 and count(runtime, Order) == 1
    assert len(fake.requests_to("/v2/orders/250")) == 1


def test_a_signed_redelivery_with_the_same_webhook_id_is_a_duplicate(client: Any, runtime: Any,
                                                                     shop: int) -> None:
    body = raw("store_order_created.json")
    assert post(client, shop, body, standard_headers(body, message_id="msg_a")).json["status"] == "accepted"
    # A retry is signed again (new timestamp) under the same message id.
    later = standard_headers(body, message_id="msg_a", timestamp=int(time.time()) + 60)
    assert post(client, shop, body, later).json == {"status": "duplicate"}
    assert count(runtime, InboundEvent) == 1


CREATED = raw("store_order_created.json")


@pytest.mark.parametrize("headers", [
    pytest.param(standard_headers(CREATED, "wrong-secret"), id="wrong-standard-secret"),
    pytest.param(standard_headers(CREATED, timestamp=int(time.time()) - 900), id="stale"),
    pytest.param(secret_header("wrong-secret"), id="wrong-header-secret"),
    pytest.param({"Content-Type": "application/json"}, id="unsigned"),
])
def test_bad_or_missing_signature_is_401_and_nothing_is_stored(client: Any, runtime: Any, shop: int,
                                                               headers: dict[str, str]) -> None:
    response = post(client, shop, raw("store_order_created.json"), headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_signature"
    assert count(runtime, InboundEvent) == 0 and count(runtime, OutboxEvent) == 0


def test_a_signed_body_that_is_not_json_is_401_and_never_stored(client: Any, runtime: Any, shop: int) -> None:
    # BigCommerce's topic lives in the body, so a body without one cannot be a BigCommerce delivery.
    body = b"this is not json"
    response = post(client, shop, body, standard_headers(body))
    assert response.status_code == 401
    assert "not JSON" in response.json["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_a_signed_delivery_that_cannot_be_mapped_is_kept_as_failed_with_the_reason(
        client: Any, runtime: Any, run_jobs: Any, shop: int) -> None:
    body = raw(fixture_for("store/order/created", "no_order_id"))
    assert post(client, shop, body, standard_headers(body)).status_code == 200
    run_jobs()
    [event] = inbox(runtime)
    assert event.status == "failed"
    assert "data.id None is not a BigCommerce order id" in (event.error or "")
    assert count(runtime, Order) == 0


def test_unknown_shop_is_404(client: Any, runtime: Any, shop: int) -> None:
    body = raw("store_order_created.json")
    response = post(client, shop + 1000, body, standard_headers(body))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_shop"
    assert count(runtime, InboundEvent) == 0


def test_update_ingested_before_its_create_ends_with_the_newest_state(
        client: Any, auth: Any, runtime: Any, run_jobs: Any, fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250, status_id=11, status="Awaiting Fulfillment", payment_status="captured",
                date_modified="Tue, 12 Mar 2019 10:00:00 +0000")
    updated, created = raw("store_order_updated.json"), raw("store_order_created.json")
    assert post(client, shop, updated, secret_header()).status_code == 200
    run_jobs()
    assert post(client, shop, created, secret_header()).status_code == 200
    run_jobs()
    assert [e.status for e in inbox(runtime)] == ["processed", "processed"]
    assert the_order(client, auth, runtime)["financial_status"] == "paid"


def test_an_older_snapshot_after_a_newer_one_is_stale_and_not_applied(
        client: Any, auth: Any, runtime: Any, run_jobs: Any, fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250, status_id=11, payment_status="captured",
                date_modified="Tue, 12 Mar 2019 10:00:00 +0000")
    assert post(client, shop, raw("store_order_created.json"), secret_header()).status_code == 200
    run_jobs()
    # A lagging replica answers with the order as it was the day before.
    fake.update_order(250, status_id=7, payment_status="pending",
                      date_modified="Mon, 11 Mar 2019 15:17:25 +0000")
    assert post(client, shop, raw("store_order_updated.json"), secret_header()).status_code == 200
    run_jobs()
    assert [e.status for e in inbox(runtime)] == ["processed", "stale"]
    assert the_order(client, auth, runtime)["financial_status"] == "paid"


def test_refund_created_refetches_the_order_and_records_the_refund(
        client: Any, auth: Any, runtime: Any, run_jobs: Any, fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    post(client, shop, raw("store_order_created.json"), secret_header())
    run_jobs()
    refunded = {**load("api_get_order_response__partially_refunded.json"), "id": 250}
    fake.add_order(refunded, load("api_get_order_products_response.json"),
                   load("api_get_order_shipping_addresses_response.json"),
                   load("api_get_order_refunds_response.json")["data"])
    assert post(client, shop, raw("store_order_refund_created.json"), secret_header()).status_code == 200
    run_jobs()
    order = the_order(client, auth, runtime)
    assert order["financial_status"] == "partially_refunded"
    assert order["refunded_total"] == "10.00"
    assert order["line_items"][0]["unit_price"] == "55.99"


def test_archived_cancels_an_order_that_has_not_shipped(client: Any, auth: Any, runtime: Any, run_jobs: Any,
                                                        fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    post(client, shop, raw("store_order_created.json"), secret_header())
    run_jobs()
    assert post(client, shop, raw("store_order_archived.json"), secret_header()).status_code == 200
    run_jobs()
    order = the_order(client, auth, runtime)
    assert order["status"] == "cancelled" and order["cancel_reason"] == "archived"


@pytest.mark.parametrize("topic", sorted(SPEC.ignored_topics))
def test_ignored_scopes_are_stored_and_end_as_ignored(client: Any, runtime: Any, run_jobs: Any,
                                                      fake: FakeBigCommerce, shop: int, topic: str) -> None:
    body = raw(fixture_for(topic))
    response = post(client, shop, body, standard_headers(body))
    assert response.status_code == 200
    run_jobs()
    [event] = inbox(runtime)
    assert (event.topic, event.status) == (topic, "ignored")
    assert not fake.requests and count(runtime, Order) == 0


@pytest.mark.parametrize("topic", ["store/order/created", "store/order/updated", "store/order/statusUpdated",
                                   "store/order/refund/created"])
def test_every_order_scope_fetches_and_stores_the_order(client: Any, runtime: Any, run_jobs: Any,
                                                        fake: FakeBigCommerce, shop: int, topic: str) -> None:
    stock_order(fake, 250)
    body = raw(fixture_for(topic))
    assert post(client, shop, body, standard_headers(body)).status_code == 200
    run_jobs()
    assert [(e.topic, e.status) for e in inbox(runtime)] == [(topic, "processed")]
    assert count(runtime, Order) == 1


def _scheduled_ingest_jobs(runtime: Any) -> ScheduledJobRegistry:
    queue = Queue(str(QueueName.INGEST), connection=runtime.redis)
    return ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]


def test_429_during_ingest_is_retried_after_the_reset_time_and_nothing_fails(
        client: Any, auth: Any, runtime: Any, run_jobs: Any, fake: FakeBigCommerce, shop: int) -> None:
    stock_order(fake, 250)
    fake.fail_next(429, reset_ms=1500)
    before = utcnow()
    assert post(client, shop, raw("store_order_created.json"), secret_header()).status_code == 200
    run_jobs()
    [event] = inbox(runtime)
    assert event.status == "received" and event.attempts == 1
    assert event.next_attempt_at is not None and event.next_attempt_at >= before + timedelta(seconds=1.5)
    assert "429" in (event.error or "")
    assert count(runtime, Order) == 0
    due = event.next_attempt_at
    # When the reset time has passed, RQ's scheduler hands the ingest run back and the order comes in.
    registry = _scheduled_ingest_jobs(runtime)
    assert len(registry.get_job_ids()) == 1
    time.sleep(max((due - utcnow()).total_seconds(), 0) + 0.1)
    for job_id in registry.get_job_ids():
        registry.requeue(job_id)
    run_jobs()
    assert [e.status for e in inbox(runtime)] == ["processed"]
    assert the_order(client, auth, runtime)["number"] == "250"


@pytest.fixture
def live_receiver(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize("signing", ["standard", "header"])
def test_fake_deliver_posts_over_http_exactly_as_bigcommerce(live_receiver: str, runtime: Any, run_jobs: Any,
                                                             fake: FakeBigCommerce, shop: int,
                                                             signing: str) -> None:
    stock_order(fake, 250, date_modified=rfc2822(utcnow()))
    url = f"{live_receiver}/webhooks/bigcommerce/{shop}"
    response = fake.deliver("store/order/created", 250, url, WEBHOOK_SECRET, signing=signing)
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    # BigCommerce firing one event twice: the same hash (and created_at) each time.
    repeat, again = (fake.deliver("store/order/updated", 250, url, WEBHOOK_SECRET, signing="header",
                                  hash="h1", created_at=1) for _ in range(2))
    assert (repeat.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    run_jobs()
    assert count(runtime, Order) == 1
