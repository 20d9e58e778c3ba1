"""Take the README's screenshots (docs/dashboard-*.png, docs/sandbox-*.png) in headless Chromium:

    .venv/bin/python -m tests.browser.screenshots            # all of them
    .venv/bin/python -m tests.browser.screenshots sandbox    # only the Slack and phone sandboxes

A private SQLite database and embedded Redis, the demo's sandbox shops and order stream (real signed
webhooks, real ingest), two weeks of order history, then the dashboard's four pages. Shipments, returns and
texts are written straight into the store here: they stand in for the shipping, returns and SMS work that
lands on other branches, so the pictures show every panel filled.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rq import Queue, SimpleWorker
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from app.alerts import raise_alert
from app.cli import _dev_bootstrap
from app.config import Settings
from app.demo.sandbox import SHOPIFY_DOMAIN, Fakes, seed
from app.demo.stream import OrderStream, ShopTarget
from app.devserver import start_embedded_redis
from app.models import InboundEvent, Order, OutboxEvent, ReconcileRun, Return, Shipment
from app.orders import actions
from app.orders.types import Actor, ActorKind, Role
from jobs.queues import ALL_QUEUES
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

DOCS = Path(__file__).resolve().parents[2] / "docs"
SECRET = "screenshots-shopify-secret"  # noqa: S105


def drain(runtime: object) -> None:
    redis = runtime.redis  # type: ignore[attr-defined]
    queues = [Queue(str(name), connection=redis) for name in ALL_QUEUES]
    SimpleWorker(queues, connection=redis).work(burst=True, logging_level="WARNING")


def build_history(runtime: object, stream: OrderStream, rng: random.Random) -> None:
    now = datetime.now(UTC)
    for days_ago in range(13, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(hour=7, minute=0, second=0, microsecond=0)
        count = rng.randint(8, 14) + (18 if days_ago == 4 else 0)  # a campaign day
        for _ in range(count):
            at = min(day + timedelta(minutes=rng.randint(0, 14 * 60)), now - timedelta(minutes=1))
            stream.send_one(at=at)
    drain(runtime)


def progress(runtime: object, rng: random.Random) -> int:
    """Move older orders along as staff and the (not yet merged) shipping work would; returns a showcase order."""
    ana = Actor(ActorKind.STAFF, "token:1", "Ana", Role.MANAGER)
    jonas = Actor(ActorKind.STAFF, "token:2", "Jonas", Role.OPERATOR)
    now = datetime.now(UTC)
    db = runtime.db  # type: ignore[attr-defined]
    with db.session() as session:
        orders = list(session.execute(select(Order).order_by(Order.placed_at)).scalars())
        ids = [(o.id, o.placed_at) for o in orders]
    for order_id, placed_at in ids:
        age = now - placed_at
        with db.session() as session:
            if age > timedelta(hours=20) or rng.random() < 0.3:
                actions.approve(session, order_id, ana)
    drain(runtime)
    showcase = None
    for order_id, placed_at in ids:
        age = now - placed_at
        if age < timedelta(hours=30):
            continue
        with db.session() as session:
            order = session.get(Order, order_id)
            if order.status != "allocated":
                continue
            actions.pick(session, order_id, jonas)
            actions.pack(session, order_id, jonas, weight_grams=rng.randint(300, 2400))
            # Stands in for the shipping helper's `ship` action (another branch): a label and the status.
            lead = timedelta(hours=rng.choice((8, 14, 20, 26, 30, 40, 52, 70, 90)))
            shipped_at = min(placed_at + lead, now - timedelta(minutes=5))
            tracking = f"SBX{order_id:08d}"
            shipment = Shipment(order_id=order_id, carrier="sandbox", service=order.shipping_level, status="in_transit",
                                tracking_number=tracking, tracking_url=f"https://sandbox.example/track/{tracking}",
                                shipped_at=shipped_at)
            session.add(shipment)
            session.flush()
            order.status = "shipped"
            actions.record_event(session, order, Actor.system(), "shipment.label_purchased",
                                 f"Label bought: sandbox {order.shipping_level}, tracking {tracking}",
                                 shipment_id=shipment.id, carrier="sandbox", tracking_number=tracking)
            actions.record_event(session, order, Actor.system(), "order.shipped", "Shipped",
                                 shipment_id=shipment.id)
            if rng.random() < 0.12:
                session.add(Return(order_id=order_id, rma=f"RMA-{order_id}", status="requested",
                                   reason="Wrong size"))
            if showcase is None and order.customer_phone and order.channel == "shopify":
                showcase = order_id
                customer = Actor(ActorKind.CUSTOMER, order.customer_phone, order.customer_name)
                actions.record_event(session, order, customer, "order.customer_message",
                                     "Customer texted: var är mitt paket?", text="var är mitt paket?")
                actions.record_event(session, order, Actor.system("Orderline SMS"), "order.customer_reply",
                                     "Auto-reply", text=f"Ditt paket är på väg: https://sandbox.example/track/"
                                                        f"{tracking}")
                actions.record_event(session, order, customer, "order.customer_message",
                                     "Customer texted: tack!", text="Tack!")
    drain(runtime)
    assert showcase is not None
    return showcase


def trouble(runtime: object, shop_id: int) -> None:
    """What the operations page is for: a failed job, a failed delivery, reconciliation runs, an alert."""
    now = datetime.now(UTC)
    with runtime.db.session() as session:  # type: ignore[attr-defined]
        session.add(OutboxEvent(job="allocate_order", payload={"order_id": 3}, status="failed", attempts=5,
                                last_error="TransientError: carrier answered 503 (5 attempts)", finished_at=now))
        session.add(InboundEvent(provider="woocommerce", shop_id=shop_id, topic="order.updated", delivery_id="demo-x",
                                 headers={}, body=b"<html>", status="failed", attempts=1,
                                 error="the body is not JSON: Expecting value: line 1 column 1"))
        for minutes, missed in ((35, 0), (5, 1)):
            session.add(ReconcileRun(shop_id=shop_id, since=now - timedelta(minutes=minutes + 10),
                                     until=now - timedelta(minutes=minutes), orders_seen=14, missed_creates=missed,
                                     started_at=now - timedelta(minutes=minutes),
                                     finished_at=now - timedelta(minutes=minutes)))
        raise_alert(session, "missed_webhooks", f"shop:{shop_id}",
                    "Wholesale (WooCommerce sandbox): 1 order arrived only through reconciliation")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="orderline-screens-"))
    try:
        redis_url = start_embedded_redis(workdir / "redis")
        fakes = Fakes.start()
        settings = Settings(instance_dir=workdir, redis_url=redis_url, secret_key="screenshots",
                            shopify_api_secret=SECRET, shopify_api_base_url=fakes.shopify.url, log_level="WARNING")
        app = create_app(settings)
        token = _dev_bootstrap(app)["token"]
        runtime = app.extensions["orderline"]
        shops = seed(runtime, fakes)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        stream = OrderStream([
            ShopTarget("shopify", f"{base}/webhooks/shopify", shopify=fakes.shopify, shopify_domain=SHOPIFY_DOMAIN,
                       shopify_secret=SECRET),
            ShopTarget("woocommerce", f"{base}/webhooks/woocommerce/{shops.woocommerce_id}",
                       woocommerce=fakes.woocommerce, woocommerce_secret=shops.woocommerce_webhook_secret),
        ], seed=42)
        app.extensions["orderline.demo"] = stream
        rng = random.Random(42)  # noqa: S311
        build_history(runtime, stream, rng)
        showcase = progress(runtime, rng)
        trouble(runtime, shops.woocommerce_id)
        shoot(base, token, showcase, workdir)
        server.shutdown()
        fakes.stop()
        sandbox_pages(workdir / "sandboxes")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- SANDBOX PAGES: the Slack workspace and the customer phone (docs/sandbox-*.png) ---------------------------


def sandbox_pages(workdir: Path) -> None:
    """A second, small demo instance with the Slack and phone sandboxes: a few orders from the sandbox shops,
    one approved from its Slack card, a customer texting "status"; then both pages."""
    from integrations.slack.sandbox import ORDERS_CHANNEL, SlackSandbox
    from integrations.twilio.sandbox import PhoneSandbox

    workdir.mkdir(parents=True)
    slack, phone = SlackSandbox(), PhoneSandbox()
    redis_url = start_embedded_redis(workdir / "redis")
    fakes = Fakes.start()
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bound first: the phone signs over its URL
    base = f"http://127.0.0.1:{server.server_port}"
    env = {**slack.prepare({}), **phone.prepare({"PUBLIC_BASE_URL": base})}
    settings = Settings(instance_dir=workdir, redis_url=redis_url, secret_key="screenshots", shopify_api_secret=SECRET,
                        shopify_api_base_url=fakes.shopify.url, log_level="WARNING",
                        slack_bot_token=env["SLACK_BOT_TOKEN"], slack_signing_secret=env["SLACK_SIGNING_SECRET"],
                        slack_api_base_url=env["SLACK_API_BASE_URL"], slack_ops_channel=env["SLACK_OPS_CHANNEL"],
                        twilio_account_sid=env["TWILIO_ACCOUNT_SID"], twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
                        twilio_from_number=env["TWILIO_FROM_NUMBER"], twilio_api_base_url=env["TWILIO_API_BASE_URL"],
                        public_base_url=base)
    app = create_app(settings)
    token = _dev_bootstrap(app)["token"]
    runtime = app.extensions["orderline"]
    shops = seed(runtime, fakes)
    slack.attach(app)
    phone.attach(app)
    server.app = app
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stream = OrderStream([
        ShopTarget("shopify", f"{base}/webhooks/shopify", shopify=fakes.shopify, shopify_domain=SHOPIFY_DOMAIN,
                   shopify_secret=SECRET),
        ShopTarget("woocommerce", f"{base}/webhooks/woocommerce/{shops.woocommerce_id}",
                   woocommerce=fakes.woocommerce, woocommerce_secret=shops.woocommerce_webhook_secret),
    ], seed=11)
    for _ in range(8):
        stream.send_one()
        drain(runtime)
    with app.test_request_context():
        cards = slack.fake.messages(ORDERS_CHANNEL) if slack.fake else []
        waiting = [c for c in cards if any(e.get("action_id") == "orderline:approve" for b in c["blocks"]
                                           if b["type"] == "actions" for e in b["elements"])]
        shown_ts = waiting[0]["ts"] if waiting else (cards[0]["ts"] if cards else "")
        if len(waiting) > 1:  # approve one from its card; the next one still shows its buttons
            block = next(b["block_id"] for b in waiting[0]["blocks"] if b["type"] == "actions")
            slack.click(ORDERS_CHANNEL, waiting[0]["ts"], block, "orderline:approve", "U0SBXANA01")
        drain(runtime)
        with runtime.db.session() as session:
            # A Swedish customer: their texts are not held back by quiet hours in Europe's daytime.
            customer = session.execute(select(Order.customer_phone).where(Order.customer_phone.like("+46%"))
                                       .order_by(Order.id)).scalars().first()
    from integrations.twilio.sandbox import NUMBERS

    number = customer if customer in NUMBERS else next(iter(NUMBERS))
    with app.test_request_context():
        phone.send(number, "status")
    drain(runtime)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        context, page = signed_in_browser(driver, workdir, f"{base}/sandbox/slack", token)
        page.locator("article.sk-message").first.wait_for()
        page.wait_for_timeout(500)
        if shown_ts:
            page.locator(f'article.sk-message[data-ts="{shown_ts}"]').evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(DOCS / "sandbox-slack.png"))
        page.goto(f"{base}/sandbox/phone")
        page.select_option("#ph-number", number)
        page.locator(".ph-msg").first.wait_for()
        page.wait_for_timeout(1600)  # the next poll: the shop's texts reported delivered
        page.screenshot(path=str(DOCS / "sandbox-phone.png"))
        context.close()
    server.shutdown()
    slack.stop()
    phone.stop()
    fakes.stop()


def signed_in_browser(driver: Any, workdir: Path, url: str, token: str) -> tuple[Any, Any]:
    """A headless Chromium at `url`, signed in with `token` on the sign-in page it is sent to."""
    context = driver.chromium.launch_persistent_context(
        str(workdir / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(url)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    return context, page


def shoot(base: str, token: str, order_id: int, workdir: Path) -> None:
    from playwright.sync_api import sync_playwright

    DOCS.mkdir(exist_ok=True)
    with sync_playwright() as driver:
        context, page = signed_in_browser(driver, workdir, f"{base}/dashboard/", token)
        page.locator("a.card").first.wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "dashboard-board.png"))
        page.goto(f"{base}/dashboard/orders/{order_id}")
        page.screenshot(path=str(DOCS / "dashboard-order.png"), full_page=True)
        page.goto(f"{base}/dashboard/ops")
        page.locator("#ops-live").filter(has_text="live").wait_for()
        page.screenshot(path=str(DOCS / "dashboard-ops.png"), full_page=True)
        page.goto(f"{base}/dashboard/analytics?days=14")
        page.locator("#chart-returns svg").wait_for()
        page.screenshot(path=str(DOCS / "dashboard-analytics.png"), full_page=True)
        context.close()
    print(f"screenshots written to {DOCS}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["sandbox"]:  # only docs/sandbox-*.png
        scratch = Path(tempfile.mkdtemp(prefix="orderline-screens-"))
        try:
            sandbox_pages(scratch / "sandboxes")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        main()
