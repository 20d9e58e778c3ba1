"""The Black Friday curve and what rides on it: orders planned per shop with their fates (plain, updated,
delivered out of order, duplicated, dropped on purpose), sent by a pool of threads that retry like the
channels do (5xx, 429 and connection errors are retried with backoff; a 4xx is final), plus forged and
oversized bursts. Every POST and its answer is kept for the ledger."""

from __future__ import annotations

import heapq
import http.client
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .channels import Delivery, Shop

# Webhooks of a dropped order never arrive; its last change is older than reconciliation's settle time
# (jobs/reconcile.py SETTLE = 2 min) so the next poll may take it: a webhook lost a few minutes ago.
DROPPED_AGE = timedelta(seconds=170)
ACK_BUDGET_MS = 5000  # Shopify's: 1 s to connect, 5 s in all


@dataclass(frozen=True)
class Curve:
    """Orders per second over the load phase: ramp, plateau, a spike at 10x base, a long decaying tail."""

    seconds: float
    base: float  # orders/s

    def rate(self, t: float) -> float:
        x = t / self.seconds
        if x < 0.2:
            return self.base * (0.3 + 0.7 * x / 0.2)
        if x < 0.35:
            return self.base
        if x < 0.45:
            return self.base * 10
        return self.base * max(0.5, 2.0 - 1.5 * (x - 0.45) / 0.55)


@dataclass
class PlannedOrder:
    key: str
    shop: Shop
    order_id: int
    t0: float
    versions: int = 1
    fate: str = "plain"  # plain | updated | reordered | stale_update | dropped
    deliveries: list[Delivery] = field(default_factory=list)
    created: datetime | None = None

    def updated(self, version: int) -> datetime:
        assert self.created is not None
        return self.created + timedelta(seconds=2 * (version - 1))

    @property
    def accepted(self) -> bool:
        return any(200 <= d.status < 300 for d in self.deliveries)

    @property
    def first_ack(self) -> float | None:
        acks = [d.acked_at for d in self.deliveries if d.acked_at is not None]
        return min(acks) if acks else None


