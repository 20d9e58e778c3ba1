"""How a failed piece of work should be treated: retried later, or stopped and shown to staff."""

from __future__ import annotations


class TransientError(Exception):
    """Worth retrying: a timeout, a connection error, a 429 or a 5xx. `retry_after` is the provider's ask."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help (a validation error, a 4xx): stop at once and surface the provider's message."""
