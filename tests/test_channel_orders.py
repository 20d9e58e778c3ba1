"""What channels say about an order is applied once, in the right order, whatever order it arrives in."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.models import Order, OrderEvent, OrderRefund, OutboxEvent, Shop
from app.orders import actions
from app.orders.types import NewAddress, NewLineItem, NewOrder, NewRefund

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def shop(runtime: Any) -> Shop:
    with runtime.db.session() as session:
        shop = Shop(channel="shopify", name="Stockholm store", external_id="sthlm.myshopify.com", currency="SEK")
        session.add(shop)
    return shop


def snapshot(at: datetime, **overrides: Any) -> NewOrder:
    base = NewOrder(
        external_id="820982911946154508", number="#1001", currency="SEK",
        customer_name="Maria Lind", customer_email="maria@example.se",
        shipping_address=NewAddress(name="Maria Lind", line1="Avenyn 1", city="Göteborg", postal_code="41136",
                                    country_code="SE"),
        line_items=[NewLineItem(external_id="L1", sku="TEE-M", title="T-shirt", quantity=2,
                                unit_price=Decimal("199.00")),
                    NewLineItem(external_id="L2", sku="CAP", title="Cap", quantity=1, unit_price=Decimal("149.50"))],
        shipping_total=Decimal("49.00"), financial_status="paid", channel_updated_at=at, placed_at=T0,
    )
    return replace(base, **overrides)


def apply(runtime: Any, shop: Shop, data: NewOrder) -> str:
    with runtime.db.session() as session:
        _order, outcome = actions.apply_channel_order(session, session.get(Shop, shop.id), data)
    return outcome


def stored(runtime: Any) -> Order:
    with runtime.db.session() as session:
        order = session.query(Order).one()
        order.line_items, order.refunds, order.addresses  # noqa: B018 - load while the session is open
        return order


def test_create_then_update_then_repeat(runtime: Any, shop: Shop) -> None:
    assert apply(runtime, shop, snapshot(T0)) == "created"
    order = stored(runtime)
    assert order.total == Decimal("596.50") and order.status == "received" and order.channel == "shopify"
    edited = snapshot(T0 + timedelta(minutes=5), line_items=[
        NewLineItem(external_id="L1", sku="TEE-M", title="T-shirt", quantity=3, unit_price=Decimal("199.00")),
        NewLineItem(external_id="L3", sku="SOCK", title="Socks", quantity=1, unit_price=Decimal("79.00"))],
        tags=["vip"], note="leave at the door")
    assert apply(runtime, shop, edited) == "updated"
    order = stored(runtime)
    assert sorted((i.sku, i.quantity) for i in order.line_items) == [("SOCK", 1), ("TEE-M", 3)]
    assert order.total == Decimal("725.00") and order.tags == ["vip"] and order.note == "leave at the door"
    assert apply(runtime, shop, edited) == "unchanged"
    with runtime.db.session() as session:
        types = [e.type for e in session.query(OrderEvent).order_by(OrderEvent.id)]
        assert types == ["order.received", "order.updated_by_channel"]
        assert session.query(OutboxEvent).filter_by(job="triage_order").count() == 1


def test_an_older_update_never_overwrites_a_newer_one(runtime: Any, shop: Shop) -> None:
    apply(runtime, shop, snapshot(T0 + timedelta(minutes=10), note="newest"))
    assert apply(runtime, shop, snapshot(T0 + timedelta(minutes=5), note="older")) == "stale"
    assert stored(runtime).note == "newest"


def test_an_update_before_its_create_ends_with_the_newest_state(runtime: Any, shop: Shop) -> None:
    assert apply(runtime, shop, snapshot(T0 + timedelta(minutes=3), note="updated")) == "created"
    assert apply(runtime, shop, snapshot(T0, note=None)) == "stale"
    assert stored(runtime).note == "updated"


def test_refunds_are_counted_once_and_adjust_items(runtime: Any, shop: Shop) -> None:
    refund = NewRefund(external_id="R1", amount=Decimal("199.00"), line_items={"L1": 1}, reason="too small")
    apply(runtime, shop, snapshot(T0))
    apply(runtime, shop, snapshot(T0 + timedelta(minutes=1), refunds=[refund], financial_status="partially_refunded"))
    with runtime.db.session() as session:
        assert actions.apply_channel_refund(session, session.get(Shop, shop.id), "820982911946154508",
                                            refund) == "duplicate"
    order = stored(runtime)
    assert order.refunded_total == Decimal("199.00") and order.financial_status == "partially_refunded"
    assert {i.external_id: i.refunded_quantity for i in order.line_items} == {"L1": 1, "L2": 0}
    with runtime.db.session() as session:
        assert session.query(OrderRefund).count() == 1


def test_cancellation_on_the_channel_cancels_here(runtime: Any, shop: Shop) -> None:
    apply(runtime, shop, snapshot(T0))
    apply(runtime, shop, snapshot(T0 + timedelta(hours=1), cancelled=True, cancel_reason="customer"))
    order = stored(runtime)
    assert order.status == "cancelled" and order.cancel_reason == "customer"


def test_two_workers_ingesting_the_same_new_order_make_one_row(runtime: Any, shop: Shop) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def ingest(note: str, minutes: int) -> None:
        barrier.wait(timeout=10)
        outcomes.append(apply(runtime, shop, snapshot(T0 + timedelta(minutes=minutes), note=note)))

    threads = [threading.Thread(target=ingest, args=(n, m)) for n, m in (("first", 1), ("second", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) in (["created", "updated"], ["created", "stale"])
    with runtime.db.session() as session:
        assert session.query(Order).count() == 1
        assert session.query(Order).one().note == "second"
