"""Reading and verifying deliveries: the activation ping, missing headers, signatures over exact bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from werkzeug.datastructures import Headers

from integrations.base import WebhookVerificationError
from integrations.woocommerce.fake import ping_request, wp_hash_delivery_id, wp_json_encode
from integrations.woocommerce.webhooks import (
    ALL_HEADERS,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TOPIC_HEADER,
    delivery_key,
    read_delivery,
    verify,
)
from tests.integrations.woocommerce.conftest import WEBHOOK_SECRET, fixture_bytes, signed


def php_hash_hmac(secret: str, body: bytes) -> str:
    """`base64_encode(hash_hmac('sha256', $body, $secret, true))`, written out independently of the code."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_ping__is_read_as_nothing_to_store() -> None:
    raw = fixture_bytes("ping.txt")
    assert raw == b"webhook_id=12"
    headers = Headers({"Content-Type": "application/x-www-form-urlencoded",
                       "User-Agent": "WooCommerce/9.4.3 Hookshot (WordPress/6.7.1)"})
    assert read_delivery(headers, raw, "1") is None
    assert read_delivery(Headers(ping_request(5).headers), ping_request(5).body, "1") is None


@pytest.mark.parametrize("body", [b"", b"{}", b"webhook_id=abc", b"hello"])
def test_a_request_without_the_ping_shape_and_without_headers_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError, match="missing X-WC-Webhook-Signature"):
        read_delivery(Headers({"Content-Type": "application/json"}), body, "1")


def test_a_ping_body_with_a_wc_header_is_not_a_ping() -> None:
    with pytest.raises(WebhookVerificationError, match="X-WC-Webhook-Signature"):
        read_delivery(Headers({TOPIC_HEADER: "order.created"}), b"webhook_id=12", "1")


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TOPIC_HEADER, DELIVERY_ID_HEADER])
def test_each_header_a_delivery_always_has_is_required(missing: str) -> None:
    request = signed("order.created", fixture_bytes("order_created.json"))
    headers = Headers({k: v for k, v in request.headers.items() if k != missing})
    with pytest.raises(WebhookVerificationError, match=f"missing {missing} header"):
        read_delivery(headers, request.body, "1")


def test_delivery__topic_shop_and_a_key_of_the_wc_id_plus_the_bytes() -> None:
    request = signed("order.updated", fixture_bytes("order_updated__completed.json"))
    # Header names arrive in any case; werkzeug's Headers looks them up case-insensitively.
    headers = Headers({k.lower(): v for k, v in request.headers.items()})
    delivery = read_delivery(headers, request.body, "42")
    assert delivery is not None
    assert (delivery.topic, delivery.shop_ref, delivery.triggered_at) == ("order.updated", "42", None)
    wc_id = request.headers[DELIVERY_ID_HEADER]
    assert delivery.delivery_id == f"{wc_id}:{hashlib.sha256(request.body).hexdigest()[:32]}"


def test_woocommerce_delivery_ids_repeat_within_a_second_so_the_key_adds_the_body() -> None:
    # wp_hash($webhook_id . strtotime('now')): one id for every delivery of a webhook in one second.
    assert wp_hash_delivery_id(7, 1_700_000_000.1) == wp_hash_delivery_id(7, 1_700_000_000.9)
    same_second = wp_hash_delivery_id(7, 1_700_000_000)
    assert delivery_key(same_second, b'{"id":1}') != delivery_key(same_second, b'{"id":2}')
    assert delivery_key(same_second, b'{"id":1}') == delivery_key(same_second, b'{"id":1}')


def test_every_request_sent_like_woocommerce_carries_all_seven_headers() -> None:
    request = signed("order.created", fixture_bytes("order_created.json"), webhook_id=7)
    assert set(ALL_HEADERS) <= set(request.headers)
    assert request.headers["X-WC-Webhook-Resource"] == "order"
    assert request.headers["X-WC-Webhook-Event"] == "created"
    assert request.headers["X-WC-Webhook-ID"] == "7"
    agent = request.headers["User-Agent"]
    assert agent.startswith("WooCommerce/") and "Hookshot" in agent


def test_verify__exact_bytes_as_php_signs_them() -> None:
    raw = fixture_bytes("order_created__wp_json_encode.json")
    assert b"\\/" in raw and b"\\u00eb" in raw and not raw.endswith(b"\n")
    headers = Headers({SIGNATURE_HEADER: php_hash_hmac(WEBHOOK_SECRET, raw)})
    verify(headers, raw, [WEBHOOK_SECRET])
    # The same order re-serialised by Python (the "/" unescaped) is other bytes: the signature no longer fits.
    redumped = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert redumped != raw
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify(headers, redumped, [WEBHOOK_SECRET])


def test_wp_json_encode_writes_what_woocommerce_wrote() -> None:
    raw = fixture_bytes("order_created__wp_json_encode.json")
    assert wp_json_encode(json.loads(raw)) == raw
    expected = b'{"url":"https:\\/\\/x\\/","name":"Zo\\u00eb"}'
    assert wp_json_encode({"url": "https://x/", "name": "Zoë"}) == expected


def test_verify__any_secret_of_a_rotation() -> None:
    raw = fixture_bytes("order_created.json")
    headers = Headers({SIGNATURE_HEADER: php_hash_hmac("old-secret", raw)})
    verify(headers, raw, ["new-secret", "old-secret"])


@pytest.mark.parametrize(("headers", "secrets", "message"), [
    ({}, [WEBHOOK_SECRET], "missing X-WC-Webhook-Signature header"),
    ({SIGNATURE_HEADER: "bm90IGl0"}, [WEBHOOK_SECRET], "does not match"),
    ({SIGNATURE_HEADER: php_hash_hmac("someone-else", b"x")}, [WEBHOOK_SECRET], "does not match"),
    ({SIGNATURE_HEADER: php_hash_hmac(WEBHOOK_SECRET, b"x")}, [], "no webhook secret"),
    ({SIGNATURE_HEADER: php_hash_hmac(WEBHOOK_SECRET, b"x")}, [""], "no webhook secret"),
])
def test_verify__refusals_say_why(headers: dict[str, str], secrets: list[str], message: str) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify(Headers(headers), b"x", secrets)
