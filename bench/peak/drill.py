"""The peak-day drill: Orderline as in production under a Black Friday curve with faults, then invariants
and figures. See bench/peak/README.md."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from tests.helpers_redis import PrivateRedis

from . import faults, figures, invariants, plugins
from .channels import REVIEWED_SKU, SHOPIFY_SECRET, Shop, customer_phone, make_shops, stock_csv, stop_shops
from .cluster import ROOT, PrivatePostgres, Stack, postgres_available
from .load import Load

# Settings the drill runs with, beyond the production defaults, and why.
DRILL_SETTINGS = {
    # Reconciliation every 30 s instead of 300 s: the dropped orders must be found within a short run.
    "ORDERLINE_RECONCILE_INTERVAL_SECONDS": "30",
    # The sweeper finds jobs Redis lost after 20 s instead of 60 s (Redis is restarted empty mid-run).
    "ORDERLINE_SWEEP_INTERVAL_SECONDS": "5",
    "ORDERLINE_SWEEP_GRACE_SECONDS": "20",
    # Retries back off from 1 s and at most 20 s, so a 429/500 window ends within the run.
    "ORDERLINE_JOB_BACKOFF_BASE_SECONDS": "1",
    "ORDERLINE_JOB_BACKOFF_CAP_SECONDS": "20",
}
# Every shop approves on its own, but the WooCommerce shops send orders for a gift SKU to review (about one in
# eight), which staff approve from Slack cards and the API: a peak day's share of orders needing a person.
REVIEW_RULES = {"woocommerce": {"review_skus": [REVIEWED_SKU]}}
TERMINAL_BEFORE_SHIPPING = ("order.allocated", "order.backordered")
TERMINAL_WITH_SHIPPING = ("order.shipped",)


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=ROOT, input=stdin,  # noqa: S603
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"orderline {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def register_shops(env: dict[str, str], api: requests.Session, base_url: str, shops: list[Shop]) -> dict[str, int]:
    """The first shop through the CLI, as an operator would (secrets from environment variables); the others
    through the API (each CLI call costs a Python start-up and an app import: seconds on a busy 2-core box).
    Every shop approves on its own; the WooCommerce shops send gift orders to review (REVIEW_RULES)."""
    ids: dict[str, int] = {}
    for n, shop in enumerate(shops):
        if n == 0:
            args = ["shops", "add", "--channel", shop.channel, "--name", shop.name, "--external-id", shop.external_id]
            local = dict(env)
            for key, value in shop.credentials.items():
                local[f"PEAK_SHOP_{key.upper()}"] = value
                args += ["--credential", f"{key}=PEAK_SHOP_{key.upper()}"]
            if shop.channel != "shopify":  # Shopify signs with the app secret (SHOPIFY_API_SECRET)
                local["PEAK_SHOP_WEBHOOK_SECRET"] = shop.secret
                args += ["--webhook-secret-env", "PEAK_SHOP_WEBHOOK_SECRET"]
            found = re.search(r"shop (\d+) registered", _cli(local, *args))
            assert found, "shops add printed no id"
            shop.shop_id = int(found.group(1))
        else:
            body: dict[str, Any] = {"channel": shop.channel, "name": shop.name, "external_id": shop.external_id,
                                    "credentials": shop.credentials}
            if shop.channel != "shopify":
                body["webhook_secret"] = shop.secret
            answer = api.post(f"{base_url}/api/v1/shops", json=body, timeout=60)
            answer.raise_for_status()
            shop.shop_id = int(answer.json()["id"])
        ids[shop.name] = shop.shop_id
        answer = api.patch(f"{base_url}/api/v1/shops/{shop.shop_id}",
                           json={"settings": {"auto_approve": True, "approval": REVIEW_RULES.get(shop.channel, {}),
                                              **merged_settings(shop)}},
                           timeout=60)
        answer.raise_for_status()
    return ids


def merged_settings(shop: Shop) -> dict[str, Any]:
    """Shipping, Slack and SMS settings, for the parts that are present (plugins.SHOP_SETTINGS_AFTER_MERGE).
    Only the first WooCommerce shop posts Slack cards: every card update is a job throttled to Slack's ~1 post/s
    per channel, and with all shops' review cards the notify backlog outlived a short run's drain timeout."""
    if not plugins.enabled:
        return {}
    settings = dict(plugins.SHOP_SETTINGS_AFTER_MERGE)
    if shop.name != "Peak Woo 1":
        settings.pop("slack_channel"), settings.pop("slack_all_orders")
    if not faults.module_present("app.shipping"):
        settings.pop("auto_pick_pack"), settings.pop("carrier")
    return settings


def stock_up(api: requests.Session, base_url: str, csv_path: Path) -> None:
    """One warehouse holding plenty of every drill SKU, so orders allocate (API, as a stock system would)."""
    answer = api.post(f"{base_url}/api/v1/locations", json={"code": "PEAK", "name": "Peak warehouse",
                                                            "country_code": "US"}, timeout=60)
    answer.raise_for_status()
    answer = api.post(f"{base_url}/api/v1/inventory/import", data=csv_path.read_bytes(),
                      headers={"Content-Type": "text/csv"}, timeout=60)
    answer.raise_for_status()


# An order waiting for review is left to Slack this long before staff approve it through the API.
SLACK_FIRST_SECONDS = 20.0


class Staff(threading.Thread):
    """Staff at work through the API: approve what waits for review, note a few orders."""

    def __init__(self, base_url: str, token: str, extras: dict[str, Any]) -> None:
        super().__init__(name="peak-staff", daemon=True)
        self.extras = extras
        self.base_url, self.session = base_url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.answers: Counter[str] = Counter()
        self.seen: dict[int, float] = {}  # order id → when staff first saw it waiting
        self.stopped = threading.Event()

    def _post(self, order_id: int, action: str, body: dict[str, Any] | None = None) -> None:
        try:
            answer = self.session.post(f"{self.base_url}/api/v1/orders/{order_id}/actions/{action}",
                                       json=body or {}, timeout=10)
            self.answers[f"{action} {answer.status_code}"] += 1
        except requests.RequestException:
            self.answers[f"{action} no answer"] += 1

    def run(self) -> None:
        rounds = 0
        while not self.stopped.wait(2.0):
            rounds += 1
            try:
                page = self.session.get(f"{self.base_url}/api/v1/orders",
                                        params={"status": "needs_review", "limit": 100}, timeout=10)
            except requests.RequestException:
                self.answers["list no answer"] += 1
                continue
            self.answers[f"list {page.status_code}"] += 1
            if page.status_code != 200:
                continue
            orders = page.json()["data"]
            # Staff work from Slack where an order has a card, and customers text in (nothing without providers).
            self.answers["slack actions"] += plugins.staff_via_slack(self.extras, self.base_url,
                                                                     [o["id"] for o in orders])
            self.answers["customer texts"] += plugins.customers_text_in(
                self.extras, self.base_url, [customer_phone(n) for n in range(100)])
            now = time.monotonic()
            for order in orders:
                first_seen = self.seen.setdefault(order["id"], now)
                # Slack gets the first go (its card may be on its way, or its click in flight); what still
                # waits after that — a click that did not take included — staff approve through the API.
                if self.extras.get("slack_fake") is not None and now - first_seen < SLACK_FIRST_SECONDS:
                    continue
                self._post(order["id"], "approve", {"expected_version": order["version"]}
                           if "version" in order else None)
            if orders and rounds % 3 == 0:
                self._post(orders[0]["id"], "note", {"text": "Peak day: checked by staff"})

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=15)


# Orders still on their way: with shipping, allocated/picking/packed orders still get a label (backordered
# ones wait for stock, a terminal state for the drill).
def _busy_sql() -> str:
    """What still counts as work in flight: orders short of their end state for the parts that are on, and
    texts claimed but not yet handed to Twilio (scheduled ones wait for quiet hours to end: not a backlog)."""
    providers = plugins.enabled
    waiting = "'received', 'needs_review', 'approved'" + (
        ", 'allocated', 'picking', 'packed'" if providers and faults.module_present("app.shipping") else "")
    texts = (" + (SELECT count(*) FROM sms_messages WHERE direction = 'outbound' AND status IN "
             "('pending', 'sending'))") if providers and faults.module_present("integrations.twilio") else ""
    return ("SELECT (SELECT count(*) FROM inbound_events WHERE status = 'received') + "
            "(SELECT count(*) FROM outbox_events WHERE status = 'pending' AND job <> 'reconcile_shop' "
            f"AND NOT {invariants.HELD_TEXTS}) + "
            f"(SELECT count(*) FROM orders WHERE status IN ({waiting}))" + texts)


def wait_drained(dsn: str, redis: PrivateRedis, load: Load, shop_ids: dict[str, int], timeout: float,
                 staff: Staff) -> float | None:
    """Until every accepted and every dropped order is an order row, the inbox and outbox are done and the
    queues are empty (or `timeout`); returns the wall time it happened."""
    import psycopg

    want = {(shop_ids[o.shop.name], str(o.order_id)) for o in load.orders if o.fate == "dropped" or o.accepted}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=2) as conn:
                have = set(conn.execute("SELECT shop_id, external_id FROM orders").fetchall())
                busy = conn.execute(_busy_sql()).fetchone()[0]  # type: ignore[index]
            if want <= have and not busy:
                return time.time()
        except Exception:  # noqa: BLE001,S110 - a store briefly unreachable: keep waiting
            pass
        time.sleep(1.0)
    return None


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915
    problem = postgres_available()
    if problem:
        print(f"peak drill: {problem}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="orderline-peak-"))
    os.chmod(tmp, 0o755)
    pg = PrivatePostgres(tmp / "pg")
    redis = PrivateRedis(tmp / "redis")
    shops: list[Shop] = []
    stack: Stack | None = None
    sampler: figures.Sampler | None = None
    staff: Staff | None = None
    extras: dict[str, Any] = {}
    load: Load | None = None
    started = time.time()
    try:
        pg.init()
        redis.start()
        shops = make_shops()
        bigcommerce = next(s for s in shops if s.channel == "bigcommerce")
        shopify = next(s for s in shops if s.channel == "shopify")
        env = {**os.environ, "DATABASE_URL": pg.dsn, "REDIS_URL": redis.url, "ORDERLINE_ENV": "production",
               "ORDERLINE_SECRET_KEY": "peak-drill-secret-key-0123456789", "ORDERLINE_INSTANCE_DIR": str(tmp),
               "SHOPIFY_API_SECRET": SHOPIFY_SECRET, "SHOPIFY_API_BASE_URL": shopify.fake.url,
               "BIGCOMMERCE_API_BASE_URL": bigcommerce.fake.url, "LOG_LEVEL": "WARNING",
               "PUBLIC_BASE_URL": "http://127.0.0.1",
               "WEB_CONCURRENCY": str(args.web_workers), **DRILL_SETTINGS}
        for name, started_plugin in plugins.all_started().items():
            if started_plugin is not None:
                extras[name], plugin_env = started_plugin
                env.update(plugin_env)
        _cli(env, "db", "upgrade")
        if "slack_fake" in extras:  # the manager who clicks Approve on the cards
            _cli(env, "slack", "staff", "add", plugins.SLACK_MANAGER, "manager", "--name", "Peak manager")
        if "twilio_fake" in extras:
            extras["twilio_fake"].public_base_url = env["PUBLIC_BASE_URL"]
        token = _cli(env, "tokens", "create", "--name", "peak-staff", "--role", "manager").splitlines()[-1]
        stack = Stack(env, tmp, workers=2)
        stack.start()
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        shop_ids = register_shops(env, api, stack.url, shops)
        stock_up(api, stack.url, stock_csv(tmp / "stock.csv"))
        print(f"peak drill: PostgreSQL :{pg.port}, Redis :{redis.port}, web {stack.url} "
              f"({args.web_workers} gunicorn workers), 2 workers; shops {shop_ids}; "
              f"setup {time.time() - started:.0f} s",
              flush=True)

        seconds = args.minutes * 60
        load = Load(shops, stack.url, seconds, args.base_rate * args.scale, soak=args.soak, seed=args.seed)
        load.plan()
        if not args.soak:
            for fraction in (0.15, 0.8):
                load.plan_burst(seconds * fraction, forged=12, oversized=4, size=2 * 1024 * 1024)
        drill = faults.Drill(stack, redis, pg, shops, extras)
        steps = faults.schedule(drill, soak=args.soak)
        for step in steps:
            if step.enabled:
                load.at(seconds * step.at, lambda step=step: faults.start(step) and None)
            else:
                step.result = f"SKIP: {step.needs} not present"
        sampler = figures.Sampler(pg.dsn, redis, stack, rss_every=60.0 if args.soak else 5.0)
        sampler.start()
        staff = Staff(stack.url, token, extras)
        staff.start()

        def tick(t: float) -> None:
            if int(t) // 15 != int(t - 1) // 15:
                last = sampler.samples[-1] if sampler.samples else None
                print(f"  t={t:5.0f}s sent={len(load.deliveries)} backlog="
                      f"{last.backlog if last else '?'} rss={last.rss if last else '?'}", flush=True)

        print(f"peak drill: {len(load.orders)} orders over {seconds:.0f} s (base {args.base_rate * args.scale:g}/s"
              f"{', soak' if args.soak else ', spike 10x'})", flush=True)
        load_before = [round(v, 1) for v in os.getloadavg()]
        load.run(on_tick=tick)
        print(f"peak drill: load done in {load.ended_wall - load.started_wall:.0f} s; draining", flush=True)
        drained_at = wait_drained(pg.dsn, redis, load, shop_ids, args.drain_timeout, staff)
        staff.stop()
        sampler.stop()
        terminal = TERMINAL_WITH_SHIPPING if faults.module_present("app.shipping") else TERMINAL_BEFORE_SHIPPING
        checks = invariants.check_all(pg.dsn, redis, load, shop_ids, extras)
        checks.append(invariants.Check(
            "drained within the drain timeout", "PASS" if drained_at else "FAIL",
            f"{(drained_at - load.ended_wall):.0f} s after the load" if drained_at
            else f"not drained {args.drain_timeout:.0f} s after the load"))
        result = figures.compute(load, sampler.samples, pg.dsn, shop_ids, terminal, drained_at)
        result["load_average_before"] = load_before
        result["staff_api_answers"] = dict(staff.answers)
        result["process_restarts"] = stack.restarts
        if args.soak:
            growth = figures.soak_growth(sampler.samples, args.rss_bound_mb)
            result["soak"] = growth
            checks.append(invariants.Check(
                f"soak: RSS growth within {args.rss_bound_mb:g} MiB", "PASS" if growth.get("within_bound") else "FAIL",
                f"growth {growth.get('growth_mb')} MiB after warm-up"))
        result["faults"] = [{"step": s.name, "at_s": round(s.started - load.started_wall, 1) if s.started else None,
                             "took_s": round(s.seconds, 1) if s.seconds else None, "result": s.result}
                            for s in steps]
        result["wall_seconds"] = round(time.time() - started, 1)
        failed = [c for c in checks if c.status == "FAIL"]
        report = render(args, result, checks)
        print(report, flush=True)
        if args.report:
            path = Path(args.report)
            path.write_text(report)
            path.with_suffix(".json").write_text(json.dumps(
                {"args": vars(args), "figures": result, "checks": [c.__dict__ for c in checks]}, indent=2,
                default=str))
        return 1 if failed else 0
    finally:
        if load is not None:
            load.abort()
        if staff is not None and staff.is_alive():
            staff.stop()
        if sampler is not None:
            sampler.stop()
        if stack is not None:
            stack.stop()
        for fake in extras.values():
            if hasattr(fake, "stop"):
                fake.stop()
        stop_shops(shops)
        redis.stop()
        pg.remove()
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def render(args: argparse.Namespace, result: dict[str, Any], checks: list[invariants.Check]) -> str:
    mode = "soak" if args.soak else "peak"
    lines = [f"## Peak-day drill ({mode}): `python -m bench.peak --minutes {args.minutes:g} --scale {args.scale:g}"
             f"{' --soak' if args.soak else ''}`", "",
             f"{os.cpu_count()} cores, shared; gunicorn {args.web_workers} workers (gthread), 2 `orderline worker`; "
             "private PostgreSQL and Redis; fakes on loopback.", "", "### Invariants", "",
             invariants.table(checks), "", "### Faults", "", "| step | at s | took s | result |", "|---|---|---|---|"]
    lines += [f"| {f['step']} | {f['at_s']} | {f['took_s']} | {f['result']} |" for f in result["faults"]]
    lines += ["", "### Figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key} | {json.dumps(value, default=str) if isinstance(value, dict | list) else value} |"
              for key, value in result.items() if key not in {"faults", "soak", "backlog_every_5s"}]
    if not args.soak:
        lines += ["", f"Backlog (inbox + outbox) every 5 s: {result['backlog_every_5s']}"]
    if "soak" in result:
        lines += ["", "### Soak: RSS per minute (MiB)", "", "```", json.dumps(result["soak"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=None,
                        help="length of the load phase (default 2; 30 with --soak)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the base rate")
    parser.add_argument("--base-rate", type=float, default=2.0, help="orders/s at scale 1 (the spike is 10x)")
    parser.add_argument("--soak", action="store_true", help="the base rate, flat, no faults; RSS each minute")
    parser.add_argument("--rss-bound-mb", type=float, default=40.0, help="soak: allowed RSS growth per group")
    parser.add_argument("--report", help="write the report (markdown) here, and the figures next to it as .json")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--drain-timeout", type=float, default=240.0,
                        help="seconds after the load for every order to reach its terminal state")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-providers", dest="providers", action="store_false",
                        help="leave the carrier, Slack and SMS parts out (webhooks, ingest, reconciliation, faults)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    plugins.enabled = args.providers
    # A SIGTERM (CI cancelling, a timeout) must still stop every process and remove the cluster: unwind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.minutes is None:
        args.minutes = 30.0 if args.soak else 2.0
    return run(args)
