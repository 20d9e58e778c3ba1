"""Returns: requests checked against the window and final-sale rules, the label bought once, the parcel
tracked, received and inspected (restocked or not), and the refund pushed to the channel exactly once."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import returns, tracking
from app.models import Alert, LineItem, Location, Order, OutboxEvent, Return, Shipment, Shop, StockLevel
from app.orders import actions
from app.orders.types import Actor
from app.store import utcnow
from integrations.base import RefundRequest
from integrations.bigcommerce.fake import FakeBigCommerce
from integrations.carriers.base import TrackingStatus, TrackingUpdate
from integrations.shopify.fake import FakeShopify
from integrations.woocommerce.fake import FakeWooCommerce
from jobs.ingest import client_for
from jobs.runner import run_outbox
from tests.test_tracking import (  # noqa: F401, F811 - fixtures
    at,
    easypost,
    order_status,
    settings,
    shipped_order,
    shippo,
    timeline,
)

FIXTURES = Path(__file__).parent / "integrations"


def add_location(runtime: Any, code: str = "MAIN") -> None:
    with runtime.db.session() as session:
        session.add(Location(code=code, name="Main warehouse", country_code="US", line1="417 Montgomery Street",
                             city="San Francisco", region="CA", postal_code="94104"))


def on_hand(runtime: Any, sku: str) -> int:
    with runtime.db.session() as session:
        level = session.execute(select(StockLevel).where(StockLevel.sku == sku)).scalar_one_or_none()
        return level.on_hand if level else 0


def lines(runtime: Any, order_id: int) -> dict[str, int]:
    with runtime.db.session() as session:
        return {line.sku or "": line.id for line in session.execute(
            select(LineItem).where(LineItem.order_id == order_id)).scalars()}


def the_return(runtime: Any, return_id: int) -> Return:
    with runtime.db.session() as session:
        row = session.get(Return, return_id)
        assert row is not None
        return row


def ask(client: Any, auth: Any, order_id: int, items: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/returns", json={"items": items, **extra},
                       headers=auth("operator"))


def act(client: Any, auth: Any, order_id: int, name: str, **body: Any) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/actions/{name}", json=body, headers=auth("operator"))


def refund_jobs(runtime: Any) -> list[OutboxEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(OutboxEvent).where(OutboxEvent.job == "return_refund")
                                    .order_by(OutboxEvent.id)).scalars())


# --- the whole loop on a manual shop ------------------------------------------------------------------------


def test_return_from_request_to_refund(runtime, client, auth, run_jobs):
    add_location(runtime)
    order_id, _ = shipped_order(runtime, parcels=[("sandbox", "SBXOUT1")], status="delivered")
    shirt = lines(runtime, order_id)["LS-01"]
    asked = ask(client, auth, order_id, [{"line_item_id": shirt, "quantity": 1, "reason": "Too small"}])
    assert asked.status_code == 201, asked.json
    return_id = asked.json["id"]
    assert (asked.json["status"], asked.json["refund_amount"]) == ("requested", "59.00")
    assert order_status(runtime, order_id) == "return_requested"
    (requested,) = timeline(runtime, order_id, "return.requested")
    assert requested.data["return_id"] == return_id and requested.data["reason"] == "Too small"
    assert requested.data["items"][0]["quantity"] == 1

    run_jobs()  # the label job, at the sandbox carrier (the outbound parcel's)
    parcel = the_return(runtime, return_id)
    assert parcel.status == "label_ready" and parcel.tracking_number and parcel.label_url
    (ready,) = timeline(runtime, order_id, "return.label_ready")
    assert ready.data == {"return_id": return_id, "tracking_number": parcel.tracking_number,
                          "label_url": parcel.label_url}

    # The return parcel is tracked through the same path as shipments.
    with runtime.db.session() as session:
        applied = tracking.apply_updates(session, runtime.settings, "sandbox", parcel.tracking_number, [
            TrackingUpdate(parcel.tracking_number, TrackingStatus.IN_TRANSIT, "Picked up", at(2))], source="poll")
    assert applied.found and the_return(runtime, return_id).status == "in_transit"
    assert timeline(runtime, order_id, "return.tracking")[0].data["status"] == "in_transit"

    early = act(client, auth, order_id, "return_inspect", return_id=return_id, restock=True)
    assert early.status_code == 409 and "receive it" in early.json["error"]["message"]
    assert act(client, auth, order_id, "return_receive", return_id=return_id).status_code == 200
    assert len(timeline(runtime, order_id, "return.received")) == 1
    before = on_hand(runtime, "LS-01")
    inspected = act(client, auth, order_id, "return_inspect", return_id=return_id, restock=True)
    assert inspected.status_code == 200, inspected.json
    assert on_hand(runtime, "LS-01") == before + 1
    assert order_status(runtime, order_id) == "returned"

    run_jobs()  # the refund job: a manual shop has no channel to refund on, so it is recorded here
    assert order_status(runtime, order_id) == "refunded"
    (refunded,) = timeline(runtime, order_id, "order.refunded")
    assert (refunded.data["amount"], refunded.data["refund_id"]) == ("59.00", f"manual-orderline-{parcel.rma}")
    listed = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json
    assert listed["returns"][0]["status"] == "refunded" and listed["refunded_total"] == "59.00"
    assert {i["sku"]: i["refunded_quantity"] for i in listed["line_items"]} == {"LS-01": 1, "CAP-01": 0}
    assert client.get(f"/api/v1/orders/{order_id}/returns", headers=auth("viewer")).json[0]["restocked"] is True


def test_a_return_parcel_is_polled_until_received(runtime, client, auth, run_jobs):
    add_location(runtime)
    order_id, _ = shipped_order(runtime, parcels=[("sandbox", "SBXPOLL")])
    cap = lines(runtime, order_id)["CAP-01"]
    return_id = ask(client, auth, order_id, [{"line_item_id": cap, "quantity": 1, "reason": "Too big"}]).json["id"]
    run_jobs()
    parcel = the_return(runtime, return_id)
    assert parcel.label_carrier and parcel.next_poll_at is not None
    assert tracking.schedule_due_polls(runtime) == 0  # not due yet
    with runtime.db.session() as session:
        session.get(Return, return_id).next_poll_at = utcnow() - timedelta(seconds=1)
    assert tracking.schedule_due_polls(runtime) == 1
    run_jobs()  # the sandbox carrier reports the label created
    (scan,) = timeline(runtime, order_id, "return.tracking")
    assert scan.data["status"] == "pre_transit" and scan.data["return_id"] == return_id
    assert the_return(runtime, return_id).next_poll_at > utcnow()
    act(client, auth, order_id, "return_receive", return_id=return_id)
    assert the_return(runtime, return_id).next_poll_at is None  # received: never polled again


def test_inspected_without_restock_leaves_stock_alone(runtime, client, auth, run_jobs):
    add_location(runtime)
    order_id, _ = shipped_order(runtime, parcels=[("sandbox", "SBXOUT2")])
    cap = lines(runtime, order_id)["CAP-01"]
    return_id = ask(client, auth, order_id, [{"line_item_id": cap, "quantity": 1, "reason": "Damaged"}]).json["id"]
    run_jobs()
    act(client, auth, order_id, "return_receive", return_id=return_id)
    missing = act(client, auth, order_id, "return_inspect", return_id=return_id)
    assert missing.status_code == 422 and "restock" in missing.json["error"]["fields"]
    assert act(client, auth, order_id, "return_inspect", return_id=return_id, restock=False).status_code == 200
    assert on_hand(runtime, "CAP-01") == 0
    assert timeline(runtime, order_id, "return.inspected")[0].data["restock"] is False


def test_the_return_label_is_bought_once_even_when_the_answer_is_lost(runtime, client, auth, run_jobs, easypost):  # noqa: F811
    add_location(runtime)
    order_id, _ = shipped_order(runtime, parcels=[("easypost", "9400OUT")])
    cap = lines(runtime, order_id)["CAP-01"]
    # The label is bought, then the answer never comes back in time (a worker killed after the purchase).
    easypost.hang_after_next(20, match="/buy")
    return_id = ask(client, auth, order_id, [{"line_item_id": cap, "quantity": 1, "reason": "Changed my mind"}],
                    carrier="easypost").json["id"]
    with runtime.db.session() as session:
        job = session.execute(select(OutboxEvent).where(OutboxEvent.job == "return_label")).scalar_one()
    # A short client timeout (the shop's carrier tuning) makes the hung buy fail like a killed worker's.
    with runtime.db.session() as session:
        shop = session.get(Order, order_id).shop
        shop.settings = {**(shop.settings or {}), "carrier_settings": {"api_timeout_seconds": 1}}
    assert run_outbox(job.id) == "retry scheduled"
    parcel = the_return(runtime, return_id)
    assert parcel.label_reference and parcel.status == "requested"
    with runtime.db.session() as session:
        session.get(OutboxEvent, job.id).next_attempt_at = None
    assert run_outbox(job.id) == "done"
    parcel = the_return(runtime, return_id)
    assert parcel.status == "label_ready"
    assert easypost.purchases(parcel.label_reference) == 1
    assert len(timeline(runtime, order_id, "return.label_ready")) == 1


# --- refusals -----------------------------------------------------------------------------------------------


def test_return_window_counts_from_delivery_else_dispatch(runtime, client, auth):
    old, _ = shipped_order(runtime, parcels=[("sandbox", "SBXOLD")], shipped_at=at(24 * 40))
    item = [{"line_item_id": lines(runtime, old)["CAP-01"], "quantity": 1, "reason": "Late"}]
    closed = ask(client, auth, old, item)
    assert (closed.status_code, closed.json["error"]["code"]) == (422, "not_returnable")
    assert "30-day return window" in closed.json["error"]["message"]
    with runtime.db.session() as session:
        shipment = session.execute(select(Shipment).where(Shipment.order_id == old)).scalar_one()
        shipment.status, shipment.delivered_at = "delivered", at(24 * 10)
    assert ask(client, auth, old, item).status_code == 201

    short, _ = shipped_order(runtime, parcels=[("sandbox", "SBXSHORT")], shipped_at=at(24 * 8),
                             shop_settings={"return_window_days": 7})
    refused = ask(client, auth, short, [{"line_item_id": lines(runtime, short)["CAP-01"], "quantity": 1,
                                         "reason": "x"}])
    assert refused.status_code == 422 and "7-day return window" in refused.json["error"]["message"]


def test_final_sale_tags_and_skus_are_refused(runtime, client, auth):
    tagged, _ = shipped_order(runtime, parcels=[("sandbox", "SBXFS1")], tags=["Clearance", "vip"],
                              shop_settings={"final_sale_tags": ["clearance"], "final_sale_skus": ["CAP-01"]})
    refused = ask(client, auth, tagged, [{"line_item_id": lines(runtime, tagged)["LS-01"], "quantity": 1,
                                          "reason": "x"}])
    assert (refused.status_code, refused.json["error"]["code"]) == (422, "not_returnable")
    assert "final sale (tagged clearance)" in refused.json["error"]["message"]

    plain, _ = shipped_order(runtime, parcels=[("sandbox", "SBXFS2")],
                             shop_settings={"final_sale_tags": ["clearance"], "final_sale_skus": ["cap-01"]})
    ids = lines(runtime, plain)
    sku = ask(client, auth, plain, [{"line_item_id": ids["CAP-01"], "quantity": 1, "reason": "x"}])
    assert (sku.status_code, sku.json["error"]["code"]) == (422, "not_returnable")
    assert sku.json["error"]["fields"]["items"]["0"]["line_item_id"] == ["CAP-01 is final sale"]
    assert ask(client, auth, plain, [{"line_item_id": ids["LS-01"], "quantity": 1, "reason": "x"}]).status_code == 201


def test_quantities_and_order_state_are_checked(runtime, client, auth):
    order_id, _ = shipped_order(runtime, parcels=[("sandbox", "SBXQ")])
    shirt = lines(runtime, order_id)["LS-01"]
    too_many = ask(client, auth, order_id, [{"line_item_id": shirt, "quantity": 3, "reason": "x"}])
    assert too_many.status_code == 422
    assert too_many.json["error"]["fields"]["items"]["0"]["quantity"] == ["between 1 and 2 of LS-01 can be returned"]
    foreign = ask(client, auth, order_id, [{"line_item_id": 999999, "quantity": 1, "reason": "x"}])
    assert foreign.status_code == 422 and "no line item 999999" in json.dumps(foreign.json)
    blank = ask(client, auth, order_id, [{"line_item_id": shirt, "quantity": 1, "reason": ""}])
    assert blank.status_code == 422
    assert ask(client, auth, order_id, [{"line_item_id": shirt, "quantity": 2, "reason": "x"}]).status_code == 201
    again = ask(client, auth, order_id, [{"line_item_id": shirt, "quantity": 1, "reason": "x"}])
    assert again.status_code == 422 and "between 1 and 0" in json.dumps(again.json)

    packed, _ = shipped_order(runtime, parcels=[], status="packed")
    early = ask(client, auth, packed, [{"line_item_id": lines(runtime, packed)["LS-01"], "quantity": 1,
                                        "reason": "x"}])
    assert (early.status_code, early.json["error"]["code"]) == (422, "not_returnable")
    assert "is packed" in early.json["error"]["message"]
    assert ask(client, auth, 424242, [{"line_item_id": 1, "quantity": 1, "reason": "x"}]).status_code == 404
    viewer = client.post(f"/api/v1/orders/{order_id}/returns", json={"items": []}, headers=auth("viewer"))
    assert viewer.status_code == 403


# --- refunds on the channels, exactly once ------------------------------------------------------------------


def _inspected_return(runtime: Any, shop_id: int, external_id: str, sku_or_line: str) -> tuple[int, int]:
    """The channel's order ingested through its real client, shipped, returned and inspected."""
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        order, _ = actions.apply_channel_order(session, shop, client_for(runtime, shop).fetch_order(external_id))
        order.status = "delivered"
        order.shipments.append(Shipment(provider="sandbox", carrier="USPS", tracking_number=f"SBX{external_id}",
                                        status="delivered", shipped_at=at(48), delivered_at=at(24)))
        line = next(i for i in order.line_items if sku_or_line in (i.sku, i.external_id))
        session.flush()
        parcel = returns.request_return(session, order.id, [returns.ItemIn(line.id, 1, "Wrong colour")],
                                        Actor.system())
        parcel.status, parcel.received_at = "received", utcnow()
        session.flush()
        returns.inspect(session, order.id, Actor.system(), return_id=parcel.id, restock=False)
        return order.id, parcel.id


