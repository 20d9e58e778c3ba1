"""The two reference receivers the webhook benchmark compares Orderline against.

`ping_app`: bare Flask answering 200. `minimal_app`: the least a correct receiver does — HMAC over the raw
body, one durable insert (deduplicated on the webhook id), one Redis push.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

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
_state: dict[str, object] = {}


def _connections() -> tuple[psycopg.Connection, redis.Redis]:
    if "db" not in _state:
        url = os.environ["BENCH_DSN"]
        _state["db"] = psycopg.connect(url, autocommit=True)
        _state["redis"] = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _state["db"], _state["redis"]  # type: ignore[return-value]


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
