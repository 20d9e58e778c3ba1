"""/api/v1/orders/<id>/rates and /retry: what the shop's carrier would charge, and resuming a stopped step."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from app import catalogue, shipping
from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser, error_response
from app.api.schemas import _id
from app.failures import PermanentError, TransientError
from app.orders.types import Role

blp = Blueprint("shipping", __name__, url_prefix="/api/v1", description="Carrier rates and resuming stopped steps")
blp.ARGUMENTS_PARSER = JsonParser()


class RateOut(ma.Schema):
    carrier = fields.String()
    service = fields.String()
    amount = fields.String(metadata={"example": "6.00", "description": "a decimal string, as all money"})
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
    @blp.alt_response(422, schema=Error, description="the order cannot be rated (no shipping address, nothing to ship)")
    @blp.alt_response(503, schema=Error, description="the carrier did not answer")
    def get(self, order_id: int) -> Any:
        """The rates the shop's carrier quotes for the order as one parcel, cheapest first (for "Ship with…";
        pass the chosen carrier and service to the `ship` action)."""
        try:
            with db().session() as session:
                return shipping.quote_rates(session, order_id)
        except PermanentError as error:  # the order cannot be rated as it is (no address), or the carrier refused
            return error_response(422, str(error), code="cannot_rate")
        except TransientError as error:
            return error_response(503, f"the carrier did not answer; try again shortly ({error})",
                                  headers={"Retry-After": str(int(error.retry_after or 5))})


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


# --- the product catalogue --------------------------------------------------------------------------------

CATALOGUE_EXAMPLE = ("sku,weight_grams,length_cm,width_cm,height_cm,hs_code,origin_country,tags\n"
                     "TEE-BLK-M,180,30,25,2,6109.10,PT,apparel\nMUG-05,420,12,12,11,6912.00,SE,fragile|final-sale\n")


class ShopArgs(ma.Schema):
    shop_id = _id(required=True, strict=False, metadata={"description": "the shop whose catalogue"})


class Centimetres(fields.Field):
    """"12.5" however the database padded it (PostgreSQL NUMERIC answers 12.500000)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format(value.normalize(), "f")


class ProductOut(ma.Schema):
    sku = fields.String()
    weight_grams = fields.Integer(allow_none=True)
    length_cm = Centimetres(allow_none=True, metadata={"type": "string", "example": "30"})
    width_cm = Centimetres(allow_none=True, metadata={"type": "string", "example": "25"})
    height_cm = Centimetres(allow_none=True, metadata={"type": "string", "example": "2.5"})
    hs_code = fields.String(allow_none=True)
    origin_country = fields.String(allow_none=True)
    tags = fields.List(fields.String())


class CatalogueImportOut(ma.Schema):
    rows = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()


@blp.route("/catalogue")
class Catalogue(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(ShopArgs, location="query", as_kwargs=True)
    @blp.response(200, ProductOut(many=True))
    def get(self, shop_id: int) -> Any:
        """The shop's products: weight and size for parcels, HS code and origin for customs."""
        with db().session() as session:
            return catalogue.products(session, shop_id)


@blp.route("/catalogue/import")
class CatalogueImport(MethodView):
    @require(Role.MANAGER)
    @blp.arguments(ShopArgs, location="query", as_kwargs=True)
    @blp.doc(requestBody={"required": True, "description": (
        "A CSV file (UTF-8; comma, semicolon or tab separated) with the columns `sku` and any of "
        "`weight_grams`, `length_cm`, `width_cm`, `height_cm`, `hs_code`, `origin_country`, `tags` (separated "
        "by |). An empty cell leaves the stored value. Each SKU once."),
        "content": {"text/csv": {"schema": {"type": "string"}, "example": CATALOGUE_EXAMPLE}}})
    @blp.response(200, CatalogueImportOut)
    @blp.alt_response(415, schema=Error, description="the body is not sent as text/csv")
    @blp.alt_response(422, schema=Error, description="problems named by row and column; nothing was imported")
    def post(self, shop_id: int) -> Any:
        """Create or update the shop's products from a CSV file: all rows or none."""
        if request.mimetype != "text/csv":
            return error_response(415, "send the catalogue file with Content-Type: text/csv")
        with db().session() as session:
            return catalogue.import_products(session, shop_id, request.get_data(cache=False))
