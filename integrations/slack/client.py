"""The Slack Web API client Orderline uses, and how its failures are classified.

slack_sdk's `WebClient` is pointed at `SLACK_API_BASE_URL` (the fake in tests). Its default retry handlers
retry only connection errors; 429s are ours to handle (PROTOCOLS.md §4.4): a job raises `TransientError`
carrying Slack's `Retry-After`, and the outbox retries no sooner. Posting is paced to about one message per
second per channel across all workers (`pace`), the rate Slack allows `chat.postMessage`.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from app import pacing
from app.failures import Busy, PermanentError, TransientError

TIMEOUT_SECONDS = 10
# Slack errors worth another try; anything else (invalid_blocks, channel_not_found, not_in_channel…) is a
# configuration or a bug that a retry repeats.
TRANSIENT_ERRORS = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable",
                              "request_timeout"})


class UnknownOutcome(TransientError):
    """The request may have reached Slack: look the message up before posting it again."""


def make_client(token: str, base_url: str, *, loopback_without_proxy: bool = True) -> WebClient:
    """A WebClient for `base_url`. slack_sdk reads the proxy variables and ignores NO_PROXY (§4.5), which would
    route a loopback fake through the proxy: for a 127.0.0.1/localhost base URL the proxy is turned off."""
    client = WebClient(token=token, base_url=base_url, timeout=TIMEOUT_SECONDS)
    if loopback_without_proxy and ("//127.0.0.1" in base_url or "//localhost" in base_url):
        client.proxy = None  # read at each request (slack_sdk base_client), so clearing it here is enough
    return client


def retry_after(error: SlackApiError) -> float | None:
    value = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify(error: SlackApiError, method: str) -> Exception:
    """The TransientError or PermanentError a failed call becomes."""
    code = error.response.get("error") if isinstance(error.response.data, dict) else None
    status = error.response.status_code
    if status == 429 or code == "ratelimited":
        return TransientError(f"Slack rate-limited {method}", retry_after=retry_after(error) or 1.0)
    if status >= 500 or code in TRANSIENT_ERRORS:
        return TransientError(f"Slack {method} failed: {code or status}")
    return PermanentError(f"Slack {method} refused: {code or status}")


def call(client: WebClient, method: str, **arguments: Any) -> SlackResponse:
    """`client.api_call` with failures classified; a lost answer to a posting call is an `UnknownOutcome`."""
    try:
        return client.api_call(method, json=arguments)
    except SlackApiError as error:
        raise classify(error, method) from error
    except (TimeoutError, OSError) as error:  # URLError and socket timeouts are OSErrors
        raise UnknownOutcome(f"Slack {method}: no answer ({type(error).__name__})") from error


def pace(redis: Redis, channel: str, holder: str, *, interval: float = 1.1, wait_up_to: float = 1.5) -> None:
    """Take a posting slot on `channel` for `holder` (the message, say "thread:order:42"): at most one post per
    `interval` seconds, shared by every worker (a little over Slack's one per second, so network jitter never
    makes two posts arrive closer). A slot within `wait_up_to` is waited for; a later one is `Busy`: the job
    comes back at its slot time, which stays reserved for it, and no worker sleeps out a channel's queue."""
    wait = pacing.reserve(redis, f"slack:{channel}", interval, holder)
    if wait > wait_up_to:
        raise Busy(f"channel {channel} is busy posting: next slot in {wait:.0f} s", retry_after=wait)
    time.sleep(wait)
    pacing.release(redis, holder)
