"""POST /webhooks/shopify with the real fixtures, signed as Shopify signs them, through to the order store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from app.models import InboundEvent, Order, Shop
from integrations import channel
from tests.conftest import SHOPIFY_TEST_SECRET
from tests.integrations.shopify.conftest import (
    count,
    fixture_bytes,
    fixture_name,
    inbound_rows,
    shopify_headers,
    sign,
    the_order,
)

CREATE_ID = "5324830114101"  # orders_create.json
SNOWBOARDS_ID = "5324790137142"  # orders_cancelled.json and its variants


def test_orders_create__answers_200_and_the_order_appears(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    response = deliver("orders/create", "orders_create.json")
    assert response.status_code == 200 and response.get_json()["status"] == "accepted"
    run_jobs()
    order = the_order(runtime, CREATE_ID)
    assert (order.number, order.total, order.currency, order.status) == (
        "#1010",
        Decimal("2629.95"),
        "USD",
        "needs_review",
    )
    assert [item.sku for item in order.line_items] == ["sku-hosted-1"]
    [row] = inbound_rows(runtime)
    assert (row.status, row.topic, row.order_external_id) == ("processed", "orders/create", CREATE_ID)


def test_the_same_delivery_twice_is_stored_and_applied_once(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    first = deliver("orders/create", "orders_create.json", webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    again = deliver("orders/create", "orders_create.json", webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    run_jobs()
    assert first.status_code == again.status_code == 200
    assert again.get_json() == {"status": "duplicate"}
    assert count(runtime, InboundEvent) == 1 and count(runtime, Order) == 1


@pytest.mark.parametrize(
    "topic", ["orders/create", "customers/redact", "customers/data_request", "shop/redact"]
)
def test_a_bad_signature_is_401_and_nothing_is_stored(
    client: Any, runtime: Any, shop_id: int, topic: str
) -> None:
    raw = fixture_bytes(
        fixture_name(topic, "test_shop") if topic != "orders/create" else "orders_create.json"
    )
    headers = shopify_headers(topic, raw, secret="not-the-app-secret")
    response = client.post("/webhooks/shopify", data=raw, headers=headers)
    assert response.status_code == 401
    assert "does not match" in response.get_json()["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_a_body_changed_after_signing_is_401(client: Any, runtime: Any, shop_id: int) -> None:
    raw = fixture_bytes("orders_create.json")
    headers = shopify_headers("orders/create", raw)
    response = client.post("/webhooks/shopify", data=raw.replace(b"2629.95", b"0.01"), headers=headers)
    assert response.status_code == 401 and count(runtime, InboundEvent) == 0


def test_a_missing_signature_is_401_naming_the_header(client: Any, runtime: Any, shop_id: int) -> None:
    raw = fixture_bytes("orders_create.json")
    headers = shopify_headers("orders/create", raw)
    del headers["X-Shopify-Hmac-Sha256"]
    response = client.post("/webhooks/shopify", data=raw, headers=headers)
    assert response.status_code == 401
    assert "X-Shopify-Hmac-Sha256" in response.get_json()["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_the_previous_app_secret_still_verifies_during_a_rotation(settings: Any, fake_shopify: Any) -> None:
    from app import create_app

    app = create_app(
        settings.with_overrides(
            shopify_api_secret="brand-new-secret", shopify_api_secret_previous=SHOPIFY_TEST_SECRET
        )
    )
    raw = fixture_bytes("orders_create.json")
    runtime = app.extensions["orderline"]
    try:
        with runtime.db.session() as session:
            session.add(
                Shop(channel="shopify", name="s", external_id="rotating.myshopify.com", currency="USD")
            )
        response = app.test_client().post(
            "/webhooks/shopify",
            data=raw,
            headers=shopify_headers("orders/create", raw, domain="rotating.myshopify.com"),
        )
        assert response.status_code == 200
    finally:
        runtime.redis.flushdb()
        runtime.db.dispose()


def test_an_unknown_shop_is_404(client: Any, runtime: Any, shop_id: int, deliver: Any) -> None:
    response = deliver("orders/create", "orders_create.json", domain="someone-else.myshopify.com")
    assert response.status_code == 404 and count(runtime, InboundEvent) == 0


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_privacy_topics_answer_401_to_a_bad_hmac_even_for_an_unknown_shop(
    client: Any, runtime: Any, topic: str
) -> None:
    raw = fixture_bytes(fixture_name(topic))  # shop_domain "{shop}.myshopify.com": no such shop here
    headers = shopify_headers(topic, raw, domain="unknown-shop.myshopify.com", secret="forged")
    assert client.post("/webhooks/shopify", data=raw, headers=headers).status_code == 401
    # Correctly signed, the same request reaches the shop lookup, which does not know the shop.
    headers = shopify_headers(topic, raw, domain="unknown-shop.myshopify.com")
    assert client.post("/webhooks/shopify", data=raw, headers=headers).status_code == 404
    assert count(runtime, InboundEvent) == 0


@pytest.mark.parametrize(
    "missing", ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-API-Version", "X-Shopify-Webhook-Id"]
)
def test_a_request_without_a_required_shopify_header_is_401(
    client: Any, runtime: Any, shop_id: int, missing: str
) -> None:
    raw = fixture_bytes("orders_create.json")
    headers = shopify_headers("orders/create", raw)
    del headers[missing]
    response = client.post("/webhooks/shopify", data=raw, headers=headers)
    assert response.status_code == 401 and missing in response.get_json()["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_an_update_before_its_create_ends_with_the_newest_state(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    deliver("orders/updated", "orders_updated__after_create.json")
    run_jobs()
    deliver("orders/create", "orders_create.json")
    run_jobs()
    order = the_order(runtime, CREATE_ID)
    assert order.note == "Leave at the back door" and order.tags == ["gift", "rush"]
    assert [row.status for row in inbound_rows(runtime)] == ["processed", "stale"]
    assert count(runtime, Order) == 1


def test_an_old_update_after_a_newer_one_is_stale_and_not_applied(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    deliver("orders/create", "orders_create.json")
    deliver("orders/updated", "orders_updated__later.json")
    run_jobs()
    deliver("orders/updated", "orders_updated__after_create.json")
    run_jobs()
    order = the_order(runtime, CREATE_ID)
    assert order.note == "Deliver to the neighbour" and order.tags == ["gift"]
    assert [row.status for row in inbound_rows(runtime)] == ["processed", "processed", "stale"]


def test_a_signed_body_that_is_not_json_is_accepted_then_fails_with_a_reason(
    client: Any, runtime: Any, shop_id: int, run_jobs: Any
) -> None:
    raw = b"<html>this is not an order</html>"
    response = client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw))
    assert response.status_code == 200
    run_jobs()
    [row] = inbound_rows(runtime)
    assert row.status == "failed" and "JSONDecodeError" in (row.error or "")
    assert count(runtime, Order) == 0


def test_a_json_order_that_cannot_be_mapped_fails_with_the_reason(
    client: Any, runtime: Any, shop_id: int, run_jobs: Any
) -> None:
    raw = fixture_bytes("orders_create.json").replace(
        b'"financial_status": "paid"', b'"financial_status": "odd"'
    )
    client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw))
    run_jobs()
    [row] = inbound_rows(runtime)
    assert row.status == "failed" and "unknown financial_status 'odd'" in (row.error or "")


# --- every topic Orderline knows has a fixture and does what it says ------------------------------------

# topic → (fixtures delivered first, the topic's own fixture)
TOPIC_CASES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "orders/create": ([], "orders_create.json"),
    "orders/updated": ([], "orders_updated.json"),
    "orders/paid": ([("orders/create", "orders_create.json")], "orders_paid__after_create.json"),
    "orders/cancelled": ([], "orders_cancelled.json"),
    "orders/fulfilled": ([("orders/create", "orders_create.json")], "orders_fulfilled__after_create.json"),
    "orders/partially_fulfilled": (
        [("orders/create", "orders_create__snowboards.json")],
        "orders_partially_fulfilled__snowboards.json",
    ),
    "orders/delete": ([("orders/create", "orders_create.json")], "orders_delete__after_create.json"),
    "refunds/create": ([("orders/create", "orders_create__snowboards.json")], "refunds_create.json"),
    "app/uninstalled": ([], "app_uninstalled.json"),
    "customers/data_request": (
        [("orders/cancelled", "orders_cancelled.json")],
        "customers_data_request__test_shop.json",
    ),
    "customers/redact": ([("orders/cancelled", "orders_cancelled.json")], "customers_redact__test_shop.json"),
    "shop/redact": ([("orders/cancelled", "orders_cancelled.json")], "shop_redact__test_shop.json"),
    "orders/edited": ([], "orders_edited__minimal.json"),
    "checkouts/create": ([], "checkouts_create__minimal.json"),
    "carts/update": ([], "carts_update__minimal.json"),
}


def test_every_topic_of_the_spec_has_a_case_and_a_fixture() -> None:
    spec = channel("shopify")
    assert set(TOPIC_CASES) == set(spec.all_topics)
    for topic, (_before, name) in TOPIC_CASES.items():
        assert name.startswith(fixture_name(topic).removesuffix(".json")), (topic, name)
        assert fixture_bytes(name)


def _effect(runtime: Any, topic: str) -> None:
    """What a person would notice after the delivery of `topic`."""
    if topic in ("orders/create", "orders/paid"):
        assert the_order(runtime, CREATE_ID).financial_status == "paid"
    elif topic == "orders/updated":
        order = the_order(runtime, "820982911946154508")
        assert (
            order.status == "cancelled"
            and order.financial_status == "voided"
            and order.total == Decimal("57.98")
        )
    elif topic == "orders/cancelled":
        order = the_order(runtime, SNOWBOARDS_ID)
        assert order.status == "cancelled" and order.cancel_reason == "other"
        assert order.refunded_total == Decimal("1806.38")
    elif topic == "orders/fulfilled":
        order = the_order(runtime, CREATE_ID)
        assert order.fulfillment_status == "fulfilled" and order.line_items[0].fulfilled_quantity == 1
    elif topic == "orders/partially_fulfilled":
        order = the_order(runtime, SNOWBOARDS_ID)
        assert order.fulfillment_status == "partial"
        assert {i.variant_title: i.fulfilled_quantity for i in order.line_items} == {
            "Powder": 0,
            "Electric": 1,
        }
    elif topic == "orders/delete":
        order = the_order(runtime, CREATE_ID)
        assert order.status == "cancelled" and order.cancel_reason == "deleted"
    elif topic == "refunds/create":
        order = the_order(runtime, SNOWBOARDS_ID)
        assert order.refunded_total == Decimal("1806.38")
        assert {i.variant_title: i.refunded_quantity for i in order.line_items} == {
            "Powder": 1,
            "Electric": 2,
        }
    elif topic == "app/uninstalled":
        with runtime.db.session() as session:
            shop = session.query(Shop).one()
            assert shop.active is False and shop.uninstalled_at is not None
    elif topic == "shop/redact":
        assert count(runtime, Order) == 0
    # customers/* are asserted in detail in test_privacy.py


@pytest.mark.parametrize("topic", sorted(TOPIC_CASES))
def test_topic(topic: str, client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any) -> None:
    before, name = TOPIC_CASES[topic]
    for earlier_topic, earlier in before:
        assert deliver(earlier_topic, earlier).status_code == 200
        run_jobs()
    response = deliver(topic, name)
    assert response.status_code == 200, response.get_json()
    run_jobs()
    with runtime.db.session() as session:
        row = session.query(InboundEvent).filter_by(topic=topic).one()
        status, error = row.status, row.error
    expected = "ignored" if topic in channel("shopify").ignored_topics else "processed"
    assert (status, error if expected == "processed" else None) == (expected, None)
    _effect(runtime, topic)


def test_the_signature_is_checked_over_the_exact_bytes_not_reserialised_json(
    client: Any, runtime: Any, shop_id: int
) -> None:
    raw = fixture_bytes("orders_create.json")
    compact = raw.replace(b"\n", b"").replace(b"  ", b"")
    headers = shopify_headers("orders/create", raw)
    headers["X-Shopify-Hmac-Sha256"] = sign(raw)
    assert client.post("/webhooks/shopify", data=compact, headers=headers).status_code == 401


def test_a_database_restart_answers_503_once_then_the_retry_is_stored(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    if runtime.db.dialect != "postgresql":
        pytest.skip("SQLite has no server to restart")
    assert deliver("orders/updated", "orders_updated.json").status_code == 200  # the receiver's pool is open
    with runtime.db.engine.connect() as connection:  # what a PostgreSQL restart does to its open connections
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    runtime.db.engine.dispose()  # the jobs' pool is not what this test is about
    raw = fixture_bytes("orders_create.json")
    headers = shopify_headers("orders/create", raw)
    refused = client.post("/webhooks/shopify", data=raw, headers=headers)
    assert refused.status_code == 503 and "nothing was stored" in refused.get_json()["error"]["message"]
    retried = client.post("/webhooks/shopify", data=raw, headers=headers)  # Shopify's retry: same webhook id
    assert retried.status_code == 200 and retried.get_json()["status"] == "accepted"
    run_jobs()
    assert the_order(runtime, CREATE_ID).number == "#1010"
    assert [row.topic for row in inbound_rows(runtime)] == ["orders/updated", "orders/create"]


def test_after_a_database_restart_no_other_web_thread_refuses_a_webhook(
    client: Any, runtime: Any, shop_id: int, deliver: Any
) -> None:
    """Each web thread has its own connection for the inbox insert; the first thread to find the database
    restarted answers 503, and every other thread opens a new connection before its next webhook."""
    if runtime.db.dialect != "postgresql":
        pytest.skip("SQLite has no server to restart")
    with ThreadPoolExecutor(max_workers=1) as other_thread:
        assert other_thread.submit(deliver, "orders/updated", "orders_updated.json").result().status_code == 200
        assert deliver("orders/updated", "orders_updated.json").status_code == 200  # this thread's connection
        with runtime.db.engine.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert deliver("orders/create", "orders_create.json").status_code == 503
        later = other_thread.submit(deliver, "orders/cancelled", "orders_cancelled.json").result()
        assert later.status_code == 200 and later.get_json()["status"] == "accepted"


def test_a_database_refusing_new_connections_answers_503_and_then_stores_the_retry(
    client: Any, runtime: Any, shop_id: int, deliver: Any
) -> None:
    if runtime.db.dialect != "postgresql":
        pytest.skip("SQLite has no server to refuse connections")
    assert deliver("orders/updated", "orders_updated.json").status_code == 200  # shop known, thread connected
    raw = fixture_bytes("orders_create.json")
    headers = shopify_headers("orders/create", raw)
    name = runtime.db.engine.url.database
    server = runtime.db.engine.url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            # The first finds its connection gone, the second cannot open a new one: neither is stored.
            refused = [client.post("/webhooks/shopify", data=raw, headers=headers) for _ in range(2)]
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert [(r.status_code, r.headers.get("Retry-After")) for r in refused] == [(503, "5"), (503, "5")]
    runtime.db.engine.dispose()  # its other connections were terminated too
    retried = client.post("/webhooks/shopify", data=raw, headers=headers)
    assert retried.status_code == 200 and retried.get_json()["status"] == "accepted"
    assert [row.topic for row in inbound_rows(runtime)] == ["orders/updated", "orders/create"]


def test_one_bad_order_in_a_batch_fails_alone_and_the_rest_arrive(
    client: Any, runtime: Any, shop_id: int, run_jobs: Any
) -> None:
    """Ingest applies a batch all or nothing first; a delivery that fails makes it redo the batch one delivery
    at a time, so the failure is recorded with its reason and every other order still lands, once."""
    good = fixture_bytes("orders_create.json")
    bad = fixture_bytes("orders_create__snowboards.json").replace(b'"currency": "USD"', b'"currency": "XYZ"', 1)
    for raw in (good, bad, fixture_bytes("orders_cancelled.json")):
        topic = "orders/cancelled" if raw.count(b'"cancelled_at": null') == 0 else "orders/create"
        assert client.post("/webhooks/shopify", data=raw, headers=shopify_headers(topic, raw)).status_code == 200
    run_jobs()
    rows = inbound_rows(runtime)
    assert [row.status for row in rows] == ["processed", "failed", "processed"]
    assert "'XYZ' is not an ISO 4217 currency code" in str(rows[1].error)
    assert [row.attempts for row in rows] == [1, 1, 1]
    assert count(runtime, Order) == 2 and the_order(runtime, CREATE_ID).number == "#1010"
    assert the_order(runtime, SNOWBOARDS_ID).status == "cancelled"
