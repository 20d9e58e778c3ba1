"""End-to-end fulfilment benchmark: N Shopify orders from signed webhook to shipped (sandbox carrier label)
and pushed back to the channel (fulfillmentCreate on a fake Shopify), with the processes the Procfile runs:
gunicorn for web and `orderline worker` processes, PostgreSQL and a private Redis on loopback.

    .venv/bin/python bench/fulfilment.py [--orders 2000] [--workers 3] [--rate 25]

Two phases. Burst: every webhook sent as fast as the web server takes them; the clock runs from the first
send until the last order's fulfillment is on the channel: orders/s and jobs/s. Paced: `--paced-orders`
webhooks at `--rate` per second (default: half the burst's orders/s), each timed from its send to its
`order.shipped` and its `shipment.pushed_to_channel` timeline entries: p50/p95.

The shop is set up as a 3PL shop: `auto_approve` and `auto_pick_pack` on, one location with stock, the
sandbox carrier (labels kept in a state directory shared by the workers). The fake Shopify is given a
Shopify Plus-sized GraphQL cost bucket (20,000 points, 1,000/s restore): a standard shop's 100 points/s
would make the channel, not Orderline, the limit. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import Parts, session_serving  # noqa: E402
from bench.webhooks import FIXTURE_CANDIDATES, PG, SECRET, SHOP, free_port, process, serve, wait_port  # noqa: E402

TOKEN = "shpat_bench"  # noqa: S105 - the fake's token
SKU = "BENCH-TEE"
ADDRESS = {"first_name": "Ava", "last_name": "Lee", "name": "Ava Lee", "address1": "12 Main St", "city": "Austin",
           "province": "Texas", "province_code": "TX", "zip": "73301", "country": "United States",
           "country_code": "US"}


def order_body(template: dict[str, Any], n: int) -> tuple[str, bytes]:
    line = dict(template["line_items"][0], id=7_000_000_000 + n, sku=SKU, quantity=1 + n % 2,
                requires_shipping=True)
    order = dict(template, id=8_000_000_000 + n, order_number=200_000 + n, name=f"#F{n}", line_items=[line],
                 shipping_address=ADDRESS, updated_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC).isoformat(),
                 fulfillments=[])
    return str(order["id"]), json.dumps(order, separators=(",", ":")).encode()


# The fake Shopify runs in a process of its own, as Shopify would: its GraphQL parsing must not share this
# process's interpreter lock with the webhook senders. It holds every order of both phases from the start.
FAKE_SHOPIFY = """
import json, sys
from pathlib import Path
from bench.fulfilment import TOKEN, order_body
from integrations.shopify.fake import FakeShopify
port, count, fixture = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
fake = FakeShopify(access_token=TOKEN, bucket_size=20_000, restore_rate=1_000, port=port)
template = json.loads(fixture.read_text())
for n in range(count):
    fake.add_order(json.loads(order_body(template, n)[1]))
fake.start()
print("ready", flush=True)
sys.stdin.read()
fake.stop()
"""


class Sender:
    """Posts signed orders/create webhooks over keep-alive connections; remembers when each was sent."""

    def __init__(self, port: int, template: dict[str, Any]) -> None:
        self.port, self.template = port, template
        self.sent: dict[str, float] = {}
        self.failures = 0
        self._lock = threading.Lock()

    def send_all(self, numbers: range, *, rate: float | None, threads: int = 8) -> None:
        started = time.time()
        chunks = [numbers[i::threads] for i in range(threads)]
        workers = [threading.Thread(target=self._send, args=(chunk, numbers.start, started, rate)) for chunk in chunks]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _send(self, numbers: range, first: int, started: float, rate: float | None) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for n in numbers:
            external_id, body = order_body(self.template, n)
            if rate:
                delay = started + (n - first) / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
            headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                       "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Shop-Domain": SHOP,
                       "X-Shopify-Webhook-Id": f"bench-f-{n}", "X-Shopify-API-Version": "2026-07"}
            sent_at = time.time()
            try:
                connection.request("POST", "/webhooks/shopify", body, headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                ok = False
            with self._lock:
                if ok:
                    self.sent[external_id] = sent_at
                else:
                    self.failures += 1
        connection.close()


def scalar(dsn: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchone()[0]  # type: ignore[index]


def wait_pushed(dsn: str, expected: int, timeout: float) -> float:
    """Seconds until `expected` shipments are on the channel (or the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if scalar(dsn, "SELECT count(*) FROM order_events WHERE type = 'shipment.pushed_to_channel'") >= expected:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def latencies(dsn: str, sent: dict[str, float], event_type: str) -> list[float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT o.external_id, min(e.created_at) FROM order_events e JOIN orders o "
                            "ON o.id = e.order_id WHERE e.type = %s GROUP BY o.external_id", (event_type,)).fetchall()
    return sorted(at.timestamp() - sent[external_id] for external_id, at in rows if external_id in sent)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(share * (len(values) - 1))))]


