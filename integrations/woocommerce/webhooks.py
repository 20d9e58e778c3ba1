"""Reading and authenticating WooCommerce webhook deliveries (PROTOCOLS.md §2.1).

A delivery is `POST /webhooks/woocommerce/<Orderline shop id>` with the JSON body WooCommerce built with
`trim(wp_json_encode($payload))` and seven headers: X-WC-Webhook-Source, -Topic, -Resource, -Event,
-Signature, -ID and -Delivery-ID. The signature is base64(HMAC-SHA256(webhook secret, raw body)); the secret
is the one set on the webhook in WooCommerce (Shop.webhook_secret_encrypted here).

When a webhook is saved active, WooCommerce first POSTs an unsigned ping, the form body `webhook_id=<id>`
with no X-WC-* headers, and refuses to activate the webhook unless it gets a 200: `read_delivery` answers
None for it, so the receiver says 200 and stores nothing.

The idempotency key is NOT the X-WC-Webhook-Delivery-ID header alone: WooCommerce computes it as
`wp_hash($webhook_id . strtotime('now'))` (class-wc-webhook.php `get_new_delivery_id`), so every delivery one
webhook sends within the same second shares it; a bulk status change in wp-admin would have all but the
first order dropped as duplicates. The key is that header plus a digest of the body: the same bytes sent
again are still a duplicate, two different orders in the same second are not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from integrations.base import Delivery, WebhookVerificationError, hmac_sha256_base64, matches_any

SOURCE_HEADER = "X-WC-Webhook-Source"
TOPIC_HEADER = "X-WC-Webhook-Topic"
RESOURCE_HEADER = "X-WC-Webhook-Resource"
EVENT_HEADER = "X-WC-Webhook-Event"
SIGNATURE_HEADER = "X-WC-Webhook-Signature"
WEBHOOK_ID_HEADER = "X-WC-Webhook-ID"
DELIVERY_ID_HEADER = "X-WC-Webhook-Delivery-ID"
ALL_HEADERS = (SOURCE_HEADER, TOPIC_HEADER, RESOURCE_HEADER, EVENT_HEADER, SIGNATURE_HEADER,
               WEBHOOK_ID_HEADER, DELIVERY_ID_HEADER)
# Without these three a request cannot be a WooCommerce delivery we can verify and deduplicate.
REQUIRED_HEADERS = (SIGNATURE_HEADER, TOPIC_HEADER, DELIVERY_ID_HEADER)

_PING_BODY = re.compile(rb"webhook_id=\d+")
_BODY_DIGEST_CHARS = 32
_MAX_HEADER_CHARS = 128


def is_ping(headers: Mapping[str, str], raw_body: bytes) -> bool:
    """WooCommerce's activation ping: `webhook_id=<id>` and not one X-WC-Webhook-* header."""
    return _PING_BODY.fullmatch(raw_body.strip()) is not None and not any(headers.get(h) for h in ALL_HEADERS)


def delivery_key(header_delivery_id: str, raw_body: bytes) -> str:
    """The inbox idempotency key: WooCommerce's per-second delivery id plus a digest of the exact bytes."""
    return f"{header_delivery_id}:{hashlib.sha256(raw_body).hexdigest()[:_BODY_DIGEST_CHARS]}"


def read_delivery(headers: Mapping[str, str], raw_body: bytes, path_ref: str | None) -> Delivery | None:
    """Topic, idempotency key and shop (the path's Orderline shop id); None for the activation ping.

    Raises:
        WebhookVerificationError: a header every WooCommerce delivery carries is missing, or the URL names
            no shop.
    """
    if is_ping(headers, raw_body):
        return None
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
    if missing:
        raise WebhookVerificationError(f"missing {', '.join(missing)} header: not a WooCommerce delivery")
    if not path_ref:
        raise WebhookVerificationError("the delivery URL names no shop (/webhooks/woocommerce/<shop id>)")
    delivery_id = headers.get(DELIVERY_ID_HEADER) or ""
    topic = headers.get(TOPIC_HEADER) or ""
    if len(delivery_id) > _MAX_HEADER_CHARS or len(topic) > _MAX_HEADER_CHARS:
        raise WebhookVerificationError(f"{DELIVERY_ID_HEADER} or {TOPIC_HEADER} is too long for WooCommerce")
    return Delivery(topic=topic.strip(), delivery_id=delivery_key(delivery_id.strip(), raw_body),
                    shop_ref=path_ref)


def signature(secret: str, raw_body: bytes) -> str:
    """X-WC-Webhook-Signature for these bytes, as WooCommerce's `generate_signature` computes it."""
    return hmac_sha256_base64(secret, raw_body)


def verify(headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> None:
    """Check X-WC-Webhook-Signature over the exact bytes against any of the shop's secrets (rotation).

    Raises:
        WebhookVerificationError: the header is missing, the shop has no secret, or nothing matches.
    """
    offered = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not offered:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    usable = [s for s in secrets if s]
    if not usable:
        raise WebhookVerificationError("this shop has no webhook secret, so no delivery can be verified")
    if not matches_any(offered, [signature(s, raw_body) for s in usable]):
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} does not match the body for this shop's secret")
