"""Shipping: labels from the shop's carrier after packing, one per location, bought exactly once; the order
shipped; cancelled orders' labels voided; refusals stop the step on the timeline and `retry` resumes it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import shipping
from app.models import Order, OrderEvent, Shipment, Shop
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
