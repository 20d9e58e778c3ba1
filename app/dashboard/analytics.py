"""Analytics for the dashboard's charts, in SQL that runs on SQLite and PostgreSQL.

The two databases differ in date arithmetic only, so the two expressions that differ (`_day`, `_seconds`) are
chosen by dialect; everything else is the same statement. Days are UTC days of `placed_at`.

- orders and revenue per day by channel (cancelled orders left out; revenue per currency, never mixed);
- fulfilment lead time: placed → first shipment's `shipped_at`, percentiles over the period and per day;
- late orders against the shipping promise: each shop's `settings.shipping_promise_hours` (shipping level →
  hours), else `DEFAULT_PROMISE_HOURS`; an order is on time, late (shipped after the promise) or overdue
  (not shipped, not cancelled, and the promise has passed);
- return rate by SKU: of the units sold, the share on orders that came back (have a return).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, and_, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from app.models import LineItem, Order, Return, Shipment, Shop
from app.orders.statuses import OrderStatus
from app.store import UTCDateTime, utcnow

# Hours from placing an order to its parcel leaving, per shipping level; a shop overrides any of them in
# `settings.shipping_promise_hours`, e.g. {"express": 12}.
DEFAULT_PROMISE_HOURS: dict[str, int] = {"overnight": 12, "express": 24, "priority": 24, "standard": 72,
                                         "economy": 120}
FALLBACK_PROMISE_HOURS = DEFAULT_PROMISE_HOURS["standard"]
PERCENTILES = (50, 75, 90, 95, 99)
MAX_DAYS = 366


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite stores naive UTC text, which date() reads as it is


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.date_part("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _since(days: int) -> datetime:
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)


def _dates(since: datetime, days: int) -> list[str]:
    return [(since + timedelta(days=n)).strftime("%Y-%m-%d") for n in range(days)]


def orders_per_day(session: Session, days: int) -> dict[str, Any]:
    since = _since(days)
    day = _day(session, Order.placed_at).label("day")
    rows = session.execute(
        select(day, Order.channel, Order.currency, func.count(), func.sum(cast(Order.total, Float)))
        .where(Order.placed_at >= since, Order.status != str(OrderStatus.CANCELLED))
        .group_by(day, Order.channel, Order.currency).order_by(day)).all()
    orders: dict[str, dict[str, int]] = defaultdict(dict)
    revenue: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for row_day, channel, currency, count, total in rows:
        orders[channel][row_day] = orders[channel].get(row_day, 0) + int(count)
        # Summed as floats by the database (SQLite has no exact decimal); rounded to cents for the chart.
        revenue[currency][channel][row_day] = str(Decimal(str(total or 0)).quantize(Decimal("0.01")))
    return {"days": _dates(since, days), "orders": orders, "revenue": revenue}


def _shipped_at() -> Any:
    return (select(Shipment.order_id, func.min(Shipment.shipped_at).label("shipped_at"))
            .where(Shipment.shipped_at.is_not(None)).group_by(Shipment.order_id).subquery())


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def lead_times(session: Session, days: int) -> dict[str, Any]:
    since = _since(days)
    shipped = _shipped_at()
    day = _day(session, Order.placed_at).label("day")
    seconds = _seconds(session, Order.placed_at, shipped.c.shipped_at).label("seconds")
    rows = session.execute(select(day, seconds).join(shipped, shipped.c.order_id == Order.id)
                           .where(Order.placed_at >= since)).all()
    hours = sorted(max(0.0, float(s)) / 3600 for _, s in rows)
    per_day: dict[str, list[float]] = defaultdict(list)
    for row_day, s in rows:
        per_day[row_day].append(max(0.0, float(s)) / 3600)
    daily = {d: {"p50": round(percentile(sorted(v), 50), 1), "p90": round(percentile(sorted(v), 90), 1)}
             for d, v in per_day.items()}
    return {
        "shipped_orders": len(hours),
        "hours": {f"p{p}": round(percentile(hours, p), 1) for p in PERCENTILES} if hours else {},
        "daily": daily,
    }


def promise_hours(shop_settings: dict[str, Any] | None) -> dict[str, float]:
    """The shop's promise per shipping level: its own settings over the defaults (bad values ignored)."""
    promise: dict[str, float] = dict(DEFAULT_PROMISE_HOURS)
    custom = (shop_settings or {}).get("shipping_promise_hours")
    if isinstance(custom, dict):
        for level, hours in custom.items():
            if isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0:
                promise[str(level)] = float(hours)
    return promise


