"""Allocation: one location when one can ship everything, else a split; the nearest strategy; backorders
naming what is missing; waiting orders allocated when stock arrives, oldest first; stock given back on
cancel; and fifty orders competing for ten units from many threads at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import queue
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from app import stock
from app.models import Allocation, Order, OrderEvent, OutboxEvent, Shop, StockLevel
from app.orders import actions
from app.orders.types import Actor, NewAddress, NewLineItem, NewOrder, Role
from app.runtime import Runtime
from tests.conftest import order_payload
from tests.test_outbox import run_all_jobs
from tests.test_stock import add_location, import_csv, levels

ANA = Actor.staff("U_ANA", "ana", Role.MANAGER)
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def set_strategy(runtime: Runtime, shop_id: int, strategy: str | None = None, **settings: Any) -> None:
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        shop.settings = {**({"allocation": strategy} if strategy else {}), **settings}


def approved_order(runtime: Runtime, shop_id: int, *items: tuple[str | None, int], country: str = "SE",
                   minutes: float = 0, shipping: bool = True) -> int:
    """An order for `items` ((sku, quantity) …), placed `minutes` after T0, triaged and approved by Ana."""
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        order = actions.create_order(session, shop, NewOrder(
            currency="SEK", placed_at=T0 + timedelta(minutes=minutes),
            shipping_address=NewAddress(name="Anna Berg", line1="Storgatan 12", city="Göteborg",
                                        country_code=country),
            line_items=[NewLineItem(title=sku or "Gift wrapping", sku=sku, quantity=quantity,
                                    unit_price=Decimal("100.00"), requires_shipping=shipping)
                        for sku, quantity in items]), ANA)
        actions.triage(session, order.id)
        actions.approve(session, order.id, ANA)
        return order.id


def allocate(runtime: Runtime, order_id: int) -> Order:
    with runtime.db.session() as session:
        return actions.allocate(session, order_id)


def allocated(runtime: Runtime, order_id: int) -> list[tuple[str, str, int, str]]:
    """(location code, sku, quantity, status) of an order's allocations."""
    with runtime.db.session() as session:
        return [(a.location.code, a.sku, a.quantity, a.status) for a in stock.allocations_of(session, order_id)]


def status(runtime: Runtime, order_id: int) -> str:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.status


def last_event(runtime: Runtime, order_id: int, type: str | None = None) -> OrderEvent:
    with runtime.db.session() as session:
        query = sa.select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id.desc())
        if type:
            query = query.where(OrderEvent.type == type)
        event = session.execute(query.limit(1)).scalar_one()
        return event


@pytest.fixture
def warehouses(runtime: Runtime) -> None:
    add_location(runtime, "STHLM", "SE", priority=10)
    add_location(runtime, "NJ", "US", priority=20)


# --- where the goods come from --------------------------------------------------------------------------


def test_one_location_that_has_everything_is_preferred(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\nSTHLM,CAP-01,5\nNJ,TEE-BLK-M,5\nNJ,CAP-01,5\n")
    first = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1))
    assert allocate(runtime, first).status == "allocated"
    assert allocated(runtime, first) == [("STHLM", "TEE-BLK-M", 2, "reserved"), ("STHLM", "CAP-01", 1, "reserved")]
    event = last_event(runtime, first)
    assert (event.type, event.message) == ("order.allocated", "Allocated 2× TEE-BLK-M, 1× CAP-01 from STHLM")
    assert event.data["split"] is False and event.data["strategy"] == "single_location_first"
    assert event.data["locations"] == [{"location": "STHLM", "name": "Warehouse STHLM", "items": [
        {"sku": "TEE-BLK-M", "quantity": 2}, {"sku": "CAP-01", "quantity": 1}]}]

    # STHLM (the first by priority) now lacks caps for an order of five: NJ has everything, so NJ ships it all.
    second = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), ("CAP-01", 5))
    allocate(runtime, second)
    assert allocated(runtime, second) == [("NJ", "TEE-BLK-M", 1, "reserved"), ("NJ", "CAP-01", 5, "reserved")]
    assert levels(runtime) == {("STHLM", "TEE-BLK-M"): (5, 2, None), ("STHLM", "CAP-01"): (5, 1, None),
                               ("NJ", "TEE-BLK-M"): (5, 1, None), ("NJ", "CAP-01"): (5, 5, None)}


