"""/api/v1/shops: the shops Orderline serves; their secrets go in and never come out."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api import db
from app.api.auth import require
from app.api.errors import Error, JsonParser, error_response
from app.api.schemas import ShopIn, ShopOut, ShopPatch
from app.models import Shop
from app.orders.errors import NotFound
from app.orders.types import Role

blp = Blueprint("shops", __name__, url_prefix="/api/v1/shops", description="Shops on every channel")
blp.ARGUMENTS_PARSER = JsonParser()


def _apply(shop: Shop, data: dict[str, Any]) -> None:
    box = current_app.extensions["orderline.secrets"]
    for name in ("channel", "name", "external_id", "currency", "timezone", "locale", "settings"):
        if name in data:
            setattr(shop, name, data[name])
    if "credentials" in data:
        shop.credentials_encrypted = box.seal(data["credentials"])
    if "webhook_secret" in data:
        shop.webhook_secret_encrypted = box.seal(data["webhook_secret"])


@blp.route("")
class Shops(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, ShopOut(many=True))
    def get(self) -> list[Shop]:
        """All shops."""
        with db().session() as session:
            return list(session.execute(select(Shop).order_by(Shop.id)).scalars())

    @require(Role.MANAGER)
    @blp.arguments(ShopIn)
    @blp.response(201, ShopOut,
                  headers={"Location": {"description": "the new shop's URL", "schema": {"type": "string"}}})
    @blp.alt_response(409, schema=Error, description="this channel already has a shop with that external id")
    def post(self, data: dict[str, Any]) -> Any:
        """Register a shop. Credentials and the webhook secret are stored encrypted and never returned."""
        try:
            with db().session() as session:
                shop = Shop()
                _apply(shop, data)
                session.add(shop)
                session.flush()
        except IntegrityError:
            return error_response(409, f"{data['channel']} shop '{data['external_id']}' is already known",
                                  code="duplicate_shop",
                                  fields={"external_id": ["already registered on this channel"]})
        return shop, 201, {"Location": url_for("shops.ShopView", shop_id=shop.id)}


@blp.route("/<id:shop_id>")
class ShopView(MethodView):
    @require(Role.VIEWER)
    @blp.response(200, ShopOut)
    def get(self, shop_id: int) -> Shop:
        """One shop."""
        with db().session() as session:
            shop = session.get(Shop, shop_id)
            if shop is None:
                raise NotFound(f"shop {shop_id} does not exist")
            return shop

    @require(Role.MANAGER)
    @blp.arguments(ShopPatch, required=False)
    @blp.response(200, ShopOut)
    def patch(self, data: dict[str, Any], shop_id: int) -> Shop:
        """Change a shop's name, settings or secrets."""
        with db().session() as session:
            shop = session.get(Shop, shop_id)
            if shop is None:
                raise NotFound(f"shop {shop_id} does not exist")
            _apply(shop, data)
            return shop