@pytest.fixture
def fake_shopify():
    with FakeShopify(access_token="shpat_returns") as fake:
        yield fake


@pytest.fixture
def fake_woo():
    with FakeWooCommerce() as fake:
        yield fake


@pytest.fixture
def fake_bc():
    with FakeBigCommerce(store_hash="abc123", access_token="bc-returns") as fake:
        yield fake


@pytest.fixture
def channel_settings(settings, fake_shopify, fake_bc):  # noqa: F811
    return settings.with_overrides(shopify_api_base_url=fake_shopify.url, bigcommerce_api_base_url=fake_bc.url)


@pytest.fixture
def app(channel_settings):
    from app import create_app

    app = create_app(channel_settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["orderline"].redis.flushdb()
    app.extensions["orderline"].db.dispose()


def _shop(runtime: Any, channel: str, external_id: str, credentials: dict[str, str]) -> int:
    with runtime.db.session() as session:
        shop = Shop(channel=channel, name=f"{channel} returns", external_id=external_id, currency="USD",
                    credentials_encrypted=runtime.secrets.seal(credentials))
        session.add(shop)
        session.flush()
        return shop.id


def _load(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


@pytest.fixture(params=["shopify", "woocommerce", "bigcommerce"])
def channel_return(request, runtime, fake_shopify, fake_woo, fake_bc):
    """(order id, return id, the fake's refunds for the order, the fake) for each channel."""
    if request.param == "shopify":
        order = _load("shopify", "fixtures", "orders_create.json")
        fake_shopify.add_order(order)
        shop_id = _shop(runtime, "shopify", "returns-test.myshopify.com", {"access_token": "shpat_returns"})
        ids = _inspected_return(runtime, shop_id, str(order["id"]), str(order["line_items"][0]["id"]))
        return (*ids, lambda: fake_shopify.refunds_of(order["id"]), fake_shopify)
    if request.param == "woocommerce":
        order = _load("woocommerce", "fixtures", "order_created.json")
        fake_woo.add_order(order)
        shop_id = _shop(runtime, "woocommerce", fake_woo.url, {"consumer_key": fake_woo.consumer_key,
                                                               "consumer_secret": fake_woo.consumer_secret})
        ids = _inspected_return(runtime, shop_id, str(order["id"]), "Bar3")
        return (*ids, lambda: fake_woo.refunds_of(order["id"]), fake_woo)
    order = {**_load("bigcommerce", "fixtures", "api_get_order_response.json"), "id": 250}
    fake_bc.add_order(order, _load("bigcommerce", "fixtures", "api_get_order_products_response.json"),
                      _load("bigcommerce", "fixtures", "api_get_order_shipping_addresses_response.json"))
    shop_id = _shop(runtime, "bigcommerce", "abc123", {"store_hash": "abc123", "access_token": "bc-returns"})
    ids = _inspected_return(runtime, shop_id, "250", "S-ORAN")
    return (*ids, lambda: fake_bc.refunds_of(250), fake_bc)


def test_refund_is_pushed_once_and_recorded(runtime, run_jobs, channel_return):
    order_id, return_id, refunds_on_channel, _fake = channel_return
    run_jobs()
    (made,) = refunds_on_channel()
    parcel = the_return(runtime, return_id)
    assert parcel.status == "refunded" and parcel.refund_external_id == str(made["id"])
    assert order_status(runtime, order_id) == "refunded"
    (entry,) = timeline(runtime, order_id, "order.refunded")
    assert entry.data["refund_id"] == str(made["id"]) and Decimal(entry.data["amount"]) == parcel.refund_amount
    # Running the job again (RQ delivers at least once) finds the return refunded and calls nobody.
    (job,) = refund_jobs(runtime)
    with runtime.db.session() as session:
        session.get(OutboxEvent, job.id).status = "pending"
    assert run_outbox(job.id) == "done"
    assert len(refunds_on_channel()) == 1


def test_a_refund_made_before_a_crash_is_found_not_made_again(runtime, run_jobs, channel_return):
    order_id, return_id, refunds_on_channel, _fake = channel_return
    # A first attempt claimed its key and refunded on the channel, then died before its commit.
    with runtime.db.session() as session:
        parcel = returns.needing_refund(session, return_id)
        order = parcel.order
        request = RefundRequest(key=parcel.refund_key, order_external_id=order.external_id,
                                amount=str(parcel.refund_amount), currency=order.currency,
                                line_items=returns.refund_lines(parcel),
                                note=f"Return {parcel.rma} ({parcel.refund_key})")
        client_for(runtime, order.shop).create_refund(request)
    run_jobs()
    assert len(refunds_on_channel()) == 1
    assert order_status(runtime, order_id) == "refunded"
    assert len(timeline(runtime, order_id, "order.refunded")) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_channel_busy_or_failing_is_retried(runtime, run_jobs, channel_return, status):
    order_id, return_id, refunds_on_channel, fake = channel_return
    fake.fail_next(status)
    (job,) = refund_jobs(runtime)
    assert run_outbox(job.id) == "retry scheduled"
    with runtime.db.session() as session:
        row = session.get(OutboxEvent, job.id)
        assert row.status == "pending" and str(status) in (row.last_error or "")
        row.next_attempt_at = None
    assert refunds_on_channel() == []
    assert run_outbox(job.id) == "done"
    assert len(refunds_on_channel()) == 1 and order_status(runtime, order_id) == "refunded"


def test_a_refused_refund_stops_with_the_channels_message_and_resumes(runtime, client, auth, channel_return):
    order_id, return_id, refunds_on_channel, fake = channel_return
    with runtime.db.session() as session:  # more than the order is worth: every channel refuses it
        right = session.get(Return, return_id).refund_amount
        session.get(Return, return_id).refund_amount = Decimal("100000.00")
    (job,) = refund_jobs(runtime)
    assert run_outbox(job.id) == "done"  # the step stopped: nothing retried blindly
    (failed,) = timeline(runtime, order_id, "order.step_failed")
    assert failed.data["step"] == "refund" and failed.data["permanent"] is True and failed.data["message"]
    assert the_return(runtime, return_id).error == failed.data["message"]
    with runtime.db.session() as session:
        assert session.execute(select(Alert).where(Alert.kind == "return_step_failed")).scalar_one()
    assert refunds_on_channel() == [] and order_status(runtime, order_id) == "returned"

    with runtime.db.session() as session:  # staff correct the amount, then resume
        session.get(Return, return_id).refund_amount = right
    resumed = act(client, auth, order_id, "return_retry", return_id=return_id)
    assert resumed.status_code == 200, resumed.json
    retry_job = refund_jobs(runtime)[-1]
    assert retry_job.id != job.id and run_outbox(retry_job.id) == "done"
    assert len(refunds_on_channel()) == 1 and order_status(runtime, order_id) == "refunded"
    again = act(client, auth, order_id, "return_retry", return_id=return_id)
    assert again.status_code == 409