def test_no_single_location_has_everything_so_it_splits(runtime: Runtime, manual_shop: int,
                                                        warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,3\nNJ,TEE-BLK-M,2\nNJ,CAP-01,4\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 4), ("CAP-01", 2))
    allocate(runtime, order_id)
    # NJ covers the most (2 tees + 2 caps) and goes first; STHLM ships the remaining two tees.
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 2, "reserved"),
                                            ("NJ", "TEE-BLK-M", 2, "reserved"), ("NJ", "CAP-01", 2, "reserved")]
    event = last_event(runtime, order_id)
    assert event.message == ("Allocated from 2 locations (split): 2× TEE-BLK-M, 2× CAP-01 from NJ; "
                             "2× TEE-BLK-M from STHLM")
    assert event.data["split"] is True
    assert [group["location"] for group in event.data["locations"]] == ["NJ", "STHLM"]


def test_split_strategy_takes_by_priority_even_when_one_location_could_ship_all(
        runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    set_strategy(runtime, manual_shop, "split")
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,1\nNJ,TEE-BLK-M,9\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 3))
    allocate(runtime, order_id)
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 1, "reserved"), ("NJ", "TEE-BLK-M", 2, "reserved")]
    assert last_event(runtime, order_id).data["strategy"] == "split"


def test_nearest_ships_from_the_destination_country_first(runtime: Runtime, manual_shop: int,
                                                          warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,9\nNJ,TEE-BLK-M,2\n")
    default = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), country="US")
    allocate(runtime, default)
    assert allocated(runtime, default) == [("STHLM", "TEE-BLK-M", 1, "reserved")], "priority decides by default"

    set_strategy(runtime, manual_shop, "nearest")
    american = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), country="US")
    swedish = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), country="SE")
    allocate(runtime, american)
    allocate(runtime, swedish)
    assert allocated(runtime, american) == [("NJ", "TEE-BLK-M", 1, "reserved")]
    assert allocated(runtime, swedish) == [("STHLM", "TEE-BLK-M", 1, "reserved")]
    # More than New Jersey has: as much as possible from the US, the rest from Stockholm.
    big = approved_order(runtime, manual_shop, ("TEE-BLK-M", 3), country="US")
    allocate(runtime, big)
    assert allocated(runtime, big) == [("STHLM", "TEE-BLK-M", 2, "reserved"), ("NJ", "TEE-BLK-M", 1, "reserved")]
    assert last_event(runtime, big).data["strategy"] == "nearest"


def test_an_unknown_strategy_falls_back_to_the_default(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    set_strategy(runtime, manual_shop, "cheapest-please")
    import_csv(runtime, "location,sku,on_hand\nNJ,TEE-BLK-M,2\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1))
    allocate(runtime, order_id)
    assert last_event(runtime, order_id).data["strategy"] == "single_location_first"


def test_inactive_locations_are_never_allocated_from(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    add_location(runtime, "OLD", "SE", priority=1, active=False)
    import_csv(runtime, "location,sku,on_hand\nOLD,TEE-BLK-M,50\nNJ,TEE-BLK-M,1\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2))
    assert allocate(runtime, order_id).status == "backordered"
    assert last_event(runtime, order_id).message == "Backordered: 1× TEE-BLK-M missing"


def test_lines_without_sku_or_shipping_are_not_stock_tracked(runtime: Runtime, manual_shop: int,
                                                             warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,1\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), (None, 1))
    allocate(runtime, order_id)
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 1, "reserved")]
    event = last_event(runtime, order_id)
    assert event.message.endswith("(1 line(s) without a SKU are not stock-tracked)")
    assert event.data["untracked_lines"] == ["Gift wrapping"]
    digital = approved_order(runtime, manual_shop, ("EBOOK-1", 1), shipping=False)
    assert allocate(runtime, digital).status == "allocated"
    assert last_event(runtime, digital).message == "Allocated: nothing in this order needs stock"


# --- backorders and stock arriving ----------------------------------------------------------------------


def test_backorder_names_what_is_missing_and_reserves_nothing(runtime: Runtime, manual_shop: int,
                                                              warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\nSTHLM,CAP-01,1\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 4), ("SOCK-3", 3))
    assert allocate(runtime, order_id).status == "backordered"
    event = last_event(runtime, order_id)
    assert (event.type, event.message) == ("order.backordered", "Backordered: 3× CAP-01, 3× SOCK-3 missing")
    assert event.data["skus"] == ["CAP-01", "SOCK-3"]
    assert event.data["missing"] == [{"sku": "CAP-01", "quantity": 3, "needed": 4, "available": 1},
                                     {"sku": "SOCK-3", "quantity": 3, "needed": 3, "available": 0}]
    assert allocated(runtime, order_id) == []
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (5, 0, None), "nothing held for an order that cannot ship"

    # Asking again while still short changes nothing and says nothing new.
    assert allocate(runtime, order_id).status == "backordered"
    assert last_event(runtime, order_id).id == event.id


