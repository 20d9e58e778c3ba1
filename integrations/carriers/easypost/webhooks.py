"""EasyPost webhooks: the X-Hmac-Signature check and Event → tracking updates.

Signature (easypost-python `easypost/util.py validate_webhook` @8fcf5e4b354f, PROTOCOLS §6.1):
`X-Hmac-Signature: hmac-sha256-hex=` + hex(HMAC-SHA256(key = UTF-8 of the NFKD-normalised webhook secret,
message = the raw body)), compared in constant time. Unlike the SDK, the header is found whatever the case
of its name, and any of several secrets is accepted (a rotation).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from integrations.carriers.base import (
    TrackingUpdate,
    UnsupportedEventError,
    WebhookPayloadError,
    WebhookVerificationError,
    header,
    hmac_sha256_hex,
    matches_any,
)
from integrations.carriers.easypost.mapping import parse_tracker_response

SIGNATURE_HEADER = "X-Hmac-Signature"
SIGNATURE_PREFIX = "hmac-sha256-hex="


def signature(raw: bytes, secret: str) -> str:
    """The X-Hmac-Signature value EasyPost sends for `raw` signed with `secret`."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return SIGNATURE_PREFIX + hmac_sha256_hex(key, raw)


def verify_webhook(headers: Mapping[str, str], raw: bytes, secrets: Sequence[str],
                   query: Mapping[str, str] | None = None) -> None:
    """Accept the request only when its X-Hmac-Signature matches the raw body under one of the secrets.

    Raises:
        WebhookVerificationError: no secret configured, the header missing, or no secret matching.
    """
    keys = [s for s in secrets if s]
    if not keys:
        raise WebhookVerificationError("no EasyPost webhook secret is configured")
    given = header(headers, SIGNATURE_HEADER)
    if not given:
        raise WebhookVerificationError(f"the {SIGNATURE_HEADER} header is missing")
    if not matches_any(given.strip(), [signature(raw, key) for key in keys]):
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} does not match the body")


def _tracker_event(event: dict[str, Any]) -> list[TrackingUpdate]:
    tracker = event.get("result")
    if not isinstance(tracker, dict) or not tracker.get("tracking_code"):
        raise WebhookPayloadError(f"EasyPost event {event.get('id')}: the result is not a Tracker")
    return parse_tracker_response(tracker)


# Event.description → handler. The Tracker in `result` carries the whole history each time.
EVENT_HANDLERS: Mapping[str, Callable[[dict[str, Any]], list[TrackingUpdate]]] = {
    "tracker.created": _tracker_event,
    "tracker.updated": _tracker_event,
}

# Every other family EasyPost documents (docs.easypost.com/docs/events): account and billing news that
# carries no tracking. Answered 200 and dropped. A description outside these families raises.
IGNORED_EVENT_FAMILIES: tuple[str, ...] = (
    "batch.", "claim.", "claims.", "insurance.", "payment.", "refund.", "report.", "scan_form.",
    "shipment.invoice.",
)


def is_ignored(description: str) -> bool:
    return description.startswith(IGNORED_EVENT_FAMILIES)


def parse_webhook(payload: Any) -> list[TrackingUpdate]:
    """The tracking updates in a verified Event body ([] for an ignored event).

    Raises:
        WebhookPayloadError: the body is not an Event.
        UnsupportedEventError: an event description neither handled nor ignored.
    """
    if not isinstance(payload, dict) or payload.get("object") != "Event":
        raise WebhookPayloadError("the body is not an EasyPost Event")
    description = str(payload.get("description") or "")
    handler = EVENT_HANDLERS.get(description)
    if handler is not None:
        return handler(payload)
    if is_ignored(description):
        return []
    raise UnsupportedEventError(f"EasyPost event {description!r} is not handled")
