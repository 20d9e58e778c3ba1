"""gunicorn settings for the Procfile's web process."""

import multiprocessing
import os
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# One process per core, and a few threads to overlap each request's waits on PostgreSQL and Redis: Python runs
# one thread of a process at a time, so more threads only queue for that lock instead of in gunicorn's own queue,
# and each hand-over costs CPU. bench/webhooks.py on 2 cores, 16 connections, 5 rounds a run, Orderline's CPU
# per webhook and p99: 5 processes × 4 threads 801 µs, 29.4 ms; 3 × 6 711 µs, 25.1 ms; 2 × 8 594-604 µs,
# 21.5-24.1 ms; 2 × 4 556-561 µs, 17.0-19.8 ms.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "4"))
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
