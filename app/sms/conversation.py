"""Answering a customer's text (POST /sms/inbound, already verified): consent keywords, status, return,
cancel, and anything else handed to a person on the order's timeline.

Returns the reply to send back as TwiML, or None for no reply. Runs in the route's transaction; the inbound
text is stored once per MessageSid, and a repeated delivery of it gets the same reply and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import returns
from app.alerts import raise_alert
from app.models import Order, Shop, SmsMessage, SmsOrderPhone
from app.orders import actions
from app.orders.errors import OrderError
from app.orders.statuses import CANCELLABLE
from app.orders.types import Actor, ActorKind
from app.sms import consent, intents, phones, segments, texts
from app.sms.outbound import contact_for, index_phone, shop_name
from app.store import utcnow

CUSTOMER = Actor(ActorKind.CUSTOMER, None, "Customer (SMS)")
MAX_ORDERS = 20
# At most this many answers to one number in REPLY_WINDOW: another bot answering our answers ends quickly.
MAX_REPLIES = 6
REPLY_WINDOW = timedelta(minutes=10)
BACKFILL_LIMIT = 2000
_NOT_SENT_TO_OPTED_OUT = {"opt_in"}


def orders_for(session: Session, phone: str | None) -> list[Order]:
    """The customer's orders across shops and channels, newest first."""
    if not phone:
        return []
    query = (select(Order).join(SmsOrderPhone, SmsOrderPhone.order_id == Order.id)
             .where(SmsOrderPhone.phone == phone).order_by(Order.placed_at.desc(), Order.id.desc()).limit(MAX_ORDERS))
    found = list(session.execute(query).scalars())
    if not found and index_missing(session):
        found = list(session.execute(query).scalars())
    return found


def index_missing(session: Session, limit: int = BACKFILL_LIMIT) -> int:
    """Index orders that never passed the listener (placed before SMS was set up), newest first; returns how
    many. Runs only when a text finds no order, and each order is indexed once."""
    missing = list(session.execute(
        select(Order).outerjoin(SmsOrderPhone, SmsOrderPhone.order_id == Order.id)
        .where(SmsOrderPhone.order_id.is_(None)).order_by(Order.id.desc()).limit(limit)).scalars())
    for order in missing:
        index_phone(session, order)
    session.flush()
    return len(missing)


def _any_shop_name(session: Session) -> str:
    return session.execute(select(Shop.name).order_by(Shop.id).limit(1)).scalar_one_or_none() or ""


def _status_text(order: Order, language: str) -> str:
    state = texts.render(language, f"state.{order.status}") if f"state.{order.status}" in texts.LANGUAGES[
        texts.DEFAULT_LANGUAGE] else order.status
    tracking = next((s.tracking_url for s in reversed(order.shipments) if s.tracking_url), None)
    if tracking and order.status in ("shipped", "partially_shipped", "delivered"):
        return texts.render(language, "status_tracking", number=order.number, state=state, tracking_url=tracking)
    return texts.render(language, "status", number=order.number, state=state)


