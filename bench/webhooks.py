"""Webhook receiver benchmark: Orderline's Shopify receiver against a bare Flask endpoint and a minimal
correct receiver, each under gunicorn on PostgreSQL and Redis, driven by wrk in turns for a few rounds, with the
CPU each receiver's web workers and PostgreSQL used per request (from /proc: steadier than requests/s when the
machine's speed changes from minute to minute); then the drain time until every accepted webhook is an order.

    .venv/bin/python bench/webhooks.py [--seconds 10] [--rounds 5] [--connections 16] [--workers 2 | 0: no drain]

Needs wrk (Debian package `wrk`), PostgreSQL (BENCH_POSTGRES, default the local server) and redis-server
on PATH (a private one is started on a free port). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import Parts, machine_busy_seconds, session_serving  # noqa: E402

SECRET = "bench-shopify-secret"
SHOP = "bench.myshopify.com"
PG = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
WARMUP_SECONDS = 3
MINIMAL = "minimal receiver (HMAC, insert, LPUSH)"
FIXTURE_CANDIDATES = [ROOT / "tests/integrations/shopify/fixtures/orders_create.json",
                      ROOT.parent / "shared/fixtures/shopify/orders_create.json"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,  # noqa: S603
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_workers_ready(log: Path, since: int, workers: int, timeout: float = 60) -> None:
    """Wait for every gunicorn worker's "Worker ready" line (app/gunicorn_conf.py) written after `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_bytes()[since:].count(b"Worker ready") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn workers not ready after {timeout} s: see {log}")


def make_requests(path: Path, count: int, first: int = 0) -> None:
    template = json.loads(next(p for p in FIXTURE_CANDIDATES if p.exists()).read_text())
    base = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    with path.open("w") as out:
        for n in range(first, first + count):
            order = dict(template, id=9_000_000_000 + n, order_number=100_000 + n, name=f"#B{n}",
                         updated_at=(base + timedelta(seconds=n)).isoformat())
            body = json.dumps(order, separators=(",", ":"))
            sig = base64.b64encode(hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()).decode()
            out.write(f"bench-{n}\t{sig}\t{body}\n")


