"""The two reference receivers the webhook benchmark compares Orderline against.

`ping_app`: bare Flask answering 200. `minimal_app`: the least a correct receiver does — HMAC over the raw
body, one durable insert (deduplicated on the webhook id), one Redis push.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

import psycopg
import redis
from flask import Flask, request

ping_app = Flask("ping")


@ping_app.post("/webhooks/shopify")
def ping() -> tuple[str, int]:
    request.get_data()
    return "ok", 200


minimal_app = Flask("minimal")
_SECRET = os.environ.get("SHOPIFY_API_SECRET", "").encode()
_state = threading.local()
# Thread-safe (a pool of its own) and connects on first use, so one client serves every thread.
_queue = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def _connections() -> tuple[psycopg.Connection, redis.Redis]:
    # A connection per web thread, as Orderline's receiver has: one shared by a process's threads would make
    # them take turns on it.
    if not hasattr(_state, "db"):
        _state.db = psycopg.connect(os.environ["BENCH_DSN"], autocommit=True)
    return _state.db, _queue


@minimal_app.post("/webhooks/shopify")
def minimal() -> tuple[str, int]:
    raw = request.get_data()
    expected = base64.b64encode(hmac.new(_SECRET, raw, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, request.headers.get("X-Shopify-Hmac-Sha256", "")):
        return "bad signature", 401
    webhook_id = request.headers["X-Shopify-Webhook-Id"]
    db, queue = _connections()
    with db.cursor() as cursor:
        cursor.execute("INSERT INTO bench_inbox (webhook_id, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       (webhook_id, raw))
    queue.lpush("bench:inbox", webhook_id)
    return "ok", 200