def _int(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _replied_recently(session: Session, phone: str) -> int:
    return int(session.execute(select(func.count(SmsMessage.id)).where(
        SmsMessage.phone == phone, SmsMessage.kind == "reply",
        SmsMessage.created_at >= utcnow() - REPLY_WINDOW)).scalar_one())


def handle(session: Session, params: dict[str, str]) -> str | None:
    sid = (params.get("MessageSid") or params.get("SmsSid") or "")[:64] or None
    if sid is not None:
        seen = session.execute(select(SmsMessage.id).where(SmsMessage.provider_sid == sid)).first()
        if seen is not None:
            return session.execute(select(SmsMessage.body).where(
                SmsMessage.dedupe_key == f"reply:{sid}")).scalar_one_or_none()
    phone = phones.normalize(params.get("From"), params.get("FromCountry"))
    body = params.get("Body") or ""
    understood = intents.understand(body, num_media=_int(params.get("NumMedia")))
    orders = orders_for(session, phone)
    chosen = orders[0] if orders else None
    if understood.order_number:
        chosen = next((o for o in orders if o.number == understood.order_number), None)
    language = understood.language or (contact_for(orders[0]).language if orders else texts.DEFAULT_LANGUAGE)
    was_opted_out = consent.opted_out(session, phone)

    session.add(SmsMessage(order_id=chosen.id if chosen else None, shop_id=chosen.shop_id if chosen else None,
                           direction="inbound", kind=understood.intent, phone=phone, sender=params.get("To"),
                           body=segments.fit(body) or None, language=language, status="received",
                           provider_sid=sid, time_critical=False, attempts=0, created_at=utcnow(),
                           updated_at=utcnow()))
    session.flush()
    reply = _answer(session, understood, params, phone, orders, chosen, language, body)
    if was_opted_out and understood.intent not in _NOT_SENT_TO_OPTED_OUT:
        reply = None  # nothing is ever sent to an opted-out number, not even an answer
    if phone is None or _replied_recently(session, phone) >= MAX_REPLIES:
        reply = None  # a short code or a sender name cannot be answered; a reply loop is cut off
    if reply and sid is not None:
        reply = segments.fit(reply)
        session.add(SmsMessage(order_id=chosen.id if chosen else None, shop_id=chosen.shop_id if chosen else None,
                               direction="outbound", kind="reply", dedupe_key=f"reply:{sid}", phone=phone,
                               sender=params.get("To"), body=reply, language=language, status="replied",
                               segments=segments.count(reply).count, encoding=segments.count(reply).encoding,
                               time_critical=True, attempts=0, sent_at=utcnow(), created_at=utcnow(),
                               updated_at=utcnow()))
    return reply


def _answer(session: Session, understood: intents.Understood, params: dict[str, str], phone: str | None,
            orders: list[Order], chosen: Order | None, language: str, body: str) -> str | None:
    intent = understood.intent
    # Twilio answered STOP/START itself when it tells us the opt-out type (Advanced Opt-Out): no second reply.
    twilio_replied = bool(params.get("OptOutType"))
    shop = shop_name(orders[0]) if orders else _any_shop_name(session)
    if intent == "opt_out":
        if phone and consent.record(session, phone, consent.OPTED_OUT, "keyword", detail=body.strip()[:40]):
            if orders:
                actions.record_event(session, orders[0], CUSTOMER, "sms.opted_out",
                                     "Customer opted out of texts (replied STOP)", keyword=body.strip()[:40])
        return None if twilio_replied else texts.render(language, "opted_out")
    if intent == "opt_in":
        if phone and consent.record(session, phone, consent.OPTED_IN, "keyword", detail=body.strip()[:40]):
            if orders:
                actions.record_event(session, orders[0], CUSTOMER, "sms.opted_in", "Customer opted back in to texts")
        return None if twilio_replied else texts.render(language, "opted_in")
    if intent == "help":
        custom = (orders[0].shop.settings or {}).get("sms_help_text") if orders else None
        return str(custom) if custom else texts.render(language, "help", shop=shop)
    if intent == "empty":
        return None
    if intent == "media":
        return texts.render(language, "text_only")
    if not orders:
        return texts.render(language, "unknown_number")
    if chosen is None:
        return texts.render(language, "unknown_order", number=understood.order_number)
    return _about_order(session, understood, orders, chosen, language, body)


def _start_return(session: Session, order: Order, language: str, text: str) -> str:
    """A return of everything still returnable, under the shop's rules; its label is texted when ready
    (the `return_label` milestone). Refused by the rules: the customer hears why, staff see the request."""
    actions.record_event(session, order, CUSTOMER, "order.return_requested_by_customer",
                         f"Customer asked by SMS to return order {order.number}", text=text)
    savepoint = session.begin_nested()
    try:
        returns.request_return(session, order.id, returns.everything_left(order, "Requested by text"), CUSTOMER,
                               reason=f"Requested by text: {text}" if text else "Requested by text")
    except OrderError as refusal:
        savepoint.rollback()
        raise_alert(session, "sms_return_request", str(order.id),
                    f"Customer asked by text to return order {order.number}; not possible: {refusal.message}",
                    order_id=order.id)
        return texts.render(language, "return_refused", number=order.number)
    savepoint.commit()
    return texts.render(language, "return_started", number=order.number)


def _about_order(session: Session, understood: intents.Understood, orders: list[Order], order: Order,
                 language: str, body: str) -> str:
    intent, text = understood.intent, segments.fit(body.strip())
    if intent == "return":
        return _start_return(session, order, language, text)
    if intent == "cancel":
        if order.status in CANCELLABLE:
            actions.record_event(session, order, CUSTOMER, "order.cancel_requested_by_customer",
                                 f"Customer asked by SMS to cancel order {order.number}", text=text)
            raise_alert(session, "sms_cancel_request", str(order.id),
                        f"Customer asked by text to cancel order {order.number} (status {order.status})",
                        order_id=order.id)
            return texts.render(language, "cancel_requested", number=order.number)
        if order.status != "cancelled":
            return texts.render(language, "cancel_too_late", number=order.number)
    if intent == "wait" and order.status == "backordered":
        actions.record_event(session, order, CUSTOMER, "order.customer_message",
                             f"Customer by SMS: {text}", text=text, needs_staff=False)
        return texts.render(language, "wait_ack", number=order.number)
    if intent in ("status", "order_number", "wait", "cancel"):
        actions.record_event(session, order, CUSTOMER, "sms.answered",
                             f"Customer asked by SMS about order {order.number}; sent its status", intent=intent)
        answer = _status_text(order, language)
        if len(orders) > 1 and not understood.order_number:
            numbers = ", ".join(o.number for o in orders[:5])
            answer += " " + texts.render(language, "several_orders", count=len(orders), numbers=numbers)
        return answer
    # Anything the bot cannot answer goes to a person: the order's Slack thread hears of this entry.
    actions.record_event(session, order, CUSTOMER, "order.customer_message", f"Customer by SMS: {text}",
                         text=text, needs_staff=True)
    return texts.render(language, "relayed")
