"""Shipments told to the channel: Shopify `fulfillmentCreate` through the real client against the fake Admin
API, from a signed webhook to a fulfillment carrying our tracking; pushing twice makes one fulfillment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app import shipping
from app.failures import PermanentError
from app.models import Order, OrderEvent, Shipment, Shop
from app.runtime import Runtime
from integrations.base import FulfilmentLine, FulfilmentPush
from integrations.bigcommerce.client import BigCommerceClient
from integrations.bigcommerce.fake import FakeBigCommerce, sample_order
from integrations.shopify.fake import FakeShopify
from integrations.woocommerce.client import WooCommerceClient
from integrations.woocommerce.fake import FakeWooCommerce
from tests.integrations.shopify.conftest import ACCESS_TOKEN, SHOP_DOMAIN, fixture_json, shopify_headers
from tests.integrations.shopify.conftest import app as shopify_app
from tests.integrations.shopify.conftest import fake_shopify as shopify_fake
from tests.test_outbox import run_all_jobs
from tests.test_stock import add_location, import_csv

# The Shopify harness's fixtures: the fake Admin API, and the app pointed at it.
app, fake_shopify = shopify_app, shopify_fake


def add_shop(runtime: Runtime, **settings: Any) -> int:
    with runtime.db.session() as session:
        shop = Shop(channel="shopify", name="Shipping test store", external_id=SHOP_DOMAIN, currency="USD",
                    credentials_encrypted=runtime.secrets.seal({"access_token": ACCESS_TOKEN}),  # type: ignore[union-attr]
                    settings={"auto_approve": True, "auto_pick_pack": True, **settings})
        session.add(shop)
        session.flush()
        return int(shop.id)


ADDRESS = {"first_name": "Ava", "last_name": "Lee", "name": "Ava Lee", "address1": "12 Main St", "city": "Austin",
           "province": "Texas", "province_code": "TX", "zip": "73301", "country": "United States",
           "country_code": "US", "phone": "+15125550100"}


def shopify_order(number: int = 0, quantity: int = 2) -> dict[str, Any]:
    """Shopify's orders/create fixture as a shop that ships would send it: a shipping address, 2 units."""
    order = fixture_json("orders_create.json")
    order["id"] = int(order["id"]) + number
    order["shipping_address"] = ADDRESS
    order["line_items"] = [{**line, "id": int(line["id"]) + number, "quantity": quantity}
                           for line in order["line_items"]]
    return order


@pytest.fixture
def stocked(runtime: Runtime) -> None:
    add_location(runtime, "ATX", "US", priority=10)
    import_csv(runtime, "location,sku,on_hand\nATX,sku-hosted-1,100\n")


def deliver_order(client: Any, fake: FakeShopify, order: dict[str, Any]) -> None:
    fake.add_order(order)
    raw = json.dumps(order).encode()
    answer = client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw))
    assert answer.status_code == 200, answer.data


def stored(runtime: Runtime, external_id: str) -> tuple[Order, list[Shipment], list[str]]:
    with runtime.db.session() as session:
        order = session.execute(select(Order).where(Order.external_id == external_id)).scalar_one()
        parcels = list(session.execute(select(Shipment).where(Shipment.order_id == order.id)).scalars())
        types = list(session.execute(select(OrderEvent.type).where(OrderEvent.order_id == order.id)
                                     .order_by(OrderEvent.id)).scalars())
        return order, parcels, types


def test_a_shopify_order_flows_from_webhook_to_a_fulfillment_with_our_tracking(
        client: Any, runtime: Runtime, fake_shopify: FakeShopify, stocked: None) -> None:
    add_shop(runtime, notify_customer=False)
    order = shopify_order()
    deliver_order(client, fake_shopify, order)
    run_all_jobs(runtime)

    stored_order, [parcel], types = stored(runtime, str(order["id"]))
    assert stored_order.status == "shipped", types
    assert parcel.status == "purchased" and parcel.pushed_at is not None
    assert types[-3:] == ["shipment.label_purchased", "order.shipped", "shipment.pushed_to_channel"]
    [fulfillment] = fake_shopify.fulfillments(order["id"])
    assert fulfillment["tracking_number"] == parcel.tracking_number
    assert fulfillment["tracking_company"] == parcel.carrier
    assert fulfillment["tracking_url"] == parcel.tracking_url
    assert fulfillment["notify_customer"] is False
    shipping_lines = {line["id"]: line["quantity"] for line in order["line_items"]
                      if line.get("requires_shipping", True)}
    assert {line["id"]: line["quantity"] for line in fulfillment["line_items"]} == shipping_lines
    assert parcel.channel_fulfilment_id == f"gid://shopify/Fulfillment/{fulfillment['id']}"

    # A push repeated after its answer was lost (pushed_at never committed) finds the fulfillment it made.
    with runtime.db.session() as session:
        session.get(Shipment, parcel.id).pushed_at = None  # type: ignore[union-attr]
    with runtime.db.session() as session:
        assert shipping.push_fulfilment(runtime, session, parcel.id) == "pushed"
    assert len(fake_shopify.fulfillments(order["id"])) == 1
    creates = fake_shopify.graphql_requests("fulfillmentCreate")
    assert len(creates) == 1


