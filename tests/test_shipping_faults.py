"""Shipping under faults, against the real EasyPost SDK and Shopify client pointed at loopback fakes: a buy
whose answer never came, carrier 500/429/timeouts, a worker SIGKILLed mid-purchase, Redis restarted
mid-pipeline. Every order ends with exactly one label (the fake counts purchases per reference) and one
fulfillment on the channel."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import create_app
from app.config import Settings
from app.models import Alert, Order, OrderEvent, OutboxEvent, Shipment, Shop
from app.runtime import Runtime
from app.store import utcnow
from integrations.carriers.easypost.fake import FakeEasyPost
from integrations.shopify.fake import FakeShopify
from jobs import relay
from jobs.runner import run_outbox
from tests.helpers_redis import PrivateRedis
from tests.integrations.shopify.conftest import ACCESS_TOKEN, API_VERSION, SHOP_DOMAIN, shopify_headers
from tests.test_outbox import private_redis as outbox_private_redis
from tests.test_outbox import run_all_jobs, wait_for
from tests.test_shipping_channels import shopify_order
from tests.test_stock import add_location, import_csv, orderline

ROOT = Path(__file__).resolve().parents[1]
private_redis = outbox_private_redis  # the outbox tests' private redis-server fixture
EASYPOST_KEY = "EZTKshippingtest"


@pytest.fixture
def easypost() -> Iterator[FakeEasyPost]:
    with FakeEasyPost(EASYPOST_KEY) as fake:
        yield fake


@pytest.fixture
def shopify() -> Iterator[FakeShopify]:
    with FakeShopify(access_token=ACCESS_TOKEN) as fake:
        yield fake


@pytest.fixture
def wired(settings: Settings, easypost: FakeEasyPost, shopify: FakeShopify,
          private_redis: PrivateRedis) -> Settings:
    return settings.with_overrides(redis_url=private_redis.url, easypost_api_key=EASYPOST_KEY,
                                   easypost_api_base_url=easypost.url, shopify_api_base_url=shopify.url,
                                   shopify_api_version=API_VERSION)


@pytest.fixture
def app(wired: Settings) -> Iterator[Any]:
    app = create_app(wired)
    app.config["TESTING"] = True
    yield app
    app.extensions["orderline"].db.dispose()


def add_shop(runtime: Runtime, timeout: float = 2.0) -> int:
    add_location(runtime, "ATX", "US", priority=10)
    import_csv(runtime, "location,sku,on_hand\nATX,sku-hosted-1,1000\n")
    with runtime.db.session() as session:
        shop = Shop(channel="shopify", name="Faulty day", external_id=SHOP_DOMAIN, currency="USD",
                    credentials_encrypted=runtime.secrets.seal({"access_token": ACCESS_TOKEN}),  # type: ignore[union-attr]
                    settings={"auto_approve": True, "auto_pick_pack": True, "carrier": "easypost",
                              "carrier_settings": {"api_timeout_seconds": timeout}})
        session.add(shop)
        session.flush()
        return int(shop.id)


def deliver(client: Any, shopify: FakeShopify, count: int) -> list[dict[str, Any]]:
    orders = [shopify_order(n, quantity=1 + n % 3) for n in range(count)]
    for order in orders:
        shopify.add_order(order)
        raw = json.dumps(order).encode()
        answer = client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw))
        assert answer.status_code == 200
    return orders


def drain(runtime: Runtime, timeout: float = 60.0) -> None:
    """Work as workers would until no outbox row is pending: queued jobs, due retries, the sweeper's finds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_all_jobs(runtime)
        with runtime.db.session() as session:
            pending = list(session.execute(select(OutboxEvent.id, OutboxEvent.next_attempt_at)
                                           .where(OutboxEvent.status == "pending")).all())
        if not pending:
            return
        for row_id, due in pending:
            if due is None or due <= utcnow():
                run_outbox(row_id)
        relay.sweep(runtime)
        time.sleep(0.1)
    raise AssertionError("outbox still has pending rows")


def outcome(runtime: Runtime) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    """(order external id, status, [(shipment status, reference)])."""
    with runtime.db.session() as session:
        result = []
        for order in session.execute(select(Order).order_by(Order.id)).scalars():
            parcels = [(s.status, s.reference) for s in session.execute(
                select(Shipment).where(Shipment.order_id == order.id)).scalars()]
            result.append((order.external_id, order.status, parcels))
        return result


