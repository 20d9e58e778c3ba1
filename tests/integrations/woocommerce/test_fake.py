"""The fake store itself: webhooks over real HTTP to the running receiver, and WooCommerce's auth checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from werkzeug.serving import make_server

from app.models import InboundEvent, Order
from integrations.woocommerce import oauth
from integrations.woocommerce.client import WooCommerceClient
from integrations.woocommerce.fake import FakeWooCommerce
from integrations.woocommerce.webhooks import ALL_HEADERS
from tests.integrations.woocommerce.conftest import WEBHOOK_SECRET, count, fixture_json, inbound


@pytest.fixture
def receiver(app: Any) -> Iterator[str]:
    """The Orderline app behind a real HTTP server on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_deliver_and_ping_reach_the_real_receiver(receiver: str, runtime: Any, woo_shop: int,
                                                  fake_store: FakeWooCommerce, run_jobs: Any) -> None:
    url = f"{receiver}/webhooks/woocommerce/{woo_shop}"
    ping = fake_store.ping(url, webhook_id=12)
    assert (ping.status, ping.succeeded) == (200, True)
    assert count(runtime, InboundEvent) == 0
    order = fixture_json("order_created.json")
    result = fake_store.deliver("order.created", order, url, WEBHOOK_SECRET, webhook_id=12)
    assert (result.status, result.succeeded) == (200, True)
    deleted = fake_store.deliver("order.deleted", order, url, WEBHOOK_SECRET, webhook_id=13)
    assert deleted.request.body == b'{"id":727}'
    run_jobs()
    [created, removed] = inbound(runtime)
    stored = {name.lower(): value for name, value in created.headers.items()}
    assert {name.lower() for name in ALL_HEADERS} <= set(stored)
    assert stored["user-agent"].startswith("WooCommerce/")
    assert stored["x-wc-webhook-source"] == fake_store.url
    assert created.body == result.request.body and b"https:\\/\\/example.com" in created.body
    assert (created.status, removed.status) == ("processed", "processed")
    assert count(runtime, Order) == 1


def test_a_refused_delivery_is_reported_like_woocommerce_counts_it(receiver: str, woo_shop: int,
                                                                   fake_store: FakeWooCommerce) -> None:
    url = f"{receiver}/webhooks/woocommerce/{woo_shop}"
    result = fake_store.deliver("order.created", fixture_json("order_created.json"), url, "wrong-secret")
    assert (result.status, result.succeeded) == (401, False)
    assert fake_store.ping("http://127.0.0.1:9/nowhere", timeout=2).status == 0


def test_webhooks_registered_through_the_api_are_emitted(receiver: str, runtime: Any, woo_shop: int,
                                                         fake_store: FakeWooCommerce, run_jobs: Any) -> None:
    client = WooCommerceClient(fake_store.url, fake_store.consumer_key, fake_store.consumer_secret,
                               webhook_secret=WEBHOOK_SECRET)
    address = f"{receiver}/webhooks/woocommerce/{woo_shop}"
    client.register_webhooks(address, ["order.created", "order.updated"])
    fake_store.add_order(fixture_json("order_created.json"))
    assert [r.status for r in fake_store.emit("order.created", 727)] == [200]
    fake_store.update_order(727, status="completed")
    assert [r.status for r in fake_store.emit("order.updated", 727)] == [200]
    run_jobs()
    assert [r.status for r in inbound(runtime)] == ["processed", "processed"]
    with runtime.db.session() as session:
        assert session.query(Order).one().fulfillment_status == "fulfilled"


def _oauth_get(store: FakeWooCommerce, params: list[tuple[str, str]], **overrides: str) -> requests.Response:
    url = store.url.rstrip("/") + "/wp-json/wc/v3/orders"
    signed = dict(oauth.signed_params("GET", url, params, store.consumer_key, store.consumer_secret))
    signed.update(overrides)
    return requests.get(f"{url}?{urlencode(signed)}", timeout=5)


def test_the_fake_checks_oauth1_like_woocommerce(fake_store: FakeWooCommerce) -> None:
    params = [("per_page", "10")]
    assert _oauth_get(fake_store, params).status_code == 200
    tampered = _oauth_get(fake_store, params, per_page="11")
    assert tampered.status_code == 401
    assert tampered.json()["message"] == "Invalid signature - provided signature does not match."
    old = _oauth_get(fake_store, params, oauth_timestamp=str(int(time.time()) - 3600))
    assert old.status_code == 401  # the signature no longer matches either; both are refusals
    missing = _oauth_get(fake_store, params, oauth_nonce="")
    assert missing.json()["message"] == "Missing OAuth parameter oauth_nonce"


def test_the_fake_refuses_a_replayed_nonce_and_a_stale_timestamp(fake_store: FakeWooCommerce) -> None:
    url = fake_store.url.rstrip("/") + "/wp-json/wc/v3/orders"
    once = oauth.signed_params("GET", url, [], fake_store.consumer_key, fake_store.consumer_secret,
                               nonce="n-1")
    assert requests.get(f"{url}?{urlencode(once)}", timeout=5).status_code == 200
    replay = requests.get(f"{url}?{urlencode(once)}", timeout=5)
    assert replay.json()["message"] == "Invalid nonce - nonce has already been used."
    stale = oauth.signed_params("GET", url, [], fake_store.consumer_key, fake_store.consumer_secret,
                                timestamp=int(time.time()) - 20 * 60)
    assert requests.get(f"{url}?{urlencode(stale)}", timeout=5).json()["message"] == "Invalid timestamp."


def test_the_fake_without_credentials_and_with_query_keys(fake_store: FakeWooCommerce) -> None:
    url = fake_store.url.rstrip("/") + "/wp-json/wc/v3/orders"
    bare = requests.get(url, timeout=5)
    assert (bare.status_code, bare.json()["code"]) == (401, "woocommerce_rest_cannot_view")
    keys = {"consumer_key": fake_store.consumer_key, "consumer_secret": fake_store.consumer_secret}
    assert requests.get(url, params=keys, timeout=5).status_code == 200
    assert [r.auth for r in fake_store.requests] == [None, "query"]


def test_the_fake_pages_like_the_wp_rest_api(fake_store: FakeWooCommerce) -> None:
    for n in range(25):
        fake_store.add_order({**fixture_json("order_created.json"), "id": 2000 + n})
    keys = {"consumer_key": fake_store.consumer_key, "consumer_secret": fake_store.consumer_secret}
    url = fake_store.url.rstrip("/") + "/wp-json/wc/v3/orders"
    paging = {"per_page": "10", "page": "2", "orderby": "id", "order": "asc"}
    answer = requests.get(url, params={**keys, **paging}, timeout=5)
    assert (answer.headers["X-WP-Total"], answer.headers["X-WP-TotalPages"]) == ("25", "3")
    assert [o["id"] for o in answer.json()] == list(range(2010, 2020))
    assert 'rel="next"' in answer.headers["Link"] and 'rel="prev"' in answer.headers["Link"]
    too_many = requests.get(url, params={**keys, "per_page": "101"}, timeout=5)
    assert (too_many.status_code, too_many.json()["code"]) == (400, "rest_invalid_param")