def _promise_seconds(session: Session) -> ColumnElement[Any]:
    """A CASE giving each order its promise in seconds, from its shop's settings and the defaults."""
    whens: list[tuple[Any, Any]] = []
    for shop_id, settings in session.execute(select(Shop.id, Shop.settings)).all():
        custom = promise_hours(settings)
        for level, hours in custom.items():
            if hours != DEFAULT_PROMISE_HOURS.get(level):
                whens.append((and_(Order.shop_id == shop_id, Order.shipping_level == level), hours * 3600))
    for level, hours in DEFAULT_PROMISE_HOURS.items():
        whens.append((Order.shipping_level == level, hours * 3600))
    return case(*whens, else_=FALLBACK_PROMISE_HOURS * 3600)


def late_orders(session: Session, days: int) -> dict[str, Any]:
    since = _since(days)
    shipped = _shipped_at()
    now = literal(utcnow(), UTCDateTime())
    promise = _promise_seconds(session)
    shipped_in = _seconds(session, Order.placed_at, shipped.c.shipped_at)
    waited = _seconds(session, Order.placed_at, now)
    verdict = case(
        (shipped.c.shipped_at.is_not(None), case((shipped_in <= promise, "on_time"), else_="late")),
        (waited > promise, "overdue"),
        else_="open",
    ).label("verdict")
    day = _day(session, Order.placed_at).label("day")
    rows = session.execute(
        select(day, verdict, func.count()).outerjoin(shipped, shipped.c.order_id == Order.id)
        .where(Order.placed_at >= since, Order.status != str(OrderStatus.CANCELLED))
        .group_by(day, verdict)).all()
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: {"on_time": 0, "late": 0, "overdue": 0, "open": 0})
    for row_day, row_verdict, count in rows:
        per_day[row_day][row_verdict] += int(count)
    totals = {key: sum(d[key] for d in per_day.values()) for key in ("on_time", "late", "overdue", "open")}
    return {"days": _dates(since, days), "per_day": per_day, "totals": totals,
            "default_promise_hours": DEFAULT_PROMISE_HOURS}


def return_rates(session: Session, days: int, limit: int = 15) -> list[dict[str, Any]]:
    since = _since(days)
    came_back = exists().where(Return.order_id == LineItem.order_id)
    returned_units = func.sum(case((came_back, LineItem.quantity), else_=0))
    sold_units = func.sum(LineItem.quantity)
    rows = session.execute(
        select(LineItem.sku, sold_units.label("sold"), returned_units.label("returned"))
        .join(Order, Order.id == LineItem.order_id)
        .where(Order.placed_at >= since, LineItem.sku.is_not(None), Order.status != str(OrderStatus.CANCELLED))
        .group_by(LineItem.sku)
        .order_by((returned_units * 1.0 / sold_units).desc(), sold_units.desc(), LineItem.sku).limit(limit)).all()
    return [{"sku": sku, "sold": int(sold), "returned": int(returned or 0),
             "rate": round(int(returned or 0) / int(sold), 4) if sold else 0.0} for sku, sold, returned in rows]


def summary(session: Session, days: int) -> dict[str, Any]:
    days = max(1, min(int(days), MAX_DAYS))
    return {
        "period_days": days,
        "orders_per_day": orders_per_day(session, days),
        "lead_time": lead_times(session, days),
        "late": late_orders(session, days),
        "returns_by_sku": return_rates(session, days),
    }
