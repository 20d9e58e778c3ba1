"""The REST client against the fake BigCommerce on loopback: reads, paging, hooks, and every failure class."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.failures import PermanentError, TransientError
from integrations import channel
from integrations.base import ShopAccess
from integrations.bigcommerce.client import BigCommerceClient
from integrations.bigcommerce.fake import FakeBigCommerce, rfc2822, sample_order
from tests.integrations.bigcommerce.conftest import ACCESS_TOKEN, STORE_HASH, load, stock_order


def client_for(fake: FakeBigCommerce, **options: object) -> BigCommerceClient:
    credentials = {"store_hash": STORE_HASH, "access_token": ACCESS_TOKEN, **options}
    access = ShopAccess(external_id=STORE_HASH, credentials=credentials,  # type: ignore[arg-type]
                        api_base_url=fake.url, settings={"api_timeout_seconds": 2})
    client = channel("bigcommerce").make_client(access)
    assert isinstance(client, BigCommerceClient)
    return client


def test_fetch_order_reads_order_products_and_addresses_with_the_token(fake: FakeBigCommerce) -> None:
    stock_order(fake, 250)
    order = client_for(fake).fetch_order("250")
    assert order.external_id == "250" and order.currency == "USD"
    assert [i.external_id for i in order.line_items] == ["65", "66"]
    assert order.shipping_address is not None and order.shipping_address.city == "San Antonio"
    paths = [r.path for r in fake.requests]
    assert paths == ["/stores/abc123/v2/orders/250", "/stores/abc123/v2/orders/250/products",
                     "/stores/abc123/v2/orders/250/shipping_addresses"]
    assert all(r.headers["X-Auth-Token"] == ACCESS_TOKEN and r.headers["Accept"] == "application/json"
               for r in fake.requests)


def test_fetch_order_with_refunds_reads_the_v3_refund_list(fake: FakeBigCommerce) -> None:
    fake.add_order({**load("api_get_order_response__partially_refunded.json"), "id": 218},
                   load("api_get_order_products_response.json"),
                   load("api_get_order_shipping_addresses_response.json"),
                   load("api_get_order_refunds_response.json")["data"])
    order = client_for(fake).fetch_order("218")
    refunds = [(r.external_id, r.amount, r.line_items) for r in order.refunds]
    assert refunds == [("3", Decimal("10.00"), {"65": 1})]
    assert fake.requests[-1].path == "/stores/abc123/v3/orders/218/payment_actions/refunds"


def test_products_are_read_past_the_first_page(fake: FakeBigCommerce) -> None:
    order, products, addresses = sample_order(400, lines=1)
    many = [{**products[0], "id": 5000 + n, "sku": f"SKU-{n}"} for n in range(260)]
    fake.add_order(order, many, addresses)
    assert len(client_for(fake).fetch_order("400").line_items) == 260
    assert [r.query["page"] for r in fake.requests_to("/products")] == ["1", "2"]


def test_changed_orders_pages_oldest_first_from_since(fake: FakeBigCommerce) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(120):
        fake.add_order(*sample_order(1000 + n, date_modified=start + timedelta(minutes=119 - n)))
    fake.add_order(*sample_order(999, date_modified=start - timedelta(days=1)))  # before `since`
    fake.add_order(*sample_order(998, date_modified=start + timedelta(hours=5), status_id=0))  # a checkout
    client = client_for(fake)
    seen, cursor, pages = [], None, 0
    while True:
        page = client.changed_orders(start, cursor)
        seen += page.orders
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert [o.external_id for o in seen] == [str(1000 + n) for n in reversed(range(120))]
    assert all(a.channel_updated_at <= b.channel_updated_at for a, b in zip(seen, seen[1:], strict=False))  # type: ignore[operator]
    listing = fake.requests_to("/v2/orders")[0]
    assert listing.query == {"min_date_modified": rfc2822(start), "sort": "date_modified:asc", "limit": "50",
                             "page": "1"}


def test_changed_orders_with_nothing_new_is_one_empty_page(fake: FakeBigCommerce) -> None:
    page = client_for(fake).changed_orders(datetime.now(UTC))
    assert page.orders == [] and page.next_cursor is None


def test_register_webhooks_creates_one_v3_hook_per_scope_carrying_the_secret(fake: FakeBigCommerce) -> None:
    client = client_for(fake, webhook_secret="hook-secret")
    ids = client.register_webhooks("https://orderline.example/webhooks/bigcommerce/7",
                                   ["store/order/created", "store/order/statusUpdated"])
    assert ids == [str(h["id"]) for h in fake.hooks] and len(ids) == 2
    sent = json.loads(fake.requests_to("/v3/hooks", "POST")[0].body)
    assert sent == {"scope": "store/order/created", "destination": "https://orderline.example/webhooks/bigcommerce/7",
                    "is_active": True, "headers": {"X-Orderline-Webhook-Secret": "hook-secret"}}


def test_429_is_transient_with_the_reset_time_as_retry_after(fake: FakeBigCommerce) -> None:
    stock_order(fake, 250)
    fake.fail_next(429, reset_ms=1500)
    with pytest.raises(TransientError) as caught:
        client_for(fake).fetch_order("250")
    assert caught.value.retry_after == 1.5
    assert "429" in str(caught.value)


def test_5xx_is_transient(fake: FakeBigCommerce) -> None:
    fake.fail_next(503)
    with pytest.raises(TransientError, match="HTTP 503"):
        client_for(fake).fetch_order("250")


def test_unknown_order_and_a_refused_token_are_permanent_with_its_message(fake: FakeBigCommerce) -> None:
    with pytest.raises(PermanentError, match="HTTP 404 The requested resource was not found"):
        client_for(fake).fetch_order("999")
    stock_order(fake, 250)
    wrong = BigCommerceClient(STORE_HASH, "revoked-token", base_url=fake.url)
    with pytest.raises(PermanentError, match="HTTP 401 You are not authorized"):
        wrong.fetch_order("250")


def test_a_hang_becomes_transient_within_the_timeout(fake: FakeBigCommerce) -> None:
    stock_order(fake, 250)
    fake.hang_next(3)
    client = BigCommerceClient(STORE_HASH, ACCESS_TOKEN, base_url=fake.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer within 0.5 s"):
        client.fetch_order("250")
    assert time.monotonic() - started < 2


def test_an_unreachable_api_is_transient() -> None:
    client = BigCommerceClient(STORE_HASH, ACCESS_TOKEN, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(TransientError, match="ConnectionError"):
        client.fetch_order("250")


def test_missing_credentials_are_permanent() -> None:
    with pytest.raises(PermanentError, match="access_token"):
        BigCommerceClient(STORE_HASH, "")
