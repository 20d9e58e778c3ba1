"""`actions.lock_order`: an order is read under its row lock once per transaction, and read again whenever
that lock may be gone (a new transaction, a savepoint rolled back), so no step ever acts on a stale order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from app.models import Order
from app.orders import actions
from app.runtime import Runtime
from tests.conftest import order_payload


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", note)


def order_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("SELECT orders.id, orders.shop_id")]


def new_order(client: Any, auth: Any, shop_id: int) -> int:
    response = client.post("/api/v1/orders", json=order_payload(shop_id), headers=auth("operator"))
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def rename_elsewhere(runtime: Runtime, order_id: int, note: str) -> None:
    with runtime.db.session() as other:
        order = other.get(actions.Order, order_id)
        assert order is not None
        order.note = note


def test_the_second_step_of_a_transaction_reuses_the_locked_order(runtime: Runtime, client: Any, auth: Any,
                                                                  manual_shop: int) -> None:
    order_id = new_order(client, auth, manual_shop)
    with runtime.db.session() as session, statements(runtime) as seen:
        first = actions.lock_order(session, order_id)
        with session.begin_nested():  # a local step runs in a savepoint of the same transaction
            again = actions.lock_order(session, order_id)
    assert first is not None and again is first
    assert len(order_reads(seen)) == 1, "read once, under the lock"


def test_a_step_in_the_next_savepoint_reuses_the_order_a_released_one_locked(runtime: Runtime, client: Any,
                                                                            auth: Any, manual_shop: int) -> None:
    order_id = new_order(client, auth, manual_shop)
    with runtime.db.session() as session, statements(runtime) as seen:
        with session.begin_nested():  # a batch's triage of the order, in its row's savepoint
            first = actions.lock_order(session, order_id)
        with session.begin_nested():  # the allocation it asked for, in the next one
            again = actions.lock_order(session, order_id)
    assert again is first
    assert len(order_reads(seen)) == 1, "the lock outlives the released savepoint"


def test_a_new_transaction_reads_the_order_again_with_what_others_committed(runtime: Runtime, client: Any,
                                                                           auth: Any, manual_shop: int) -> None:
    order_id = new_order(client, auth, manual_shop)
    with runtime.db.sessionmaker() as session:  # one session, two transactions (as a step and the next)
        with session.begin():
            assert actions.lock_order(session, order_id) is not None
        rename_elsewhere(runtime, order_id, "gift wrap, please")
        with session.begin(), statements(runtime) as seen:
            order = actions.lock_order(session, order_id)
            assert order is not None and order.note == "gift wrap, please"
        assert len(order_reads(seen)) == 1


def test_after_a_savepoint_is_rolled_back_the_order_is_locked_and_read_again(runtime: Runtime, client: Any,
                                                                            auth: Any, manual_shop: int) -> None:
    order_id = new_order(client, auth, manual_shop)
    with runtime.db.session() as session:
        savepoint = session.begin_nested()
        assert actions.lock_order(session, order_id) is not None
        savepoint.rollback()  # PostgreSQL gives up the locks taken inside it
        with statements(runtime) as seen:
            assert actions.lock_order(session, order_id) is not None
        assert len(order_reads(seen)) == 1
        assert seen[0].endswith("FOR UPDATE") or runtime.db.dialect == "sqlite"


def test_a_batch_locks_and_reads_its_orders_together_and_each_step_finds_them(runtime: Runtime, client: Any,
                                                                               auth: Any, manual_shop: int) -> None:
    order_ids = [new_order(client, auth, manual_shop) for _ in range(3)]
    with runtime.db.session() as session:
        with statements(runtime) as prepared:
            actions.lock_orders(session, reversed(order_ids))
        with statements(runtime) as stepped:
            for order_id in order_ids:  # what triage, allocation, a label each read of their order
                order = actions.lock_order(session, order_id)
                assert order.line_items and order.address("shipping") is not None and order.shipments == []
        if runtime.db.dialect == "postgresql":
            with runtime.db.session() as other:
                other.execute(text("SET LOCAL lock_timeout = '100ms'"))
                with pytest.raises(OperationalError):
                    other.execute(select(Order.id).where(Order.id == order_ids[1]).with_for_update())
    assert len(order_reads(prepared)) == 1, "one statement for the three orders"
    assert prepared[0].endswith("FOR UPDATE") or runtime.db.dialect == "sqlite"
    assert len([s for s in prepared if s.startswith("SELECT")]) == 4, "the orders, their lines, addresses, parcels"
    assert stepped == [], "every step found its order, its lines, address and parcels already read"
