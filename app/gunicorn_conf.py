"""gunicorn settings for the Procfile's web process."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "4"))
# Shopify gives a webhook 5 s in all; a request that takes 30 s is a bug, not a slow client.
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = None
