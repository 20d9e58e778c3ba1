"""Pick lists per location and packing slips per order: JSON, a printable HTML page (`?format=html`) or PDF."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app import pdf, picking
from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser
from app.api.schemas import AddressOut, Strict, Text, _id
from app.models import Order
from app.orders.errors import NotFound
from app.orders.types import Role

blp = Blueprint("picking", __name__, url_prefix="/api/v1", description="Pick lists and packing slips")
blp.ARGUMENTS_PARSER = JsonParser()

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
HTML_DOC = {"responses": {200: {"content": {"text/html": {"schema": {"type": "string"}},
                                             "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}}


def _format() -> Text:
    return Text(load_default="json", validate=validate.OneOf(["json", "html", "pdf"]),
                metadata={"description": "json (default), html (a printable page) or pdf (A4, for printers)"})


def _checked_code(code: str) -> str:
    if not CODE.match(code):
        raise NotFound(f"there is no location '{code[:40]}'")
    return code


# --- schemas --------------------------------------------------------------------------------------------


class PickListArgs(Strict):
    format = _format()
    order_id = fields.List(_id(strict=False), validate=validate.Length(max=500),
                           metadata={"description": "only these orders (repeat the parameter)"})


class PackingSlipArgs(Strict):
    format = _format()
    location = Text(validate=validate.Regexp(CODE, error="must be a location code"),
                    metadata={"description": "only the slip of this location (a split order has one per location)"})


class PickOrderOut(ma.Schema):
    order_id = fields.Integer()
    number = fields.String()
    quantity = fields.Integer()
    status = fields.String(metadata={"description": "the allocation's: reserved or picked"})


class PickLineOut(ma.Schema):
    sku = fields.String()
    title = fields.String(allow_none=True)
    quantity = fields.Integer()
    orders = fields.List(fields.Nested(PickOrderOut))


class BinOut(ma.Schema):
    bin = fields.String(allow_none=True, metadata={"description": "null: the SKU has no bin at this location"})
    total = fields.Integer(metadata={"description": "units to take from this bin"})
    lines = fields.List(fields.Nested(PickLineOut))


class ElsewhereOut(ma.Schema):
    location = fields.String()
    sku = fields.String()
    quantity = fields.Integer()


class PickListOrderOut(ma.Schema):
    order_id = fields.Integer()
    number = fields.String()
    status = fields.String()
    customer_name = fields.String(allow_none=True)
    units = fields.Integer(metadata={"description": "units of this order picked here"})
    split = fields.Boolean(metadata={"description": "other items of the order ship from another location"})
    elsewhere = fields.List(fields.Nested(ElsewhereOut))


class PickListOut(ma.Schema):
    location = fields.String()
    location_name = fields.String()
    generated_at = fields.DateTime()
    total = fields.Integer()
    bins = fields.List(fields.Nested(BinOut), metadata={"description": "sorted by bin (no bin last), then SKU"})
    orders = fields.List(fields.Nested(PickListOrderOut))


class SlipItemOut(ma.Schema):
    sku = fields.String(allow_none=True)
    title = fields.String()
    variant_title = fields.String(allow_none=True)
    quantity = fields.Integer()


class PackingSlipOut(ma.Schema):
    location = fields.String(allow_none=True, metadata={"description": "null when stock is not tracked"})
    location_name = fields.String(allow_none=True)
    parcel = fields.Integer()
    parcels = fields.Integer()
    units = fields.Integer()
    items = fields.List(fields.Nested(SlipItemOut))
    elsewhere = fields.List(fields.Nested(ElsewhereOut), metadata={
        "description": "what ships separately from other locations (a split order)"})


class PackingSlipsOut(ma.Schema):
    order_id = fields.Integer()
    number = fields.String()
    customer_name = fields.String(allow_none=True)
    ship_to = fields.Nested(AddressOut, allow_none=True)
    slips = fields.List(fields.Nested(PackingSlipOut))


def _html(text: str) -> Response:
    return Response(text, status=200, mimetype="text/html")


def _pdf(document: bytes, filename: str) -> Response:
    return Response(document, status=200, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})


# --- routes ---------------------------------------------------------------------------------------------


@blp.route("/locations/<code>/picklist")
class PickListView(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(PickListArgs, location="query", as_kwargs=True)
    @blp.response(200, PickListOut)
    @blp.alt_response(404, schema=Error, description="there is no such location")
    @blp.doc(**HTML_DOC)
    def get(self, code: str, **args: Any) -> Any:
        """A location's pick list, by bin then SKU.

        What to take for the location's allocated and picking orders: one line per bin and SKU with the orders
        it is for, per-bin totals, and which orders also ship from another location. `format=html` returns
        a printable page, `format=pdf` an A4 PDF."""
        with db().session() as session:
            pick = picking.pick_list(session, _checked_code(code), order_ids=args.get("order_id"))
            if args["format"] == "html":
                return _html(picking.render_pick_list(pick))
            if args["format"] == "pdf":
                return _pdf(pdf.pick_list_pdf(pick), f"picklist-{pick.location}.pdf")
            return pick


@blp.route("/orders/<id:order_id>/packing-slip")
class PackingSlipView(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(PackingSlipArgs, location="query", as_kwargs=True)
    @blp.response(200, PackingSlipsOut)
    @blp.alt_response(404, schema=Error, description="there is no such order or location")
    @blp.doc(**HTML_DOC)
    def get(self, order_id: int, **args: Any) -> Any:
        """An order's packing slips, one per location it ships from.

        Each has the ship-to address, the items and quantities leaving from that location and, for a split
        order, what ships separately from elsewhere. `format=html` returns a printable page,
        `format=pdf` an A4 PDF."""
        with db().session() as session:
            slips = picking.packing_slips(session, order_id, location=args.get("location"))
            order = session.get(Order, order_id)
            assert order is not None  # packing_slips raised NotFound otherwise
            if args["format"] == "html":
                return _html(picking.render_packing_slips(slips, number=order.number))
            if args["format"] == "pdf":
                return _pdf(pdf.packing_slips_pdf(slips, number=order.number), f"packing-slip-{order.number}.pdf")
            return {"order_id": order.id, "number": order.number, "customer_name": order.customer_name,
                    "ship_to": order.address("shipping"), "slips": slips}
