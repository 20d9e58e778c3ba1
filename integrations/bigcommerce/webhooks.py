"""Reading and authenticating BigCommerce webhook deliveries.

BigCommerce deliveries are thin JSON bodies (`scope`, `data`, `hash`, `created_at`, `producer`) and carry
no topic header, so `read_delivery` has to parse the body before it is verified. It does only that: a body
that is not a JSON object with a `scope` and a `hash` is refused as not from BigCommerce (401, not stored).

Two ways a delivery proves where it came from, both accepted (PROTOCOLS.md §3.2):

* Standard Webhooks signing: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
  (`v1,<base64>` entries, space separated), where the signature is base64(HMAC-SHA256(secret bytes,
  "{id}.{timestamp}." + raw body)). BigCommerce keys it with the app's client secret, so a shop that gets
  signed deliveries stores that client secret as its webhook secret. A secret written `whsec_<base64>`
  (the Standard Webhooks convention) is base64-decoded first.
* The custom header Orderline asks for when it registers the hooks: `X-Orderline-Webhook-Secret: <secret>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from integrations.base import Delivery, WebhookVerificationError, hmac_sha256_base64, matches_any

SECRET_HEADER = "X-Orderline-Webhook-Secret"  # noqa: S105 - a header name, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_STANDARD_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
# The Standard Webhooks tolerance, both ways: older is a replay, newer is a wrong clock.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
_MAX_DELIVERY_ID = 255


def _secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):] + "==")
        except (binascii.Error, ValueError):
            pass  # not base64 after all: use the text as it is
    return secret.encode()


def standard_signature(secret: str, message_id: str, timestamp: str | int, body: bytes) -> str:
    """The `webhook-signature` entry ("v1,<base64>") Standard Webhooks computes for this message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + hmac_sha256_base64(_secret_key(secret), signed)


def _verify_standard(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str], now: float) -> None:
    values = {name: headers.get(name) or "" for name in _STANDARD_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise WebhookVerificationError(f"missing {', '.join(missing)} header (Standard Webhooks signing)")
    timestamp = values[TIMESTAMP_HEADER]
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp '{timestamp[:40]}' is not unix seconds") from None
    drift = now - sent_at
    if abs(drift) > TIMESTAMP_TOLERANCE_SECONDS:
        direction = "old" if drift > 0 else "far in the future"
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(int(drift))} s {direction} (limit {TIMESTAMP_TOLERANCE_SECONDS} s)")
    offered = [entry[3:] for entry in values[SIGNATURE_HEADER].split() if entry.startswith("v1,")]
    if not offered:
        raise WebhookVerificationError("webhook-signature has no v1 signature")
    expected = [standard_signature(s, values[ID_HEADER], timestamp, raw_body)[3:] for s in secrets]
    if not any(matches_any(signature, expected) for signature in offered):
        raise WebhookVerificationError("webhook-signature does not match")


def verify_at(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str], now: float) -> None:
    """`verify` with the clock given (tests move it). Raises WebhookVerificationError."""
    usable = [s for s in secrets if s]
    if not usable:
        raise WebhookVerificationError("no webhook secret is configured for this shop")
    if any(headers.get(name) for name in _STANDARD_HEADERS):
        _verify_standard(headers, raw_body, usable, now)
        return
    shared = headers.get(SECRET_HEADER)
    if shared is None:
        raise WebhookVerificationError(f"missing signature: no webhook-signature or {SECRET_HEADER} header")
    if not matches_any(shared, usable):
        raise WebhookVerificationError(f"{SECRET_HEADER} does not match")


def verify(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> None:
    """Check a delivery's Standard Webhooks signature, or else its shared-secret header, against any secret.

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is outside ±5 min, or nothing matches.
    """
    verify_at(headers, raw_body, secrets, time.time())


def _parse_envelope(raw_body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("body is not JSON; BigCommerce deliveries always are") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("body is not a JSON object; BigCommerce deliveries always are")
    for key in ("scope", "hash"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise WebhookVerificationError(f"body has no '{key}'; BigCommerce deliveries always have one")
    return payload


def _store_hash(producer: Any) -> str | None:
    if isinstance(producer, str) and producer.startswith("stores/") and len(producer) > len("stores/"):
        return producer[len("stores/"):]
    return None


def _created_at(payload: Mapping[str, Any]) -> int | None:
    value = payload.get("created_at")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bounded(delivery_id: str) -> str:
    if len(delivery_id) <= _MAX_DELIVERY_ID:
        return delivery_id
    return "sha256:" + hashlib.sha256(delivery_id.encode()).hexdigest()


def read_delivery(headers: Mapping[str, str], raw_body: bytes, path_ref: str | None) -> Delivery:
    """Topic, delivery id and shop of a BigCommerce delivery, read from its (unverified) body.

    The delivery id is the Standard Webhooks `webhook-id` when there is one, otherwise the payload `hash`,
    which BigCommerce repeats when a hook fires twice for one event. Either is prefixed with the shop, since
    the inbox dedupes across all shops and the hash is derived from `data` (two stores can share it).
    Without `webhook-id` the scope and `created_at` are added too, because BigCommerce documents `hash` as
    the SHA-1 of `data` alone, and `data` is the same (`{"type":"order","id":250}`) for every update of an
    order: a hash-only key would swallow later, real updates as duplicates. A repeat of the same event keeps
    its scope, hash and created_at, so it is still one delivery.

    Raises:
        WebhookVerificationError: the body is not a BigCommerce delivery (not JSON, no scope or hash).
    """
    payload = _parse_envelope(raw_body)
    shop_ref = path_ref or _store_hash(payload.get("producer"))
    if not shop_ref:
        raise WebhookVerificationError("no shop in the path and no store hash in 'producer'")
    created_at = _created_at(payload)
    message_id = headers.get(ID_HEADER)
    if message_id:
        delivery_id = f"{shop_ref}:{message_id}"
    else:
        delivery_id = f"{shop_ref}:{payload['scope']}:{payload['hash']}"
        if created_at is not None:
            delivery_id += f":{created_at}"
    triggered_at = datetime.fromtimestamp(created_at, UTC) if created_at is not None else None
    return Delivery(topic=payload["scope"], delivery_id=_bounded(delivery_id), shop_ref=shop_ref,
                    triggered_at=triggered_at)
