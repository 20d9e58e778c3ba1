"""/api/v1/orders: list and search, one order with everything about it, manual orders, and actions."""

from __future__ import annotations

from typing import Any

from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser, error_response
from app.api.schemas import ActionIn, Cursor, OrderCreate, OrderListArgs, OrderOut, OrderPage
from app.models import LineItem, Order, Shop
from app.orders import actions
from app.orders.errors import InvalidOrder, NotFound
from app.orders.types import NewAddress, NewLineItem, NewOrder, Role

blp = Blueprint("orders", __name__, url_prefix="/api/v1/orders", description="Orders from every channel")
blp.ARGUMENTS_PARSER = JsonParser()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(args: dict[str, Any]) -> Any:
    query = select(Order)
    if args.get("status"):
        query = query.where(Order.status.in_(args["status"]))
    if args.get("channel"):
        query = query.where(Order.channel == args["channel"])
    if args.get("shop_id"):
        query = query.where(Order.shop_id == args["shop_id"])
    if args.get("placed_from"):
        query = query.where(Order.placed_at >= args["placed_from"])
    if args.get("placed_to"):
        query = query.where(Order.placed_at < args["placed_to"])
    if args.get("q", "").strip():
        pattern = _like(args["q"].strip())
        query = query.where(or_(
            Order.number.ilike(pattern, escape="\\"),
            Order.customer_name.ilike(pattern, escape="\\"),
            Order.customer_email.ilike(pattern, escape="\\"),
            Order.customer_phone.ilike(pattern, escape="\\"),
            exists().where(LineItem.order_id == Order.id, LineItem.sku.ilike(pattern, escape="\\")),
        ))
    return query


def _new_order(data: dict[str, Any]) -> NewOrder:
    customer = data.get("customer") or {}

    def address(kind: str) -> NewAddress | None:
        value = data.get(kind)
        return NewAddress(**value) if value else None

    return NewOrder(
        # A number given by the caller (a till receipt, a phone order slip) makes the create idempotent.
        external_id=f"number:{data['number']}" if data.get("number") else None,
        number=data.get("number"),
        currency=data["currency"],
        line_items=[NewLineItem(**item) for item in data["line_items"]],
        customer_name=customer.get("name"),
        customer_email=customer.get("email"),
        customer_phone=customer.get("phone"),
        customer_locale=customer.get("locale"),
        shipping_address=address("shipping_address"),
        billing_address=address("billing_address"),
        shipping_level=data["shipping_level"],
        shipping_total=data["shipping_total"],
        tax_total=data["tax_total"],
        discount_total=data["discount_total"],
        financial_status=data["financial_status"],
        note=data.get("note"),
        tags=data["tags"],
        risk_level=data.get("risk_level"),
        placed_at=data.get("placed_at"),
    )


def _full_order(session: Any, order_id: int) -> Order:
    order = session.execute(
        select(Order).where(Order.id == order_id).options(
            selectinload(Order.line_items), selectinload(Order.addresses), selectinload(Order.shipments),
            selectinload(Order.returns), selectinload(Order.events))
    ).scalar_one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def _order_numbered(session: Any, shop_id: int, number: str | None) -> int | None:
    if not number:
        return None
    return session.execute(select(Order.id).where(Order.shop_id == shop_id, Order.number == number)).scalar()


@blp.route("")
class Orders(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(OrderListArgs, location="query", as_kwargs=True)
    @blp.response(200, OrderPage)
    def get(self, **args: Any) -> dict[str, Any]:
        """List orders, newest first (by when they were placed), with filters and free-text search."""
        query = _filtered(args)
        if args.get("cursor"):
            # Keyset paging on (placed_at, id): an order arriving meanwhile never shifts or repeats a page.
            placed_at, order_id = args["cursor"]
            query = query.where(or_(Order.placed_at < placed_at,
                                    and_(Order.placed_at == placed_at, Order.id < order_id)))
        limit = args["limit"]
        with db().session() as session:
            rows = list(session.execute(
                query.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit + 1)).scalars())
        page, more = rows[:limit], len(rows) > limit
        return {"data": page, "next_cursor": Cursor.encode(page[-1].placed_at, page[-1].id) if more else None}

    @require(Role.OPERATOR)
    @blp.arguments(OrderCreate)
    @blp.response(201, OrderOut, headers={"Location": {"description": "the new order's URL",
                                                       "schema": {"type": "string"}}})
    @blp.alt_response(409, schema=Error, description="an order with this number already exists in the shop")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a manual order (phone, point of sale): stored as received, then triaged by a job."""
        number, existing = data.get("number"), None
        try:
            with db().session() as session:
                shop = session.get(Shop, data["shop_id"])
                if shop is None:
                    raise InvalidOrder(f"shop {data['shop_id']} does not exist",
                                       fields={"shop_id": ["no such shop"]})
                if shop.channel != "manual":
                    raise InvalidOrder(f"shop {shop.id} is a {shop.channel} shop: its orders come from "
                                       f"{shop.channel}, not the API",
                                       fields={"shop_id": ["must be a shop on the manual channel"]})
                # Looked up first because the unique key does not cover a number the shop generated itself.
                existing = _order_numbered(session, shop.id, number)
                if existing is None:
                    order_id = actions.create_order(session, shop, _new_order(data), g.actor).id
        except IntegrityError:
            with db().session() as session:  # the same number sent twice at once: the other request won
                existing = _order_numbered(session, data["shop_id"], number)
            if existing is None:
                raise
        if existing is not None:
            return error_response(409, f"shop {data['shop_id']} already has order {number} (id {existing})",
                                  code="duplicate_order",
                                  fields={"number": [f"already used by order {existing}"]})
        with db().session() as session:
            order = _full_order(session, order_id)
        return order, 201, {"Location": url_for("orders.OrderView", order_id=order_id)}


@blp.route("/<id:order_id>")
class OrderView(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, OrderOut)
    def get(self, order_id: int) -> Order:
        """One order with its line items, addresses, shipments, returns and timeline."""
        with db().session() as session:
            return _full_order(session, order_id)


# Every action in the registry, so a new one is reachable (and documented) as soon as it is registered.
@blp.route(f"/<id:order_id>/actions/<any({', '.join(actions.ACTIONS)}):name>")
class OrderAction(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(ActionIn, required=False)  # approve and release need no body
    @blp.response(200, OrderOut)
    @blp.alt_response(409, schema=Error,
                      description="the transition is not allowed, or the order changed meanwhile")
    def post(self, data: dict[str, Any], order_id: int, name: str) -> Order:
        """Act on an order: approve, hold, release, cancel, note, pick, pack, reply, ...

        hold and cancel need a reason (cancel: managers), note needs text; pick and pack are the warehouse
        steps (operators), pack with an optional weight_grams when the scale differs from the SKU data;
        reply needs text and is sent to the customer by SMS."""
        with db().session() as session:
            actions.perform(session, order_id, name, g.actor, **data)
        with db().session() as session:
            return _full_order(session, order_id)
