"""The REST client against the fake store: auth per scheme, paging, and how failures are classified."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.failures import PermanentError, TransientError
from app.models import Order, Shop
from integrations.base import ShopAccess
from integrations.woocommerce import oauth
from integrations.woocommerce.client import WooCommerceClient, make_client, modified_after
from integrations.woocommerce.fake import FakeWooCommerce
from tests.integrations.woocommerce.conftest import add_shop, fixture_json

START = datetime(2026, 1, 1, tzinfo=UTC)


def client_for(store: FakeWooCommerce, **kwargs: Any) -> WooCommerceClient:
    return WooCommerceClient(store.url, store.consumer_key, store.consumer_secret, **kwargs)


def numbered_orders(store: FakeWooCommerce, how_many: int) -> None:
    """Orders 1000… modified one minute apart from START (site time two hours ahead, to tell them apart)."""
    template = fixture_json("order_created.json")
    for n in range(how_many):
        order = copy.deepcopy(template)
        modified = START + timedelta(minutes=n)
        order.update(id=1000 + n, number=str(1000 + n),
                     date_modified_gmt=modified.strftime("%Y-%m-%dT%H:%M:%S"),
                     date_modified=(modified + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"))
        store.add_order(order)


def test_fetch_order_over_http_signs_with_oauth1(fake_store: FakeWooCommerce) -> None:
    fake_store.add_order(fixture_json("order_created.json"))
    order = client_for(fake_store).fetch_order("727")
    assert (order.external_id, order.currency, order.customer_name) == ("727", "USD", "John Doe")
    assert order.shipping_total == Decimal("10.00")
    [request] = fake_store.requests
    assert (request.method, request.path) == ("GET", "/wp-json/wc/v3/orders/727")
    assert (request.auth, request.status) == ("oauth1", 200)
    assert request.query["oauth_signature_method"] == "HMAC-SHA256"
    assert "Authorization" not in request.headers  # WooCommerce ignores Basic auth without TLS


def test_fetch_order_over_https_uses_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeWooCommerce(tls=True) as store:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(store.ca_file))
        store.add_order(fixture_json("order_updated__completed.json"))
        assert store.url.startswith("https://")
        order = client_for(store).fetch_order("727")
        assert order.fulfillment_status == "fulfilled"
        [request] = store.requests
        assert request.auth == "basic"
        assert not any(name.startswith("oauth_") for name in request.query)


def test_oauth1_signatures_equal_woocommerces_own_python_client() -> None:
    # Vectors from woocommerce/wc-api-python 3.0.0 (`OAuth.get_oauth_url`, nonce and timestamp fixed).
    params = [("modified_after", "2017-03-22T19:28:07"), ("dates_are_gmt", "true"), ("orderby", "modified"),
              ("order", "asc"), ("per_page", "50"), ("page", "2")]
    signed = oauth.signed_params("GET", "http://127.0.0.1:8080/wp-json/wc/v3/orders", params, "ck_4f2b",
                                 "cs_9e1d", timestamp=1700000000,
                                 nonce="0123456789abcdef0123456789abcdef01234567")
    assert signed[-1] == ("oauth_signature", "/YFu6BKicM63y5KPRS66rFfxbBhy5Ded9dxomALz1hI=")
    signed = oauth.signed_params("POST", "http://127.0.0.1:8080/wp-json/wc/v3/webhooks", [], "ck_4f2b",
                                 "cs_9e1d", timestamp=1700000100,
                                 nonce="f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed")
    assert signed[-1] == ("oauth_signature", "lykJlSTnbUC96YZ3W3xnR8kGplu10HUXN3MfuWWRnfw=")


def test_oauth1_values_with_slashes_are_encoded_as_the_server_does(fake_store: FakeWooCommerce) -> None:
    # wc-api-python leaves "/" unencoded when signing and WooCommerce refuses it; here it must pass.
    client = client_for(fake_store)
    client._send("GET", "orders", [("search", "a/b c+d"), ("per_page", "10")])
    assert fake_store.requests[-1].status == 200


def test_changed_orders_pages_oldest_first_from_since(fake_store: FakeWooCommerce) -> None:
    numbered_orders(fake_store, 120)
    client = client_for(fake_store)
    since = START + timedelta(minutes=10)
    pages, cursor = [], None
    while True:
        page = client.changed_orders(since, cursor)
        pages.append([o.external_id for o in page.orders])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [50, 50, 10]
    ids = [i for p in pages for i in p]
    # The order modified exactly at `since` is included; the ten before it are not.
    assert ids == [str(1000 + n) for n in range(10, 120)]
    first = fake_store.requests[0].query
    assert {k: v for k, v in first.items() if not k.startswith("oauth_")} == {
        "modified_after": "2026-01-01T00:09:59", "dates_are_gmt": "true", "orderby": "modified",
        "order": "asc", "per_page": "50", "page": "1"}
    assert [r.query["page"] for r in fake_store.requests] == ["1", "2", "3"]


def test_changed_orders_with_nothing_new(fake_store: FakeWooCommerce) -> None:
    numbered_orders(fake_store, 3)
    page = client_for(fake_store).changed_orders(START + timedelta(days=1))
    assert (page.orders, page.next_cursor) == ([], None)


def test_changed_orders_skips_an_order_it_cannot_map(fake_store: FakeWooCommerce) -> None:
    numbered_orders(fake_store, 2)
    fake_store.orders[1000]["currency"] = ""
    page = client_for(fake_store).changed_orders(START)
    assert [o.external_id for o in page.orders] == ["1001"]


def test_modified_after_steps_back_a_second_and_needs_an_aware_time() -> None:
    assert modified_after(datetime(2026, 1, 1, 1, 0, 0, 999_000, tzinfo=UTC)) == "2026-01-01T00:59:59"
    assert modified_after(datetime(2026, 1, 1, 3, 0, tzinfo=UTC).astimezone()) == "2026-01-01T02:59:59"
    with pytest.raises(ValueError, match="timezone-aware"):
        modified_after(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_429_is_transient_with_retry_after(fake_store: FakeWooCommerce) -> None:
    fake_store.add_order(fixture_json("order_created.json"))
    fake_store.fail_next(429, retry_after=7)
    with pytest.raises(TransientError, match="HTTP 429") as caught:
        client_for(fake_store).fetch_order("727")
    assert caught.value.retry_after == 7.0
    assert client_for(fake_store).fetch_order("727").external_id == "727"  # only the next one failed


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient(fake_store: FakeWooCommerce, status: int) -> None:
    fake_store.fail_next(status)
    with pytest.raises(TransientError, match=f"HTTP {status}") as caught:
        client_for(fake_store).changed_orders(START)
    assert caught.value.retry_after is None


def test_refused_keys_are_permanent_with_woocommerces_message(fake_store: FakeWooCommerce) -> None:
    fake_store.add_order(fixture_json("order_created.json"))
    wrong = WooCommerceClient(fake_store.url, fake_store.consumer_key, "cs_wrong")
    refused = "HTTP 401 woocommerce_rest_authentication_error: Invalid signature"
    with pytest.raises(PermanentError, match=refused):
        wrong.fetch_order("727")
    unknown = WooCommerceClient(fake_store.url, "ck_nobody", fake_store.consumer_secret)
    with pytest.raises(PermanentError, match="Consumer key is invalid"):
        unknown.fetch_order("727")


def test_a_missing_order_is_permanent(fake_store: FakeWooCommerce) -> None:
    with pytest.raises(PermanentError, match="HTTP 404 woocommerce_rest_shop_order_invalid_id: Invalid ID."):
        client_for(fake_store).fetch_order("999")
    with pytest.raises(PermanentError, match="not a WooCommerce order id"):
        client_for(fake_store).fetch_order("../webhooks")


def test_a_hang_is_transient_within_the_timeout(fake_store: FakeWooCommerce) -> None:
    fake_store.add_order(fixture_json("order_created.json"))
    fake_store.hang_next(seconds=30)
    access = ShopAccess(external_id=fake_store.url, settings={"api_timeout_seconds": 0.5},
                        credentials={"consumer_key": fake_store.consumer_key,
                                     "consumer_secret": fake_store.consumer_secret})
    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer within 0.5 s"):
        make_client(access).fetch_order("727")
    assert time.monotonic() - started < 3


def test_nobody_listening_is_transient() -> None:
    with FakeWooCommerce() as store:
        url = store.url
    with pytest.raises(TransientError, match="ConnectionError"):
        WooCommerceClient(url, "ck_x", "cs_x", timeout=2).fetch_order("727")


def test_register_webhooks_creates_then_updates_instead_of_duplicating(fake_store: FakeWooCommerce) -> None:
    client = client_for(fake_store, webhook_secret="whsec-for-woo")
    address = "https://orderline.example/webhooks/woocommerce/3"
    topics = ["order.created", "order.deleted", "order.restored", "order.updated"]
    ids = client.register_webhooks(address, topics)
    assert len(set(ids)) == 4
    hooks = [fake_store.webhooks[int(i)] for i in ids]
    assert [(h["topic"], h["delivery_url"], h["status"]) for h in hooks] == [(t, address, "active")
                                                                            for t in topics]
    assert "secret" not in hooks[0]  # write-only, as in WooCommerce
    created = [r for r in fake_store.requests if r.method == "POST"]
    assert len(created) == 4 and all(b'"secret": "whsec-for-woo"' in r.body for r in created)
    # WooCommerce disabled one after five failed deliveries: registering again re-activates it.
    fake_store.webhooks[int(ids[0])]["status"] = "disabled"
    assert client.register_webhooks(address, topics) == ids
    assert len(fake_store.webhooks) == 4
    assert fake_store.webhooks[int(ids[0])]["status"] == "active"


def test_register_webhooks_needs_the_webhook_secret(fake_store: FakeWooCommerce) -> None:
    with pytest.raises(PermanentError, match="webhook_secret"):
        client_for(fake_store).register_webhooks("https://orderline.example/webhooks/woocommerce/3",
                                                 ["order.created"])
    assert fake_store.requests == []


def test_an_invalid_topic_is_permanent(fake_store: FakeWooCommerce) -> None:
    with pytest.raises(PermanentError, match="HTTP 400 rest_invalid_param"):
        client_for(fake_store, webhook_secret="s").register_webhooks("https://o.example/", ["order.paid"])


def test_make_client_reads_the_documented_credentials() -> None:
    access = ShopAccess(external_id="https://shop.example/shop", credentials={
        "consumer_key": "ck_1", "consumer_secret": "cs_1", "webhook_secret": "w"})
    client = make_client(access)
    assert client.api_url == "https://shop.example/shop/wp-json/wc/v3/"
    assert (client.uses_oauth, client.webhook_secret) == (False, "w")
    override = make_client(ShopAccess(external_id="https://shop.example/", api_base_url="http://127.0.0.1:9/",
                                      credentials={"consumer_key": "ck_1", "consumer_secret": "cs_1"}))
    assert override.api_url == "http://127.0.0.1:9/wp-json/wc/v3/" and override.uses_oauth
    with pytest.raises(PermanentError, match="consumer_key"):
        make_client(ShopAccess(external_id="https://shop.example/", credentials={}))
    with pytest.raises(PermanentError, match="https://"):
        make_client(ShopAccess(external_id="shop.example", credentials={"consumer_key": "a",
                                                                        "consumer_secret": "b"}))


def test_the_shops_own_client_reads_its_sealed_credentials_and_url(runtime: Any,
                                                                    fake_store: FakeWooCommerce) -> None:
    # What reconciliation does with a WooCommerce shop: jobs.ingest.client_for, then apply each page.
    from app.orders import actions
    from jobs.ingest import client_for as shop_client

    fake_store.add_order(fixture_json("order_created.json"))
    fake_store.add_order(fixture_json("order_created__coupon_fees_express.json"))
    shop_id = add_shop(runtime, external_id=fake_store.url, credentials={
        "consumer_key": fake_store.consumer_key, "consumer_secret": fake_store.consumer_secret})
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        page = shop_client(runtime, shop).changed_orders(datetime(2017, 3, 1, tzinfo=UTC))
        assert page.next_cursor is None
        outcomes = [actions.apply_channel_order(session, shop, o)[1] for o in page.orders]
        assert outcomes == ["created", "created"]
    with runtime.db.session() as session:
        totals = sorted((o.external_id, o.total) for o in session.execute(select(Order)).scalars())
    assert totals == [("727", Decimal("29.35")), ("728", Decimal("39.12"))]