def count_events(runtime: Runtime, type_: str) -> int:
    with runtime.db.session() as session:
        return len(session.execute(select(OrderEvent.id).where(OrderEvent.type == type_)).all())


def assert_exactly_once(runtime: Runtime, easypost: FakeEasyPost, shopify: FakeShopify,
                        orders: list[dict[str, Any]]) -> None:
    final = outcome(runtime)
    assert len(final) == len(orders)
    for external_id, status, parcels in final:
        assert status == "shipped", (external_id, status, parcels)
        [(shipment_status, reference)] = parcels
        assert shipment_status == "purchased" and reference
        assert easypost.purchases(reference) == 1, reference
        assert len(shopify.fulfillments(external_id)) == 1, external_id
    assert count_events(runtime, "shipment.label_purchased") == len(orders)
    assert count_events(runtime, "shipment.pushed_to_channel") == len(orders)


# --- a buy whose answer never came --------------------------------------------------------------------------


def test_a_purchase_that_timed_out_is_found_on_retry_not_bought_again(
        client: Any, runtime: Runtime, easypost: FakeEasyPost, shopify: FakeShopify) -> None:
    add_shop(runtime, timeout=0.5)
    easypost.hang_after_next(1.5, match="/buy")  # EasyPost sells the label, the answer arrives too late
    [order] = deliver(client, shopify, 1)
    run_all_jobs(runtime)

    [(_, status, [(shipment_status, reference)])] = outcome(runtime)
    assert (status, shipment_status) == ("packed", "purchasing")
    assert reference and easypost.purchases(reference) == 1
    with runtime.db.session() as session:
        row = session.execute(select(OutboxEvent).where(OutboxEvent.job == "buy_label")).scalar_one()
        assert row.status == "pending" and "no answer within 0.5 s" in (row.last_error or "")
    # A first attempt on a fresh claim buys without listing the account's shipments (an index call per label
    # would meet EasyPost's 5/s limit at peak); the retry looks first.
    assert easypost.requests_to("/shipments", "GET") == []
    drain(runtime)
    assert_exactly_once(runtime, easypost, shopify, [order])
    assert len(easypost.requests_to("/buy", "POST")) == 1, "the retry found the label instead of buying"
    assert len(easypost.requests_to("/shipments", "GET")) >= 1


# --- carrier 500, 429 with Retry-After, a timeout, Shopify 500, Redis restarted --------------------------


def test_a_faulty_day_still_ships_every_order_exactly_once(
        client: Any, runtime: Runtime, easypost: FakeEasyPost, shopify: FakeShopify,
        private_redis: PrivateRedis) -> None:
    add_shop(runtime, timeout=0.5)
    easypost.fail_next(500, 2, match="POST /v2/shipments")
    easypost.fail_next(429, retry_after=1.0, match="POST /v2/shipments")
    easypost.hang_next(1.0, match="/buy")           # times out before buying
    easypost.hang_after_next(1.0, match="/buy")     # times out after buying
    shopify.fail_next(500, after=12)                # somewhere among the fulfilment calls
    orders = deliver(client, shopify, 6)

    run_all_jobs(runtime)
    # Redis goes away mid-pipeline (losing every queued job) and comes back empty.
    private_redis.stop()
    private_redis.start()
    drain(runtime, timeout=90)

    assert_exactly_once(runtime, easypost, shopify, orders)
    with runtime.db.session() as session:
        retried = session.execute(select(OutboxEvent).where(OutboxEvent.job == "buy_label",
                                                            OutboxEvent.attempts > 1)).scalars().all()
    assert retried, "the faults made some purchases retry"
    # The 429's Retry-After (1 s) was honoured: the retry came no sooner.
    rate_limited = [r for r in easypost.requests_to("/v2/shipments", "POST")]
    assert len(rate_limited) >= 4


# --- a worker SIGKILLed between the purchase and its commit ----------------------------------------------

