"""Shippo webhooks: the URL token check and `track_updated` → tracking updates.

Shippo signs nothing by default (docs.goshippo.com/tracking/webhook-security, PROTOCOLS §6.2). The webhook is
registered as `https://<host>/webhooks/carriers/shippo?token=<secret>`; Shippo calls that URL as given, so
the token comes back as a query parameter and is compared in constant time with each configured secret.
The opt-in HMAC header is not used: its name differs between sources (unverified).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from integrations.carriers.base import (
    TrackingUpdate,
    UnsupportedEventError,
    WebhookPayloadError,
    WebhookVerificationError,
    matches_any,
)
from integrations.carriers.shippo.mapping import parse_track_response

TOKEN_PARAMETER = "token"  # noqa: S105 - the query parameter's name, not a secret


def verify_webhook(headers: Mapping[str, str], raw: bytes, secrets: Sequence[str],
                   query: Mapping[str, str] | None = None) -> None:
    """Accept the request only when its `?token=` equals one of the secrets.

    Raises:
        WebhookVerificationError: no secret configured, no token, or a token matching none.
    """
    keys = [s for s in secrets if s]
    if not keys:
        raise WebhookVerificationError("no Shippo webhook token is configured")
    given = (query or {}).get(TOKEN_PARAMETER)
    if not given:
        raise WebhookVerificationError(f"the '{TOKEN_PARAMETER}' query parameter is missing")
    if not matches_any(given, keys):
        raise WebhookVerificationError(f"the '{TOKEN_PARAMETER}' query parameter matches no webhook token")


def _track_updated(payload: dict[str, Any]) -> list[TrackingUpdate]:
    track = payload.get("data")
    if not isinstance(track, dict) or not track.get("tracking_number"):
        raise WebhookPayloadError("Shippo track_updated: `data` is not a Track")
    return parse_track_response(track)


# `event` → handler (WebhookEventTypeEnum, PROTOCOLS §6.2).
EVENT_HANDLERS: Mapping[str, Callable[[dict[str, Any]], list[TrackingUpdate]]] = {
    "track_updated": _track_updated,
}
# Label and batch news: Orderline learns of its labels from its own calls, so these carry nothing new.
IGNORED_EVENTS = frozenset({"transaction_created", "transaction_updated", "batch_created", "batch_purchased"})


def parse_webhook(payload: Any) -> list[TrackingUpdate]:
    """The tracking updates in a verified webhook body ([] for an ignored event).

    Raises:
        WebhookPayloadError: the body is not a Shippo webhook.
        UnsupportedEventError: an event neither handled nor ignored.
    """
    if not isinstance(payload, dict) or "event" not in payload:
        raise WebhookPayloadError("the body is not a Shippo webhook (no 'event')")
    event = str(payload["event"])
    handler = EVENT_HANDLERS.get(event)
    if handler is not None:
        return handler(payload)
    if event in IGNORED_EVENTS:
        return []
    raise UnsupportedEventError(f"Shippo event {event!r} is not handled")
