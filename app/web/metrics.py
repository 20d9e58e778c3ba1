"""Prometheus metrics: request counts and latency, plus queue depths, outbox lag and failed jobs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.models import InboundEvent, OutboxEvent, ReconcileRun
from app.runtime import Runtime
from app.store import utcnow
from jobs.queues import ALL_QUEUES


class StateCollector(Collector):
    """Reads the state of the store and the queues at scrape time, so every process reports the same."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("orderline_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        rq_failed = GaugeMetricFamily("orderline_rq_failed_jobs", "Jobs in RQ's failed registry",
                                      labels=["queue"])
        redis_up = GaugeMetricFamily("orderline_redis_up", "1 when Redis answered this scrape")
        try:
            for name in ALL_QUEUES:
                queue = Queue(str(name), connection=self.runtime.redis)
                depth.add_metric([str(name)], queue.count)
                rq_failed.add_metric([str(name)], FailedJobRegistry(queue=queue).count)
            redis_up.add_metric([], 1)
        except RedisError:
            redis_up.add_metric([], 0)
        yield from (depth, rq_failed, redis_up)

        outbox = GaugeMetricFamily("orderline_outbox_rows", "Outbox rows by status", labels=["status"])
        lag = GaugeMetricFamily("orderline_outbox_lag_seconds", "Age of the oldest pending outbox row")
        try:
            with self.runtime.db.session() as session:
                counts = dict(session.execute(select(OutboxEvent.status, func.count())
                                              .where(OutboxEvent.status != "done")
                                              .group_by(OutboxEvent.status)).all())
                oldest = session.execute(select(func.min(OutboxEvent.created_at))
                                         .where(OutboxEvent.status == "pending")).scalar()
        except SQLAlchemyError:
            return
        for status in ("pending", "failed"):
            outbox.add_metric([status], counts.get(status, 0))
        lag.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        yield from (outbox, lag)
        yield from self._channels()

    def _channels(self) -> Iterator[Any]:
        inbound = GaugeMetricFamily("orderline_inbound_events", "Webhook deliveries not (yet) processed, by status",
                                    labels=["status"])
        missed = CounterMetricFamily("orderline_missed_webhooks", "Orders and updates that only reconciliation "
                                     "found, by shop", labels=["shop_id", "kind"])
        try:
            with self.runtime.db.session() as session:
                # Processed rows are the bulk of the inbox and say nothing alarming: they are not counted.
                by_status = dict(session.execute(select(InboundEvent.status, func.count())
                                                 .where(InboundEvent.status != "processed")
                                                 .group_by(InboundEvent.status)).all())
                per_shop = session.execute(select(ReconcileRun.shop_id, func.sum(ReconcileRun.missed_creates),
                                                  func.sum(ReconcileRun.missed_updates))
                                           .group_by(ReconcileRun.shop_id)).all()
        except SQLAlchemyError:
            return
        for status in ("received", "failed", "stale", "ignored"):
            inbound.add_metric([status], by_status.get(status, 0))
        for shop_id, creates, updates in per_shop:
            missed.add_metric([str(shop_id), "order"], int(creates or 0))
            missed.add_metric([str(shop_id), "update"], int(updates or 0))
        yield from (inbound, missed)


class Metrics:
    """Under gunicorn (PROMETHEUS_MULTIPROC_DIR set, see app/gunicorn_conf.py) request counts are summed
    over every web process, so whichever process answers a scrape reports the whole service."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        # With the multiprocess collector the request metrics live in shared files; registering them on the
        # scrape registry too would count them twice, so they get a registry of their own.
        own = CollectorRegistry() if multiprocess_dir else self.registry
        if multiprocess_dir:
            multiprocess.MultiProcessCollector(self.registry, path=multiprocess_dir)
        self.requests = Counter("orderline_http_requests_total", "HTTP requests answered",
                                ["method", "endpoint", "status"], registry=own)
        self.latency = Histogram("orderline_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "endpoint"], registry=own,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.registry.register(StateCollector(runtime))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per route and status: `labels()` validates and locks on
        # every call, and this runs on every webhook.
        key = (method, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, endpoint, str(status)),
                                              self.latency.labels(method, endpoint))
        children[0].inc()
        children[1].observe(seconds)
