"""How a failed piece of work should be treated: retried later, or stopped and shown to staff."""

from __future__ import annotations


class TransientError(Exception):
    """Worth retrying: a timeout, a connection error, a 429 or a 5xx. `retry_after` is the provider's ask."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Busy(TransientError):
    """Not a failure: what the job needs is taken for now (a Slack channel's posting slot). It runs again after
    `retry_after` without using up one of its attempts, so a long queue for one channel never fails a job."""

    def __reduce__(self) -> tuple[object, ...]:  # picklable for RQ's failure records
        return (_busy, (str(self), self.retry_after))


def _busy(message: str, retry_after: float | None) -> Busy:
    return Busy(message, retry_after=retry_after)


class PermanentError(Exception):
    """Retrying cannot help (a validation error, a 4xx): stop at once and surface the provider's message."""
