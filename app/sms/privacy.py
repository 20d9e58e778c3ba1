"""Erasing a customer's texts (called by app.privacy): bodies and numbers of their messages, their entry in the
phone index, the number in the consent ledger (its hash stays, so an opt-out still holds), and the words they
or staff texted from the order's timeline."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from app.models import Order, OrderEvent, SmsConsent, SmsMessage, SmsOrderPhone
from app.sms import consent, phones
from app.store import utcnow

TEXT_ENTRIES = ("order.customer_message", "order.customer_reply", "order.return_requested_by_customer",
                "order.cancel_requested_by_customer")


def redact_customer(session: Session, orders: list[Order], phone: str | None) -> None:
    order_ids = [o.id for o in orders]
    # The orders' own numbers are already blank here: the phone index remembers them.
    numbers = {n for n in [phones.normalize(phone, None)] if n}
    if order_ids:
        numbers |= {n for n in session.execute(select(SmsOrderPhone.phone).where(
            SmsOrderPhone.order_id.in_(order_ids))).scalars() if n}
    conditions = []
    if order_ids:
        conditions.append(SmsMessage.order_id.in_(order_ids))
    if numbers:
        conditions.append(SmsMessage.phone.in_(numbers))
    if conditions:
        session.execute(update(SmsMessage).where(or_(*conditions))
                        .values(body=None, phone=None, body_erased_at=utcnow()))
    if order_ids:
        session.execute(delete(SmsOrderPhone).where(SmsOrderPhone.order_id.in_(order_ids)))
        for entry in session.query(OrderEvent).filter(OrderEvent.order_id.in_(order_ids),
                                                      OrderEvent.type.in_(TEXT_ENTRIES)):
            entry.data = {**(entry.data or {}), "text": None}
            entry.message = "Customer text (erased)" if entry.actor_kind == "customer" else "Text (erased)"
    if numbers:
        session.execute(update(SmsConsent).where(SmsConsent.phone_key.in_([consent.phone_key(n) for n in numbers]))
                        .values(phone=None))


def erase_shop(session: Session, shop_id: int) -> None:
    session.execute(delete(SmsMessage).where(SmsMessage.shop_id == shop_id))
