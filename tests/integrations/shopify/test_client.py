"""The Admin GraphQL client against the fake Shopify over loopback: reads, paging, throttling, failures."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import shopify

from app.failures import PermanentError, TransientError
from app.models import Order, Shop
from app.orders import actions
from integrations.base import ShopAccess
from integrations.shopify.client import ShopifyClient, api_site, make_client
from integrations.shopify.fake import FakeShopify
from integrations.shopify.mapping import map_order
from jobs.ingest import client_for
from tests.integrations.shopify.conftest import (
    ACCESS_TOKEN,
    API_VERSION,
    SHOP_DOMAIN,
    count,
    fixture_json,
    the_order,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def access(fake: FakeShopify, **settings: Any) -> ShopAccess:
    return ShopAccess(
        external_id=SHOP_DOMAIN,
        credentials={"access_token": ACCESS_TOKEN},
        api_base_url=fake.url,
        settings={"api_version": API_VERSION, **settings},
    )


@pytest.fixture
def client(fake_shopify: FakeShopify) -> ShopifyClient:
    return ShopifyClient(access(fake_shopify, api_timeout_seconds=2))


def synthetic_orders(count: int) -> list[dict[str, Any]]:
    """`count` copies of the orders_create fixture, one minute apart, in shuffled insertion order."""
    base = fixture_json("orders_create.json")
    orders = []
    for index in range(count):
        order = copy.deepcopy(base)
        order.update(
            id=9_000_000 + index,
            name=f"#{5000 + index}",
            updated_at=(T0 + timedelta(minutes=index)).isoformat(),
        )
        orders.append(order)
    return orders[::2] + orders[1::2]


# --- reading --------------------------------------------------------------------------------------------


def test_fetch_order_returns_what_the_webhook_would_have_said(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    body = fixture_json("orders_cancelled.json")
    fake_shopify.add_order(body)
    assert client.fetch_order("5324790137142") == map_order(body)


def test_requests_are_what_the_shopifyapi_package_sends_to_the_versioned_endpoint(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    fake_shopify.add_order(fixture_json("orders_create.json"))
    client.fetch_order("5324830114101")
    [request] = fake_shopify.requests
    assert request.path == f"/admin/api/{API_VERSION}/graphql.json"
    assert request.headers["X-Shopify-Access-Token"] == ACCESS_TOKEN
    assert request.headers["User-Agent"].startswith("ShopifyPythonAPI/")
    assert request.headers["Content-Type"] == "application/json"
    assert set(request.body) == {"query", "variables", "operationName"}
    assert request.body["variables"] == {"id": "gid://shopify/Order/5324830114101"}
    assert request.root_fields == ["order"]


def test_an_order_with_more_lines_than_a_page_is_fetched_whole(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    body = fixture_json("orders_create.json")
    line = body["line_items"][0]
    body["line_items"] = [dict(line, id=line["id"] + i, sku=f"SKU-{i}") for i in range(175)]
    fake_shopify.add_order(body)
    order = client.fetch_order(str(body["id"]))
    assert [item.sku for item in order.line_items] == [f"SKU-{i}" for i in range(175)]
    answered = [r.root_fields for r in fake_shopify.requests if "errors" not in r.response]
    assert answered == [["order"]] * 3  # 50 lines, then 100, then 25; a throttle between is waited out


def test_fetching_an_order_shopify_does_not_have_is_permanent(client: ShopifyClient) -> None:
    with pytest.raises(PermanentError, match="no order 404"):
        client.fetch_order("404")


def test_changed_orders_pages_oldest_first_from_since(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    fake_shopify.bucket_size = fake_shopify.restore_rate = 1e6  # paging, not throttling, is tested here
    for order in synthetic_orders(120):
        fake_shopify.add_order(order)
    since = T0 + timedelta(minutes=5)
    seen: list[datetime] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = client.changed_orders(since, cursor)
        seen.extend(order.channel_updated_at for order in page.orders if order.channel_updated_at)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 115
    assert seen == sorted(seen) and seen[0] == since
    [listing, *_] = fake_shopify.graphql_requests("orders")
    assert listing.body["variables"]["query"] == "updated_at:>='2026-11-01T12:05:00Z'"


def test_changed_orders_ends_a_page_early_when_throttled_midway_keeping_what_it_read(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    for order in synthetic_orders(10):
        fake_shopify.add_order(order)
    fake_shopify.fail_next(429, retry_after=9, after=4)  # the listing and three orders, then a long 429
    page = client.changed_orders(T0)
    assert [o.number for o in page.orders] == ["#5000", "#5001", "#5002"]
    rest = client.changed_orders(T0, page.next_cursor)
    assert [o.number for o in rest.orders] == [
        f"#{5000 + i}" for i in range(3, 10)
    ] and rest.next_cursor is None


def test_the_apps_own_client_reaches_the_fake_and_its_orders_apply(
    runtime: Any, shop_id: int, fake_shopify: FakeShopify
) -> None:
    fake_shopify.add_order(fixture_json("orders_cancelled.json"))
    fake_shopify.add_order(fixture_json("orders_create.json"))
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        page = client_for(runtime, shop).changed_orders(datetime(2023, 1, 1, tzinfo=UTC))
        outcomes = [actions.apply_channel_order(session, shop, order)[1] for order in page.orders]
    assert outcomes == ["created", "created"] and count(runtime, Order) == 2
    order = the_order(runtime, "5324790137142")
    assert order.status == "cancelled" and order.refunded_total == Decimal("1806.38")


# --- failures -------------------------------------------------------------------------------------------


def test_http_429_is_transient_with_retry_after(client: ShopifyClient, fake_shopify: FakeShopify) -> None:
    fake_shopify.fail_next(429, retry_after=7)  # longer than the client waits in place
    with pytest.raises(TransientError) as caught:
        client.fetch_order("1")
    assert caught.value.retry_after == 7.0 and "429" in str(caught.value)


def test_throttled_with_http_200_says_when_the_cost_will_have_restored(fake_shopify: FakeShopify) -> None:
    impatient = ShopifyClient(access(fake_shopify, api_throttle_wait_seconds=0))
    # Shopify's own throttled answer: 752 points asked, 666 available, 50 restored per second.
    fake_shopify.fail_next(200, body=fixture_json("graphql_throttled.json"))
    with pytest.raises(TransientError, match="Throttled") as caught:
        impatient.fetch_order("1")
    assert caught.value.retry_after == pytest.approx((752 - 666) / 50)


@pytest.mark.parametrize("status", [200, 429])
def test_a_short_throttle_is_waited_out_in_place(
    client: ShopifyClient, fake_shopify: FakeShopify, status: int
) -> None:
    throttled = fixture_json("graphql_throttled.json")
    throttled["extensions"]["cost"].update(requestedQueryCost=676)  # 10 points short: 0.2 s at 50/s
    fake_shopify.add_order(fixture_json("orders_create.json"))
    fake_shopify.fail_next(status, body=throttled)
    started = time.monotonic()
    assert client.fetch_order("5324830114101").number == "#1010"
    assert time.monotonic() - started >= 0.2 and len(fake_shopify.requests) == 2


@pytest.mark.parametrize("throttle_status", [200, 429])
def test_an_empty_cost_bucket_throttles_and_says_when_it_refills(throttle_status: int) -> None:
    with FakeShopify(
        access_token=ACCESS_TOKEN, bucket_size=1000, restore_rate=100, throttle_status=throttle_status
    ) as fake:
        fake.add_order(fixture_json("orders_create.json"))
        client = ShopifyClient(access(fake))
        client.fetch_order("5324830114101")
        fake.drain_bucket(to=0)
        with pytest.raises(TransientError) as caught:
            client.fetch_order("5324830114101")
        requested = fake.requests[-1]
        assert caught.value.retry_after is not None and 5.0 < caught.value.retry_after <= 5.54  # ~554 points
        assert requested.root_fields == ["order"]


def test_5xx_is_transient(client: ShopifyClient, fake_shopify: FakeShopify) -> None:
    fake_shopify.fail_next(503, retry_after=3)
    with pytest.raises(TransientError) as caught:
        client.fetch_order("1")
    assert caught.value.retry_after == 3.0
    fake_shopify.fail_next(500)
    with pytest.raises(TransientError, match="HTTP 500") as caught:
        client.fetch_order("1")
    assert caught.value.retry_after is None


def test_a_wrong_token_is_permanent_with_shopifys_message(fake_shopify: FakeShopify) -> None:
    wrong = ShopifyClient(
        ShopAccess(
            SHOP_DOMAIN,
            {"access_token": "shpat_revoked"},
            api_base_url=fake_shopify.url,
            settings={"api_version": API_VERSION},
        )
    )
    with pytest.raises(PermanentError, match=r"HTTP 401: \[API\] Invalid API key or access token"):
        wrong.fetch_order("1")


def test_a_404_is_permanent(client: ShopifyClient, fake_shopify: FakeShopify) -> None:
    fake_shopify.fail_next(404)
    with pytest.raises(PermanentError, match="HTTP 404: Not Found"):
        client.fetch_order("1")


def test_a_query_shopify_rejects_is_permanent(client: ShopifyClient) -> None:
    with pytest.raises(PermanentError, match="Syntax Error"):
        client.execute("query { order(id: ")


def test_a_hang_becomes_transient_within_the_timeout(fake_shopify: FakeShopify) -> None:
    quick = ShopifyClient(access(fake_shopify, api_timeout_seconds=0.5))
    fake_shopify.hang_next()
    started = time.monotonic()
    with pytest.raises(TransientError, match="unreachable"):
        quick.fetch_order("1")
    assert time.monotonic() - started < 2.0


def test_a_closed_port_is_transient() -> None:
    fake = FakeShopify(access_token=ACCESS_TOKEN).start()
    gone = ShopifyClient(access(fake))
    fake.stop()
    with pytest.raises(TransientError, match="unreachable"):
        gone.fetch_order("1")


def test_http_errors_are_not_printed_to_stdout(
    client: ShopifyClient, fake_shopify: FakeShopify, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_shopify.fail_next(500)
    with pytest.raises(TransientError):
        client.fetch_order("1")
    assert capsys.readouterr().out == ""


# --- webhooks -------------------------------------------------------------------------------------------


def test_register_webhooks_subscribes_each_api_topic_once(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    address = "https://orderline.example.com/webhooks/shopify"
    topics = [
        "orders/create",
        "orders/partially_fulfilled",
        "refunds/create",
        "app/uninstalled",
        "customers/redact",
        "shop/redact",
    ]
    ids = client.register_webhooks(address, topics)
    assert len(ids) == 4 and all(i.startswith("gid://shopify/WebhookSubscription/") for i in ids)
    assert [(s["topic"], s["uri"], s["format"]) for s in fake_shopify.webhook_subscriptions] == [
        ("ORDERS_CREATE", address, "JSON"),
        ("ORDERS_PARTIALLY_FULFILLED", address, "JSON"),
        ("REFUNDS_CREATE", address, "JSON"),
        ("APP_UNINSTALLED", address, "JSON"),
    ]
    assert client.register_webhooks(address, topics) == []  # already there: nothing new, no error


def test_a_refused_subscription_is_permanent(client: ShopifyClient) -> None:
    with pytest.raises(PermanentError, match="Address can't be blank"):
        client.register_webhooks("", ["orders/create"])


# --- the package's global session state -----------------------------------------------------------------


def test_the_global_shopify_session_is_left_as_it_was(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    before = (
        shopify.ShopifyResource.get_site(),
        shopify.ShopifyResource.get_headers().get("X-Shopify-Access-Token"),
    )
    fake_shopify.add_order(fixture_json("orders_create.json"))
    client.fetch_order("5324830114101")
    after = (
        shopify.ShopifyResource.get_site(),
        shopify.ShopifyResource.get_headers().get("X-Shopify-Access-Token"),
    )
    assert after == before


@pytest.fixture
def two_shops() -> Iterator[tuple[FakeShopify, FakeShopify]]:
    roomy = {"bucket_size": 1e6, "restore_rate": 1e6}
    with FakeShopify(access_token="token-a", **roomy) as a, FakeShopify(access_token="token-b", **roomy) as b:
        yield a, b


def test_clients_of_two_shops_in_threads_never_cross(two_shops: tuple[FakeShopify, FakeShopify]) -> None:
    fakes = two_shops
    bodies = []
    for index, fake in enumerate(fakes):
        body = fixture_json("orders_create.json")
        body["name"] = f"#shop-{index}"
        fake.add_order(body)
        bodies.append(body)
    clients = [
        ShopifyClient(
            ShopAccess(
                f"shop-{i}.myshopify.com",
                {"access_token": f"token-{'ab'[i]}"},
                api_base_url=fake.url,
                settings={"api_version": API_VERSION},
            )
        )
        for i, fake in enumerate(fakes)
    ]
    results: list[str] = []
    errors: list[BaseException] = []

    def work(client: ShopifyClient, expected: str) -> None:
        try:
            for _ in range(15):
                number = client.fetch_order("5324830114101").number
                results.append(str(number))
                assert number == expected
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(clients[i], f"#shop-{i}")) for i in (0, 1) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(results) == 90


# --- construction ---------------------------------------------------------------------------------------


def test_without_a_base_url_the_shops_own_domain_and_version_are_used() -> None:
    site = api_site(ShopAccess(SHOP_DOMAIN, {"access_token": "t"}), "2026-07")
    assert site == "https://activepieces-test.myshopify.com/admin/api/2026-07"


def test_a_base_url_gets_the_versioned_api_path() -> None:
    assert api_site(ShopAccess(SHOP_DOMAIN, {}, api_base_url="http://127.0.0.1:8123/"), "2026-07") == (
        "http://127.0.0.1:8123/admin/api/2026-07"
    )


def test_credentials_without_an_access_token_are_refused() -> None:
    with pytest.raises(PermanentError, match="no access_token"):
        make_client(ShopAccess(SHOP_DOMAIN, {"token": "x"}))


def test_the_fakes_answers_carry_shopifys_cost_extension(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    fake_shopify.add_order(fixture_json("orders_create.json"))
    client.fetch_order("5324830114101")
    shape = json.loads(json.dumps(fixture_json("graphql_success_with_cost.json")["extensions"]))
    assert set(shape["cost"]) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
    cost = fake_shopify._cost(0, 0)  # same keys as Shopify's
    assert set(cost) == set(shape["cost"]) and set(cost["throttleStatus"]) == set(
        shape["cost"]["throttleStatus"]
    )


def test_an_order_deleted_between_listing_and_fetching_is_skipped(
    client: ShopifyClient, fake_shopify: FakeShopify
) -> None:
    for order in synthetic_orders(3):
        fake_shopify.add_order(order)
    fake_shopify.fail_next(200, body={"data": {"order": None}}, after=1)  # the first fetch finds nothing
    page = client.changed_orders(T0)
    assert [o.number for o in page.orders] == ["#5001", "#5002"] and page.next_cursor is None


def test_an_api_version_shopify_does_not_have_is_refused() -> None:
    with pytest.raises(PermanentError, match="not a Shopify API version"):
        api_site(ShopAccess(SHOP_DOMAIN, {"access_token": "t"}), "latest")
