"""read_delivery and verify on their own: header rules, HMAC over raw bytes, secret rotation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from werkzeug.datastructures import Headers

from integrations.base import WebhookVerificationError
from integrations.shopify.webhook import read_delivery, verify
from tests.integrations.shopify.conftest import SHOP_DOMAIN, fixture_bytes, shopify_headers, sign

RAW = fixture_bytes("orders_create.json")


def test_read_delivery_takes_topic_webhook_id_domain_and_time_case_insensitively() -> None:
    headers = Headers(
        {k.lower(): v for k, v in shopify_headers("orders/create", RAW, webhook_id="w-1").items()}
    )
    headers["x-shopify-triggered-at"] = "2026-11-27T08:00:01.887945325Z"  # Shopify sends nanoseconds
    delivery = read_delivery(headers, RAW, None)
    assert (delivery.topic, delivery.delivery_id, delivery.shop_ref) == ("orders/create", "w-1", SHOP_DOMAIN)
    assert delivery.triggered_at == datetime(2026, 11, 27, 8, 0, 1, 887945, tzinfo=UTC)


def test_an_unreadable_triggered_at_is_ignored_not_fatal() -> None:
    headers = Headers(shopify_headers("orders/create", RAW))
    headers["X-Shopify-Triggered-At"] = "yesterday"
    assert read_delivery(headers, RAW, None).triggered_at is None


def test_read_delivery_names_every_missing_required_header() -> None:
    with pytest.raises(WebhookVerificationError, match="X-Shopify-Topic, X-Shopify-Webhook-Id"):
        read_delivery(
            Headers(
                {
                    "X-Shopify-Hmac-Sha256": "x",
                    "X-Shopify-Shop-Domain": SHOP_DOMAIN,
                    "X-Shopify-API-Version": "2026-07",
                }
            ),
            RAW,
            None,
        )


def test_verify_accepts_the_right_signature_and_any_secret_of_a_rotation() -> None:
    headers = Headers({"X-Shopify-Hmac-Sha256": sign(RAW, "old")})
    verify(headers, RAW, ["new", "old"])
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify(headers, RAW, ["new"])


@pytest.mark.parametrize(
    ("headers", "body", "secrets", "message"),
    [
        ({}, RAW, ["s"], "missing X-Shopify-Hmac-Sha256"),
        ({"X-Shopify-Hmac-Sha256": sign(b"", "s")}, b"", ["s"], "empty body"),
        ({"X-Shopify-Hmac-Sha256": sign(RAW, "s")}, RAW, [], "no Shopify API secret is configured"),
        ({"X-Shopify-Hmac-Sha256": sign(RAW, "s").lower()}, RAW, ["s"], "does not match"),
    ],
)
def test_verify_failures_say_what_is_wrong(
    headers: dict[str, str], body: bytes, secrets: list[str], message: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify(Headers(headers), body, secrets)
