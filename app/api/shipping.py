"""/api/v1/orders/<id>/rates and /retry: what the shop's carrier would charge, and resuming a stopped step."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from app import shipping
from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser
from app.orders.types import Role

blp = Blueprint("shipping", __name__, url_prefix="/api/v1", description="Carrier rates and resuming stopped steps")
blp.ARGUMENTS_PARSER = JsonParser()


class RateOut(ma.Schema):
    carrier = fields.String()
    service = fields.String()
    amount = fields.Decimal(as_string=True)
    currency = fields.String()
    delivery_days = fields.Integer(allow_none=True)
    estimated_delivery = fields.Date(allow_none=True)


class RetryOut(ma.Schema):
    order_id = fields.Integer()
    steps = fields.List(fields.String(), metadata={"description": "the steps queued again"})


@blp.route("/orders/<id:order_id>/rates")
class OrderRates(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, RateOut(many=True))
    @blp.alt_response(404, schema=Error, description="no such order")
    def get(self, order_id: int) -> Any:
        """The rates the shop's carrier quotes for the order as one parcel, cheapest first (for "Ship with…";
        pass the chosen carrier and service to the `ship` action)."""
        with db().session() as session:
            return shipping.quote_rates(session, order_id)


@blp.route("/orders/<id:order_id>/retry")
class OrderRetry(MethodView):
    @require(Role.OPERATOR)
    @blp.response(200, RetryOut)
    @blp.alt_response(422, schema=Error, description="nothing of the order is stopped")
    def post(self, order_id: int) -> dict[str, Any]:
        """Resume the order's pipeline where it stopped (after a provider refused and the cause was fixed)."""
        with db().session() as session:
            steps = shipping.retry_order(session, order_id, g.actor)
        return {"order_id": order_id, "steps": steps}
