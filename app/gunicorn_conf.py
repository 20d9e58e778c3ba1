"""gunicorn settings for the Procfile's web process."""

import multiprocessing
import os
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# One process per core, threads for the waiting: a request is mostly waiting on PostgreSQL and Redis, and
# Python runs one thread of a process at a time anyway. More processes than cores made every webhook cost
# more CPU, not less (bench/webhooks.py on 2 cores, 16 connections: 604 µs a webhook with 2 processes of 8
# threads, 711 with 3 of 6, 801 with 5 of 4; p99 21.5, 25.1 and 29.4 ms).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "8"))
# Shopify gives a webhook 5 s in all; a request that takes 30 s is a bug, not a slow client.
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = None

# Request metrics from every worker process, summed at scrape time (prometheus_client's multiprocess mode).
# Set here, in the master, before any worker imports prometheus_client.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                     os.path.join(tempfile.gettempdir(), f"orderline-metrics-{os.getpid()}"))


def on_starting(server):
    # Counts of a previous run must not be added to this one's.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def post_worker_init(worker):
    from app.runtime import freeze_long_lived_objects

    freeze_long_lived_objects()  # a full collection's pause was a webhook's p99
    # "Booting worker" is logged before the app is imported; this line says the worker can take requests
    # (bench/webhooks.py waits for it, and so can a deploy script).
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
