"""The process's connections: settings, database and Redis, built once by the web app or a worker."""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

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


_threads = threading.local()


def _thread_connection(redis: Redis) -> tuple[Any, bool]:
    """This thread's connection to `redis`'s server, and whether it was kept from an earlier command."""
    held = getattr(_threads, "redis", None)
    if held is not None and held[0] is redis.connection_pool and held[1] == os.getpid():
        return held[2], True
    if held is not None:
        held[2].disconnect()  # another pool's, or inherited across a fork: closed now rather than at a collection
    pool = redis.connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    _threads.redis = (pool, os.getpid(), connection)
    return connection, False


def thread_command(redis: Redis, *args: Any) -> Any:
    """One Redis command on this thread's own connection to `redis`'s server, past the client's pool, retry and
    instrumentation layers: for the one command every webhook sends (py-spy on the web workers under load: the
    client's layers were a sixth of a webhook's CPU). Errors are the client's (RedisError). A connection that
    fails is dropped; a kept one found closed (Redis restarted since) is replaced and the command sent once
    more, as the client's own retry would (so a command whose reply alone was lost runs twice: a wake's
    `SET NX` then finds its own flag, and that wake is left to the sweeper)."""
    for _attempt in range(2):
        connection, kept = _thread_connection(redis)
        try:
            connection.send_command(*args)
            return connection.read_response()
        except ResponseError:
            raise  # Redis answered (out of memory, read-only): the connection itself is fine
        except BaseException as error:
            connection.disconnect()
            _threads.redis = None
            if not kept or not isinstance(error, RedisConnectionError):
                raise
    raise AssertionError("unreachable: the second attempt opens a new connection")


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


_frozen = False


def freeze_long_lived_objects() -> None:
    """Once per process, after the app and its SDKs are loaded (gunicorn's post_worker_init, a worker's start):
    those ~180,000 objects live as long as the process, and a full garbage collection walked them all (65-75 ms
    with every thread stopped). Frozen, the collector walks only what requests and jobs allocate, and forked
    work horses leave the frozen objects' memory pages shared."""
    global _frozen  # noqa: PLW0603
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