def test_allocation_is_idempotent(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2))
    for _ in range(3):
        assert allocate(runtime, order_id).status == "allocated"
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 2, "reserved")]
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (5, 2, None)


def create_via_api(client: Any, auth: Any, shop_id: int, *items: tuple[str, int], number: str) -> int:
    lines = [{"sku": sku, "title": sku, "quantity": quantity, "unit_price": "100.00"} for sku, quantity in items]
    response = client.post("/api/v1/orders", json=order_payload(shop_id, line_items=lines, number=number),
                           headers=auth("operator"))
    assert response.status_code == 201, response.json
    return response.json["id"]  # type: ignore[no-any-return]


def test_approval_allocates_through_the_job_and_stock_arriving_allocates_waiting_orders_oldest_first(
        client: Any, auth: Any, runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    set_strategy(runtime, manual_shop, auto_approve=True)
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,1\n")
    oldest = create_via_api(client, auth, manual_shop, ("TEE-BLK-M", 2), number="A-1")
    middle = create_via_api(client, auth, manual_shop, ("TEE-BLK-M", 3), number="A-2")
    newest = create_via_api(client, auth, manual_shop, ("TEE-BLK-M", 1), ("CAP-01", 1), number="A-3")
    run_all_jobs(runtime)  # triage → approved → allocate_order job
    assert [status(runtime, o) for o in (oldest, middle, newest)] == ["backordered"] * 3
    timeline = client.get(f"/api/v1/orders/{oldest}", headers=auth("viewer")).json["timeline"]
    assert [e["type"] for e in timeline] == ["order.received", "order.approved", "order.backordered"]
    assert timeline[-1]["message"] == "Backordered: 1× TEE-BLK-M missing"

    # Four more tees (five free): the oldest (2) fits, the middle (3) fits what is left; the newest also
    # needs a cap, which nobody has, so it keeps waiting.
    response = client.post("/api/v1/inventory/import", data="location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n",
                           content_type="text/csv", headers=auth("manager"))
    assert response.status_code == 200, response.json
    assert response.json["queued_orders"] == [oldest, middle]
    run_all_jobs(runtime)
    assert [status(runtime, o) for o in (oldest, middle, newest)] == ["allocated", "allocated", "backordered"]
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (5, 5, None)

    # A delivery of caps and one tee (adjust): the newest order is complete now.
    client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "CAP-01", "delta": 1},
                headers=auth("operator"))
    assert status(runtime, newest) == "backordered", "still no tee free"
    adjusted = client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "TEE-BLK-M", "delta": 1},
                           headers=auth("operator"))
    assert adjusted.json["queued_orders"] == [newest]
    run_all_jobs(runtime)
    assert status(runtime, newest) == "allocated"
    assert allocated(runtime, newest) == [("NJ", "TEE-BLK-M", 1, "reserved"), ("NJ", "CAP-01", 1, "reserved")]
    assert last_event(runtime, newest).message == "Allocated 1× TEE-BLK-M, 1× CAP-01 from NJ"


