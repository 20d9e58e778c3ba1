"""Slack ack benchmark: how fast `POST /slack/events` answers button clicks while Shopify webhooks load the service.

    .venv/bin/python bench/slack_ack.py [--seconds 20] [--load-threads 8] [--click-interval 0.02]

Orderline runs as in production (gunicorn with app/gunicorn_conf.py, PostgreSQL, a private redis-server, one
`orderline worker` posting cards), its Slack Web API pointed at the fake Slack in this process. A second process
keeps `--load-threads` connections busy with signed Shopify `orders/create` webhooks (each a new order); this
process clicks, one at a time, Approve (an order moves: a transaction, no Slack call) and Hold (a modal opens:
`views.open` on the fake) on pre-made orders, each click signed as Slack signs it, and times each answer.
Slack's rule is an answer within 3 s; the target is p99 < 300 ms. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.webhooks import FIXTURE_CANDIDATES, PG, ROOT, free_port, process, serve, wait_port  # noqa: E402
from integrations.slack.fake import FakeSlack  # noqa: E402

SHOPIFY_SECRET = "bench-shopify-secret"
SHOP = "bench.myshopify.com"
SIGNING_SECRET = "bench-slack-signing-secret"
TOKEN = "xoxb-bench"
ANA = "U0BENCHANA"


def _shopify_load(port: int, seconds: float, threads: int, counter: multiprocessing.Value) -> None:  # type: ignore[type-arg]
    """Keep `threads` keep-alive connections posting fresh signed orders/create webhooks."""
    template = json.loads(next(p for p in FIXTURE_CANDIDATES if p.exists()).read_text())
    stop = time.monotonic() + seconds

    def run(tid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.monotonic() < stop:
            n += 1
            ident = f"load-{os.getpid()}-{tid}-{n}"
            body = json.dumps(dict(template, id=8_000_000_000 + tid * 10_000_000 + n, name=f"#L{tid}-{n}"),
                              separators=(",", ":")).encode()
            sig = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
            headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                       "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Shop-Domain": SHOP,
                       "X-Shopify-API-Version": "2026-07", "X-Shopify-Webhook-Id": ident,
                       "X-Shopify-Event-Id": ident, "X-Shopify-Triggered-At": "2026-11-27T09:00:00Z"}
            try:
                conn.request("POST", "/webhooks/shopify", body=body, headers=headers)
                conn.getresponse().read()
                with counter.get_lock():
                    counter.value += 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def _click_body(action: str, order_id: int, version: int, n: int) -> str:
    payload = {"type": "block_actions", "user": {"id": ANA, "username": "ana", "name": "ana", "team_id": "T0G9PQBBK"},
               "api_app_id": "A111", "token": "x", "trigger_id": f"{n}.bench.trigger",
               "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "CBENCH",
                             "is_ephemeral": False},
               "team": {"id": "T0G9PQBBK"}, "channel": {"id": "CBENCH"}, "response_url": "http://127.0.0.1:9/none",
               "actions": [{"action_id": f"orderline:{action}", "block_id": "order", "type": "button",
                            "value": json.dumps({"order_id": order_id, "version": version}),
                            "action_ts": f"{time.time():.6f}"}]}
    return "payload=" + quote(json.dumps(payload))


def _signed_headers(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={sig}"}


def _prepare(env: dict[str, str], orders: int) -> list[tuple[int, int]]:
    """Shops, a mapped manager, and `orders` manual orders to click on; returns (order id, version)."""
    os.environ.update(env)
    from app import create_app
    from app.models import Order, Shop, SlackStaff
    from app.orders import actions
    from app.orders.types import Actor, NewLineItem, NewOrder

    app = create_app()
    runtime = app.extensions["orderline"]
    with runtime.db.session() as session:
        session.add(Shop(channel="shopify", name="Bench", external_id=SHOP, currency="USD",
                         settings={"slack_channel": "CBENCH"}))
        manual = Shop(channel="manual", name="Phone", external_id="phone", currency="USD",
                      settings={"slack_channel": "CBENCH"})
        session.add(manual)
        session.add(SlackStaff(slack_id=ANA, kind="user", role="manager", name="Ana", members=[]))
        session.flush()
        from decimal import Decimal

        made = [actions.create_order(session, manual, NewOrder(
            currency="USD", customer_name=f"Click {n}",
            line_items=[NewLineItem(title="Tee", quantity=1, unit_price=Decimal("10.00"), sku="TEE")]),
            Actor.system()) for n in range(orders)]
        session.flush()
        result = [(o.id, o.version) for o in made]
    with runtime.db.session() as session:
        session.query(Order)  # the orders are committed; their triage jobs wait for the worker
    runtime.db.dispose()
    return result


def _triaged(dsn: str, ids: list[int], timeout: float = 120) -> list[tuple[int, int]]:
    """Wait until the worker has triaged the clicked-on orders (triage bumps the version a card carries), then
    read their versions, so every click is on a current card."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn) as db:
        while time.monotonic() < deadline:
            waiting = db.execute("SELECT count(*) FROM orders WHERE status = 'received' AND id = ANY(%s)",
                                 (ids,)).fetchone()[0]  # type: ignore[index]
            if not waiting:
                break
            time.sleep(0.2)
        rows = db.execute("SELECT id, version FROM orders WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    return [(int(order_id), int(version)) for order_id, version in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--load-threads", type=int, default=8)
    parser.add_argument("--click-interval", type=float, default=0.02)
    parser.add_argument("--web-workers", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orderline-slackbench-"))
    db_name = f"orderline_slackbench_{os.getpid()}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = PG.rsplit("/", 1)[0] + f"/{db_name}"
    redis_port = free_port()
    fake = FakeSlack(token=TOKEN).start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    webhooks = multiprocessing.Value("i", 0)
    try:
        with process([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
                      "--appendonly", "no"], dict(os.environ), tmp / "redis.log"):
            wait_port(redis_port)
            env = {**{k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")},
                   "DATABASE_URL": dsn, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                   "SHOPIFY_API_SECRET": SHOPIFY_SECRET, "ORDERLINE_SECRET_KEY": "bench",
                   "ORDERLINE_ENV": "production", "LOG_LEVEL": "WARNING", "ORDERLINE_INSTANCE_DIR": str(tmp),
                   "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                   "SLACK_API_BASE_URL": fake.api_url, "SLACK_OPS_CHANNEL": "COPS",
                   "WEB_CONCURRENCY": str(args.web_workers)}
            subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True,  # noqa: S603
                           capture_output=True)
            clicks_wanted = int(args.seconds / args.click_interval) + 10
            targets = _prepare(env, clicks_wanted)
            with contextlib.ExitStack() as servers, \
                    process([sys.executable, "-m", "app", "worker"], env, tmp / "worker.log"):
                # Measured from when every gunicorn worker has loaded the app, not from the port's first answer.
                port = serve(servers, "app:create_app()", env, tmp / "gunicorn.log", args.web_workers)
                targets = _triaged(dsn, [order_id for order_id, _ in targets])
                load = multiprocessing.Process(target=_shopify_load,
                                               args=(port, args.seconds, args.load_threads, webhooks))
                load.start()
                time.sleep(1)  # the load is running before the first click
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                stop = time.monotonic() + args.seconds - 2
                n = 0
                while time.monotonic() < stop and n < len(targets):
                    order_id, version = targets[n]
                    body = _click_body("approve" if n % 2 == 0 else "hold", order_id, version, n)
                    started = time.perf_counter()
                    conn.request("POST", "/slack/events", body=body.encode(), headers=_signed_headers(body))
                    response = conn.getresponse()
                    response.read()
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    n += 1
                    time.sleep(args.click_interval)
                load.join()
            with psycopg.connect(dsn) as db:
                approved = db.execute("SELECT count(*) FROM order_events WHERE type = 'order.approved' "
                                      "AND actor_id = %s", (ANA,)).fetchone()[0]  # type: ignore[index]
    finally:
        fake.stop()
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    print(f"\n{len(latencies)} clicks (approve/hold alternating) during {args.seconds:.0f} s of Shopify load "
          f"({webhooks.value} webhooks, {webhooks.value / args.seconds:.0f}/s, {args.load_threads} connections), "
          f"gunicorn WEB_CONCURRENCY={args.web_workers}, {os.cpu_count()} cores")
    print(f"ack latency ms: p50 {pct(50):.1f}  p95 {pct(95):.1f}  p99 {pct(99):.1f}  max {ordered[-1]:.1f}  "
          f"mean {statistics.mean(ordered):.1f}")
    print(f"answers: {statuses}; approvals recorded: {approved}; modals opened on the fake: "
          f"{len(fake.calls('views.open'))}")


if __name__ == "__main__":
    main()
