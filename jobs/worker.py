"""The worker process: RQ's worker with its scheduler, plus the outbox sweeper."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker import BaseWorker

from app.runtime import Runtime, freeze_long_lived_objects
from jobs.queues import ALL_QUEUES
from jobs.relay import FORK_GUARD, Sweeper

log = structlog.get_logger("orderline.worker")


class ForkSafeWorker(Worker):
    """RQ's forking worker, forking only while the sweeper thread is between database transactions.

    SQLite keeps its locks per process: a child forked while the sweeper held the write lock inherits the
    belief that "another connection" holds it, and its first transaction waits out the busy timeout and
    fails with "database is locked". (The sweeper re-enqueues a job and this worker forks for it at once,
    so the two meet often.)
    """

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        with FORK_GUARD:
            super().fork_work_horse(job, queue)


def prepare_for_forking() -> None:
    """Do once, in the worker, what every forked work horse would otherwise redo for each job: import the
    provider SDKs that jobs load lazily (importing Twilio's REST client was 40 % of a text's job in the peak
    drill) and configure SQLAlchemy's mappers (done lazily by a process's first query)."""
    import twilio.rest.api.v2010.account.message  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    import app.models  # noqa: F401
    import integrations.slack.client  # noqa: F401 - slack_sdk's WebClient

    configure_mappers()
    freeze_long_lived_objects()


def run_worker(runtime: Runtime, queue_names: Sequence[str] = (), *, burst: bool = False,
               simple: bool = False, sweep: bool = True) -> bool:
    """Work the named queues (all by default). Returns whether any job ran (for burst mode)."""
    prepare_for_forking()
    names = list(queue_names) or [str(q) for q in ALL_QUEUES]
    queues = [Queue(name, connection=runtime.redis) for name in names]
    worker_class: type[BaseWorker] = SimpleWorker if simple else ForkSafeWorker
    ttl = runtime.settings.worker_ttl_seconds
    # A short worker TTL and maintenance interval make RQ notice a SIGKILLed worker in about a minute and
    # a half instead of seven (RELIABILITY.md §2); the sweeper, reading job leases, reruns its job sooner:
    # about `worker_ttl_seconds` plus one sweep interval after the kill.
    worker = worker_class(queues, connection=runtime.redis, worker_ttl=ttl,
                          maintenance_interval=max(ttl // 7, 5))
    sweeper = Sweeper(runtime, runtime.settings.sweep_interval_seconds) if sweep and not burst else None
    if sweeper:
        sweeper.start()
    log.info("worker.start", queues=names, worker=worker.name, kind=worker_class.__name__)
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))
    finally:
        if sweeper:
            sweeper.stop()
