"""POST /webhooks/woocommerce/<shop id> end to end: real signatures over fixture bytes, inbox, ingest."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.models import InboundEvent, Order
from integrations import channel
from integrations.woocommerce.fake import WEBHOOK_TOPICS, webhook_request
from tests.integrations.woocommerce.conftest import (
    WEBHOOK_SECRET,
    add_shop,
    count,
    deliver,
    fixture_bytes,
    fixture_name,
    inbound,
    only_order,
    post,
    signed,
)

SPEC = channel("woocommerce")


def test_order_created__answers_200_and_the_order_appears(client: Any, runtime: Any, woo_shop: int,
                                                         run_jobs: Any, auth: Any) -> None:
    response = deliver(client, woo_shop, "order.created", "order_created.json")
    assert response.status_code == 200
    assert response.json["status"] == "accepted"
    assert count(runtime, Order) == 0  # stored now, processed by the job
    run_jobs()
    order = only_order(runtime)
    seen = client.get(f"/api/v1/orders/{order.id}", headers=auth("viewer")).json
    assert (seen["channel"], seen["external_id"], seen["number"]) == ("woocommerce", "727", "727")
    assert (seen["currency"], seen["total"], seen["financial_status"]) == ("USD", "29.35", "paid")
    assert seen["customer"]["name"] == "John Doe"
    assert seen["shipping_address"]["country_code"] == "US"
    assert [i["sku"] for i in seen["line_items"]] == [None, "Bar3"]
    assert seen["status"] == "needs_review"
    [row] = inbound(runtime)
    assert (row.provider, row.topic, row.status, row.order_external_id) == ("woocommerce", "order.created",
                                                                           "processed", "727")
    assert row.body == fixture_bytes("order_created.json")


def test_order_created__wp_json_encode__the_bytes_woocommerce_sends(client: Any, runtime: Any, woo_shop: int,
                                                                   run_jobs: Any) -> None:
    response = deliver(client, woo_shop, "order.created", "order_created__wp_json_encode.json")
    assert response.status_code == 200
    run_jobs()
    order = only_order(runtime)
    assert (order.customer_name, order.note) == ("Zoë Doe", "Ring twice – side door")
    assert inbound(runtime)[0].body == fixture_bytes("order_created__wp_json_encode.json")


def test_the_same_delivery_twice_is_one_inbox_row_and_one_order(client: Any, runtime: Any, woo_shop: int,
                                                                run_jobs: Any) -> None:
    request = signed("order.created", fixture_bytes("order_created.json"))
    first, second = post(client, woo_shop, request), post(client, woo_shop, request)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json["status"] == "accepted"
    assert second.json == {"status": "duplicate"}
    run_jobs()
    assert (count(runtime, InboundEvent), count(runtime, Order)) == (1, 1)


def test_two_orders_in_the_same_second_share_woocommerces_delivery_id_and_both_arrive(
        client: Any, runtime: Any, woo_shop: int, run_jobs: Any) -> None:
    # A bulk action in wp-admin: one webhook, one second, one X-WC-Webhook-Delivery-ID for every order.
    now = datetime.now(UTC).timestamp()
    first = webhook_request("order.created", fixture_bytes("order_created.json"), WEBHOOK_SECRET, now=now)
    second = webhook_request("order.created", fixture_bytes("order_created__coupon_fees_express.json"),
                             WEBHOOK_SECRET, now=now)
    assert first.headers["X-WC-Webhook-Delivery-ID"] == second.headers["X-WC-Webhook-Delivery-ID"]
    assert post(client, woo_shop, first).json["status"] == "accepted"
    assert post(client, woo_shop, second).json["status"] == "accepted"
    run_jobs()
    assert count(runtime, Order) == 2


@pytest.mark.parametrize(("change", "message"), [
    ({"X-WC-Webhook-Signature": "AAAA"}, "does not match"),
    ({"X-WC-Webhook-Signature": None}, "missing X-WC-Webhook-Signature"),
    ({"secret": "not-the-shops-secret"}, "does not match"),
    ({"body": b'{"id":727,"status":"cancelled"}'}, "does not match"),
])
def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(
        client: Any, runtime: Any, woo_shop: int, change: dict[str, Any], message: str) -> None:
    secret = change.get("secret", WEBHOOK_SECRET)
    request = signed("order.created", fixture_bytes("order_created.json"), secret=secret)
    headers = {k: v for k, v in request.headers.items() if k not in change or change[k] is not None}
    headers.update({k: v for k, v in change.items() if k.startswith("X-") and v is not None})
    response = client.post(f"/webhooks/woocommerce/{woo_shop}", data=change.get("body", request.body),
                           headers=headers)
    assert response.status_code == 401
    assert message in response.json["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_a_shop_without_a_webhook_secret_accepts_nothing(client: Any, runtime: Any) -> None:
    shop_id = add_shop(runtime, secret=None)
    response = deliver(client, shop_id, "order.created", "order_created.json")
    assert response.status_code == 401
    assert count(runtime, InboundEvent) == 0


def test_a_rotated_secret_still_verifies_during_the_rotation(client: Any, runtime: Any) -> None:
    shop_id = add_shop(runtime, secret=["new-secret", WEBHOOK_SECRET])
    assert deliver(client, shop_id, "order.created", "order_created.json").status_code == 200
    assert deliver(client, shop_id, "order.updated", "order_updated__completed.json",
                   secret="new-secret").status_code == 200
    assert count(runtime, InboundEvent) == 2


def test_an_unknown_shop_is_404_and_nothing_is_stored(client: Any, runtime: Any, woo_shop: int) -> None:
    for ref in (str(woo_shop + 1000), "shop.example"):
        response = deliver(client, ref, "order.created", "order_created.json")
        assert response.status_code == 404
        assert response.json["error"]["code"] == "unknown_shop"
    assert count(runtime, InboundEvent) == 0


def test_the_activation_ping_is_200_and_stores_nothing(client: Any, runtime: Any, woo_shop: int) -> None:
    raw = fixture_bytes("ping.txt")
    response = client.post(f"/webhooks/woocommerce/{woo_shop}", data=raw,
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "User-Agent": "WooCommerce/9.4.3 Hookshot (WordPress/6.7.1)"})
    assert response.status_code == 200
    assert count(runtime, InboundEvent) == 0


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"id":727}', "application/json"),
    (b"webhook_id=12&extra=1", "application/x-www-form-urlencoded"),
    (b"", "application/json"),
])
def test_neither_a_ping_nor_signed_is_401(client: Any, runtime: Any, woo_shop: int, body: bytes,
                                          content_type: str) -> None:
    response = client.post(f"/webhooks/woocommerce/{woo_shop}", data=body,
                           headers={"Content-Type": content_type})
    assert response.status_code == 401
    assert "X-WC-Webhook-Signature" in response.json["error"]["message"]
    assert count(runtime, InboundEvent) == 0


def test_an_update_before_its_create_ends_with_the_newest_state(client: Any, runtime: Any, woo_shop: int,
                                                               run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.updated", "order_updated__completed.json")
    deliver(client, woo_shop, "order.created", "order_created.json")
    run_jobs()  # ingests in arrival order: the update first
    order = only_order(runtime)
    assert order.fulfillment_status == "fulfilled"
    assert order.channel_updated_at == datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC)
    assert [(r.topic, r.status) for r in inbound(runtime)] == [("order.updated", "processed"),
                                                               ("order.created", "stale")]


def test_an_old_update_after_a_new_one_is_stale_and_not_applied(client: Any, runtime: Any, woo_shop: int,
                                                                run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.created", "order_created.json")
    deliver(client, woo_shop, "order.updated", "order_updated__partially_refunded.json")  # 19:38:08
    run_jobs()
    deliver(client, woo_shop, "order.updated", "order_updated__completed.json")  # 19:30:35, late
    run_jobs()
    order = only_order(runtime)
    assert order.fulfillment_status == "unfulfilled"
    assert order.financial_status == "partially_refunded"
    assert order.refunded_total == Decimal("12.00")
    assert [r.status for r in inbound(runtime)] == ["processed", "processed", "stale"]


def test_a_refund_arriving_twice_is_counted_once(client: Any, runtime: Any, woo_shop: int,
                                                 run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.updated", "order_updated__partially_refunded.json")
    run_jobs()
    # WooCommerce sends the same order again (say a note was added a minute later).
    again = fixture_bytes("order_updated__partially_refunded.json").replace(b"19:38:08", b"19:39:08")
    post(client, woo_shop, signed("order.updated", again))
    run_jobs()
    order = only_order(runtime)
    assert [(r.external_id, r.amount) for r in order.refunds] == [("730", Decimal("12.00"))]
    assert order.refunded_total == Decimal("12.00")


def test_order_updated__cancelled_cancels_the_order(client: Any, runtime: Any, woo_shop: int,
                                                    run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.created", "order_created.json")
    deliver(client, woo_shop, "order.updated", "order_updated__cancelled.json")
    run_jobs()
    order = only_order(runtime)
    assert (order.status, order.financial_status) == ("cancelled", "voided")


def test_a_signed_body_that_is_not_json_is_kept_as_failed(client: Any, runtime: Any, woo_shop: int,
                                                          run_jobs: Any) -> None:
    response = deliver(client, woo_shop, "order.updated", "order_updated__not_json.txt")
    assert response.status_code == 200
    run_jobs()
    [row] = inbound(runtime)
    assert row.status == "failed"
    assert row.error is not None and "JSONDecodeError" in row.error
    assert count(runtime, Order) == 0


def test_a_payload_that_cannot_be_mapped_is_kept_as_failed_with_the_reason(
        client: Any, runtime: Any, woo_shop: int, run_jobs: Any) -> None:
    raw = fixture_bytes("order_created.json").replace(b'"country": "US"', b'"country": "USA"')
    assert post(client, woo_shop, signed("order.created", raw)).status_code == 200
    run_jobs()
    [row] = inbound(runtime)
    assert row.status == "failed"
    assert row.error is not None and "ISO 3166-1 alpha-2" in row.error


def test_order_deleted__cancels_an_order_not_yet_shipped(client: Any, runtime: Any, woo_shop: int,
                                                         run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.created", "order_created.json")
    run_jobs()
    deliver(client, woo_shop, "order.deleted", "order_deleted.json")
    run_jobs()
    order = only_order(runtime)
    assert (order.status, order.cancel_reason) == ("cancelled", "deleted")
    assert [(r.topic, r.status, r.order_external_id) for r in inbound(runtime)][-1] == ("order.deleted",
                                                                                       "processed", "727")


def test_order_restored__brings_the_order_up_to_date(client: Any, runtime: Any, woo_shop: int,
                                                     run_jobs: Any) -> None:
    deliver(client, woo_shop, "order.created", "order_created.json")
    deliver(client, woo_shop, "order.restored", "order_restored.json")
    run_jobs()
    assert only_order(runtime).channel_updated_at == datetime(2017, 3, 23, 12, 0, tzinfo=UTC)
    assert [r.status for r in inbound(runtime)] == ["processed", "processed"]


# Every topic the spec names, with its fixture, through the real receiver.
TOPIC_CASES = [
    ("order.created", None, "processed"),
    ("order.updated", "completed", "processed"),
    ("order.restored", None, "processed"),
    ("order.deleted", None, "processed"),
    *[(topic, None, "ignored") for topic in sorted(SPEC.ignored_topics)],
]


def test_every_topic_of_the_spec_has_a_case() -> None:
    assert {topic for topic, _, _ in TOPIC_CASES} == SPEC.all_topics
    # Every core WooCommerce topic is either used or deliberately ignored.
    assert SPEC.all_topics == WEBHOOK_TOPICS


@pytest.mark.parametrize(("topic", "variant", "status"), TOPIC_CASES)
def test_every_topic(client: Any, runtime: Any, woo_shop: int, run_jobs: Any, topic: str, variant: str | None,
                     status: str) -> None:
    response = deliver(client, woo_shop, topic, fixture_name(topic, variant))
    assert response.status_code == 200
    run_jobs()
    [row] = inbound(runtime)
    assert (row.topic, row.status) == (topic, status)
    makes_an_order = topic in ("order.created", "order.updated", "order.restored")
    assert count(runtime, Order) == (1 if makes_an_order else 0)


def test_an_unknown_topic_fails_loudly(client: Any, runtime: Any, woo_shop: int, run_jobs: Any) -> None:
    post(client, woo_shop, signed("action.woocommerce_add_to_cart", b'{"action":"x","arg":"abc"}'))
    run_jobs()
    [row] = inbound(runtime)
    assert row.status == "failed" and "unknown topic" in (row.error or "")


def test_the_shop_is_found_by_its_id_not_its_url(client: Any, runtime: Any, woo_shop: int) -> None:
    other = add_shop(runtime, external_id="https://other.example/", secret="other-secret")
    # Signed for the first shop but posted to the second: the second shop's secret does not verify it.
    request = signed("order.created", fixture_bytes("order_created.json"))
    assert post(client, other, request).status_code == 401
    assert count(runtime, InboundEvent) == 0
