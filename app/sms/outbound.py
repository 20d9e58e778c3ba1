"""Queueing a text to a customer: render it in their language, claim its dedupe key, ask for the send job.

Everything here runs inside the caller's transaction (a listener's, or the inbound route's); nothing leaves the
process. The key is claimed by inserting the message row under a savepoint: a second claim of the same
milestone, even by a concurrent transaction, finds the row and queues nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import outbox
from app.config import Settings
from app.models import Order, SmsMessage, SmsOrderPhone
from app.sms import phones, segments, texts
from app.store import utcnow


@dataclass(frozen=True)
class Contact:
    phone: str | None  # E.164, or None when the order's number cannot be used
    raw_phone: str | None
    country: str | None
    language: str


def contact_for(order: Order) -> Contact:
    shipping = order.address("shipping") or order.address("billing")
    country = shipping.country_code if shipping else None
    raw = order.customer_phone or (shipping.phone if shipping else None)
    language = texts.choose(customer_locale=order.customer_locale, country=country,
                            shop_locale=order.shop.locale if order.shop else None)
    return Contact(phones.normalize(raw, country), raw, country, language)


def shop_name(order: Order) -> str:
    settings = order.shop.settings or {}
    return str(settings.get("sms_sender_name") or order.shop.name)


def sender_for(order: Order | None, settings: Settings) -> str:
    """The number (or Messaging Service) texts to this order's customer go out from."""
    shop_settings = (order.shop.settings or {}) if order is not None and order.shop else {}
    return str(shop_settings.get("sms_from_number") or settings.twilio_messaging_service_sid
               or settings.twilio_from_number)


def index_phone(session: Session, order: Order) -> None:
    """Keep the order's E.164 number findable by an inbound text (re-derived when the order's number changes)."""
    contact = contact_for(order)
    source = f"{contact.raw_phone or ''}|{contact.country or ''}"[:64]
    row = session.get(SmsOrderPhone, order.id)
    if row is None:
        session.add(SmsOrderPhone(order_id=order.id, phone=contact.phone, source=source))
    elif row.source != source:
        row.phone, row.source = contact.phone, source


def queue(session: Session, order: Order, *, kind: str, dedupe_key: str, text_key: str, values: dict[str, Any],
          settings: Settings, time_critical: bool = False, phone: str | None = None,
          language: str | None = None) -> SmsMessage | None:
    """Render and queue one text for `order`'s customer; None when `dedupe_key` was already claimed."""
    if session.execute(select(SmsMessage.id).where(SmsMessage.dedupe_key == dedupe_key)).first() is not None:
        return None
    contact = contact_for(order)
    language = language or contact.language
    body = segments.fit(texts.render(language, text_key, shop=shop_name(order), number=order.number, **values))
    counted = segments.count(body)
    message = SmsMessage(order_id=order.id, shop_id=order.shop_id, direction="outbound", kind=kind,
                         dedupe_key=dedupe_key, phone=phone or contact.phone, sender=sender_for(order, settings),
                         body=body, language=language, segments=counted.count, encoding=counted.encoding,
                         status="pending", time_critical=time_critical, attempts=0,
                         created_at=utcnow(), updated_at=utcnow())
    savepoint = session.begin_nested()
    try:
        session.add(message)
        session.flush()
    except IntegrityError:
        savepoint.rollback()  # claimed by a concurrent transaction a moment ago
        return None
    savepoint.commit()
    outbox.add_job(session, outbox.JobName.SEND_SMS, message_id=message.id)
    return message
