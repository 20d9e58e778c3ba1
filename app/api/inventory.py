"""/api/v1/locations and /api/v1/inventory: where stock is kept, how much, and changing it."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import pycountry
from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, post_load, validate, validates, validates_schema
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import stock
from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser, error_response
from app.api.schemas import INT32_MAX, MAX_TEXT, Strict, Text, _text, _timezones
from app.models import Location, StockLevel
from app.orders.types import Role

blp = Blueprint("inventory", __name__, url_prefix="/api/v1", description="Stock locations and stock levels")
blp.ARGUMENTS_PARSER = JsonParser()

CSV_EXAMPLE = "location,sku,on_hand,bin\nSTHLM,TEE-BLK-M,40,A-03-2\nNJ,TEE-BLK-M,12,R2-S4\n"


# --- schemas --------------------------------------------------------------------------------------------


def _code(**kwargs: Any) -> Text:
    metadata = {"example": "STHLM", "description": "a location code; case-insensitive, stored in capitals",
                **kwargs.pop("metadata", {})}
    return Text(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
                                         error="must be 1-32 letters, digits, '.', '_' or '-'"),
                metadata=metadata, **kwargs)


class LocationIn(Strict):
    code = _code(required=True)
    name = _text(200, required=True, validate=validate.Length(min=1, max=200))
    country_code = Text(required=True, metadata={"example": "SE"},
                        validate=validate.Regexp(r"^[A-Z]{2}$", error="must be two capital letters"))
    line1 = _text(allow_none=True)
    line2 = _text(allow_none=True)
    city = _text(128, allow_none=True)
    region = _text(128, allow_none=True)
    postal_code = _text(32, allow_none=True)
    timezone = _text(64, load_default="UTC")
    active = fields.Boolean(load_default=True)
    priority = fields.Integer(strict=True, load_default=100, validate=validate.Range(min=0, max=1_000_000),
                              metadata={"description": "lower ships first when several locations could"})

    @validates("country_code")
    def _country(self, value: str, **_: Any) -> None:
        if pycountry.countries.get(alpha_2=value) is None:
            raise ValidationError(f"'{value}' is not an ISO 3166 two-letter country code")

    @validates("timezone")
    def _timezone(self, value: str, **_: Any) -> None:
        if value not in _timezones():
            raise ValidationError(f"'{value}' is not an IANA time zone")

    @post_load
    def _capitals(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["code"] = stock.normalize_code(data["code"])
        return data


class LocationOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    country_code = fields.String()
    line1 = fields.String(allow_none=True)
    line2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    timezone = fields.String()
    active = fields.Boolean()
    priority = fields.Integer()
    created_at = fields.DateTime()


class StockOut(ma.Schema):
    location = fields.String(attribute="location.code", metadata={"description": "the location's code"})
    sku = fields.String()
    on_hand = fields.Integer()
    reserved = fields.Integer(metadata={"description": "promised to allocated orders"})
    available = fields.Integer(metadata={"description": "on_hand - reserved"})
    bin = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class InventoryArgs(Strict):
    sku = _text(stock.MAX_SKU, metadata={"description": "exactly this SKU"})
    location = _code(metadata={"description": "only this location (its code)"})
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))
    cursor = _text(400, metadata={"description": "the `next_cursor` of the previous page"})


class InventoryPage(ma.Schema):
    data = fields.List(fields.Nested(StockOut))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as `cursor` for the next page; null on the last page"})


class ImportOut(ma.Schema):
    rows = fields.Integer(metadata={"description": "rows in the file"})
    created = fields.Integer(metadata={"description": "new stock rows (a location's first count of a SKU)"})
    updated = fields.Integer(metadata={"description": "stock rows whose count or bin changed"})
    unchanged = fields.Integer()
    queued_orders = fields.List(fields.Integer(), metadata={
        "description": "waiting (backordered) orders the new stock completes, queued for allocation, oldest first"})


class AdjustIn(Strict):
    location = _code(required=True)
    sku = _text(stock.MAX_SKU, required=True, validate=validate.Length(min=1, max=stock.MAX_SKU))
    delta = fields.Integer(strict=True, validate=validate.Range(min=-INT32_MAX, max=INT32_MAX), metadata={
        "description": "units arrived (+) or gone (-: damage, loss); not with on_hand"})
    on_hand = fields.Integer(strict=True, validate=validate.Range(min=0, max=INT32_MAX), metadata={
        "description": "the counted quantity; not with delta"})
    bin = _text(stock.MAX_BIN, allow_none=True, metadata={"description": "where it sits; \"\" clears it"})
    reason = _text(MAX_TEXT, metadata={"description": "why (kept in the log)"})

    @validates_schema
    def _one_change(self, data: dict[str, Any], **_: Any) -> None:
        if "delta" in data and "on_hand" in data:
            raise ValidationError({"delta": ["give either delta or on_hand, not both"]})
        if "delta" not in data and "on_hand" not in data and data.get("bin") is None:
            raise ValidationError({"delta": ["give delta, on_hand or bin"]})


class AdjustOut(ma.Schema):
    stock = fields.Nested(StockOut, metadata={"description": "the stock row after the change"})
    previous_on_hand = fields.Integer()
    queued_orders = fields.List(fields.Integer(), metadata={
        "description": "waiting orders the change completes, queued for allocation"})


# --- routes ---------------------------------------------------------------------------------------------


@blp.route("/locations")
class Locations(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, LocationOut(many=True))
    def get(self) -> list[Location]:
        """All stock locations, in the order they ship (priority, then code)."""
        with db().session() as session:
            return list(session.execute(select(Location).order_by(Location.priority, Location.code)).scalars())

    @require(Role.MANAGER)
    @blp.arguments(LocationIn)
    @blp.response(201, LocationOut)
    @blp.alt_response(409, schema=Error, description="a location with this code exists")
    def post(self, data: dict[str, Any]) -> Any:
        """Add a stock location (a warehouse). Its code names it in stock files and on the timeline."""
        try:
            with db().session() as session:
                location = Location(**data)
                session.add(location)
                session.flush()
        except IntegrityError:
            return error_response(409, f"there is already a location {data['code']}", code="duplicate_location",
                                  fields={"code": ["already used"]})
        return location, 201


@blp.route("/inventory")
class Inventory(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(InventoryArgs, location="query", as_kwargs=True)
    @blp.response(200, InventoryPage)
    def get(self, **args: Any) -> dict[str, Any]:
        """Stock levels by SKU and location: on hand, reserved for orders, available, and the bin."""
        query = stock.stock_query(sku=args.get("sku"), location=args.get("location"))
        if args.get("cursor"):
            query = stock.after_cursor(query, stock.decode_cursor(args["cursor"]))
        limit = args["limit"]
        with db().session() as session:
            rows: list[StockLevel] = list(session.execute(query.limit(limit + 1)).scalars())
        page, more = rows[:limit], len(rows) > limit
        cursor = stock.encode_cursor(page[-1].sku, page[-1].location.code) if more else None
        return {"data": page, "next_cursor": cursor}


@blp.route("/inventory/import")
class InventoryImport(MethodView):
    @require(Role.MANAGER)
    @blp.doc(requestBody={"required": True, "description": (
        "A CSV file (UTF-8; comma, semicolon or tab separated). The first row names the columns "
        "`location` (a location code), `sku`, `on_hand` (the counted quantity, not a change) and optionally "
        "`bin`; an empty bin leaves the stored one. Each location and SKU once."),
        "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}}})
    @blp.response(200, ImportOut)
    @blp.alt_response(415, schema=Error, description="the body is not sent as text/csv")
    @blp.alt_response(422, schema=Error, description=(
        "the file has problems, each named by row and column in `fields` (\"row 3\": {\"on_hand\": [...]}); "
        "nothing was imported"))
    def post(self) -> Any:
        """Set counted stock from a CSV file: all rows or none. Orders waiting for the stock are allocated."""
        if request.mimetype != "text/csv":
            return error_response(415, "send the stock file with Content-Type: text/csv")
        body = request.get_data(cache=False)
        with db().session() as session:
            result = stock.import_stock(session, body)
        return result


@blp.route("/inventory/adjust")
class InventoryAdjust(MethodView):
    @require(Role.OPERATOR)
    @blp.arguments(AdjustIn)
    @blp.response(200, AdjustOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Change one SKU at one location: by `delta` (a delivery, damage) or to a counted `on_hand`, and/or
        its bin. Never below zero or below what orders have reserved."""
        with db().session() as session:
            result = stock.adjust_stock(session, data["location"], data["sku"], delta=data.get("delta"),
                                        on_hand=data.get("on_hand"), bin=data.get("bin"),
                                        reason=data.get("reason"), actor=g.actor.name)
        return {"stock": result.level, "previous_on_hand": result.previous_on_hand,
                "queued_orders": result.queued_orders}
