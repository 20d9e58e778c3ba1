"""A sales channel's own SMS-consent field, honoured where the platform sends one.

Shopify sends `customer.sms_marketing_consent` ({state, consent_updated_at, …}) with orders. Only an explicit
`unsubscribed` is taken as "do not text me" (an opt-out in the ledger, source `channel`); `not_subscribed`
is the default for every customer who never chose marketing texts and says nothing about order updates, and
`subscribed` never overrides a STOP the customer sent us. A channel change older than the ledger's latest entry
for the number is ignored, so a START texted after unsubscribing in the shop stands. WooCommerce and
BigCommerce send no such field.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.models import InboundEvent, Order
from app.sms import consent, phones
from app.sms.outbound import contact_for


def _consent_field(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        return None
    customer = payload.get("customer")
    found = customer.get("sms_marketing_consent") if isinstance(customer, dict) else None
    found = found or payload.get("sms_marketing_consent")
    return found if isinstance(found, dict) else None


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def apply(session: Session, order: Order) -> bool:
    """Record the channel's opt-out for this order's customer; returns whether the ledger changed."""
    # The delivery being ingested is in this very transaction: read it from the session, not with a query
    # (inbound_events has no index on the order, and ingest runs this for every order it touches).
    deliveries = [obj for obj in list(session.identity_map.values()) if isinstance(obj, InboundEvent)
                  and obj.shop_id == order.shop_id and obj.order_external_id == order.external_id]
    if not deliveries:
        return False
    body = max(deliveries, key=lambda d: d.id or 0).body
    if not body:
        return False
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    field = _consent_field(payload)
    if field is None or field.get("state") != "unsubscribed":
        return False
    contact = contact_for(order)
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    phone = phones.normalize(customer.get("phone"), contact.country) or contact.phone
    if phone is None:
        return False
    latest = consent.latest(session, phone)
    changed_at = _when(field.get("consent_updated_at"))
    if latest is not None and (changed_at is None or latest.created_at >= changed_at):
        return False
    return consent.record(session, phone, consent.OPTED_OUT, "channel", detail=f"{order.channel} sms consent")
