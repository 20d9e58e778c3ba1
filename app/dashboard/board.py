"""What the order board and an order's page show: read-only queries over the order store."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.api.orders import _filtered as filtered_orders  # the API's filters and search: one definition
from app.api.schemas import in_currency
from app.models import Order, Shop
from app.orders import actions
from app.orders.errors import InvalidOrder, NotFound
from app.orders.statuses import OrderStatus, can_transition
from app.orders.types import Actor, Role

PER_COLUMN = 25  # cards shown per status column; the count says how many there are in all

# Timeline entries that are the customer's text conversation (the SMS helper records these).
SMS_TYPES = ("order.customer_message", "order.customer_reply")


def board(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    """Orders by status, newest first in each column, under the same filters and search as GET /api/v1/orders."""
    query = filtered_orders(filters)
    matching = query.subquery()
    counts = dict(session.execute(
        select(matching.c.status, func.count()).group_by(matching.c.status)).all())
    ranked = query.add_columns(
        func.row_number().over(partition_by=Order.status, order_by=(Order.placed_at.desc(), Order.id.desc()))
        .label("rank")).subquery()
    rows = session.execute(
        select(Order, Shop.name).join(ranked, ranked.c.id == Order.id).join(Shop, Shop.id == Order.shop_id)
        .where(ranked.c.rank <= PER_COLUMN).order_by(Order.placed_at.desc(), Order.id.desc())).all()
    columns: dict[str, list[dict[str, Any]]] = {str(status): [] for status in OrderStatus}
    for order, shop_name in rows:
        columns[order.status].append(card(order, shop_name))
    return {
        "columns": [{"status": status, "count": counts.get(status, 0), "orders": cards}
                    for status, cards in columns.items()],
        "total": sum(counts.values()),
    }


def card(order: Order, shop_name: str) -> dict[str, Any]:
    return {
        "id": order.id, "number": order.number, "status": order.status, "channel": order.channel,
        "shop": shop_name, "customer": order.customer_name or order.customer_email or "",
        "total": in_currency(str(order.total), order.currency), "currency": order.currency,
        "shipping_level": order.shipping_level, "risk_level": order.risk_level, "tags": list(order.tags or [])[:3],
        "placed_at": order.placed_at.isoformat(), "version": order.version,
    }


def shops(session: Session) -> list[Shop]:
    return list(session.execute(select(Shop).order_by(Shop.id)).scalars())


def full_order(session: Session, order_id: int) -> Order:
    order = session.execute(
        select(Order).where(Order.id == order_id).options(
            selectinload(Order.line_items), selectinload(Order.addresses), selectinload(Order.shipments),
            selectinload(Order.returns), selectinload(Order.events), selectinload(Order.shop))
    ).scalar_one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


@dataclass(frozen=True)
class ActionField:
    name: str
    required: bool
    kind: str  # "text" | "number"


@dataclass(frozen=True)
class ActionForm:
    name: str
    role: Role
    allowed: bool  # the signed-in role may do it
    fields: tuple[ActionField, ...]
    possible: bool = True  # the order's status allows it (as far as the page can tell; the action decides)


# The status an action moves an order to, for the actions that move it: the page greys out the ones the
# transition table (statuses.TRANSITIONS) refuses from the order's current status. Actions not named here
# (notes, replies, and any new action) are always offered; the action itself still has the last word.
ACTION_TARGETS: dict[str, OrderStatus] = {
    "approve": OrderStatus.APPROVED, "hold": OrderStatus.ON_HOLD, "cancel": OrderStatus.CANCELLED,
    "pick": OrderStatus.PICKING, "pack": OrderStatus.PACKED, "ship": OrderStatus.SHIPPED,
}


def possible(name: str, status: str) -> bool:
    if name == "release":
        return status == OrderStatus.ON_HOLD
    target = ACTION_TARGETS.get(name)
    return target is None or can_transition(status, target)


def action_forms(actor: Actor, status: str | None = None) -> list[ActionForm]:
    """One form per registered staff action, read from `actions.ACTIONS`: its required arguments (`needs`) and
    the optional keyword arguments its function takes (pack's weight_grams, ship's carrier and service), so an
    action added to the registry appears here by itself."""
    forms = []
    for name, spec in actions.ACTIONS.items():
        fields = [ActionField(arg, True, "text") for arg in spec.needs]
        for parameter in inspect.signature(spec.run).parameters.values():
            if (parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.name not in spec.needs
                    and parameter.name != "expected_version"):
                number = "int" in str(parameter.annotation)
                fields.append(ActionField(parameter.name, False, "number" if number else "text"))
        forms.append(ActionForm(name, spec.role, actor.may(spec.role), tuple(fields),
                                possible=status is None or possible(name, status)))
    return forms


def action_arguments(name: str, form: dict[str, str]) -> dict[str, Any]:
    """The submitted form's values for action `name`, typed as its function expects (blank = not given)."""
    spec = actions.ACTIONS.get(name)
    if spec is None:
        raise NotFound(f"there is no action '{name}'; actions are: {', '.join(sorted(actions.ACTIONS))}")
    wanted = {f.name: f for f in next(f for f in action_forms(Actor.system()) if f.name == name).fields}
    arguments: dict[str, Any] = {}
    for key, field in wanted.items():
        raw = (form.get(key) or "").strip()
        if not raw:
            continue
        if field.kind == "number":
            if not raw.isdigit():
                raise InvalidOrder(f"{key} must be a whole number", fields={key: ["must be a whole number"]})
            arguments[key] = int(raw)
        else:
            arguments[key] = raw
    return arguments