def test_shopify_refusing_the_fulfillment_stops_the_step_until_retried(
        client: Any, auth: Any, runtime: Runtime, fake_shopify: FakeShopify, stocked: None) -> None:
    add_shop(runtime)
    order = shopify_order()
    deliver_order(client, fake_shopify, order)
    # Someone fulfilled the order in Shopify's admin meanwhile: nothing is left open.
    fake_shopify.add_order({**order, "fulfillments": [{"id": 1, "status": "success", "line_items": [
        {"id": line["id"], "quantity": line["quantity"]} for line in order["line_items"]]}]})
    run_all_jobs(runtime)

    stored_order, [parcel], types = stored(runtime, str(order["id"]))
    assert stored_order.status == "shipped" and parcel.pushed_at is None
    assert types[-1] == "order.step_failed"
    assert "has no open fulfillment order" in (parcel.last_error or "")
    listed = client.get(f"/api/v1/orders/{stored_order.id}", headers=auth("viewer")).json
    failed = [e for e in listed["timeline"] if e["type"] == "order.step_failed"]
    assert failed and failed[-1]["data"]["step"] == "push_fulfilment" and failed[-1]["data"]["permanent"] is True

    # Staff fix it in Shopify (the stray fulfillment is cancelled) and retry.
    fake_shopify.add_order(order)
    answer = client.post(f"/api/v1/orders/{stored_order.id}/retry", headers=auth("operator"))
    assert answer.status_code == 200, answer.json
    assert answer.json["steps"] == ["push_fulfilment"]
    run_all_jobs(runtime)
    _, [parcel], types = stored(runtime, str(order["id"]))
    assert parcel.pushed_at is not None and types[-1] == "shipment.pushed_to_channel"
    assert len(fake_shopify.fulfillments(order["id"])) == 1


# --- WooCommerce and BigCommerce: the real clients against their fakes ------------------------------------


def push_for(order_id: str, lines: tuple[FulfilmentLine, ...], *, tracking: str = "SBX0000000000000042",
             completes: bool = True) -> FulfilmentPush:
    return FulfilmentPush(order_external_id=order_id, lines=lines, tracking_company="Sandbox Post",
                          tracking_number=tracking, tracking_url=f"https://sandbox.orderline.invalid/track/{tracking}",
                          notify_customer=True, completes_order=completes)


def test_woocommerce_gets_one_customer_note_and_completed_when_all_shipped() -> None:
    with FakeWooCommerce() as fake:
        fake.add_order({"id": 727, "status": "processing", "line_items": [{"id": 315, "sku": "TEE", "quantity": 2}]})
        client = WooCommerceClient(fake.url, fake.consumer_key, fake.consumer_secret)
        first = client.push_fulfilment(push_for("727", (FulfilmentLine("315", 1, "TEE"),), completes=False))
        assert fake.orders[727]["status"] == "processing", "one parcel of two: not completed yet"
        second = client.push_fulfilment(push_for("727", (FulfilmentLine("315", 1, "TEE"),), tracking="SBX2",
                                                 completes=True))
        assert fake.orders[727]["status"] == "completed"
        again = client.push_fulfilment(push_for("727", (FulfilmentLine("315", 1, "TEE"),), tracking="SBX2"))
        assert again == second != first
        notes = fake.notes[727]
        assert len(notes) == 2
        assert notes[0]["customer_note"] is True
        assert notes[0]["note"] == ("Shipped with Sandbox Post, tracking number SBX0000000000000042 "
                                    "(https://sandbox.orderline.invalid/track/SBX0000000000000042): 1× TEE")


def test_bigcommerce_gets_one_shipment_with_items_and_tracking() -> None:
    with FakeBigCommerce() as fake:
        order, products, addresses = sample_order(4242, lines=2)
        fake.add_order(order, products, addresses)
        client = BigCommerceClient(fake.store_hash, fake.access_token, base_url=fake.url)
        lines = (FulfilmentLine(str(products[0]["id"]), 1), FulfilmentLine(str(products[1]["id"]), 2))
        created = client.push_fulfilment(push_for("4242", lines))
        assert client.push_fulfilment(push_for("4242", lines)) == created
        [shipment] = fake.shipments["4242"]
        assert shipment["tracking_number"] == "SBX0000000000000042"
        assert shipment["order_address_id"] == addresses[0]["id"]
        assert [(i["order_product_id"], i["quantity"]) for i in shipment["items"]] == [
            (products[0]["id"], 1), (products[1]["id"], 2)]
        with pytest.raises(PermanentError, match="greater than the quantity"):
            client.push_fulfilment(push_for("4242", lines, tracking="SBX-second"))


def test_a_split_order_makes_one_shopify_fulfillment_per_parcel_with_partial_quantities(
        client: Any, runtime: Runtime, fake_shopify: FakeShopify) -> None:
    add_location(runtime, "ATX", "US", priority=10)
    add_location(runtime, "NJ", "US", priority=20)
    import_csv(runtime, "location,sku,on_hand\nATX,sku-hosted-1,1\nNJ,sku-hosted-1,5\n")
    add_shop(runtime, allocation="split")
    order = shopify_order(quantity=3)
    deliver_order(client, fake_shopify, order)
    run_all_jobs(runtime)

    stored_order, parcels, types = stored(runtime, str(order["id"]))
    assert stored_order.status == "shipped"
    assert sorted(sum((p.items or {}).values()) for p in parcels) == [1, 2]
    assert types.count("order.shipped") == 2 and types.count("shipment.pushed_to_channel") == 2
    fulfillments = fake_shopify.fulfillments(order["id"])
    assert sorted(f["line_items"][0]["quantity"] for f in fulfillments) == [1, 2]
    assert {f["tracking_number"] for f in fulfillments} == {p.tracking_number for p in parcels}