def test_oldest_waiting_order_gets_scarce_stock_first(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    newer = approved_order(runtime, manual_shop, ("CAP-01", 1), minutes=5)
    older = approved_order(runtime, manual_shop, ("CAP-01", 1), minutes=1)
    for order_id in (newer, older):
        allocate(runtime, order_id)
    with runtime.db.session() as session:  # the approvals' own jobs have run: only stock arriving asks now
        session.execute(sa.update(OutboxEvent).values(status="done"))
    assert import_csv(runtime, "location,sku,on_hand\nNJ,CAP-01,1\n").queued_orders == [older]
    assert import_csv(runtime, "location,sku,on_hand\nNJ,CAP-01,1\n").queued_orders == [], "unchanged: no news"
    assert import_csv(runtime, "location,sku,on_hand\nNJ,CAP-01,2\n").queued_orders == [newer], \
        "the older one's allocation is already queued and counts against the stock"


def test_with_no_location_nothing_is_allocated_until_stock_is_kept(runtime: Runtime, manual_shop: int) -> None:
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1))
    assert allocate(runtime, order_id).status == "approved"
    assert last_event(runtime, order_id).type == "order.allocation_skipped"
    with runtime.db.session() as session:
        session.execute(sa.update(OutboxEvent).values(status="done"))
    add_location(runtime, "STHLM")
    bigger = approved_order(runtime, manual_shop, ("TEE-BLK-M", 5), minutes=1)
    allocate(runtime, bigger)
    with runtime.db.session() as session:
        session.execute(sa.update(OutboxEvent).values(status="done"))
    # Not enough for both: the approved one, never allocated, is asked anyway and shows as backordered.
    assert import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,3\n").queued_orders == [order_id]
    run_all_jobs(runtime)
    assert status(runtime, order_id) == "allocated"
    assert status(runtime, bigger) == "backordered"
    assert import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n").queued_orders == [], \
        "4 free, 5 needed: a backordered order that would still be short is not asked"
    assert import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,6\n").queued_orders == [bigger]


# --- giving stock back ----------------------------------------------------------------------------------


def test_cancel_releases_the_stock_and_a_waiting_order_gets_it(client: Any, auth: Any, runtime: Runtime,
                                                               manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,2\nNJ,CAP-01,1\n")
    first = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1), minutes=1)
    waiting = approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), minutes=2)
    allocate(runtime, first)
    allocate(runtime, waiting)
    assert status(runtime, waiting) == "backordered"
    with runtime.db.session() as session:
        session.execute(sa.update(OutboxEvent).values(status="done"))

    response = client.post(f"/api/v1/orders/{first}/actions/cancel", json={"reason": "customer called"},
                           headers=auth("manager"))
    assert response.status_code == 200, response.json
    assert [e["type"] for e in response.json["timeline"]][-2:] == ["order.cancelled", "order.stock_released"]
    assert response.json["timeline"][-1]["message"] == "Released 2× TEE-BLK-M at STHLM; 1× CAP-01 at NJ"
    assert allocated(runtime, first) == [("STHLM", "TEE-BLK-M", 2, "released"), ("NJ", "CAP-01", 1, "released")]
    assert levels(runtime) == {("STHLM", "TEE-BLK-M"): (2, 0, None), ("NJ", "CAP-01"): (1, 0, None)}

    run_all_jobs(runtime)  # the cancel queued the waiting order's allocation
    assert status(runtime, waiting) == "allocated"
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (2, 1, None)


def test_channel_cancellation_releases_stock_too(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,2\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2))
    allocate(runtime, order_id)
    with runtime.db.session() as session:
        shop = session.get(Shop, manual_shop)
        order = session.get(Order, order_id)
        assert shop is not None and order is not None
        assert actions.remove_on_channel(session, shop, order.external_id, reason="deleted") == "applied"
    assert status(runtime, order_id) == "cancelled"
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (2, 0, None)


def test_shipping_takes_the_units_off_the_shelf(runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n")
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2))
    allocate(runtime, order_id)
    with runtime.db.session() as session:
        stock.ship_allocations(session, stock.allocations_of(session, order_id))
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 2, "shipped")]
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (3, 0, None)
    with runtime.db.session() as session:
        assert stock.release_order(session, session.get(Order, order_id)) == [], "shipped goods are not released"


