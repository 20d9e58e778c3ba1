"""The request id that follows a request into the jobs it causes (logged, stored on outbox rows)."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

import structlog

_request_id: ContextVar[str | None] = ContextVar("orderline_request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id(incoming: str | None = None) -> str:
    """Reuse a well-formed id from a proxy (X-Request-ID); otherwise make one."""
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    # A label for matching log lines, not a secret: the process's own generator (reseeded in every forked
    # worker) instead of os.urandom, which is a system call on every webhook.
    return f"{random.getrandbits(64):016x}"


def bind_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_id() -> None:
    _request_id.set(None)
    structlog.contextvars.unbind_contextvars("request_id")


def current_request_id() -> str | None:
    return _request_id.get()
