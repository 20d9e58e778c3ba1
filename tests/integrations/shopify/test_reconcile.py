"""Reconciliation against the fake Admin API: what the webhooks missed is found, applied once and reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.cli import cli
from app.models import Alert, Order, OutboxEvent, ReconcileRun, Shop
from integrations.shopify.fake import FakeShopify
from jobs.reconcile import schedule_due
from tests.integrations.shopify.conftest import fixture_json, shopify_headers


def shopify_order(order_id: int, minutes_ago: int, **changes: Any) -> dict[str, Any]:
    order = fixture_json("orders_create.json")
    when = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    order.update(id=order_id, name=f"#{order_id}", order_number=order_id, updated_at=when, created_at=when,
                 admin_graphql_api_id=f"gid://shopify/Order/{order_id}", **changes)
    return order


def deliver_json(client: Any, topic: str, order: dict[str, Any]) -> Any:
    raw = json.dumps(order).encode()
    return client.post("/webhooks/shopify", data=raw, headers=shopify_headers(topic, raw))


def runs(runtime: Any) -> list[ReconcileRun]:
    with runtime.db.session() as session:
        return list(session.execute(select(ReconcileRun).order_by(ReconcileRun.id)).scalars())


def test_reconcile_finds_orders_whose_webhooks_were_lost(runtime: Any, client: Any, run_jobs: Any, shop_id: int,
                                                        fake_shopify: FakeShopify) -> None:
    delivered, lost_1, lost_2 = (shopify_order(n, minutes_ago=60) for n in (5001, 5002, 5003))
    for order in (delivered, lost_1, lost_2):
        fake_shopify.add_order(order)
    assert deliver_json(client, "orders/create", delivered).status_code == 200
    run_jobs()

    assert schedule_due(runtime) == 1
    assert schedule_due(runtime) == 0, "one reconciliation waiting per shop, not one per sweep"
    run_jobs()

    with runtime.db.session() as session:
        assert sorted(session.execute(select(Order.external_id)).scalars()) == ["5001", "5002", "5003"]
        alert = session.execute(select(Alert)).scalar_one()
        assert alert.kind == "missed_webhooks" and "2 order(s)" in alert.message
        shop = session.get(Shop, shop_id)
        assert shop is not None and shop.reconciled_until is not None
    [run] = runs(runtime)
    assert (run.orders_seen, run.missed_creates, run.missed_updates) == (3, 2, 0)
    assert fake_shopify.graphql_requests("orders"), "the poll went through the Admin API"


def test_reconcile_applies_a_missed_update_and_skips_fresh_changes(runtime: Any, client: Any, run_jobs: Any,
                                                                  shop_id: int, fake_shopify: FakeShopify) -> None:
    original = shopify_order(6001, minutes_ago=90)
    deliver_json(client, "orders/create", original)
    run_jobs()
    fake_shopify.add_order(shopify_order(6001, minutes_ago=30, note="gift wrap please"))
    fake_shopify.add_order(shopify_order(6002, minutes_ago=0))  # its webhook may still be on the way
    schedule_due(runtime)
    run_jobs()
    with runtime.db.session() as session:
        assert session.execute(select(Order.note).where(Order.external_id == "6001")).scalar() == "gift wrap please"
        assert session.execute(select(Order.id).where(Order.external_id == "6002")).first() is None
    [run] = runs(runtime)
    assert (run.missed_creates, run.missed_updates) == (0, 1)


def test_a_throttled_poll_is_retried_not_failed(runtime: Any, run_jobs: Any, shop_id: int,
                                              fake_shopify: FakeShopify) -> None:
    fake_shopify.add_order(shopify_order(7001, minutes_ago=60))
    fake_shopify.fail_next(429, times=50, retry_after=30)
    schedule_due(runtime)
    run_jobs()
    with runtime.db.session() as session:
        row = session.execute(select(OutboxEvent).where(OutboxEvent.job == "reconcile_shop")).scalar_one()
        assert row.status == "pending" and row.next_attempt_at is not None
        assert row.next_attempt_at >= datetime.now(UTC) + timedelta(seconds=25)
        assert session.execute(select(Order)).first() is None


def test_backfill_and_webhook_registration_from_the_cli(app: Any, runtime: Any, shop_id: int,
                                                       fake_shopify: FakeShopify) -> None:
    for n in range(8001, 8006):  # 23 h, 1 d 23 h, ... ago: never on the 3-day boundary, however slow the run
        fake_shopify.add_order(shopify_order(n, minutes_ago=60 * 24 * (n - 8000) - 60))
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["shops", "backfill", str(shop_id), "--days", "3"])
    assert result.exit_code == 0, result.output
    assert "3 order(s)" in result.output
    with runtime.db.session() as session:
        assert session.execute(select(Alert)).first() is None, "a backfill reports nothing as missed"
    result = runner.invoke(cli, ["shops", "register-webhooks", str(shop_id)])
    assert result.exit_code == 0, result.output
    topics = {s["topic"] for s in fake_shopify.webhook_subscriptions}
    assert {"ORDERS_CREATE", "ORDERS_UPDATED", "REFUNDS_CREATE", "APP_UNINSTALLED"} <= topics
    assert all(s["uri"].endswith("/webhooks/shopify") for s in fake_shopify.webhook_subscriptions)


def test_missed_webhooks_show_in_metrics(runtime: Any, client: Any, run_jobs: Any, shop_id: int,
                                         fake_shopify: FakeShopify) -> None:
    fake_shopify.add_order(shopify_order(9001, minutes_ago=60))
    schedule_due(runtime)
    run_jobs()
    text = client.get("/metrics").get_data(as_text=True)
    assert f'orderline_missed_webhooks_total{{kind="order",shop_id="{shop_id}"}} 1.0' in text
    assert 'orderline_inbound_events{status="failed"} 0.0' in text
