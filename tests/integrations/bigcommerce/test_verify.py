"""Authenticity and delivery identity: Standard Webhooks signing, the shared-secret header, read_delivery."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from integrations.base import WebhookVerificationError
from integrations.bigcommerce.webhooks import read_delivery, standard_signature, verify, verify_at
from tests.integrations.bigcommerce.conftest import WEBHOOK_SECRET, raw, secret_header, standard_headers

NOW = 1_764_000_000
BODY = raw("store_order_created.json")


def test_standard_signature_matches_the_published_standard_webhooks_vector() -> None:
    # The example in the Standard Webhooks spec and its reference libraries' tests.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_signature_agrees_with_the_standardwebhooks_package_keyed_as_bigcommerce_does() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    client_secret = "bc-app-client-secret-9f3k"
    # BigCommerce's sample base64-encodes the client secret before handing it to the library.
    webhook = standardwebhooks.Webhook(base64.b64encode(client_secret.encode()).decode())
    moment = datetime.fromtimestamp(NOW, UTC)
    theirs = webhook.sign("msg_1", moment, BODY.decode())
    assert standard_signature(client_secret, "msg_1", NOW, BODY) == theirs
    # And the package accepts what we sign (it checks the time against the real clock).
    headers = standard_headers(BODY, client_secret, message_id="msg_2")
    assert webhook.verify(BODY, headers)["scope"] == "store/order/created"


def test_standard_signature_accepted_with_any_secret_and_any_listed_signature() -> None:
    headers = standard_headers(BODY, WEBHOOK_SECRET, timestamp=NOW)
    headers["webhook-signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]
    verify_at(headers, BODY, ["old-secret", WEBHOOK_SECRET], NOW)
    verify(standard_headers(BODY), BODY, [WEBHOOK_SECRET])  # the real clock


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "future")])
def test_standard_timestamp_more_than_five_minutes_off_is_refused(offset: int, word: str) -> None:
    headers = standard_headers(BODY, timestamp=NOW + offset)
    with pytest.raises(WebhookVerificationError, match=word):
        verify_at(headers, BODY, [WEBHOOK_SECRET], NOW)
    verify_at(standard_headers(BODY, timestamp=NOW + offset // 2), BODY, [WEBHOOK_SECRET], NOW)


def test_standard_signature_over_other_bytes_or_with_another_secret_does_not_match() -> None:
    headers = standard_headers(BODY, timestamp=NOW)
    with pytest.raises(WebhookVerificationError, match="webhook-signature does not match"):
        verify_at(headers, BODY + b" ", [WEBHOOK_SECRET], NOW)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_at(headers, BODY, ["another-secret"], NOW)


def test_standard_headers_missing_or_malformed_are_named() -> None:
    headers = standard_headers(BODY, timestamp=NOW)
    del headers["webhook-timestamp"]
    with pytest.raises(WebhookVerificationError, match="missing webhook-timestamp header"):
        verify_at(headers, BODY, [WEBHOOK_SECRET], NOW)
    headers = {**standard_headers(BODY, timestamp=NOW), "webhook-timestamp": "yesterday"}
    with pytest.raises(WebhookVerificationError, match="not unix seconds"):
        verify_at(headers, BODY, [WEBHOOK_SECRET], NOW)
    headers = {**standard_headers(BODY, timestamp=NOW), "webhook-signature": "v2,abc"}
    with pytest.raises(WebhookVerificationError, match="no v1 signature"):
        verify_at(headers, BODY, [WEBHOOK_SECRET], NOW)


def test_shared_secret_header_matches_any_secret_and_nothing_else() -> None:
    verify_at(secret_header(), BODY, ["new-secret", WEBHOOK_SECRET], NOW)
    with pytest.raises(WebhookVerificationError, match="X-Orderline-Webhook-Secret does not match"):
        verify_at(secret_header("guess"), BODY, [WEBHOOK_SECRET], NOW)


def test_no_signature_at_all_and_no_configured_secret_are_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="missing signature"):
        verify_at({"Content-Type": "application/json"}, BODY, [WEBHOOK_SECRET], NOW)
    with pytest.raises(WebhookVerificationError, match="no webhook secret"):
        verify_at(secret_header(""), BODY, [], NOW)


def test_read_delivery_takes_topic_and_time_from_the_body_and_dedupes_on_the_hash() -> None:
    delivery = read_delivery({}, BODY, "7")
    assert delivery.topic == "store/order/created"
    assert delivery.shop_ref == "7"
    assert delivery.delivery_id == "7:store/order/created:dd70c0976e06b67aaf671e73f49dcb79230ebf9d:1561479335"
    assert delivery.triggered_at == datetime(2019, 6, 25, 16, 15, 35, tzinfo=UTC)
    # A signed delivery is identified by its webhook-id instead.
    assert read_delivery(standard_headers(BODY, message_id="msg_9"), BODY, "7").delivery_id == "7:msg_9"


def test_read_delivery_falls_back_to_the_store_hash_in_producer() -> None:
    body = BODY.replace(b"stores/{store_hash}", b"stores/abc123")
    assert read_delivery({}, body, None).shop_ref == "abc123"


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"scope": "store/order/created"}',
                                  b'{"hash": "abc"}', b'{"scope": "", "hash": "abc"}'])
def test_read_delivery_refuses_what_bigcommerce_never_sends(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError, match="body"):
        read_delivery({}, body, "7")
