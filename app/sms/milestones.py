"""Which timeline entries become texts to the customer (the `sms` listener of app.events).

    order.approved                     → confirmed         once per order
    order.backordered                  → backordered       once per order
    order.shipped / shipment.label_purchased (with tracking) → shipped   once per shipment
    shipment.tracking out_for_delivery → out_for_delivery  once per shipment, sent even in quiet hours
    shipment.tracking delivered        → delivered         once per shipment
    shipment.tracking exception        → exception         once per shipment
    return.label_ready                 → return_label      once per return
    order.refunded                     → refunded          once per refund
    order.customer_reply               → staff_reply       once per reply (not switchable: the customer asked)

A shop switches milestones off with `settings.sms_milestones` ({"delivered": false}) and all texts with
`settings.sms_enabled: false`. Nothing is queued unless Twilio is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import events, runtime
from app.config import Settings
from app.models import Order, OrderEvent, Shipment, SmsMessage
from app.sms import channel_consent, outbound

MILESTONES = ("confirmed", "backordered", "shipped", "out_for_delivery", "delivered", "exception",
              "return_label", "refunded")
TRACKING_MILESTONES = {"out_for_delivery", "delivered", "exception"}


@dataclass(frozen=True)
class Plan:
    kind: str
    dedupe_key: str
    text_key: str
    values: dict[str, Any] = field(default_factory=dict)
    time_critical: bool = False


def configured(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token
                and (settings.twilio_from_number or settings.twilio_messaging_service_sid))


def enabled(order: Order, kind: str) -> bool:
    shop_settings = order.shop.settings or {}
    if shop_settings.get("sms_enabled") is False:
        return False
    if kind not in MILESTONES:
        return True
    chosen = shop_settings.get("sms_milestones")
    if isinstance(chosen, list):
        return kind in chosen
    if isinstance(chosen, dict):
        return chosen.get(kind, True) is not False
    return True


def _shipment(session: Session, entry: OrderEvent) -> Shipment | None:
    shipment_id = entry.data.get("shipment_id")
    shipment = session.get(Shipment, shipment_id) if isinstance(shipment_id, int) else None
    return shipment if shipment is not None and shipment.order_id == entry.order_id else None


def plan(session: Session, entry: OrderEvent) -> Plan | None:
    data, order = entry.data or {}, entry.order
    if entry.type == "order.approved":
        return Plan("confirmed", f"confirmed:order:{order.id}", "confirmed")
    if entry.type == "order.backordered":
        return Plan("backordered", f"backordered:order:{order.id}", "backordered")
    if entry.type in ("order.shipped", "shipment.label_purchased"):
        shipment = _shipment(session, entry)
        if shipment is None:
            return None
        tracking_url = data.get("tracking_url") or shipment.tracking_url
        tracking_number = data.get("tracking_number") or shipment.tracking_number
        if entry.type == "shipment.label_purchased" and not tracking_number:
            return None
        carrier = data.get("carrier") or shipment.carrier or ""
        return Plan("shipped", f"shipped:shipment:{shipment.id}", "shipped" if tracking_url else "shipped_untracked",
                    {"carrier": carrier, "tracking_url": tracking_url or ""})
    if entry.type == "shipment.tracking":
        status = data.get("status")
        shipment = _shipment(session, entry)
        if status not in TRACKING_MILESTONES or shipment is None:
            return None
        return Plan(status, f"{status}:shipment:{shipment.id}", status,
                    {"description": data.get("description") or "", "carrier": shipment.carrier or ""},
                    time_critical=status == "out_for_delivery")
    if entry.type == "return.label_ready":
        return Plan("return_label", f"return_label:return:{data.get('return_id')}", "return_label",
                    {"label_url": data.get("label_url") or "", "tracking_number": data.get("tracking_number") or ""})
    if entry.type == "order.refunded":
        return Plan("refunded", f"refunded:order:{order.id}:{data.get('refund_id')}", "refunded",
                    {"amount": f"{order.currency} {data.get('amount')}"})
    if entry.type == "order.customer_reply" and data.get("text"):
        return Plan("staff_reply", f"staff_reply:event:{entry.id}", "staff_reply", {"text": data["text"]},
                    time_critical=True)
    return None


def _reply_phone(session: Session, order: Order) -> str | None:
    """A staff reply goes to the number the customer last texted from about this order, if any."""
    return session.execute(select(SmsMessage.phone).where(
        SmsMessage.order_id == order.id, SmsMessage.direction == "inbound", SmsMessage.phone.is_not(None))
        .order_by(SmsMessage.id.desc()).limit(1)).scalar_one_or_none()


def on_happened(session: Session, happened: events.Happened) -> None:
    try:
        settings = runtime.current().settings
    except RuntimeError:
        return
    if not configured(settings):
        return
    indexed: set[int] = set()
    consulted: set[int] = set()
    for entry in happened.order_events:
        order = entry.order
        if order is None:
            continue
        if order.id not in indexed:
            outbound.index_phone(session, order)
            indexed.add(order.id)
        if entry.type in ("order.received", "order.updated_by_channel") and order.id not in consulted:
            channel_consent.apply(session, order)  # before any text of this transaction is queued
            consulted.add(order.id)
        planned = plan(session, entry)
        if planned is None or not enabled(order, planned.kind):
            continue
        phone = _reply_phone(session, order) if planned.kind == "staff_reply" else None
        outbound.queue(session, order, kind=planned.kind, dedupe_key=planned.dedupe_key,
                       text_key=planned.text_key, values=planned.values, settings=settings,
                       time_critical=planned.time_critical, phone=phone)


def install() -> None:
    events.listen("sms", on_happened)
