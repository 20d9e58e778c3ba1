"""Shipping: labels from the shop's carrier after packing, one per location, bought exactly once; the order
shipped; cancelled orders' labels voided; refusals stop the step on the timeline and `retry` resumes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete as sa_delete
from sqlalchemy import select

from app import shipping
from app.models import Order, OrderEvent, Product, Shipment, Shop
from app.orders import actions
from app.orders.types import Actor, Role
from app.runtime import Runtime
from tests.test_allocation import set_strategy
from tests.test_outbox import run_all_jobs
from tests.test_picking import act, ready
from tests.test_stock import add_location, import_csv

STOCK = ("location,sku,on_hand,bin\n"
         "STHLM,TEE-BLK-M,10,B-02-1\n"
         "STHLM,CAP-01,10,A-01-3\n"
         "NJ,MUG-05,10,R2-S4\n")
STAFF = Actor.staff("7", "Jonas", Role.MANAGER)


@pytest.fixture
def stocked(runtime: Runtime) -> None:
    add_location(runtime, "STHLM", "SE", priority=10)
    add_location(runtime, "NJ", "US", priority=20)
    import_csv(runtime, STOCK)


def configure(runtime: Runtime, shop_id: int, **settings: Any) -> None:
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        shop.settings = {**(shop.settings or {}), **settings}


def packed(runtime: Runtime, shop_id: int, *items: tuple[str, int], weight: int | None = None) -> int:
    order_id = ready(runtime, shop_id, *items)
    with runtime.db.session() as session:
        actions.pick(session, order_id, STAFF)
        actions.pack(session, order_id, STAFF, weight_grams=weight)
    return order_id


def shipments(runtime: Runtime, order_id: int) -> list[Shipment]:
    with runtime.db.session() as session:
        return list(session.execute(select(Shipment).where(Shipment.order_id == order_id)
                                    .order_by(Shipment.id)).scalars())


def order_of(runtime: Runtime, order_id: int) -> Order:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order


def timeline(runtime: Runtime, order_id: int) -> list[OrderEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id)
                                    .order_by(OrderEvent.id)).scalars())


def types(runtime: Runtime, order_id: int) -> list[str]:
    return [e.type for e in timeline(runtime, order_id)]


# --- the happy paths --------------------------------------------------------------------------------------


def test_packing_buys_a_sandbox_label_and_ships_the_order(runtime: Runtime, manual_shop: int, stocked: None) -> None:
    order_id = packed(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1), weight=900)
    run_all_jobs(runtime)

    [shipment] = shipments(runtime, order_id)
    assert shipment.status == "purchased"
    assert shipment.tracking_number and shipment.tracking_number.startswith("SBX")
    assert shipment.carrier == "Sandbox Post" and shipment.service == "Standard"  # cheapest within 5 days
    assert shipment.label_url and shipment.cost is not None
    assert shipment.reference and shipment.reference.startswith(f"ol-{order_id}-s{shipment.id}-")
    assert order_of(runtime, order_id).status == "shipped"
    events = timeline(runtime, order_id)
    bought = next(e for e in events if e.type == "shipment.label_purchased")
    assert bought.data["tracking_number"] == shipment.tracking_number
    assert bought.data["shipment_id"] == shipment.id
    assert next(e for e in events if e.type == "order.shipped").data == {"shipment_id": shipment.id}
    # Manual shops have no channel to tell.
    assert "shipment.pushed_to_channel" not in types(runtime, order_id)
    # The stock left the building: on hand went down by what shipped.
    from tests.test_stock import levels
    assert levels(runtime)[("STHLM", "TEE-BLK-M")][:2] == (8, 0)


def test_a_split_order_ships_one_parcel_per_location(runtime: Runtime, manual_shop: int, stocked: None) -> None:
    set_strategy(runtime, manual_shop, "split")
    order_id = packed(runtime, manual_shop, ("TEE-BLK-M", 1), ("MUG-05", 1))
    run_all_jobs(runtime)

    parcels = shipments(runtime, order_id)
    assert len(parcels) == 2
    assert all(s.status == "purchased" for s in parcels)
    assert len({s.tracking_number for s in parcels}) == 2
    assert sorted(sum(s.items.values()) for s in parcels if s.items) == [1, 1]
    assert order_of(runtime, order_id).status == "shipped"
    shipped = [e.message for e in timeline(runtime, order_id) if e.type == "order.shipped"]
    assert shipped == ["Partially shipped (1 of 2 parcels)", "Shipped"]


def test_auto_label_off_waits_for_staff_to_choose_a_rate(client: Any, auth: Any, runtime: Runtime,
                                                         manual_shop: int, stocked: None) -> None:
    configure(runtime, manual_shop, auto_label=False)
    order_id = packed(runtime, manual_shop, ("TEE-BLK-M", 1))
    run_all_jobs(runtime)
    assert shipments(runtime, order_id) == []

    with runtime.db.session() as session:
        rates = shipping.quote_rates(session, order_id)
    assert [r.service for r in rates][:2] == ["Economy", "Standard"]
    assert rates == sorted(rates, key=lambda r: r.amount)
    listed = client.get(f"/api/v1/orders/{order_id}/rates", headers=auth("viewer"))
    assert listed.status_code == 200
    assert [(r["carrier"], r["service"], r["amount"]) for r in listed.json] == [
        (r.carrier, r.service, str(r.amount)) for r in rates]
    assert client.get("/api/v1/orders/999999/rates", headers=auth("viewer")).status_code == 404

    answer = act(client, auth, order_id, "ship", carrier="Sandbox Express", service="Express")
    assert answer.status_code == 200, answer.json
    run_all_jobs(runtime)
    [shipment] = shipments(runtime, order_id)
    assert (shipment.carrier, shipment.service, shipment.status) == ("Sandbox Express", "Express", "purchased")
    assert order_of(runtime, order_id).status == "shipped"

    again = act(client, auth, order_id, "ship")
    assert again.status_code == 409
    assert "cannot ship an order from 'shipped'" in again.json["error"]["message"]


def test_ship_refuses_an_order_not_packed(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                          stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 1))
    answer = act(client, auth, order_id, "ship")
    assert answer.status_code == 409
    assert answer.json["error"]["message"] == "cannot ship an order from 'allocated' to 'shipped'"


def test_auto_pick_pack_takes_an_allocated_order_to_shipped(runtime: Runtime, manual_shop: int,
                                                            stocked: None) -> None:
    configure(runtime, manual_shop, auto_pick_pack=True)
    order_id = ready(runtime, manual_shop, ("CAP-01", 3))
    run_all_jobs(runtime)
    assert order_of(runtime, order_id).status == "shipped"
    assert [t for t in types(runtime, order_id) if t.startswith(("order.p", "order.s", "shipment."))] == [
        "order.picked", "order.packed", "shipment.label_purchased", "order.shipped"]


# --- parcels from the catalogue, customs for international parcels --------------------------------------

CATALOGUE = ("sku,weight_grams,length_cm,width_cm,height_cm,hs_code,origin_country,tags\n"
             "TEE-BLK-M,180,30,25,2,6109.10,PT,apparel\n"
             "CAP-01,95,,,,6505.00,CN,\n"
             "MUG-05,420,12,12,11,6912.00,SE,fragile|final-sale\n")


def test_catalogue_import_through_the_api_all_or_nothing(client: Any, auth: Any, runtime: Runtime,
                                                         manual_shop: int) -> None:
    url = f"/api/v1/catalogue/import?shop_id={manual_shop}"
    bad = "sku,weight_grams,origin_country,colour\nTEE,heavy,XX,red\n"
    refused = client.post(url, data=bad, headers={**auth("manager"), "Content-Type": "text/csv"})
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {"row 1": {"colour": [
        "unknown column 'colour'; the columns are sku, weight_grams, length_cm, width_cm, height_cm, hs_code, "
        "origin_country, tags (all but sku are optional; tags are separated by |)"]}}
    bad_rows = "sku,weight_grams,origin_country,hs_code\nTEE,heavy,XX,12\nTEE,100,SE,\n"
    refused = client.post(url, data=bad_rows, headers={**auth("manager"), "Content-Type": "text/csv"})
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {
        "row 2": {"weight_grams": ["'heavy' is not a whole number of grams from 1 to 1000000"],
                  "origin_country": ["'XX' is not an ISO 3166 two-letter country code"],
                  "hs_code": ["'12' is not an HS code (6 to 10 digits, dots allowed)"]}}
    assert client.get(f"/api/v1/catalogue?shop_id={manual_shop}", headers=auth("viewer")).json == []

    assert client.post(url, data=CATALOGUE, headers=auth("operator")).status_code == 403
    done = client.post(url, data=CATALOGUE, headers={**auth("manager"), "Content-Type": "text/csv"})
    assert done.status_code == 200, done.json
    assert done.json == {"rows": 3, "created": 3, "updated": 0, "unchanged": 0}
    again = client.post(url, data="sku,weight_grams\nTEE-BLK-M,200\nCAP-01,95\n",
                        headers={**auth("manager"), "Content-Type": "text/csv"})
    assert again.json == {"rows": 2, "created": 0, "updated": 1, "unchanged": 1}
    listed = {p["sku"]: p for p in client.get(f"/api/v1/catalogue?shop_id={manual_shop}",
                                              headers=auth("viewer")).json}
    assert listed["TEE-BLK-M"]["weight_grams"] == 200 and listed["TEE-BLK-M"]["hs_code"] == "610910"
    assert listed["MUG-05"]["tags"] == ["final-sale", "fragile"] and listed["MUG-05"]["length_cm"] == "12"


def test_catalogue_cli(app: Any, runtime: Runtime, manual_shop: int, tmp_path: Any) -> None:
    from tests.test_stock import orderline

    path = tmp_path / "catalogue.csv"
    path.write_text(CATALOGUE)
    result = orderline(app, "catalogue", "import", str(path), "--shop", str(manual_shop))
    assert result.exit_code == 0, result.output
    assert "3 row(s): 3 created, 0 updated, 0 unchanged" in result.output
    path.write_text("sku,weight_grams\n,10\n")
    result = orderline(app, "catalogue", "import", str(path), "--shop", str(manual_shop))
    assert result.exit_code == 1 and "row 2, column sku: is empty" in result.output


def test_parcel_weight_from_the_packer_else_the_catalogue_else_the_shop_default(
        runtime: Runtime, manual_shop: int, stocked: None) -> None:
    from app import catalogue

    with runtime.db.session() as session:
        catalogue.import_products(session, manual_shop, CATALOGUE)
    weighed = packed(runtime, manual_shop, ("TEE-BLK-M", 2), weight=777)
    from_catalogue = packed(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1))
    run_all_jobs(runtime)
    configure(runtime, manual_shop, default_parcel_grams=1500)
    with runtime.db.session() as session:
        session.execute(sa_delete(Product).where(Product.sku == "CAP-01"))
    unknown = packed(runtime, manual_shop, ("TEE-BLK-M", 1), ("CAP-01", 1))
    run_all_jobs(runtime)
    assert [s.weight_grams for s in shipments(runtime, weighed)] == [777]
    assert [s.weight_grams for s in shipments(runtime, from_catalogue)] == [2 * 180 + 95]
    assert [s.weight_grams for s in shipments(runtime, unknown)] == [1500]


def test_an_international_parcel_carries_customs_lines_from_the_catalogue(
        runtime: Runtime, manual_shop: int, stocked: None) -> None:
    from app import catalogue
    from tests.test_allocation import approved_order

    with runtime.db.session() as session:
        catalogue.import_products(session, manual_shop, CATALOGUE)
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1), country="NO")
    with runtime.db.session() as session:
        actions.allocate(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        [plan] = shipping.plan_shipments(session, order)
        draft = Shipment(order_id=order_id, items={str(k): v for k, v in plan.items.items()},
                         location_id=plan.location.id if plan.location else None)
        request = shipping.shipment_request(session, order, draft, "customs-test")
    assert request.is_international
    lines = {item.sku: item for item in request.customs_items}
    assert (lines["TEE-BLK-M"].hs_code, lines["TEE-BLK-M"].origin_country, lines["TEE-BLK-M"].quantity) == (
        "610910", "PT", 2)
    assert lines["TEE-BLK-M"].value == Decimal("200.00") and lines["TEE-BLK-M"].currency == "SEK"
    assert lines["TEE-BLK-M"].weight_grams == 360
    assert (lines["CAP-01"].hs_code, lines["CAP-01"].origin_country) == ("650500", "CN")


# --- cancelling voids ----------------------------------------------------------------------------------------


def test_cancelling_an_order_whose_label_was_bought_voids_it(client: Any, auth: Any, runtime: Runtime,
                                                             manual_shop: int, stocked: None) -> None:
    order_id = packed(runtime, manual_shop, ("TEE-BLK-M", 1))
    [claimed] = shipments(runtime, order_id)
    assert claimed.status == "purchasing" and claimed.reference
    # The buy went through at the carrier, but its job died before recording it.
    with runtime.db.session() as session:
        shop = session.get(Shop, manual_shop)
        order = session.get(Order, order_id)
        assert shop is not None and order is not None
        carrier = shipping.carrier_client(runtime, shop)
        request = shipping.shipment_request(session, order, session.get(Shipment, claimed.id), claimed.reference)
        bought = carrier.buy_label(request, carrier.rates(request)[0])
    answer = client.post(f"/api/v1/orders/{order_id}/actions/cancel", json={"reason": "customer changed mind"},
                         headers=auth("manager"))
    assert answer.status_code == 200, answer.json
    run_all_jobs(runtime)

    [voided] = shipments(runtime, order_id)
    assert voided.status == "voided" and voided.voided_at is not None
    assert carrier.find_label(claimed.reference) is None, "the label bought for it is voided at the carrier"
    events = [e for e in timeline(runtime, order_id) if e.type == "shipment.label_voided"]
    assert len(events) == 1 and events[0].data == {"shipment_id": claimed.id}
    assert bought.tracking_number in events[0].message
    assert order_of(runtime, order_id).status == "cancelled"
    assert "shipment.label_purchased" not in types(runtime, order_id)


def test_a_sandbox_parcel_is_followed_until_delivered(runtime: Runtime, manual_shop: int, stocked: None) -> None:
    import time
    from datetime import timedelta

    from app import tracking
    from app.store import utcnow

    configure(runtime, manual_shop, carrier_settings={"minutes_to_deliver": 0.01})  # a 0.6 s journey
    order_id = packed(runtime, manual_shop, ("TEE-BLK-M", 1))
    run_all_jobs(runtime)
    [shipment] = shipments(runtime, order_id)
    assert shipment.next_poll_at is not None, "tracking follows a parcel from its label on"
    time.sleep(1.0)
    with runtime.db.session() as session:  # due now, rather than at the sandbox's next poll
        session.get(Shipment, shipment.id).next_poll_at = utcnow() - timedelta(seconds=1)
    assert tracking.schedule_due_polls(runtime) == 1
    run_all_jobs(runtime)
    assert order_of(runtime, order_id).status == "delivered"
    statuses = [e.data["status"] for e in timeline(runtime, order_id) if e.type == "shipment.tracking"]
    assert "in_transit" in statuses and statuses[-1] == "delivered"


def test_an_orders_next_steps_run_in_the_same_job(runtime: Runtime, manual_shop: int, stocked: None,
                                                   client: Any, auth: Any) -> None:
    """Triage, allocation, pick and pack and the label run one after another in the process that ran the
    first step: one RQ job for the order, each step still its own outbox row and transaction."""
    from app.models import OutboxEvent
    from jobs.runner import run_outbox
    from tests.conftest import order_payload

    configure(runtime, manual_shop, auto_approve=True, auto_pick_pack=True)
    created = client.post("/api/v1/orders", headers=auth("operator"), json=order_payload(
        manual_shop, line_items=[{"sku": "TEE-BLK-M", "title": "T-shirt", "quantity": 1, "unit_price": "199.00"}]))
    assert created.status_code == 201, created.json
    order_id = created.json["id"]
    with runtime.db.session() as session:
        triage = session.execute(select(OutboxEvent).where(OutboxEvent.job == "triage_order")).scalar_one()
    assert run_outbox(triage.id) == "done"
    assert order_of(runtime, order_id).status == "shipped"
    with runtime.db.session() as session:
        rows = {row.job: row for row in session.execute(select(OutboxEvent)).scalars()}
    for step in ("triage_order", "allocate_order", "auto_pick_pack", "buy_label"):
        assert rows[step].status == "done", step
        assert rows[step].enqueued_at is None or step == "triage_order", f"{step} went through Redis"
