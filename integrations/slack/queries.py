"""What the Slack side reads from the store (staff roles, search, queues, late orders, period figures), and
how it asks for a card to be refreshed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import outbox
from app.models import LineItem, Order, OrderEvent, Return, Shop, SlackMessage, SlackStaff
from app.orders.types import Role
from integrations.slack.blocks import Figures

# Statuses in which an order is still waiting to leave the warehouse.
OPEN_STATUSES = ("received", "needs_review", "approved", "on_hold", "allocated", "backordered", "picking", "packed")
DEFAULT_SHIP_WITHIN_HOURS = 48


_REASON_RANK = {"info": 0, "update": 1, "needs_person": 2}


def _stronger_reason(waiting: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    # Two requests for one card: the one that must not fold into a summary wins.
    rank = _REASON_RANK.get
    return new if rank(str(new.get("reason")), 0) >= rank(str(waiting.get("reason")), 0) else waiting


def request_card_sync(session: Session, order_id: int, reason: str, *, debounce_seconds: float = 0.0,
                      running: int | None = None) -> None:
    """Ask for order `order_id`'s card to be posted or refreshed. The job shows the order as it is when it
    runs, so one waiting job per order is enough: a busy order's changes share one refresh. A refresh of an
    existing card waits `debounce_seconds` for more changes; a new card for a person to act on does not."""
    outbox.add_coalesced(session, outbox.JobName.SLACK_SYNC_CARD, f"slack:card:{order_id}", merge=_stronger_reason,
                         delay_seconds=debounce_seconds if reason == "update" else 0.0, running=running,
                         order_id=order_id, reason=reason)


def request_alert_post(session: Session, alert_id: int, *, debounce_seconds: float = 0.0) -> None:
    """Ask for alert `alert_id`'s ops message to be posted or brought up to date (one waiting job per alert;
    an update waits `debounce_seconds` for more repeats)."""
    outbox.add_coalesced(session, outbox.JobName.SLACK_POST_ALERT, f"slack:alert:{alert_id}",
                         delay_seconds=debounce_seconds, alert_id=alert_id)


def role_of(session: Session, user_id: str) -> Role | None:
    """The strongest role a Slack user has, directly or through a mapped user group; None when unmapped."""
    roles: list[Role] = []
    for row in session.execute(select(SlackStaff)).scalars():
        if row.slack_id == user_id or (row.kind == "group" and user_id in (row.members or [])):
            roles.append(Role(row.role))
    return max(roles, key=lambda role: role.rank) if roles else None


def card_of(session: Session, order_id: int) -> SlackMessage | None:
    return session.execute(select(SlackMessage).where(SlackMessage.key == f"order:{order_id}")).scalar_one_or_none()


def card_in_thread(session: Session, channel: str, thread_ts: str) -> SlackMessage | None:
    return session.execute(select(SlackMessage).where(
        SlackMessage.channel == channel, SlackMessage.ts == thread_ts, SlackMessage.kind == "card")).scalars().first()


def last_change(session: Session, order_id: int) -> OrderEvent | None:
    """The latest entry that changed the order (not a note or a text): who "did it first"."""
    return session.execute(select(OrderEvent).where(
        OrderEvent.order_id == order_id,
        OrderEvent.type.not_in(("order.note_added", "order.customer_message", "order.customer_reply")))
        .order_by(OrderEvent.id.desc()).limit(1)).scalar_one_or_none()


def orders_numbered(session: Session, number: str) -> list[Order]:
    return list(session.execute(select(Order).where(Order.number == number.lstrip("#")).order_by(Order.id)
                                .limit(5)).scalars())


def search(session: Session, query: str, limit: int = 10) -> list[Order]:
    """Orders whose customer email, phone, name or a line's SKU matches `query` (newest first)."""
    text = query.strip()
    like = f"%{text.lower()}%"
    conditions = [func.lower(Order.customer_email) == text.lower(), func.lower(Order.customer_name).like(like),
                  Order.id.in_(select(LineItem.order_id).where(func.lower(LineItem.sku) == text.lower()))]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 6:
        # Phones are stored as the channel sent them: compare the last digits, whatever the formatting.
        conditions.append(func.replace(func.replace(func.replace(Order.customer_phone, " ", ""), "-", ""), "+", "")
                          .like(f"%{digits[-8:]}"))
    return list(session.execute(select(Order).where(or_(*conditions)).order_by(Order.placed_at.desc())
                                .limit(limit)).scalars())


