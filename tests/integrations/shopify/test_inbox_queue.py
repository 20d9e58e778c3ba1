"""The inbox is the ingest queue: a burst of deliveries costs one ingest run, and a lost wake is found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import select, update

from app import create_app
from app.models import InboundEvent, Order
from app.store import utcnow
from jobs.ingest import wake_if_stuck
from jobs.queues import QueueName
from tests.helpers_redis import PrivateRedis
from tests.integrations.shopify.conftest import fixture_json, shopify_headers
from tests.test_outbox import run_all_jobs


def deliver_order(client: Any, order_id: int) -> Any:
    raw = json.dumps(dict(fixture_json("orders_create.json"), id=order_id, name=f"#{order_id}")).encode()
    return client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw))


def test_a_burst_of_deliveries_wakes_one_ingest_run(runtime: Any, client: Any, run_jobs: Any, shop_id: int) -> None:
    for n in range(30):
        assert deliver_order(client, 10_000 + n).json["status"] == "accepted"
    assert Queue(str(QueueName.INGEST), connection=runtime.redis).count == 2, "one wake per ingest slot"
    run_jobs()
    with runtime.db.session() as session:
        assert session.query(Order).count() == 30
        assert {e.status for e in session.execute(select(InboundEvent)).scalars()} == {"processed"}


def test_a_lost_wake_is_found_by_the_sweeper(runtime: Any, client: Any, run_jobs: Any, shop_id: int) -> None:
    deliver_order(client, 20_001)
    Queue(str(QueueName.INGEST), connection=runtime.redis).empty()  # the wake is lost (say Redis restarted)
    run_jobs()
    assert not wake_if_stuck(runtime), "a delivery only seconds old is not stuck yet"
    with runtime.db.session() as session:
        session.execute(update(InboundEvent).values(received_at=utcnow() - timedelta(minutes=1)))
    assert wake_if_stuck(runtime)
    run_jobs()
    with runtime.db.session() as session:
        assert session.execute(select(Order.external_id)).scalar() == "20001"


@pytest.fixture
def on_private_redis(settings: Any, shop_id: int, tmp_path: Any) -> Iterator[tuple[PrivateRedis, Any]]:
    """The app on a redis-server of its own, which a test may stop and start: (the server, the app)."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    app = create_app(settings.with_overrides(redis_url=server.url))
    try:
        yield server, app
    finally:
        app.extensions["orderline"].db.dispose()
        server.stop()


def test_webhooks_are_accepted_while_redis_is_down_and_ingested_once_it_is_back(
        on_private_redis: tuple[PrivateRedis, Any]) -> None:
    server, app = on_private_redis
    runtime = app.extensions["orderline"]
    server.stop()
    client = app.test_client()
    answers = [deliver_order(client, 30_000 + n) for n in range(3)]
    assert [(a.status_code, a.json["status"]) for a in answers] == [(200, "accepted")] * 3
    assert client.get("/readyz").status_code == 503
    server.start()
    with runtime.db.session() as session:
        session.execute(update(InboundEvent).values(received_at=utcnow() - timedelta(minutes=1)))
    assert wake_if_stuck(runtime)
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        assert sorted(session.execute(select(Order.external_id)).scalars()) == ["30000", "30001", "30002"]


def test_a_delivery_after_a_redis_restart_wakes_ingest_without_waiting_for_the_sweeper(
        on_private_redis: tuple[PrivateRedis, Any]) -> None:
    server, app = on_private_redis
    runtime = app.extensions["orderline"]
    client = app.test_client()
    assert deliver_order(client, 40_000).json["status"] == "accepted"
    run_all_jobs(runtime)
    server.stop()  # everything Redis held is gone, and the receiver's connection to it is dead
    server.start()
    assert deliver_order(client, 40_001).json["status"] == "accepted"
    assert Queue(str(QueueName.INGEST), connection=runtime.redis).count == 1, "the delivery woke a run"
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        assert sorted(session.execute(select(Order.external_id)).scalars()) == ["40000", "40001"]