def test_a_shipment_rolled_back_leaves_the_units_on_the_shelf(runtime: Runtime, manual_shop: int,
                                                              warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n")
    rolled_back, shipped = (approved_order(runtime, manual_shop, ("TEE-BLK-M", n)) for n in (2, 1))
    allocate(runtime, rolled_back)
    allocate(runtime, shipped)
    with runtime.db.session() as session:
        with pytest.raises(RuntimeError), session.begin_nested():  # a label batch's row that failed
            stock.ship_allocations(session, stock.allocations_of(session, rolled_back))
            raise RuntimeError("the carrier refused")
        stock.ship_allocations(session, stock.allocations_of(session, shipped))
    assert [a[3] for a in allocated(runtime, rolled_back)] == ["reserved"]
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (4, 2, None), "one unit left, two still reserved"


def test_shipping_does_not_keep_the_stock_row_from_other_allocations(runtime: Runtime, manual_shop: int,
                                                                      warehouses: None) -> None:
    """A batch of labels ships many parcels of a popular SKU in one transaction; allocations of that SKU go
    on meanwhile instead of waiting for the batch to commit."""
    if runtime.db.dialect != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,5\n")
    first, second = (approved_order(runtime, manual_shop, ("TEE-BLK-M", 2)) for _ in range(2))
    allocate(runtime, first)
    with runtime.db.session() as batch:
        stock.ship_allocations(batch, stock.allocations_of(batch, first))
        batch.flush()
        with runtime.db.session() as other:
            other.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            assert actions.allocate(other, second).status == "allocated"
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (3, 2, None)


# --- the concurrency test -------------------------------------------------------------------------------


def _compete(runtime: Runtime, order_ids: list[int], threads: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Allocate every order from `threads` threads at once, each with its own session, while a watcher
    samples the stock rows. Returns the errors and every (on_hand, reserved) the watcher saw."""
    work: queue.Queue[int] = queue.Queue()
    for order_id in order_ids:
        work.put(order_id)
    errors: list[str] = []
    seen: list[tuple[int, int]] = []
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def worker() -> None:
        start.wait(timeout=30)
        while True:
            try:
                order_id = work.get_nowait()
            except queue.Empty:
                return
            try:
                with runtime.db.session() as session:
                    actions.allocate(session, order_id)
            except Exception as error:  # noqa: BLE001 - every failure is a finding
                errors.append(f"order {order_id}: {type(error).__name__}: {error}")

    def watch() -> None:
        start.wait(timeout=30)
        while not done.is_set():
            with runtime.db.engine.connect() as connection:
                seen.extend(connection.execute(sa.select(StockLevel.on_hand, StockLevel.reserved)).all())
            time.sleep(0.002)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    watcher = threading.Thread(target=watch)
    for thread in [*pool, watcher]:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    done.set()
    watcher.join(timeout=30)
    assert not any(thread.is_alive() for thread in pool), "a worker hung (deadlock?)"
    return errors, seen


def test_fifty_orders_competing_for_ten_units_never_oversell(runtime: Runtime, manual_shop: int,
                                                             warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,6\nNJ,TEE-BLK-M,4\n")
    order_ids = [approved_order(runtime, manual_shop, ("TEE-BLK-M", 1), minutes=i) for i in range(50)]
    random.Random(4).shuffle(order_ids)

    errors, seen = _compete(runtime, order_ids, threads=10)

    assert errors == []
    assert seen and all(0 <= reserved <= on_hand for on_hand, reserved in seen), "stock never negative or oversold"
    with runtime.db.session() as session:
        statuses = dict(session.execute(sa.select(Order.status, sa.func.count()).group_by(Order.status)).all())
        assert statuses == {"allocated": 10, "backordered": 40}
        allocations = session.execute(sa.select(Allocation.order_id, Allocation.quantity)).all()
        assert len(allocations) == 10 and {q for _, q in allocations} == {1}
        assert len({order_id for order_id, _ in allocations}) == 10, "no order allocated twice"
        events = session.execute(sa.select(OrderEvent.type, sa.func.count()).where(
            OrderEvent.type.in_(["order.allocated", "order.backordered"])).group_by(OrderEvent.type)).all()
        assert dict(events) == {"order.allocated": 10, "order.backordered": 40}
    assert levels(runtime) == {("STHLM", "TEE-BLK-M"): (6, 6, None), ("NJ", "TEE-BLK-M"): (4, 4, None)}
    assert sum(reserved for _, reserved, _ in levels(runtime).values()) == 10


def test_competing_multi_sku_orders_lock_without_deadlock_and_never_oversell(
        runtime: Runtime, manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,A,7\nNJ,A,5\nSTHLM,B,4\nNJ,B,6\nNJ,C,3\n")
    rng = random.Random(7)
    order_ids = []
    for i in range(40):
        skus = rng.sample(["C", "B", "A"], rng.randint(1, 3))  # lines in any order: the locks still are sorted
        order_ids.append(approved_order(runtime, manual_shop, *((sku, rng.randint(1, 3)) for sku in skus),
                                        country=rng.choice(["SE", "US"]), minutes=i))
    set_strategy(runtime, manual_shop, rng.choice(["split", "nearest", "single_location_first"]))

    errors, seen = _compete(runtime, order_ids, threads=8)

    assert errors == []
    assert all(0 <= reserved <= on_hand for on_hand, reserved in seen)
    with runtime.db.session() as session:
        held = {(location_id, sku): int(units) for location_id, sku, units in session.execute(
            sa.select(Allocation.location_id, Allocation.sku, sa.func.sum(Allocation.quantity))
            .group_by(Allocation.location_id, Allocation.sku)).all()}
        rows = session.execute(sa.select(StockLevel)).scalars().all()
        assert {(r.location_id, r.sku): r.reserved for r in rows if r.reserved} == held
        for order in session.execute(sa.select(Order)).scalars():
            needed = sum(line.quantity for line in order.line_items)
            got = sum(a.quantity for a in stock.allocations_of(session, order.id))
            assert (order.status, got) in (("allocated", needed), ("backordered", 0)), order.id
    assert sum(r for _, r, _ in levels(runtime).values()) == sum(held.values()) > 0


def test_an_order_held_after_approval_is_allocated_when_released(client: Any, auth: Any, runtime: Runtime,
                                                                  manual_shop: int, warehouses: None) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,4\n")
    order_id = create_via_api(client, auth, manual_shop, ("TEE-BLK-M", 2), number="H-1")
    run_all_jobs(runtime)
    assert client.post(f"/api/v1/orders/{order_id}/actions/approve", json={}, headers=auth()).status_code == 200
    held = client.post(f"/api/v1/orders/{order_id}/actions/hold", json={"reason": "fraud check"}, headers=auth())
    assert held.json["status"] == "on_hold"
    run_all_jobs(runtime)  # the allocation asked for by the approval finds the order on hold
    assert status(runtime, order_id) == "on_hold"
    client.post(f"/api/v1/orders/{order_id}/actions/release", json={}, headers=auth())
    run_all_jobs(runtime)
    assert status(runtime, order_id) == "allocated"
    assert levels(runtime)[("STHLM", "TEE-BLK-M")][:2] == (4, 2)


def test_erasing_a_shop_gives_its_reserved_stock_back(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                                      warehouses: None) -> None:
    from app import privacy
    from app.models import Shop

    import_csv(runtime, "location,sku,on_hand\nSTHLM,TEE-BLK-M,4\n")
    order_id = create_via_api(client, auth, manual_shop, ("TEE-BLK-M", 3), number="E-1")
    run_all_jobs(runtime)
    client.post(f"/api/v1/orders/{order_id}/actions/approve", json={}, headers=auth())
    run_all_jobs(runtime)
    assert levels(runtime)[("STHLM", "TEE-BLK-M")][:2] == (4, 3)
    with runtime.db.session() as session:
        shop = session.get(Shop, manual_shop)
        assert shop is not None
        privacy.erase_shop(session, shop)
    assert levels(runtime)[("STHLM", "TEE-BLK-M")][:2] == (4, 0)
