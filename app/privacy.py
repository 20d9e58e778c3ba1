"""Customers' personal data: export it on request, erase it on request, erase a whole shop's data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, selectinload

from app.models import InboundEvent, Order, PrivacyRequest, Shop
from app.sms import privacy as sms_privacy
from app.stock import release_order
from app.store import utcnow

REDACTED_BODY = b'{"redacted": true}'


def _customer_orders(session: Session, shop: Shop, email: str | None, phone: str | None,
                     order_external_ids: list[str]) -> list[Order]:
    conditions = []
    if order_external_ids:
        conditions.append(Order.external_id.in_(order_external_ids))
    if email:
        conditions.append(Order.customer_email == email)
    if phone:
        conditions.append(Order.customer_phone == phone)
    if not conditions:
        return []
    return list(session.execute(
        select(Order).where(Order.shop_id == shop.id, or_(*conditions))
        .options(selectinload(Order.addresses), selectinload(Order.line_items))
    ).scalars())


def export_customer(session: Session, shop: Shop, *, email: str | None, phone: str | None,
                    order_external_ids: list[str]) -> PrivacyRequest:
    """Everything Orderline holds about the customer, kept as a privacy request for the merchant to send."""
    orders = _customer_orders(session, shop, email, phone, order_external_ids)
    export: dict[str, Any] = {"orders": [{
        "number": o.number, "channel_id": o.external_id, "placed_at": o.placed_at.isoformat(), "status": o.status,
        "customer": {"name": o.customer_name, "email": o.customer_email, "phone": o.customer_phone},
        "addresses": [{k: getattr(a, k) for k in ("kind", "name", "company", "line1", "line2", "city", "region",
                                                   "postal_code", "country_code", "phone")} for a in o.addresses],
        "items": [{"sku": i.sku, "title": i.title, "quantity": i.quantity, "unit_price": str(i.unit_price)}
                  for i in o.line_items],
        "total": str(o.total), "currency": o.currency,
    } for o in orders]}
    request = PrivacyRequest(shop_id=shop.id, kind="customer_export", orders_affected=len(orders), result=export)
    session.add(request)
    return request


def redact_customer(session: Session, shop: Shop, *, email: str | None, phone: str | None,
                    order_external_ids: list[str]) -> PrivacyRequest:
    """Erase the customer's personal data from their orders and from the stored webhook bodies."""
    orders = _customer_orders(session, shop, email, phone, order_external_ids)
    for order in orders:
        order.customer_name = order.customer_email = order.customer_phone = None
        order.note = None
        for address in order.addresses:
            for name in ("name", "company", "line1", "line2", "phone"):
                setattr(address, name, None)
    _scrub_inbound(session, shop, orders)
    sms_privacy.redact_customer(session, orders, phone)  # SMS: texts, phone index, consent ledger numbers
    request = PrivacyRequest(shop_id=shop.id, kind="customer_redact", orders_affected=len(orders),
                             result={"redacted_at": utcnow().isoformat()})
    session.add(request)
    return request


def _scrub_inbound(session: Session, shop: Shop, orders: list[Order]) -> None:
    # Webhook bodies carry the same personal data; once processed they are not needed to replay anything.
    ids = [o.external_id for o in orders]
    if ids:
        session.execute(update(InboundEvent)
                        .where(InboundEvent.shop_id == shop.id, InboundEvent.order_external_id.in_(ids))
                        .values(body=REDACTED_BODY, headers={}))


def erase_shop(session: Session, shop: Shop, *, keep_inbound_id: int | None = None) -> PrivacyRequest:
    """Erase every order and delivery of a shop that left (Shopify `shop/redact`), and its secrets."""
    orders = list(session.execute(select(Order).where(Order.shop_id == shop.id)).scalars())
    for order in orders:
        release_order(session, order)  # reserved stock goes back before the orders disappear
    sms_privacy.erase_shop(session, shop.id)  # SMS: the shop's texts
    # ON DELETE CASCADE takes the orders' items, addresses, timeline and refunds with them.
    session.execute(delete(Order).where(Order.shop_id == shop.id))
    session.execute(delete(InboundEvent).where(InboundEvent.shop_id == shop.id, InboundEvent.id != keep_inbound_id))
    session.execute(update(InboundEvent).where(InboundEvent.id == keep_inbound_id)
                    .values(body=REDACTED_BODY, headers={}))
    shop.credentials_encrypted = shop.webhook_secret_encrypted = None
    shop.active = False
    request = PrivacyRequest(shop_id=shop.id, kind="shop_redact", orders_affected=len(orders),
                             result={"erased_at": utcnow().isoformat()})
    session.add(request)
    return request