@dataclass(order=True)
class Event:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class Load:
    """Plans the run, then plays it against `base_url` in real time."""

    def __init__(self, shops: list[Shop], base_url: str, seconds: float, base_rate: float, *, seed: int = 7,
                 soak: bool = False, threads: int = 24) -> None:
        self.shops = shops
        self.base_url = base_url
        self.seconds = seconds
        self.curve = Curve(seconds, base_rate)
        self.random = random.Random(seed)
        self.soak = soak
        self.orders: list[PlannedOrder] = []
        self.deliveries: list[Delivery] = []
        self._events: list[Event] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="peak-send")
        self._local = threading.local()
        self.started_wall = 0.0
        self.ended_wall = 0.0
        self._next_id = {id(shop): 0 for shop in shops}

    # --- planning -----------------------------------------------------------------------------------------

    def at(self, t: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, Event(t, self._seq, action))

    def plan(self) -> None:
        weights = [0.4 if s.channel == "shopify" else 0.6 / (len(self.shops) - 1) for s in self.shops]
        owed, t, step = 0.0, 0.0, 0.1
        while t < self.seconds:
            owed += (self.curve.base if self.soak else self.curve.rate(t)) * step
            while owed >= 1:
                owed -= 1
                self._plan_order(self.random.choices(self.shops, weights)[0], t + self.random.random() * step)
            t += step

    def _plan_order(self, shop: Shop, t0: float) -> None:
        self._next_id[id(shop)] += 1
        order_id = 7_100_000_000 + self._next_id[id(shop)] if shop.channel == "shopify" else \
            100_000 + self._next_id[id(shop)]
        order = PlannedOrder(f"{shop.channel}:{shop.name}:{order_id}", shop, order_id, t0)
        self.orders.append(order)
        roll = self.random.random()
        if roll < 0.03:
            order.fate = "dropped"
            self.at(t0, lambda: self._drop(order))
            return
        if roll < 0.33:
            order.versions = 2
            kind = self.random.random()
            order.fate = "reordered" if kind < 0.2 else "stale_update" if kind < 0.35 else "updated"
        self.at(t0, lambda: self._begin(order))
        if order.fate == "reordered":
            # The update overtakes its create: the create must not undo the update.
            self.at(t0, lambda: self._send(order, "update", 2))
            self.at(t0 + 0.5, lambda: self._send(order, "create", 1))
        elif order.fate == "stale_update":
            # Two updates arrive newest first: the older one must not undo the newer.
            order.versions = 3
            later = t0 + 1 + self.random.random() * 2
            self.at(t0, lambda: self._send(order, "create", 1))
            self.at(later, lambda: self._send(order, "update", 3))
            self.at(later + 0.5, lambda: self._send(order, "update", 2))
        else:
            self.at(t0, lambda: self._send(order, "create", 1))
            if order.versions == 2:
                self.at(t0 + 1 + self.random.random() * 4, lambda: self._send(order, "update", 2))
        if self.random.random() < 0.08:  # the channel delivers one of them twice
            self.at(t0 + 0.2 + self.random.random() * 3, lambda: self._duplicate(order))

    def plan_burst(self, t: float, forged: int, oversized: int, size: int) -> None:
        """Forged signatures (for new and for existing orders) and oversized bodies, all at once."""
        for n in range(forged):
            shop = self.shops[n % len(self.shops)]
            self.at(t, lambda shop=shop, n=n: self._forge(shop, n))
        for n in range(oversized):
            shop = self.shops[n % len(self.shops)]
            self.at(t, lambda shop=shop: self._submit(shop.oversized(size)))

    # --- actions (run by the scheduler thread) ------------------------------------------------------------

    def _stamp(self, order: PlannedOrder, age: timedelta = timedelta(0)) -> None:
        moment = datetime.fromtimestamp(self.started_wall + order.t0, UTC).replace(microsecond=0)
        order.created = moment - age

    def _payload(self, order: PlannedOrder, version: int) -> Any:
        assert order.created is not None
        return order.shop.order_json(order.order_id, version, order.updated(version), order.created)

    def _begin(self, order: PlannedOrder) -> None:
        # The shop holds the order's newest state; reconciliation and BigCommerce's fetch read it there.
        self._stamp(order)
        order.shop.put(self._payload(order, order.versions))

    def _drop(self, order: PlannedOrder) -> None:
        self._stamp(order, DROPPED_AGE)
        order.shop.put(self._payload(order, 1))

    def _send(self, order: PlannedOrder, kind: str, version: int) -> None:
        payload = self._payload(order, version)
        if order.shop.channel == "bigcommerce":
            payload = payload[0]
        delivery = order.shop.delivery(kind, order.order_id, payload, order.key)
        order.deliveries.append(delivery)
        self._submit(delivery)

    def _duplicate(self, order: PlannedOrder) -> None:
        if not order.deliveries:
            return
        original = self.random.choice(order.deliveries)
        copy = Delivery(original.path, dict(original.headers), original.body, order.key, "duplicate")
        order.deliveries.append(copy)
        self._submit(copy)

    def _forge(self, shop: Shop, n: int) -> None:
        existing = [o for o in self.orders if o.shop is shop and o.created is not None and o.fate != "dropped"]
        if n % 2 and existing:
            target = self.random.choice(existing)  # an order we have: a forged update must not touch it
            order_id, version = target.order_id, target.versions + 5
            created = target.created
        else:
            order_id, version, created = 9_900_000 + n, 1, datetime.now(UTC).replace(microsecond=0)
        assert created is not None
        payload = shop.order_json(order_id, version, created + timedelta(hours=1), created)
        if shop.channel == "bigcommerce":
            payload = payload[0]
        self._submit(shop.forged(order_id, payload))

    def _submit(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
        self._pool.submit(self._post, delivery)

    # --- sending ------------------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            parts = urlsplit(self.base_url)
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
            self._local.connection = connection
        return connection  # type: ignore[no-any-return]

    def _post(self, delivery: Delivery) -> None:
        """POST until a final answer: 2xx or 4xx (not 429). 5xx, 429 and no answer are retried with backoff,
        as Shopify (8 tries over 4 h) and the others do; here compressed to seconds."""
        delay = 0.5
        for attempt in range(1, 13):
            delivery.attempts = attempt
            started = time.perf_counter()
            try:
                connection = self._connection()
                connection.request("POST", delivery.path, body=delivery.body, headers=delivery.headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                self._local.connection = None
                status = 0
            delivery.latency_ms = (time.perf_counter() - started) * 1000
            delivery.status = status
            if 200 <= status < 300:
                delivery.acked_at = time.time()
                return
            if 400 <= status < 500 and status != 429:
                return
            time.sleep(delay)
            delay = min(delay * 2, 8.0)

    # --- running ------------------------------------------------------------------------------------------

    def run(self, on_tick: Callable[[float], None] | None = None) -> None:
        """Play the plan in real time (blocking); `on_tick(t)` is called about once a second."""
        self.started_wall = time.time()
        start = time.monotonic()
        last_tick = -1.0
        while self._events:
            event = self._events[0]
            now = time.monotonic() - start
            if event.at > now:
                time.sleep(min(event.at - now, 0.05))
            else:
                heapq.heappop(self._events)
                event.action()
            if on_tick and now - last_tick >= 1:
                last_tick = now
                on_tick(now)
        self._pool.shutdown(wait=True)
        self.ended_wall = time.time()

    def abort(self) -> None:
        """Drop what is not sent yet (an interrupted run): queued POSTs must not outlive the stack."""
        self._events.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the ledger ---------------------------------------------------------------------------------------

    def webhooks(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.order_key is not None]

    def attacks(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.order_key is None]
