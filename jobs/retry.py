"""One retry policy for every job: capped exponential backoff with jitter, never sooner than Retry-After."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.failures import PermanentError, TransientError
from app.orders.errors import VersionConflict

# Worth another try: the network, a database or Redis blip, and an order changed by staff under the job
# (the next attempt loads fresh state).
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError, ConnectionError, socket.timeout, redis.ConnectionError, redis.TimeoutError,
    OperationalError, PoolTimeout, VersionConflict,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempt: int, retry_after: float | None = None, *,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`, after `attempt` failures (1-based)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        # "Equal jitter": at least half the backoff, so retries spread out but never bunch at zero.
        uniform = rng.uniform if rng is not None else random.uniform
        jittered: float = ceiling / 2 + uniform(0, ceiling / 2)
        if retry_after is not None:
            return max(jittered, float(retry_after))
        return jittered

    def gives_up_after(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


def classify(error: BaseException) -> tuple[bool, float | None]:
    """(retry?, retry_after) for an exception raised by a job."""
    if isinstance(error, PermanentError):
        return False, None
    if isinstance(error, TransientError):
        return True, error.retry_after
    if isinstance(error, _TRANSIENT):
        return True, None
    try:
        import requests

        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return True, None
    except ImportError:  # pragma: no cover - requests comes with the provider SDKs
        pass
    # Anything else is a bug: retrying will fail the same way, so it goes to staff at once.
    return False, None