@contextlib.contextmanager
def stack(args: argparse.Namespace, tmp: Path, dsn: str, fixture: Path) -> Iterator[tuple[int, Parts]]:
    redis_port, shopify_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "SHOPIFY_API_SECRET": SECRET, "SHOPIFY_API_BASE_URL": f"http://127.0.0.1:{shopify_port}",
           "ORDERLINE_SECRET_KEY": "bench", "ORDERLINE_ENV": "production", "LOG_LEVEL": "WARNING",
           "WEB_CONCURRENCY": str(args.web_workers), "ORDERLINE_INSTANCE_DIR": str(tmp),
           "SANDBOX_CARRIER_STATE_DIR": str(tmp / "sandbox-carrier"), "BENCH_SHOP_TOKEN": TOKEN,
           "PYTHONPATH": str(ROOT)}
    orderline = [sys.executable, "-m", "app"]
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SHOPIFY, str(shopify_port),  # noqa: S603
                             str(args.orders + args.paced_orders), str(fixture)], env=env, cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == b"ready", "the fake Shopify did not start"
        with contextlib.ExitStack() as processes:
            redis = processes.enter_context(process([shutil.which("redis-server") or "redis-server", "--port",
                                                     str(redis_port), "--save", "", "--appendonly", "no",
                                                     "--maxmemory-policy", "noeviction"], dict(os.environ),
                                                    tmp / "redis.log"))
            wait_port(redis_port)
            for command in (["db", "upgrade"],
                            ["shops", "add", "--channel", "shopify", "--name", "Bench 3PL", "--external-id", SHOP,
                             "--currency", "USD", "--credential", "access_token=BENCH_SHOP_TOKEN"],
                            ["locations", "add", "--code", "ATX", "--name", "Austin", "--country", "US"]):
                subprocess.run([*orderline, *command], env=env, cwd=ROOT, check=True, capture_output=True)  # noqa: S603
            stock_file = tmp / "stock.csv"
            stock_file.write_text(f"location,sku,on_hand,bin\nATX,{SKU},1000000,A-01\n")
            subprocess.run([*orderline, "stock", "import", str(stock_file)], env=env, cwd=ROOT, check=True,  # noqa: S603
                           capture_output=True)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("UPDATE shops SET settings = %s", (json.dumps(
                    {"auto_approve": True, "auto_pick_pack": True, "carrier": "sandbox"}),))
            worker = [*orderline, "worker"] + (["--simple"] if args.simple else [])
            parts = Parts(sessions={redis.pid: "Redis"},
                          pids={fake.pid: "fake Shopify", os.getpid(): "this benchmark (sending, polling)"})
            for n in range(args.workers):
                parts.sessions[processes.enter_context(process(worker, env, tmp / f"worker{n}.log")).pid] = "workers"
            # Timed from when every gunicorn worker has loaded the app, not from the port's first answer.
            port = serve(processes, "app:create_app()", env, tmp / "gunicorn.log", args.web_workers)
            parts.sessions[session_serving(port)] = "web (gunicorn)"
            yield port, parts
    finally:
        fake.communicate(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="webhooks in the burst phase")
    parser.add_argument("--paced-orders", type=int, default=1000, help="webhooks in the paced phase")
    parser.add_argument("--rate", type=float, default=0.0, help="paced phase orders/s (0: half the burst's)")
    parser.add_argument("--workers", type=int, default=3, help="`orderline worker` processes")
    parser.add_argument("--simple", action="store_true", help="workers run jobs in-process (--simple)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) and print it")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orderline-fulfil-"))
    db_name = f"orderline_fulfil_{os.getpid()}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = PG.rsplit("/", 1)[0] + f"/{db_name}"
    fixture = next(p for p in FIXTURE_CANDIDATES if p.exists())
    template = json.loads(fixture.read_text())
    try:
        with stack(args, tmp, dsn, fixture) as (port, parts):
            # Burst.
            sender = Sender(port, template)
            jobs_before = scalar(dsn, "SELECT count(*) FROM outbox_events WHERE status = 'done'")
            cpu_before = parts.cpu_seconds()
            started = time.time()
            sender.send_all(range(args.orders), rate=None)
            sent_for = time.time() - started
            waited = wait_pushed(dsn, len(sender.sent), args.timeout)
            cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in parts.cpu_seconds().items()}
            burst_seconds = sent_for + waited
            burst_jobs = scalar(dsn, "SELECT count(*) FROM outbox_events WHERE status = 'done'") - jobs_before
            pushed = scalar(dsn, "SELECT count(*) FROM order_events WHERE type = 'shipment.pushed_to_channel'")
            shipped_burst = latencies(dsn, sender.sent, "order.shipped")
            burst_rate = pushed / burst_seconds
            # Paced, at half the burst's rate unless told.
            rate = args.rate or max(1.0, burst_rate / 2)
            paced = Sender(port, template)
            numbers = range(args.orders, args.orders + args.paced_orders)
            before = pushed
            paced_started = time.time()
            paced.send_all(numbers, rate=rate)
            wait_pushed(dsn, before + len(paced.sent), args.timeout)
            paced_seconds = time.time() - paced_started
            shipped = latencies(dsn, paced.sent, "order.shipped")
            on_channel = latencies(dsn, paced.sent, "shipment.pushed_to_channel")
            failed_jobs = scalar(dsn, "SELECT count(*) FROM outbox_events WHERE status = 'failed'")
            labels = scalar(dsn, "SELECT count(*) FROM shipments WHERE status = 'purchased'")
            fulfillments = scalar(dsn, "SELECT count(*) FROM shipments WHERE channel_fulfilment_id IS NOT NULL")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    total = len(sender.sent) + len(paced.sent)
    print(f"\n{os.cpu_count()} cores; gunicorn ×{args.web_workers}, `orderline worker"
          f"{' --simple' if args.simple else ''}` ×{args.workers}; PostgreSQL + Redis + fake Shopify on loopback\n")
    print(f"burst: {pushed} of {args.orders} orders webhook → label → pushed in {burst_seconds:.1f} s "
          f"(sending took {sent_for:.1f} s): **{burst_rate:.1f} orders/s**, {burst_jobs / burst_seconds:.0f} jobs/s "
          f"({burst_jobs / max(pushed, 1):.1f} jobs per order); webhook→shipped p50 "
          f"{percentile(shipped_burst, 0.5):.2f} s, p95 {percentile(shipped_burst, 0.95):.2f} s")
    per_order = ", ".join(f"{name} {seconds * 1000 / max(pushed, 1):.0f}"
                          for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]))
    print(f"burst CPU per order, ms: {per_order}; all of it {sum(cpu.values()) * 1000 / max(pushed, 1):.0f} ms, "
          f"{sum(cpu.values()) / burst_seconds:.2f} of {os.cpu_count()} cores busy")
    print(f"paced: {len(paced.sent)} orders at {rate:.1f}/s over {paced_seconds:.1f} s: webhook→shipped p50 "
          f"{percentile(shipped, 0.5):.2f} s, **p95 {percentile(shipped, 0.95):.2f} s**; webhook→on the channel "
          f"p50 {percentile(on_channel, 0.5):.2f} s, p95 {percentile(on_channel, 0.95):.2f} s")
    print(f"checks: {labels} labels and {fulfillments} fulfillments made for {total} orders; "
          f"{failed_jobs} failed jobs; {sender.failures + paced.failures} webhooks refused")


if __name__ == "__main__":
    main()
