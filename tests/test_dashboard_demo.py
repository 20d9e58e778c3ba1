"""`orderline demo`'s parts: sandbox shops on the real fakes, and an order stream of signed webhooks that the
real receiver verifies and ingest turns into orders."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import func, select

from app.cli import cli
from app.demo.catalog import PRODUCTS, STOCK_CSV
from app.demo.sandbox import SHOPIFY_DOMAIN, Fakes, seed
from app.demo.stream import OrderStream, ShopTarget
from app.models import InboundEvent, Location, Order, Shop, StockLevel
from jobs.ingest import client_for
from tests.browser.conftest import live_server  # noqa: F401 - the fixture, served here too
from tests.conftest import SHOPIFY_TEST_SECRET
from tests.test_dashboard import signed_in


@pytest.fixture
def fakes() -> Any:
    running = Fakes.start()
    yield running
    running.stop()


def stream_for(runtime: Any, fakes: Fakes, base_url: str) -> OrderStream:
    shops = seed(runtime, fakes)
    return OrderStream([
        ShopTarget("shopify", f"{base_url}/webhooks/shopify", shopify=fakes.shopify, shopify_domain=SHOPIFY_DOMAIN,
                   shopify_secret=SHOPIFY_TEST_SECRET),
        ShopTarget("woocommerce", f"{base_url}/webhooks/woocommerce/{shops.woocommerce_id}",
                   woocommerce=fakes.woocommerce, woocommerce_secret=shops.woocommerce_webhook_secret),
    ], seed=7, burst_size=10)


def test_seeding_is_idempotent_and_repoints_the_woocommerce_shop(runtime: Any, fakes: Fakes) -> None:
    first = seed(runtime, fakes)
    second_store = Fakes.start()
    try:
        again = seed(runtime, second_store)
        second_url = second_store.woocommerce.url
    finally:
        second_store.stop()
    assert (again.shopify_id, again.woocommerce_id) == (first.shopify_id, first.woocommerce_id)
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Shop)) == 2
        assert session.get(Shop, again.woocommerce_id).external_id == second_url
        assert session.get(Shop, first.shopify_id).settings["carrier"] == "sandbox"
        assert {loc.code for loc in session.execute(select(Location)).scalars()} == {"STHLM", "NJ"}
        assert session.scalar(select(func.count()).select_from(StockLevel)) == STOCK_CSV.count("\n") - 1
        out = session.execute(select(StockLevel).where(StockLevel.sku == "BAG-TOTE")).scalar_one()
        assert out.on_hand == 0  # out of stock from the start: its orders are backordered


def test_the_stream_delivers_signed_webhooks_that_become_orders(runtime: Any, fakes: Fakes, live_server: str,  # noqa: F811
                                                                run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = stream_for(runtime, fakes, live_server)
    assert all(stream.send_one() for _ in range(16))
    assert (stream.sent, stream.failed) == (16, 0)
    # The shops' own API is the fake (shipped orders are told to it, as `orderline demo` sets it up).
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(
        shopify_api_base_url=fakes.shopify.url))
    run_jobs()
    with runtime.db.session() as session:
        inbox = Counter(session.execute(select(InboundEvent.provider, InboundEvent.status)).all())
        orders = list(session.execute(select(Order)).scalars())
        assert sum(inbox.values()) == 16 and all(status == "processed" for _, status in inbox)
        channels = Counter(o.channel for o in orders)
        assert set(channels) == {"shopify", "woocommerce"} and sum(channels.values()) == 16
        # SANDBOX PAGES: the demo shops approve, pick and pack ordinary orders themselves; flagged ones wait.
        for order in orders:
            assert (order.status == "needs_review") == bool(order.review_reasons), (order.number, order.status)
        assert "needs_review" in {o.status for o in orders} and len({o.status for o in orders}) > 1
        assert {o.currency for o in orders if o.channel == "woocommerce"} == {"EUR"}
        skus = {item.sku for o in orders for item in o.line_items}
        assert skus <= {p.sku for p in PRODUCTS}
        for order in orders:  # what the shop charged is what Orderline stores
            items = sum((i.unit_price * i.quantity for i in order.line_items), Decimal("0"))
            assert order.total == items + order.shipping_total
        levels = {o.shipping_level for o in orders}
        assert "express" in levels and "standard" in levels
        # The fake APIs hold the same orders, so reconciliation and fetches find them: read back through the
        # channels' real clients, each order is what the webhook said.
        for channel in ("shopify", "woocommerce"):
            stored = next(o for o in orders if o.channel == channel)
            fetched = client_for(runtime, stored.shop).fetch_order(stored.external_id)
            assert (fetched.number, fetched.currency) == (stored.number, stored.currency)
            assert sum(i.quantity for i in fetched.line_items) == sum(i.quantity for i in stored.line_items)


def test_a_burst_sends_many_orders_at_once(runtime: Any, fakes: Fakes, live_server: str,  # noqa: F811
                                           run_jobs: Any) -> None:
    stream = stream_for(runtime, fakes, live_server)
    assert stream.burst() == 10
    deadline = time.monotonic() + 30
    while stream.sent + stream.failed < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (stream.sent, stream.failed) == (10, 0)
    run_jobs()
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 10
        # Order numbers never repeat, even from four sending threads.
        assert session.scalar(select(func.count(func.distinct(Order.external_id)))) == 10


def test_demo_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERLINE_ENV", "production")
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code != 0
    assert "refused in production" in result.output


def test_the_dashboards_burst_button_sends_a_black_friday_burst(app: Any, client: Any, runtime: Any, fakes: Fakes,
                                                                 live_server: str, tokens: dict[str, str],  # noqa: F811
                                                                 run_jobs: Any) -> None:
    stream = stream_for(runtime, fakes, live_server)
    app.extensions["orderline.demo"] = stream
    csrf = signed_in(client, tokens, "operator")
    page = client.get("/dashboard/ops").get_data(as_text=True)
    assert "Black Friday burst" in page and "sends 10 orders" in page
    done = client.post("/dashboard/ops/burst", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Black Friday burst: 10 orders on their way" in done.get_data(as_text=True)
    deadline = time.monotonic() + 30
    while stream.sent + stream.failed < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    run_jobs()
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_orderline_demo_shows_orders_within_a_minute(redis_url: str, tmp_path: Any) -> None:
    """The README's promise, as a newcomer runs it: the command starts, prints a token, orders arrive."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "ORDERLINE_ENV")}
    env.update(ORDERLINE_INSTANCE_DIR=str(tmp_path), REDIS_URL=redis_url, LOG_LEVEL="WARNING")
    process = subprocess.Popen([sys.executable, "-m", "app", "demo", "--port", str(port), "--every", "0.5"],
                               env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        token_file = tmp_path / "dev-api-token"
        deadline = time.monotonic() + 60
        orders: list[Any] = []
        triaged = False
        while time.monotonic() < deadline and not (len(orders) >= 3 and triaged):
            time.sleep(0.5)
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            if not token_file.exists():
                continue
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/v1/orders", timeout=5,
                                        headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
            except (requests.ConnectionError, requests.Timeout):
                continue  # not up yet, or slow on a busy machine: the promise is a minute
            orders = response.json()["data"]
            triaged = any(o["status"] == "needs_review" for o in orders)  # the demo's worker is running
        assert len(orders) >= 3, "no orders arrived within a minute"
        assert triaged, "the orders arrived but no worker triaged them"
        dashboard = requests.get(f"http://127.0.0.1:{port}/dashboard/", timeout=30, allow_redirects=False)
        assert dashboard.status_code == 302 and "/dashboard/sign-in" in dashboard.headers["Location"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the demo and the worker it started
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        Redis.from_url(redis_url).flushdb()
