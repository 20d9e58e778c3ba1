"""Milestone texts: the right words, in the customer's language, once per shipment, only when the shop wants."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from app.models import Order, Shop
from app.orders import actions
from app.orders.types import Actor
from tests.sms.conftest import MARIA, PUBLIC, SAM, messages, new_order, ship, timeline, track


def test_shipped_text_in_swedish_with_carrier_and_tracking_link(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id, tracking="00370712345678901234")
    drain()
    sent = fake_twilio.sent_to(MARIA)
    assert len(sent) == 1
    assert "har skickats med PostNord" in sent[0]["body"]
    assert "https://tracking.postnord.com/se/?id=00370712345678901234" in sent[0]["body"]
    request = next(r for r in fake_twilio.requests if r.method == "POST")
    form = dict(parse_qsl(request.body.decode()))
    assert form["StatusCallback"].startswith(f"{PUBLIC}/sms/status?m=")
    (message,) = messages(runtime, kind="shipped")
    assert (message.status, message.provider_sid, message.encoding) == ("queued", sent[0]["sid"], "GSM-7")
    assert "sms.sent" in [e.type for e in timeline(runtime, order_id)]


def test_us_customer_of_the_same_shop_gets_english(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop, phone="(415) 867-5309", country="US")
    ship(runtime, order_id)
    drain()
    (sent,) = fake_twilio.sent_to(SAM)
    assert sent["body"].startswith("Nordic Tees: Order ") and "has shipped with PostNord" in sent["body"]


def test_customer_locale_beats_country(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop, locale="en-GB")
    ship(runtime, order_id)
    drain()
    assert "has shipped" in fake_twilio.sent_to(MARIA)[0]["body"]


def test_a_milestone_is_never_sent_twice_for_one_shipment(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    shipment_id = ship(runtime, order_id, event="shipment.label_purchased")
    ship(runtime, order_id, shipment_id=shipment_id)
    ship(runtime, order_id, shipment_id=shipment_id)
    track(runtime, order_id, shipment_id, "delivered")
    track(runtime, order_id, shipment_id, "delivered")
    drain()
    drain()
    bodies = [m["body"] for m in fake_twilio.sent_to(MARIA)]
    assert len(bodies) == 2, bodies
    assert "skickats" in bodies[0] and "har levererats" in bodies[1]
    # A second parcel of the same order is a new shipment: it gets its own text.
    ship(runtime, order_id, tracking="00370799999999999999")
    drain()
    assert len(fake_twilio.sent_to(MARIA)) == 3


def test_every_milestone_renders(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop, phone="+14158675309", country="US")
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        system = Actor.system()
        actions.record_event(session, order, system, "order.approved", "Approved")
        actions.record_event(session, order, system, "order.backordered", "Backordered")
        actions.record_event(session, order, system, "return.label_ready", "Label", return_id=7,
                             tracking_number="1Z999", label_url="https://labels.example.com/r7.pdf")
        actions.record_event(session, order, system, "order.refunded", "Refunded", amount="149.50", refund_id="r1")
    shipment_id = ship(runtime, order_id)
    track(runtime, order_id, shipment_id, "in_transit")  # no text for this one
    track(runtime, order_id, shipment_id, "out_for_delivery")
    track(runtime, order_id, shipment_id, "exception", "address not found")
    drain()
    bodies = " | ".join(m["body"] for m in fake_twilio.sent_to(SAM))
    for words in ("is confirmed", "on back order", "return label", "https://labels.example.com/r7.pdf",
                  "refunded SEK 149.50", "has shipped", "out for delivery", "delay", "address not found"):
        assert words in bodies
    assert len(fake_twilio.sent_to(SAM)) == 7


def test_switched_off_milestones_and_shops_send_nothing(runtime, client, auth, shop, fake_twilio, drain):
    with runtime.db.session() as session:
        session.get(Shop, shop).settings = {"sms_milestones": {"delivered": False}}
    order_id = new_order(client, auth, shop)
    shipment_id = ship(runtime, order_id)
    track(runtime, order_id, shipment_id, "delivered")
    drain()
    assert [m["body"] for m in fake_twilio.sent_to(MARIA) if "levererats" in m["body"]] == []
    assert len(fake_twilio.sent_to(MARIA)) == 1
    with runtime.db.session() as session:
        session.get(Shop, shop).settings = {"sms_enabled": False}
    ship(runtime, order_id, tracking="0037079")
    drain()
    assert len(fake_twilio.sent_to(MARIA)) == 1


def test_a_number_that_cannot_be_used_is_recorded_skipped_and_alerted(runtime, client, auth, shop, fake_twilio,
                                                                       drain):
    from sqlalchemy import select

    from app.models import Alert

    order_ids = [new_order(client, auth, shop) for _ in range(2)]
    for order_id in order_ids:
        with runtime.db.session() as session:  # channels send what the customer typed; the API would refuse it
            session.get(Order, order_id).customer_phone = "12"
        ship(runtime, order_id)
    drain()
    assert fake_twilio.all_sent() == []
    assert [(m.status, m.error_code) for m in messages(runtime, kind="shipped")] == [("skipped", "invalid_phone")] * 2
    assert "sms.skipped" in [e.type for e in timeline(runtime, order_ids[0])]
    with runtime.db.session() as session:  # one alert for the shop, counting both orders, not one per order
        assert [(a.kind, a.count) for a in session.execute(select(Alert)).scalars()] == [("sms_invalid_phone", 2)]


@pytest.mark.parametrize("state", ["unsubscribed", "not_subscribed"])
def test_a_channels_own_sms_unsubscribe_is_honoured(runtime, client, auth, shop, fake_twilio, drain, state):
    import json
    from pathlib import Path

    from sqlalchemy import select

    from app.models import InboundEvent, SmsConsent

    order_id = new_order(client, auth, shop)
    # Shopify's order body (tests/integrations/shopify/fixtures), as the customer unsubscribed in the shop.
    body = json.loads((Path(__file__).parents[1] / "integrations/shopify/fixtures/orders_create__snowboards.json")
                      .read_text())
    body["customer"]["phone"] = "+46701234567"
    body["customer"]["sms_marketing_consent"] = {"state": state, "opt_in_level": "single_opt_in",
                                                 "consent_updated_at": "2026-11-20T10:00:00Z",
                                                 "consent_collected_from": "SHOPIFY"}
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        # As ingest does: the delivery and the order change it causes are in one transaction.
        delivery = InboundEvent(provider="shopify", shop_id=shop, topic="orders/updated", delivery_id="d1",
                                order_external_id=order.external_id, headers={}, body=json.dumps(body).encode())
        session.add(delivery)
        session.flush()
        actions.record_event(session, order, Actor.system(), "order.updated_by_channel", "Updated on Shopify")
    ship(runtime, order_id)
    drain()
    if state == "not_subscribed":  # no choice about marketing texts says nothing about order updates
        assert len(fake_twilio.sent_to(MARIA)) == 1
        return
    assert fake_twilio.all_sent() == []
    with runtime.db.session() as session:
        (entry,) = session.execute(select(SmsConsent)).scalars()
    assert (entry.state, entry.source, entry.phone) == ("opted_out", "channel", MARIA)
