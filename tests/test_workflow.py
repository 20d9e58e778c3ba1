"""The order workflow: one table of transitions, a timeline for every change, one winner under concurrency."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from app.models import Order, OrderEvent, OutboxEvent
from app.orders import actions
from app.orders.errors import Forbidden, IllegalTransition, VersionConflict
from app.orders.statuses import TRANSITIONS, OrderStatus
from app.orders.types import Actor, Role
from tests.conftest import order_payload

ANA = Actor.staff("U_ANA", "ana", Role.MANAGER)
JONAS = Actor.staff("U_JONAS", "jonas", Role.VIEWER)


def create(client: Any, auth: Any, shop_id: int, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/orders", json=order_payload(shop_id, **overrides), headers=auth("operator"))
    assert response.status_code == 201, response.json
    return response.json


def act(client: Any, auth: Any, order_id: int, name: str, role: str = "manager", **body: Any) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/actions/{name}", json=body, headers=auth(role))


def test_every_status_has_a_row_and_terminal_states_go_nowhere() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert TRANSITIONS[OrderStatus.CANCELLED] == frozenset()
    assert OrderStatus.ON_HOLD in TRANSITIONS[OrderStatus.PACKED]
    assert OrderStatus.CANCELLED not in TRANSITIONS[OrderStatus.SHIPPED]


def test_new_order_is_triaged_by_a_job_into_review(client: Any, auth: Any, manual_shop: int, run_jobs: Any) -> None:
    order = create(client, auth, manual_shop)
    assert order["status"] == "received"
    assert run_jobs()
    after = client.get(f"/api/v1/orders/{order['id']}", headers=auth("viewer")).json
    assert after["status"] == "needs_review"
    assert [e["type"] for e in after["timeline"]] == ["order.received", "order.needs_review"]
    assert after["timeline"][1]["actor"]["kind"] == "system"


def test_triage_approves_automatically_when_the_shop_says_so(client: Any, auth: Any, manual_shop: int,
                                                               run_jobs: Any) -> None:
    client.patch(f"/api/v1/shops/{manual_shop}", json={"settings": {"auto_approve": True}}, headers=auth())
    order = create(client, auth, manual_shop)
    run_jobs()
    assert client.get(f"/api/v1/orders/{order['id']}", headers=auth()).json["status"] == "approved"


def test_approve_hold_release_cancel_with_timeline(client: Any, auth: Any, manual_shop: int, run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    held = act(client, auth, order_id, "hold", reason="address has no house number")
    assert held.status_code == 200
    assert held.json["status"] == "on_hold" and held.json["hold_reason"] == "address has no house number"
    released = act(client, auth, order_id, "release")
    assert released.json["status"] == "needs_review", "release resumes where the hold began"
    approved = act(client, auth, order_id, "approve", role="operator")
    assert approved.json["status"] == "approved"
    cancelled = act(client, auth, order_id, "cancel", reason="customer called to cancel")
    assert cancelled.json["status"] == "cancelled"
    timeline = cancelled.json["timeline"]
    assert [e["type"] for e in timeline] == ["order.received", "order.needs_review", "order.held", "order.released",
                                             "order.approved", "order.cancelled"]
    assert timeline[-1]["actor"] == {"kind": "staff", "id": timeline[-1]["actor"]["id"], "name": "test manager"}
    assert timeline[-1]["data"]["reason"] == "customer called to cancel"


def test_illegal_transition_is_409_naming_both_states(client: Any, auth: Any, manual_shop: int,
                                                      run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    act(client, auth, order_id, "cancel", reason="fraud")
    response = act(client, auth, order_id, "approve")
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "illegal_transition"
    assert "'cancelled'" in error["message"] and "'approved'" in error["message"]


def test_release_of_an_order_not_on_hold_is_refused(client: Any, auth: Any, manual_shop: int) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    response = act(client, auth, order_id, "release")
    assert response.status_code == 409
    assert "'received'" in response.json["error"]["message"]


def test_roles_viewer_cannot_approve_operator_cannot_cancel(client: Any, auth: Any, manual_shop: int,
                                                            run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    assert act(client, auth, order_id, "approve", role="viewer").status_code == 403
    refused = act(client, auth, order_id, "cancel", role="operator", reason="no")
    assert refused.status_code == 403 and "manager" in refused.json["error"]["message"]
    assert act(client, auth, order_id, "note", role="viewer", text="customer prefers evening delivery"
               ).status_code == 200
    status = client.get(f"/api/v1/orders/{order_id}", headers=auth()).json["status"]
    assert status == "needs_review"


def test_hold_and_cancel_need_a_reason(client: Any, auth: Any, manual_shop: int) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    for name in ("hold", "cancel"):
        response = act(client, auth, order_id, name)
        assert response.status_code == 422
        assert "reason" in response.json["error"]["fields"]


def test_stale_expected_version_is_a_conflict(client: Any, auth: Any, manual_shop: int, run_jobs: Any) -> None:
    order = create(client, auth, manual_shop)
    run_jobs()  # triage moves it on: version 1 is now stale
    response = act(client, auth, order["id"], "approve", expected_version=order["version"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "version_conflict"
    assert "version 1" in response.json["error"]["message"] and "version 2" in response.json["error"]["message"]


def test_two_concurrent_approvals_one_wins_one_conflicts(runtime: Any, client: Any, auth: Any, manual_shop: int,
                                                         run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    # SQLite lets one writer in at a time (BEGIN IMMEDIATE), so there the second simply reads the first's
    # result; PostgreSQL lets both read version N before either writes, so the version check must decide.
    barrier = threading.Barrier(1 if runtime.db.dialect == "sqlite" else 2)
    results: list[str] = []

    def approve(actor: Actor) -> None:
        try:
            with runtime.db.session() as session:
                order = session.get(Order, order_id)
                assert order is not None
                barrier.wait(timeout=10)  # both have read the order before either writes
                actions.approve(session, order_id, actor)
            results.append("ok")
        except (VersionConflict, IllegalTransition) as error:
            results.append(type(error).__name__)

    threads = [threading.Thread(target=approve, args=(ANA,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) in (["VersionConflict", "ok"], ["IllegalTransition", "ok"])
    with runtime.db.session() as session:
        approvals = session.query(OrderEvent).filter_by(order_id=order_id, type="order.approved").count()
    assert approvals == 1


def test_concurrent_http_approvals_give_one_200_and_one_409(app: Any, auth: Any, manual_shop: int,
                                                            run_jobs: Any) -> None:
    client = app.test_client()
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    statuses: list[int] = []
    start = threading.Event()

    def click() -> None:
        start.wait()
        statuses.append(app.test_client().post(f"/api/v1/orders/{order_id}/actions/approve", json={},
                                               headers=auth("operator")).status_code)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200, 409]


def test_actions_write_event_and_outbox_in_one_transaction(runtime: Any, manual_shop: int) -> None:
    from decimal import Decimal

    from app.models import Shop
    from app.orders.types import NewLineItem, NewOrder

    with pytest.raises(RuntimeError):
        with runtime.db.session() as session:
            shop = session.get(Shop, manual_shop)
            actions.create_order(session, shop, NewOrder(currency="SEK", line_items=[
                NewLineItem(title="Mug", quantity=1, unit_price=Decimal("89.00"))]), ANA)
            raise RuntimeError("the caller fails after the action")
    with runtime.db.session() as session:
        assert session.query(Order).count() == 0
        assert session.query(OrderEvent).count() == 0
        assert session.query(OutboxEvent).count() == 0


def test_perform_refuses_unknown_actions_and_low_roles(runtime: Any) -> None:
    with runtime.db.session() as session:
        with pytest.raises(Forbidden):
            actions.perform(session, 1, "cancel", JONAS, reason="x")


def test_edit_corrects_address_level_and_note_before_the_goods_leave(client: Any, auth: Any, manual_shop: int,
                                                                     run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()
    edited = act(client, auth, order_id, "edit", role="operator", shipping_level="express", note="Gift wrap",
                 shipping_address={"name": "Anna Berg", "line1": "Storgatan 14", "city": "Göteborg",
                                   "postal_code": "411 01", "country_code": "SE"})
    assert edited.status_code == 200, edited.json
    order = edited.json
    assert (order["shipping_level"], order["note"], order["shipping_address"]["line1"]) == (
        "express", "Gift wrap", "Storgatan 14")
    assert order["timeline"][-1]["type"] == "order.edited"
    assert "shipping address" in order["timeline"][-1]["message"]
    bad = act(client, auth, order_id, "edit", role="operator", shipping_level="teleport")
    assert bad.status_code == 422 and "shipping_level" in bad.json["error"]["fields"]
