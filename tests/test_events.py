"""Listeners hear what a committed transaction recorded, once, and nothing of what was rolled back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app import events
from app.alerts import raise_alert
from app.orders import actions
from app.orders.types import Actor, Role
from tests.conftest import order_payload


@pytest.fixture
def heard() -> Iterator[list[events.Happened]]:
    seen: list[events.Happened] = []
    events.listen("test", lambda session, happened: seen.append(happened))
    yield seen
    events._listeners.pop("test", None)


def test_listener_hears_each_committed_entry_once(runtime, manual_shop, client, auth, heard):
    response = client.post("/api/v1/orders", json=order_payload(manual_shop), headers=auth("operator"))
    assert response.status_code == 201, response.json
    order_id = response.json["id"]
    types = [e.type for h in heard for e in h.order_events]
    assert types == ["order.received"]
    assert heard[0].order_events[0].id is not None  # flushed: listeners can refer to it by id

    with runtime.db.session() as session:
        actions.hold(session, order_id, Actor.staff("ana", "Ana", Role.MANAGER), reason="call the customer")
        raise_alert(session, "test", "k", "something")
    assert [e.type for e in heard[-1].order_events] == ["order.held"]
    assert [a.kind for a in heard[-1].alerts] == ["test"]


def test_rolled_back_work_is_not_heard(runtime, manual_shop, client, auth, heard):
    order_id = client.post("/api/v1/orders", json=order_payload(manual_shop), headers=auth("operator")).json["id"]
    before = len(heard)
    with pytest.raises(RuntimeError):
        with runtime.db.session() as session:
            actions.hold(session, order_id, Actor.staff("ana", "Ana", Role.MANAGER), reason="x")
            raise RuntimeError("boom")
    with runtime.db.session() as session:
        actions.add_note(session, order_id, Actor.staff("ana", "Ana", Role.MANAGER), text="still here")
    assert [e.type for h in heard[before:] for e in h.order_events] == ["order.note_added"]


def test_staff_reply_is_on_the_timeline_for_the_sms_listener(runtime, manual_shop, client, auth, heard):
    order_id = client.post("/api/v1/orders", json=order_payload(manual_shop), headers=auth("operator")).json["id"]
    empty = client.post(f"/api/v1/orders/{order_id}/actions/reply", json={"text": " "}, headers=auth("operator"))
    assert empty.status_code == 422
    reply = client.post(f"/api/v1/orders/{order_id}/actions/reply", json={"text": "It ships Monday"},
                        headers=auth("operator"))
    assert reply.status_code == 200, reply.json
    entry = heard[-1].order_events[-1]
    assert (entry.type, entry.data["text"]) == ("order.customer_reply", "It ships Monday")
