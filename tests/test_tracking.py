"""Carrier tracking: signed webhooks from the fake carriers through the inbox to shipments, timelines and
orders; duplicates, out-of-order and unknown parcels; polling and stalled parcels."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app import tracking
from app.carrier_accounts import carrier_client
from app.models import Alert, InboundEvent, Order, OrderEvent, OutboxEvent, Shipment, Shop, TrackingEvent
from app.orders import actions
from app.orders.types import Actor, NewAddress, NewLineItem, NewOrder
from app.store import utcnow
from integrations.carriers.base import TrackingUpdate
from integrations.carriers.easypost.fake import FakeEasyPost, build_event, signed_headers
from integrations.carriers.shippo.fake import FakeShippo, build_track_updated

EASYPOST_SECRET = "whsec-easypost-test"  # noqa: S105
SHIPPO_TOKEN = "shippo-url-token-test"  # noqa: S105


# --- shared with tests/test_returns.py ----------------------------------------------------------------------


@pytest.fixture
def easypost() -> Iterator[FakeEasyPost]:
    fake = FakeEasyPost(api_key="EZTKtracking").start()
    yield fake
    fake.stop()


@pytest.fixture
def shippo() -> Iterator[FakeShippo]:
    fake = FakeShippo(api_token="shippo_test_tracking").start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(settings: Any, easypost: FakeEasyPost, shippo: FakeShippo) -> Any:
    return settings.with_overrides(
        easypost_api_key=easypost.api_key, easypost_api_base_url=easypost.url,
        easypost_webhook_secret=EASYPOST_SECRET, shippo_api_token=shippo.api_token,
        shippo_api_base_url=shippo.url, shippo_webhook_token=SHIPPO_TOKEN)


def shipped_order(runtime: Any, *, parcels: list[tuple[str, str]], shop_settings: dict[str, Any] | None = None,
                  shipped_at: datetime | None = None, status: str = "shipped", tags: list[str] | None = None,
                  channel: str = "manual", external_id: str | None = None,
                  line_items: list[NewLineItem] | None = None) -> tuple[int, list[int]]:
    """An order the shipping step has sent: one `purchased` Shipment per (carrier, tracking number)."""
    with runtime.db.session() as session:
        shop = session.execute(select(Shop).where(Shop.channel == channel)).scalars().first()
        if shop is None:
            shop = Shop(channel=channel, name="Test shop", external_id=f"{channel}-shop", currency="USD")
            session.add(shop)
            session.flush()
        shop.settings = dict(shop_settings or {})
        order = actions.create_order(session, shop, NewOrder(
            currency="USD", external_id=external_id, tags=tags or [],
            line_items=line_items or [
                NewLineItem(title="Linen shirt", quantity=2, unit_price=Decimal("59.00"),
                            sku="LS-01", external_id="line-1"),
                NewLineItem(title="Cap", quantity=1, unit_price=Decimal("20.00"),
                            sku="CAP-01", external_id="line-2")],
            shipping_address=NewAddress(name="Dr. Steve Brule", line1="179 N Harbor Dr", city="Redondo Beach",
                                        region="CA", postal_code="90277", country_code="US")),
            Actor.system())
        order.status = status
        when = shipped_at or utcnow()
        shipments = [Shipment(provider=slug, carrier="USPS", service="Priority", tracking_number=number,
                              status="purchased", shipped_at=when, created_at=when) for slug, number in parcels]
        order.shipments.extend(shipments)
        session.flush()
        return order.id, [s.id for s in shipments]


def timeline(runtime: Any, order_id: int, type: str | None = None) -> list[OrderEvent]:
    with runtime.db.session() as session:
        query = select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        return [e for e in session.execute(query).scalars() if type is None or e.type == type]


def shipment_row(runtime: Any, shipment_id: int) -> Shipment:
    with runtime.db.session() as session:
        row = session.get(Shipment, shipment_id)
        assert row is not None
        return row


def order_status(runtime: Any, order_id: int) -> str:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.status


def inbox(runtime: Any) -> list[InboundEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(InboundEvent).order_by(InboundEvent.id)).scalars())


def alerts(runtime: Any, kind: str) -> list[Alert]:
    with runtime.db.session() as session:
        return list(session.execute(select(Alert).where(Alert.kind == kind)).scalars())


def at(hours_ago: float) -> datetime:
    return (utcnow() - timedelta(hours=hours_ago)).replace(microsecond=0)


# --- EasyPost webhooks --------------------------------------------------------------------------------------


def new_tracker(runtime: Any, easypost: FakeEasyPost, code: str) -> None:
    """A tracker at the fake, made through the real SDK (as a label purchase makes one)."""
    carrier_client(runtime.settings, "easypost").track(code)


def post_easypost(client: Any, body: bytes, secret: str = EASYPOST_SECRET) -> Any:
    return client.post("/webhooks/carriers/easypost", data=body, headers=signed_headers(body, secret))


@pytest.fixture
def live_receiver(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_signed_tracker_updates_move_shipments_and_deliver_the_order(runtime, easypost, live_receiver, run_jobs):
    order_id, (first, second) = shipped_order(runtime, parcels=[("easypost", "9400TRK0001"),
                                                                ("easypost", "9400TRK0002")])
    for code in ("9400TRK0001", "9400TRK0002"):
        new_tracker(runtime, easypost, code)
    url = f"{live_receiver}/webhooks/carriers/easypost"
    scanned_at, delivered_at = at(5), at(1)
    easypost.advance_tracker("9400TRK0001", "in_transit", "Arrived at USPS facility", city="ORLANDO", state="FL",
                             at=scanned_at)
    sent = easypost.send_tracker_updated(url, EASYPOST_SECRET, "9400TRK0001")
    assert sent.status_code == 200 and sent.json()["status"] == "accepted", sent.text
    run_jobs()
    row = shipment_row(runtime, first)
    assert (row.status, row.tracking_status) == ("in_transit", "in_transit")
    entries = timeline(runtime, order_id, "shipment.tracking")
    assert [(e.data["shipment_id"], e.data["status"], e.data["description"]) for e in entries] == [
        (first, "in_transit", "Arrived at USPS facility")]
    assert entries[0].data["occurred_at"] == scanned_at.isoformat()

    easypost.advance_tracker("9400TRK0001", "delivered", "Delivered, In/At Mailbox", at=delivered_at)
    easypost.send_tracker_updated(url, EASYPOST_SECRET, "9400TRK0001")
    run_jobs()
    assert shipment_row(runtime, first).delivered_at == delivered_at
    assert order_status(runtime, order_id) == "shipped"  # one parcel still travelling

    easypost.advance_tracker("9400TRK0002", "delivered", "Delivered, Front Door", at=at(0.5))
    easypost.send_tracker_updated(url, EASYPOST_SECRET, "9400TRK0002")
    run_jobs()
    assert order_status(runtime, order_id) == "delivered"
    assert len(timeline(runtime, order_id, "order.delivered")) == 1
    assert shipment_row(runtime, second).next_poll_at is None  # arrived: never polled again


def test_duplicate_and_repeated_events_add_nothing(runtime, easypost, client, run_jobs):
    order_id, (shipment_id,) = shipped_order(runtime, parcels=[("easypost", "9400DUP")])
    new_tracker(runtime, easypost, "9400DUP")
    tracker = easypost.advance_tracker("9400DUP", "in_transit", "Departed facility", at=at(3))
    body = build_event(tracker)
    assert post_easypost(client, body).json["status"] == "accepted"
    assert post_easypost(client, body).json["status"] == "duplicate"  # EasyPost retrying the same Event
    # A new Event carrying the same history (EasyPost sends the whole Tracker each time).
    assert post_easypost(client, build_event(tracker)).json["status"] == "accepted"
    run_jobs()
    assert len(inbox(runtime)) == 2
    assert len(timeline(runtime, order_id, "shipment.tracking")) == 1
    # Replaying a processed delivery (staff, after a fix) changes nothing either.
    with runtime.db.session() as session:
        from app import inbox as inbox_module

        inbox_module.replay(session, inbox(runtime)[0].id)
    run_jobs()
    assert len(timeline(runtime, order_id, "shipment.tracking")) == 1
    assert shipment_row(runtime, shipment_id).status == "in_transit"


def test_out_of_order_events_never_move_a_parcel_backwards(runtime, easypost, client, run_jobs):
    order_id, (shipment_id,) = shipped_order(runtime, parcels=[("easypost", "9400OOO")])
    new_tracker(runtime, easypost, "9400OOO")
    delivered_at = at(2)
    early = easypost.advance_tracker("9400OOO", "in_transit", "Accepted at USPS origin", at=at(30))
    late = easypost.advance_tracker("9400OOO", "delivered", "Delivered", at=delivered_at)
    post_easypost(client, build_event(late))
    post_easypost(client, build_event(early))  # arrives after the delivery
    run_jobs()
    row = shipment_row(runtime, shipment_id)
    assert (row.status, row.tracking_status, row.delivered_at) == ("delivered", "delivered", delivered_at)
    assert order_status(runtime, order_id) == "delivered"
    # A scan older than the delivery, never seen before, is history on the timeline but not news.
    with runtime.db.session() as session:
        applied = tracking.apply_updates(session, runtime.settings, "easypost", "9400OOO", [
            TrackingUpdate(
                tracking_number="9400OOO", status=tracking.S.OUT_FOR_DELIVERY, detail="Out for delivery",
                occurred_at=at(4))], source="webhook")
    assert applied.new_events == 1 and applied.status == "delivered"
    assert shipment_row(runtime, shipment_id).tracking_status == "delivered"
    assert [e.data["status"] for e in timeline(runtime, order_id, "shipment.tracking")] == [
        "in_transit", "delivered", "out_for_delivery"]
    assert len(timeline(runtime, order_id, "order.delivered")) == 1


def test_a_delivered_parcel_moves_again_only_when_returned():
    update = TrackingUpdate
    later = at(0)
    assert not tracking.advances("delivered", at(5), update("1", tracking.S.EXCEPTION, "x", later))
    assert tracking.advances("delivered", at(5), update("1", tracking.S.RETURNED, "x", later))
    assert not tracking.advances("returned", at(5), update("1", tracking.S.DELIVERED, "x", later))
    assert not tracking.advances("in_transit", at(5), update("1", tracking.S.PRE_TRANSIT, "x", later))
    assert not tracking.advances("in_transit", at(5), update("1", tracking.S.UNKNOWN, "x", later))
    assert tracking.advances("exception", at(5), update("1", tracking.S.IN_TRANSIT, "x", later))


def test_exception_raises_a_staff_alert(runtime, easypost, client, run_jobs):
    order_id, (shipment_id,) = shipped_order(runtime, parcels=[("easypost", "9400EXC")])
    new_tracker(runtime, easypost, "9400EXC")
    tracker = easypost.advance_tracker("9400EXC", "failure", "Address not found", at=at(1))
    post_easypost(client, build_event(tracker))
    run_jobs()
    assert shipment_row(runtime, shipment_id).status == "exception"
    (alert,) = alerts(runtime, "shipment_exception")
    assert "Address not found" in alert.message and alert.data["order_id"] == order_id
    assert timeline(runtime, order_id, "shipment.tracking")[-1].data["status"] == "exception"


def test_refused_requests_are_precise_and_store_nothing(runtime, client, app):
    body = build_event({"object": "Tracker", "tracking_code": "X"})
    forged = post_easypost(client, body, secret="not-the-secret")
    assert (forged.status_code, forged.json["error"]["code"]) == (401, "invalid_signature")
    unsigned = client.post("/webhooks/carriers/easypost", data=body)
    assert unsigned.status_code == 401 and "X-Hmac-Signature" in unsigned.json["error"]["message"]
    unknown = client.post("/webhooks/carriers/dhl", data=b"{}")
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "unknown_carrier")
    sandbox = client.post("/webhooks/carriers/sandbox", data=b"{}")
    assert sandbox.status_code == 404 and "polled" in sandbox.json["error"]["message"]
    not_json = post_easypost(client, b"<html>")
    assert (not_json.status_code, not_json.json["error"]["code"]) == (400, "invalid_payload")
    no_token = client.post("/webhooks/carriers/shippo", data=b"{}")
    wrong = client.post("/webhooks/carriers/shippo?token=guess", data=b"{}")
    assert (no_token.status_code, wrong.status_code) == (401, 401)
    big = b'{"x":"' + b"a" * (runtime.settings.max_body_bytes + 1) + b'"}'
    assert post_easypost(client, big).status_code == 413
    assert inbox(runtime) == []


def test_unknown_tracking_numbers_are_stored_and_ignored_with_a_reason(runtime, easypost, client, run_jobs):
    new_tracker(runtime, easypost, "9400NOBODY")
    tracker = easypost.advance_tracker("9400NOBODY", "in_transit", "On its way", at=at(1))
    assert post_easypost(client, build_event(tracker)).status_code == 200
    ignored = post_easypost(client, build_event(tracker, description="scan_form.created"))
    assert ignored.status_code == 200
    run_jobs()
    unknown, scan_form = inbox(runtime)
    assert (unknown.status, unknown.error) == ("ignored", "no shipment or return has easypost tracking number "
                                                          "9400NOBODY")
    assert scan_form.status == "ignored" and "carries no tracking" in (scan_form.error or "")
    with runtime.db.session() as session:
        assert session.execute(select(TrackingEvent)).first() is None


def test_a_body_that_is_not_an_event_fails_in_the_inbox_not_the_request(runtime, client, run_jobs):
    body = json.dumps({"object": "Event", "id": "evt_1", "description": "tracker.updated", "result": None}).encode()
    assert post_easypost(client, body).status_code == 200
    run_jobs()
    (row,) = inbox(runtime)
    assert row.status == "failed" and "not a Tracker" in (row.error or "")


# --- Shippo webhooks ----------------------------------------------------------------------------------------


def test_shippo_track_updated_with_the_url_token(runtime, shippo, live_receiver, run_jobs):
    order_id, (shipment_id,) = shipped_order(runtime, parcels=[("shippo", "9205SHIPPO1")])
    shippo.advance_track("usps", "9205SHIPPO1", "TRANSIT", "Out for delivery", substatus="out_for_delivery",
                         at=at(2))
    url = f"{live_receiver}/webhooks/carriers/shippo"
    first = shippo.send_track_updated(url, SHIPPO_TOKEN, "usps", "9205SHIPPO1")
    again = shippo.send_track_updated(url, SHIPPO_TOKEN, "usps", "9205SHIPPO1")
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    run_jobs()
    row = shipment_row(runtime, shipment_id)
    assert row.status == "out_for_delivery"
    # On the last leg the parcel is polled more often.
    assert row.next_poll_at is not None and row.last_tracking_at is not None
    assert row.next_poll_at - row.last_tracking_at == timedelta(minutes=runtime.settings.tracking_poll_near_minutes)
    shippo.advance_track("usps", "9205SHIPPO1", "DELIVERED", "Delivered", at=at(1))
    shippo.send_track_updated(url, SHIPPO_TOKEN, "usps", "9205SHIPPO1")
    run_jobs()
    assert order_status(runtime, order_id) == "delivered"
    assert [e.data["status"] for e in timeline(runtime, order_id, "shipment.tracking")] == [
        "out_for_delivery", "delivered"]


def test_shippo_ignored_events_are_kept_as_ignored(runtime, client, run_jobs):
    body = json.dumps({"event": "transaction_created", "test": True, "data": {}}).encode()
    assert client.post(f"/webhooks/carriers/shippo?token={SHIPPO_TOKEN}", data=body).status_code == 200
    run_jobs()
    assert [r.status for r in inbox(runtime)] == ["ignored"]
    assert build_track_updated  # the fake's builder is what the Shippo tests above send


# --- polling ------------------------------------------------------------------------------------------------


def polls(runtime: Any) -> list[OutboxEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(OutboxEvent).where(OutboxEvent.job == "poll_shipment")).scalars())


def test_quiet_shipments_are_polled_once_per_interval(runtime, easypost, run_jobs):
    interval = runtime.settings.tracking_poll_minutes / 60
    order_id, (quiet, fresh) = shipped_order(runtime, parcels=[("easypost", "9400QUIET"), ("easypost", "9400NEW")])
    with runtime.db.session() as session:
        session.get(Shipment, quiet).shipped_at = at(interval + 1)
        session.get(Shipment, fresh).shipped_at = at(interval - 1)
    new_tracker(runtime, easypost, "9400QUIET")
    easypost.advance_tracker("9400QUIET", "in_transit", "In transit to next facility", at=at(2))
    assert tracking.schedule_due_polls(runtime) == 1
    assert tracking.schedule_due_polls(runtime) == 0  # claimed: the next sweep does not ask again
    before = len(easypost.requests_to("/trackers"))
    run_jobs()
    assert len(easypost.requests_to("/trackers")) > before
    assert [p.payload["shipment_id"] for p in polls(runtime)] == [quiet]
    row = shipment_row(runtime, quiet)
    assert row.status == "in_transit" and row.next_poll_at is not None
    assert timeline(runtime, order_id, "shipment.tracking")[0].data["description"] == "In transit to next facility"
    # Polled again only after another interval; repeating the poll adds no timeline entries.
    assert tracking.schedule_due_polls(runtime) == 0
    with runtime.db.session() as session:
        session.get(Shipment, quiet).next_poll_at = utcnow() - timedelta(seconds=1)
    assert tracking.schedule_due_polls(runtime) == 1
    run_jobs()
    assert len(timeline(runtime, order_id, "shipment.tracking")) == 1


def test_polls_come_sooner_near_the_expected_delivery(runtime):
    now = utcnow()
    far = Shipment(status="in_transit", tracking_number="1", expected_delivery=now + timedelta(days=3))
    near = Shipment(status="in_transit", tracking_number="2", expected_delivery=now + timedelta(hours=20))
    late = Shipment(status="in_transit", tracking_number="3", expected_delivery=now - timedelta(days=1))
    settings = runtime.settings
    assert tracking.poll_interval(settings, far, now) == timedelta(minutes=settings.tracking_poll_minutes)
    assert tracking.poll_interval(settings, near, now) == timedelta(minutes=settings.tracking_poll_near_minutes)
    assert tracking.poll_interval(settings, late, now) == timedelta(minutes=settings.tracking_poll_near_minutes)
    assert tracking.next_poll_at(settings, Shipment(status="delivered", tracking_number="4"), now) is None


@pytest.mark.parametrize(("stale_days", "alerted"), [(None, True), (10, False)])
def test_no_scan_for_days_raises_an_alert(runtime, easypost, run_jobs, stale_days, alerted):
    shop_settings = {} if stale_days is None else {"tracking_stale_days": stale_days}
    order_id, (shipment_id,) = shipped_order(runtime, parcels=[("easypost", "9400STALL")],
                                             shop_settings=shop_settings, shipped_at=at(24 * 6))
    new_tracker(runtime, easypost, "9400STALL")  # the carrier knows the number but has never scanned it
    assert tracking.schedule_due_polls(runtime) == 1
    run_jobs()
    found = alerts(runtime, "shipment_stalled")
    assert bool(found) is alerted
    if alerted:
        assert found[0].data == {"order_id": order_id, "shipment_id": shipment_id}
        assert "5 days" in found[0].message


def test_carrier_failure_on_a_poll_is_retried(runtime, easypost, run_jobs):
    _order_id, (shipment_id,) = shipped_order(runtime, parcels=[("easypost", "9400BUSY")], shipped_at=at(24))
    new_tracker(runtime, easypost, "9400BUSY")
    easypost.advance_tracker("9400BUSY", "in_transit", "Processed", at=at(3))
    # A 500 (a 429 with Retry-After is already waited out by urllib3 inside the EasyPost SDK).
    easypost.fail_next(500, match="/trackers")
    tracking.schedule_due_polls(runtime)
    run_jobs()
    (poll,) = polls(runtime)
    assert poll.status == "pending" and poll.last_error and "TransientError" in poll.last_error
    assert poll.next_attempt_at is not None
    assert shipment_row(runtime, shipment_id).status == "purchased"
    with runtime.db.session() as session:
        session.get(OutboxEvent, poll.id).next_attempt_at = None
    from jobs.runner import run_outbox

    assert run_outbox(poll.id) == "done"
    assert shipment_row(runtime, shipment_id).status == "in_transit"


def test_the_sweeper_schedules_polls(runtime):
    from jobs import relay

    shipped_order(runtime, parcels=[("easypost", "9400SWEEP")], shipped_at=at(24))
    sweeper = relay.Sweeper(runtime, interval=0.05)
    sweeper.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while not polls(runtime) and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        sweeper.stop()
        sweeper.join(timeout=2)
    assert len(polls(runtime)) == 1
