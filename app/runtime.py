"""The process's connections: settings, database and Redis, built once by the web app or a worker."""

from __future__ import annotations

import os
from dataclasses import dataclass

from redis import Redis

from app.config import Settings
from app.secrets_box import SecretBox
from app.store import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: Redis
    # Opens shop credentials and webhook secrets; set by create_app once the key is resolved.
    secrets: SecretBox | None = None


def connect_redis(url: str) -> Redis:
    # Short timeouts: a Redis outage must delay work (the outbox keeps it), never hang a request.
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def build_runtime(settings: Settings) -> Runtime:
    runtime = Runtime(settings=settings, db=Database(settings.sqlalchemy_url), redis=connect_redis(settings.redis_url))
    # A forked RQ work-horse must not share the parent's database sockets.
    os.register_at_fork(after_in_child=runtime.db.forget_inherited_connections)
    return runtime


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    """Make `runtime` the one jobs find; the worker command and `create_app` call this."""
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no Orderline runtime installed: start jobs through `orderline worker`")
    return _current
