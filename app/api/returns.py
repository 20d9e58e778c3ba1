"""/api/v1/orders/<id>/returns: ask for a return (checked against the shop's window and final-sale rules),
and list an order's returns. Receiving and inspecting are order actions (`return_receive`, `return_inspect`)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, post_dump, validate
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import returns
from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser
from app.api.schemas import INT32_MAX, ReturnOut, Strict, Text, in_currency
from app.models import Order, Return
from app.orders.errors import NotFound
from app.orders.types import Role

blp = Blueprint("returns", __name__, url_prefix="/api/v1/orders", description="Returns and refunds")
blp.ARGUMENTS_PARSER = JsonParser()


class ReturnItemIn(Strict):
    line_item_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=INT32_MAX))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    reason = Text(required=True, validate=validate.Length(min=1, max=returns.MAX_REASON))


class ReturnIn(Strict):
    items = fields.List(fields.Nested(ReturnItemIn), required=True, validate=validate.Length(min=1, max=200))
    reason = Text(validate=validate.Length(max=returns.MAX_REASON),
                  metadata={"description": "for the whole return; defaults to the items' reasons"})
    carrier = Text(validate=validate.Length(max=32), metadata={
        "description": "carrier for the return label; default: the shop's return_carrier, else the outbound one"})


class ReturnFull(ReturnOut):
    order_id = fields.Integer()
    currency = fields.Function(lambda parcel: parcel.order.currency)

    @post_dump
    def _in_currency(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["refund_amount"] = in_currency(data.get("refund_amount"), data.get("currency"))
        return data


@blp.route("/<id:order_id>/returns")
class OrderReturns(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, ReturnFull(many=True))
    def get(self, order_id: int) -> list[Return]:
        """The order's returns, oldest first, with label, tracking and refund state."""
        with db().session() as session:
            if session.get(Order, order_id) is None:
                raise NotFound(f"order {order_id} does not exist")
            return list(session.execute(select(Return).where(Return.order_id == order_id)
                                        .options(selectinload(Return.order)).order_by(Return.id)).scalars())

    @require(Role.OPERATOR)
    @blp.arguments(ReturnIn)
    @blp.response(201, ReturnFull)
    @blp.alt_response(422, schema=Error, description="outside the return window, final sale, or more units "
                                                     "than can be returned (code not_returnable or "
                                                     "validation_error, with the items named in fields)")
    def post(self, data: dict[str, Any], order_id: int) -> Return:
        """Ask for a return: the label is bought by a job (`return.label_ready` on the timeline)."""
        items = [returns.ItemIn(i["line_item_id"], i["quantity"], i["reason"]) for i in data["items"]]
        with db().session() as session:
            parcel = returns.request_return(session, order_id, items, g.actor, reason=data.get("reason"),
                                            carrier=data.get("carrier"))
            return_id = parcel.id
        with db().session() as session:
            found = session.get(Return, return_id, options=[selectinload(Return.order)])
            assert found is not None
            return found