def serve(stack: contextlib.ExitStack, target: str, env: dict[str, str], log: Path, workers: int) -> int:
    """Start `target` under gunicorn as the Procfile does; return its port once every worker is ready."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
           target]
    log_start = log.stat().st_size if log.exists() else 0
    stack.enter_context(process(cmd, env, log))
    # The port answers as soon as the master binds; workers import the app after that.
    wait_port(port)
    wait_workers_ready(log, log_start, workers)
    return port


def cell(values: list[float], form: str) -> str:
    return f"**{form.format(statistics.median(values))}** ({' / '.join(form.format(v) for v in values)})"


def wrk(port: int, requests_file: Path, seconds: int, connections: int) -> dict[str, float]:
    threads = 2
    output = subprocess.run(  # noqa: S603
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench/shopify.lua"),
         f"http://127.0.0.1:{port}", "--", str(requests_file), str(threads)],
        capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    total = re.search(r"(\d+) requests in", output)
    result["requests"] = float(total.group(1)) if total else 0.0
    return result


def measured(parts: Parts, name: str, port: int, requests_file: Path, args: argparse.Namespace) -> dict[str, float]:
    """One wrk run against a receiver, with the CPU its gunicorn workers and PostgreSQL used per request: less
    noisy than requests/s when the machine's speed changes from minute to minute."""
    before, busy_before, started = parts.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    run = wrk(port, requests_file, args.seconds, args.connections)
    after = parts.cpu_seconds()
    run["busy"] = (machine_busy_seconds() - busy_before) / (time.monotonic() - started)
    for part, key in ((name, "web_us"), ("PostgreSQL", "pg_us")):
        run[key] = 1e6 * (after.get(part, 0.0) - before.get(part, 0.0)) / max(run["requests"], 1.0)
    return run


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs of each receiver, taken in turns")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes for the drain (0: no drain)")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers for every receiver (default: the "
                        "production default, WEB_CONCURRENCY or one per core)")
    parser.add_argument("--web-threads", type=int, help="threads per gunicorn worker (default: WEB_THREADS or 4)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class for every receiver")
    args = parser.parse_args()
    # As app/gunicorn_conf.py reads them, so the run is labelled with what the receivers really ran.
    args.web_workers = args.web_workers or int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
    args.web_threads = args.web_threads or int(os.environ.get("WEB_THREADS") or 4)
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="orderline-bench-"))
    db_name = f"orderline_bench_{os.getpid()}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = PG.rsplit("/", 1)[0] + f"/{db_name}"
    redis_port = free_port()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with process([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
                      "--appendonly", "no", "--maxmemory-policy", "noeviction"], dict(os.environ), tmp / "redis.log"):
            wait_port(redis_port)
            env = {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                   "SHOPIFY_API_SECRET": SECRET, "ORDERLINE_SECRET_KEY": "bench", "ORDERLINE_ENV": "production",
                   "LOG_LEVEL": "WARNING", "BENCH_DSN": dsn, "WEB_CONCURRENCY": str(args.web_workers),
                   "WEB_THREADS": str(args.web_threads),
                   "WEB_WORKER_CLASS": args.worker_class,
                   "ORDERLINE_INSTANCE_DIR": str(tmp)}
            subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], env=env, cwd=ROOT, check=True,  # noqa: S603
                           capture_output=True)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE bench_inbox (webhook_id text PRIMARY KEY, body bytea NOT NULL)")
                conn.execute("INSERT INTO shops (channel, name, external_id, currency, timezone, locale, settings, "
                             "active, next_order_number, created_at, updated_at) VALUES ('shopify', 'Bench', %s, "
                             "'USD', 'UTC', 'en', '{}', true, 1001, now(), now())", (SHOP,))
            # Every round has request ids of its own (so does the warm-up): no measured request is a duplicate.
            round_files = [tmp / f"round{n}.tsv" for n in range(args.rounds)]
            for n, path in enumerate(round_files):
                make_requests(path, 30_000, first=(n + 1) * 1_000_000)
            warmup_file = tmp / "warmup.tsv"
            make_requests(warmup_file, 10_000)
            targets = {"bare Flask (200 only)": "bench.apps:ping_app",
                       MINIMAL: "bench.apps:minimal_app",
                       "Orderline /webhooks/shopify": "app:create_app()"}
            with contextlib.ExitStack() as servers:
                ports = {name: serve(servers, target, env, tmp / "gunicorn.log", args.web_workers)
                         for name, target in targets.items()}
                for port in ports.values():  # unmeasured: every thread opens its connections
                    wrk(port, warmup_file, WARMUP_SECONDS, args.connections)
                parts = Parts(sessions={session_serving(port): name for name, port in ports.items()}, pids={})
                # The receivers take turns, round after round, so a slow minute of a shared machine falls on
                # all of them rather than on one.
                for path in round_files:
                    for name, port in ports.items():
                        results.setdefault(name, []).append(measured(parts, name, port, path, args))
            accepted = count(dsn, "SELECT count(*) FROM inbound_events") if args.workers else 0
            started = time.monotonic()
            workers = [contextlib.ExitStack() for _ in range(args.workers)]
            for n, stack in enumerate(workers):
                # In-process workers, as the Procfile runs them.
                command = [sys.executable, "-m", "app", "worker", "--simple"]
                stack.enter_context(process(command, env, tmp / f"worker{n}.log"))
            deadline = started + 600
            orders = 0
            while time.monotonic() < deadline:
                orders = count(dsn, "SELECT count(*) FROM orders")
                if orders >= accepted:
                    break
                time.sleep(0.2)
            drain = time.monotonic() - started
            for stack in workers:
                stack.close()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s × {args.rounds} rounds, gunicorn --config "
          f"app/gunicorn_conf.py ({args.web_workers} {args.worker_class} workers × {args.web_threads} threads), "
          f"PostgreSQL + Redis "
          f"on loopback, {os.cpu_count()} cores; each cell: the median, then every round\n")
    print("| receiver | req/s | vs minimal (same round) | p50 ms | p99 ms | non-2xx | CPU µs per request: web workers "
          "| PostgreSQL | cores busy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        ratios = [run["rps"] / base["rps"] for run, base in zip(runs, results[MINIMAL], strict=True)]
        print(f"| {name} | {cell([r['rps'] for r in runs], '{:,.0f}')} | {cell(ratios, '{:.2f}')} "
              f"| {cell([r['p50_ms'] for r in runs], '{:.1f}')} | {cell([r['p99_ms'] for r in runs], '{:.1f}')} "
              f"| {sum(r['non_2xx'] for r in runs):.0f} | {cell([r['web_us'] for r in runs], '{:.0f}')} "
              f"| {cell([r['pg_us'] for r in runs], '{:.0f}')} | {cell([r['busy'] for r in runs], '{:.2f}')} |")
    if not args.workers:
        return
    print(f"\ndrain: {orders} of {accepted} accepted webhooks became orders in {drain:.1f} s "
          f"with {args.workers} worker(s): {orders / drain:.0f} orders/s")


if __name__ == "__main__":
    main()