def queue(session: Session, statuses: Sequence[str], limit: int = 8) -> tuple[list[Order], int]:
    """The oldest orders in `statuses`, and how many there are."""
    where = Order.status.in_(statuses)
    orders = list(session.execute(select(Order).where(where).order_by(Order.placed_at).limit(limit)).scalars())
    count = session.execute(select(func.count()).select_from(Order).where(where)).scalar_one()
    return orders, int(count)


def exceptions(session: Session, limit: int = 8) -> tuple[list[Order], int]:
    """Orders whose parcel the carrier reported a problem with, or whose fulfilment step failed."""
    from app.models import Shipment

    where = Order.id.in_(select(Shipment.order_id).where(Shipment.status == "exception"))
    orders = list(session.execute(select(Order).where(where).order_by(Order.placed_at).limit(limit)).scalars())
    return orders, int(session.execute(select(func.count()).select_from(Order).where(where)).scalar_one())


def late(session: Session, now: datetime, limit: int = 8) -> tuple[list[Order], int]:
    """Orders still in the warehouse past their shop's shipping promise (`ship_within_hours`, default 48)."""
    found: list[Order] = []
    count = 0
    for shop in session.execute(select(Shop)).scalars():
        hours = (shop.settings or {}).get("ship_within_hours", DEFAULT_SHIP_WITHIN_HOURS)
        cutoff = now - timedelta(hours=float(hours))
        where = (Order.shop_id == shop.id, Order.status.in_(OPEN_STATUSES), Order.placed_at < cutoff)
        count += int(session.execute(select(func.count()).select_from(Order).where(*where)).scalar_one())
        found.extend(session.execute(select(Order).where(*where).order_by(Order.placed_at).limit(limit)).scalars())
    found.sort(key=lambda o: o.placed_at)
    return found[:limit], count


def figures(session: Session, label: str, since: datetime, until: datetime, *, shop_id: int | None = None,
            now: datetime | None = None) -> Figures:
    """Orders in, shipped, late, returns and revenue for [since, until), optionally for one shop."""
    scope = [Order.shop_id == shop_id] if shop_id is not None else []
    placed = [Order.placed_at >= since, Order.placed_at < until, *scope]
    orders_in = int(session.execute(select(func.count()).select_from(Order).where(*placed)).scalar_one())
    by_status = {status: int(n) for status, n in session.execute(
        select(Order.status, func.count()).where(*placed).group_by(Order.status))}
    by_channel = {channel: int(n) for channel, n in session.execute(
        select(Order.channel, func.count()).where(*placed).group_by(Order.channel))}
    revenue: dict[str, Decimal] = {}
    # Summed here, not in SQL: SQLite stores money as text (app.store.Money) and would sum it as floats.
    for currency, total in session.execute(select(Order.currency, Order.total).where(
            *placed, Order.status != "cancelled")):
        revenue[currency] = revenue.get(currency, Decimal(0)) + total
    shipped = int(session.execute(select(func.count(func.distinct(OrderEvent.order_id))).select_from(OrderEvent)
                                  .join(Order, Order.id == OrderEvent.order_id).where(
        OrderEvent.type.in_(("order.shipped", "shipment.label_purchased")), OrderEvent.created_at >= since,
        OrderEvent.created_at < until, *scope)).scalar_one())
    returns = int(session.execute(select(func.count()).select_from(Return).join(Order, Order.id == Return.order_id)
                                  .where(Return.created_at >= since, Return.created_at < until, *scope)).scalar_one())
    late_orders = late(session, now or until)[1] if shop_id is None else _late_count(session, shop_id, now or until)
    return Figures(label=label, orders_in=orders_in, shipped=shipped, late=late_orders, returns=returns,
                   revenue=revenue, by_status=by_status, by_channel=by_channel)


def _late_count(session: Session, shop_id: int, now: datetime) -> int:
    shop = session.get(Shop, shop_id)
    hours = (shop.settings or {}).get("ship_within_hours", DEFAULT_SHIP_WITHIN_HOURS) if shop else 48
    return int(session.execute(select(func.count()).select_from(Order).where(
        Order.shop_id == shop_id, Order.status.in_(OPEN_STATUSES),
        Order.placed_at < now - timedelta(hours=float(hours)))).scalar_one())
