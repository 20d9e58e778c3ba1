"""The worker process: RQ's worker with its scheduler, plus the outbox sweeper."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from rq import Queue, SimpleWorker, Worker

from app.runtime import Runtime
from jobs.queues import ALL_QUEUES
from jobs.relay import Sweeper

log = structlog.get_logger("orderline.worker")


def run_worker(runtime: Runtime, queue_names: Sequence[str] = (), *, burst: bool = False,
               simple: bool = False, sweep: bool = True) -> bool:
    """Work the named queues (all by default). Returns whether any job ran (for burst mode)."""
    names = list(queue_names) or [str(q) for q in ALL_QUEUES]
    queues = [Queue(name, connection=runtime.redis) for name in names]
    worker_class = SimpleWorker if simple else Worker
    ttl = runtime.settings.worker_ttl_seconds
    # A short worker TTL and maintenance interval let another worker notice a SIGKILLed one in about
    # a minute and a half instead of RQ's default seven (RELIABILITY.md §2).
    worker = worker_class(queues, connection=runtime.redis, worker_ttl=ttl, maintenance_interval=max(ttl // 7, 5))
    sweeper = Sweeper(runtime, runtime.settings.sweep_interval_seconds) if sweep and not burst else None
    if sweeper:
        sweeper.start()
    log.info("worker.start", queues=names, worker=worker.name, kind=worker_class.__name__)
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))
    finally:
        if sweeper:
            sweeper.stop()
