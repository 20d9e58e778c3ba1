"""A customer's erasure reaches their texts; an opt-out survives it."""

from __future__ import annotations

from sqlalchemy import select

from app import privacy
from app.models import Shop, SmsConsent
from tests.sms.conftest import MARIA, messages, new_order, ship, text_in, timeline


def test_erasure_blanks_texts_numbers_and_words_but_keeps_the_opt_out(runtime, client, auth, shop, fake_twilio,
                                                                      drain):
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    drain()
    text_in(client, fake_twilio, "Can I swap the cap?")
    text_in(client, fake_twilio, "STOP")
    assert any(m.body for m in messages(runtime))
    with runtime.db.session() as session:
        privacy.redact_customer(session, session.get(Shop, shop), email="maria@example.se", phone=None,
                                order_external_ids=[])
    stored = messages(runtime)
    assert stored and all(m.body is None and m.phone is None for m in stored)
    entry = next(e for e in timeline(runtime, order_id) if e.type == "order.customer_message")
    assert entry.data["text"] is None and "swap" not in entry.message
    with runtime.db.session() as session:
        assert [c.phone for c in session.execute(select(SmsConsent)).scalars()] == [None]
    # The number is forgotten, the opt-out is not: a new order with it gets no texts.
    again = new_order(client, auth, shop)
    ship(runtime, again, tracking="003707999")
    drain()
    assert fake_twilio.sent_to(MARIA) == fake_twilio.sent_to(MARIA)[:1]
    assert messages(runtime, order_id=again, kind="shipped")[0].status == "skipped"


def test_bodies_are_blanked_after_the_retention_period(runtime, client, auth, shop, fake_twilio, drain):
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import SmsMessage
    from app.sms.retention import erase_expired_bodies
    from app.store import utcnow

    order_id = new_order(client, auth, shop)
    text_in(client, fake_twilio, "Old question")
    text_in(client, fake_twilio, "New question")
    old, new = messages(runtime, direction="inbound")
    with runtime.db.session() as session:
        session.execute(update(SmsMessage).where(SmsMessage.id == old.id)
                        .values(created_at=utcnow() - timedelta(days=31)))
        assert erase_expired_bodies(session, 30) == 1
    old, new = messages(runtime, direction="inbound")
    assert (old.body, old.body_erased_at is not None, new.body) == (None, True, "New question")
    assert order_id
