"""The drill's figures: webhook rates and ack latency from the sender's ledger, webhook → terminal state from
the timeline, queue depth and drain from the sampler, and memory of the web and worker processes."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .invariants import rq_backlog
from .load import Load


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Sample:
    t: float  # wall clock
    inbox: int | None
    outbox: int | None
    rq: int | None
    rss: dict[str, float]

    @property
    def backlog(self) -> int:
        """Work not done yet: deliveries not ingested and outbox rows not finished (RQ holds a subset)."""
        return (self.inbox or 0) + (self.outbox or 0)


@dataclass
class Sampler:
    """Every `interval` s: deliveries waiting in the inbox, pending outbox rows, RQ jobs waiting or running,
    and RSS. A sample taken while PostgreSQL or Redis is down records None for what it could not read."""

    dsn: str
    redis: Any
    stack: Any
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    rss_every: float = 5.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-sampler", daemon=True)
        self._last_rss = 0.0
        self._rss: dict[str, float] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()

    def take(self) -> Sample:
        inbox = outbox = rq = None
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                inbox = int(conn.execute("SELECT count(*) FROM inbound_events WHERE status = 'received'")
                            .fetchone()[0])  # type: ignore[index]
                outbox = int(conn.execute("SELECT count(*) FROM outbox_events WHERE status = 'pending' "
                                          "AND job <> 'reconcile_shop'")
                             .fetchone()[0])  # type: ignore[index]
        except psycopg.Error:
            pass
        try:
            rq = sum(rq_backlog(self.redis).values())
        except Exception:  # noqa: BLE001 - Redis down during its fault window
            pass
        now = time.time()
        if now - self._last_rss >= self.rss_every:
            self._rss, self._last_rss = self.stack.rss_mb(), now
        sample = Sample(now, inbox, outbox, rq, dict(self._rss))
        self.samples.append(sample)
        return sample


def compute(load: Load, samples: list[Sample], dsn: str, shop_ids: dict[str, int], terminal: tuple[str, ...],
            drained_at: float | None) -> dict[str, Any]:
    webhooks = load.webhooks()
    acked = sorted(d.acked_at for d in webhooks if d.acked_at is not None)
    duration = max(load.ended_wall - load.started_wall, 1e-9)
    per_second = Counter(int(t - load.started_wall) for t in acked)
    window = 5  # peak over a 5 s window: one second is too noisy to mean anything
    peak = max((sum(per_second.get(s + k, 0) for k in range(window)) / window for s in per_second), default=0.0)
    latencies = [d.latency_ms for d in webhooks if d.latency_ms is not None and 200 <= d.status < 300]

    # Webhook → terminal state, per order: first ack to the first terminal event on its timeline.
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT o.shop_id, o.external_id, min(e.created_at) FROM orders o JOIN order_events e "
            "ON e.order_id = o.id WHERE e.type = ANY(%s) GROUP BY o.shop_id, o.external_id", (list(terminal),)
        ).fetchall()
    reached = {(shop_id, ext): at.timestamp() for shop_id, ext, at in rows}
    to_terminal = []
    for order in load.orders:
        first = order.first_ack
        at = reached.get((shop_ids[order.shop.name], str(order.order_id)))
        if first is not None and at is not None:
            to_terminal.append(max(0.0, at - first))
    accepted = sum(1 for o in load.orders if o.accepted)

    longest = max(samples, key=lambda s: s.backlog, default=None)
    rss_web = [s.rss.get("web", 0.0) for s in samples if s.rss]
    rss_workers = [s.rss.get("workers", 0.0) for s in samples if s.rss]
    drain = None
    if longest is not None and longest.backlog:
        empty_after = next((s.t for s in samples if s.t > longest.t and s.backlog == 0 and s.inbox is not None
                            and s.outbox is not None), drained_at)
        drain = {"longest_backlog": longest.backlog, "at_s": round(longest.t - load.started_wall, 1),
                 "inbox": longest.inbox, "outbox": longest.outbox, "rq": longest.rq,
                 "drained_in_s": round(empty_after - longest.t, 1) if empty_after else None,
                 "rate_per_s": round(longest.backlog / (empty_after - longest.t), 1) if empty_after else None}
    return {
        "load_seconds": round(duration, 1),
        "orders_planned": len(load.orders),
        "webhooks_sent": len(webhooks),
        "webhooks_acked": len(acked),
        "sustained_webhooks_per_s": round(len(acked) / duration, 1),
        "peak_webhooks_per_s_5s": round(peak, 1),
        "ack_ms_p50": _round(percentile(latencies, 50)),
        "ack_ms_p99": _round(percentile(latencies, 99)),
        "ack_ms_max": _round(max(latencies, default=None)),
        "acks_over_5s": sum(1 for v in latencies if v > 5000),
        "terminal_states": list(terminal),
        "orders_reaching_terminal": f"{len(to_terminal)} of {accepted}",
        "to_terminal_s_p50": _round(percentile(to_terminal, 50)),
        "to_terminal_s_p95": _round(percentile(to_terminal, 95)),
        "queue": drain,
        "inbox_max": max((s.inbox or 0 for s in samples), default=0),
        "backlog_every_5s": [s.backlog if s.inbox is not None and s.outbox is not None else None
                             for s in samples[::5]],
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "rss_mb": {"web_max": max(rss_web, default=None), "web_last": rss_web[-1] if rss_web else None,
                   "workers_max": max(rss_workers, default=None),
                   "workers_last": rss_workers[-1] if rss_workers else None,
                   "processes": {k: v for k, v in (samples[-1].rss if samples else {}).items() if "process" in k}},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def soak_growth(samples: list[Sample], bound_mb: float, warmup_s: float = 120.0) -> dict[str, Any]:
    """RSS at each minute; growth = last minute against the first minute after warm-up."""
    if not samples:
        return {}
    start = samples[0].t
    minutes: dict[int, dict[str, float]] = {}
    for sample in samples:
        if sample.rss:
            minutes[int((sample.t - start) // 60)] = sample.rss
    after = [m for m in sorted(minutes) if m * 60 >= warmup_s] or sorted(minutes)
    first, last = minutes[after[0]], minutes[after[-1]]
    growth = {k: round(last.get(k, 0) - first.get(k, 0), 1) for k in ("web", "workers")}
    return {"per_minute_mb": {m: {k: minutes[m].get(k) for k in ("web", "workers")} for m in sorted(minutes)},
            "growth_mb": growth, "bound_mb": bound_mb,
            "within_bound": all(v <= bound_mb for v in growth.values())}