WORKER = "import sys; sys.argv = ['orderline', 'worker']; from app.cli import main; main()"
FAST_RECOVERY = {"ORDERLINE_WORKER_TTL_SECONDS": "3", "ORDERLINE_SWEEP_INTERVAL_SECONDS": "0.5",
                 "ORDERLINE_SWEEP_GRACE_SECONDS": "0"}


def start_worker(wired: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": wired.database_url, "REDIS_URL": wired.redis_url,
           "ORDERLINE_INSTANCE_DIR": str(wired.instance_dir), "ORDERLINE_SECRET_KEY": "test-key",
           "EASYPOST_API_KEY": EASYPOST_KEY, "EASYPOST_API_BASE_URL": wired.easypost_api_base_url,
           "SHOPIFY_API_BASE_URL": wired.shopify_api_base_url, "SHOPIFY_API_VERSION": API_VERSION,
           "PYTHONPATH": str(ROOT), **FAST_RECOVERY}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=log, stderr=log,
                                start_new_session=True)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker, its scheduler and its work horse, as when the machine goes."""
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=5)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_hard(process)


def test_a_worker_killed_after_the_purchase_leaves_exactly_one_label(
        client: Any, runtime: Runtime, wired: Settings, easypost: FakeEasyPost, shopify: FakeShopify,
        tmp_path: Path) -> None:
    if runtime.db.dialect == "sqlite":
        # SQLite has one writer: the job waiting on the carrier holds it, so this test could not even look
        # at the shipment before the kill. The claim-then-find logic is the same on both databases.
        pytest.skip("needs concurrent writers (PostgreSQL)")
    add_shop(runtime, timeout=30)
    # The label is sold, then the answer is held: the worker is killed while it waits.
    easypost.hang_after_next(20, match="/buy")
    [order] = deliver(client, shopify, 1)
    log_path = tmp_path / "workers.log"
    first = start_worker(wired, log_path)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: len(easypost.requests_to("/buy", "POST")) == 1, 60, "the first worker to buy")
        [(_, _, [(_, reference)])] = outcome(runtime)
        assert reference and easypost.purchases(reference) == 1
        kill_hard(first)
        assert outcome(runtime)[0][2][0][0] == "purchasing", "the killed job never committed"

        second = start_worker(wired, log_path)
        wait_for(lambda: count_events(runtime, "shipment.pushed_to_channel") == 1, 60,
                 "the second worker to find the label and push it", step=0.2)
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    assert_exactly_once(runtime, easypost, shopify, [order])
    assert len(easypost.requests_to("/buy", "POST")) == 1, log_path.read_text()[-3000:]


def test_timeline_shows_a_permanent_carrier_refusal_and_retry_resumes(
        app: Any, client: Any, auth: Any, runtime: Runtime, easypost: FakeEasyPost, shopify: FakeShopify) -> None:
    add_shop(runtime)
    easypost.fail_next(422, message="Unable to verify the address", match="POST /v2/shipments")
    [order] = deliver(client, shopify, 1)
    drain(runtime)
    [(_, status, [(shipment_status, _)])] = outcome(runtime)
    assert (status, shipment_status) == ("packed", "purchasing")
    with runtime.db.session() as session:
        failed = session.execute(select(OrderEvent).where(OrderEvent.type == "order.step_failed")).scalar_one()
        assert failed.data["step"] == "buy_label" and failed.data["permanent"] is True
        assert "Unable to verify the address" in failed.data["message"]
        order_id = failed.order_id
    with runtime.db.session() as session:
        [alert] = session.execute(select(Alert)).scalars().all()
        assert alert.kind == "order_step_failed" and "Unable to verify the address" in alert.message

    answer = client.post(f"/api/v1/orders/{order_id}/retry", headers=auth("operator"))
    assert answer.status_code == 200 and answer.json["steps"] == ["buy_label"]
    drain(runtime)
    assert_exactly_once(runtime, easypost, shopify, [order])
    with runtime.db.session() as session:
        assert session.execute(select(Alert)).scalar_one().resolved_at is not None

    nothing = client.post(f"/api/v1/orders/{order_id}/retry", headers=auth("operator"))
    assert nothing.status_code == 422
    assert "no stopped step to retry" in nothing.json["error"]["message"]
    refused = orderline(app, "orders", "retry", str(order_id))
    assert refused.exit_code == 1 and "no stopped step to retry (shipped)" in refused.output
