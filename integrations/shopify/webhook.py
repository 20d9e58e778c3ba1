"""Shopify webhook deliveries: which delivery this is, and whether Shopify signed it.

Shopify signs every delivery with the app's client secret (one secret for all shops), as
`X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(secret, raw body))`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from integrations.base import Delivery, WebhookVerificationError, hmac_sha256_base64, matches_any

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
API_VERSION_HEADER = "X-Shopify-API-Version"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
NAME_HEADER = "X-Shopify-Name"

# What Shopify's own validator insists on (shopify-app-js `checkWebhooksHeaders`); the rest are optional.
REQUIRED_HEADERS = (HMAC_HEADER, TOPIC_HEADER, SHOP_DOMAIN_HEADER, API_VERSION_HEADER, WEBHOOK_ID_HEADER)


def read_delivery(headers: Mapping[str, str], raw_body: bytes, path_ref: str | None) -> Delivery:
    """Topic, delivery id and shop domain from the headers. Shopify sends no unsigned pings.

    Raises:
        WebhookVerificationError: a header every real delivery carries is missing.
    """
    missing = [name for name in REQUIRED_HEADERS if not (headers.get(name) or "").strip()]
    if missing:
        raise WebhookVerificationError(f"not a Shopify delivery: missing header(s) {', '.join(missing)}")
    return Delivery(
        topic=headers[TOPIC_HEADER].strip(),
        # The webhook id is stable across Shopify's retries of one delivery: the idempotency key.
        delivery_id=headers[WEBHOOK_ID_HEADER].strip(),
        shop_ref=headers[SHOP_DOMAIN_HEADER].strip().lower(),
        triggered_at=parse_triggered_at(headers.get(TRIGGERED_AT_HEADER)),
    )


def parse_triggered_at(value: str | None) -> datetime | None:
    """`X-Shopify-Triggered-At` as aware UTC; None when absent or unreadable (it is advisory only)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def verify(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> None:
    """Check `X-Shopify-Hmac-Sha256` over the exact raw bytes against any of the app secrets.

    Raises:
        WebhookVerificationError: no secret configured, header missing, empty body, or no secret matches.
    """
    if not secrets:
        raise WebhookVerificationError("no Shopify API secret is configured, so no delivery can be verified")
    received = (headers.get(HMAC_HEADER) or "").strip()
    if not received:
        raise WebhookVerificationError(f"missing {HMAC_HEADER} header")
    if not raw_body:
        raise WebhookVerificationError("empty body: Shopify always signs a JSON body")
    if not matches_any(received, [hmac_sha256_base64(secret, raw_body) for secret in secrets]):
        raise WebhookVerificationError(f"{HMAC_HEADER} does not match the body")
