"""REST API v1: marshmallow-validated, bearer-authenticated, described by /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from werkzeug.routing import IntegerConverter

from app.api.errors import OrderlineApi
from app.api.schemas import INT32_MAX
from app.runtime import Runtime
from app.store import Database


def runtime() -> Runtime:
    return current_app.extensions["orderline"]


def db() -> Database:
    return runtime().db


API_CONFIG: dict[str, Any] = {
    "API_TITLE": "Orderline",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {"description": "The unified order store of every channel. Money is an exact decimal string. "
                                "Every error is {\"error\": {\"code\", \"message\", \"fields\"}}."},
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    },
}


class RowId(IntegerConverter):
    """`<id:order_id>`: a row id. Past PostgreSQL's integer range no row can exist, so that is a 404 from
    routing instead of an overflow error from the database; the OpenAPI document shows the range."""

    def __init__(self, map: Any) -> None:
        super().__init__(map, min=1, max=INT32_MAX)


def _nullable_ref(_converter: Any, _field: Any, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """apispec writes a nullable nested object for OpenAPI 3.0 as `anyOf: [{type: object, nullable}, $ref]`,
    which admits any object at all; `nullable` + `allOf: [$ref]` says "this shape, or null"."""
    branches = ret.get("anyOf") or []
    if {"type": "object", "nullable": True} in branches and len(branches) == 2:
        ret.pop("anyOf")
        return {"nullable": True, "allOf": [b for b in branches if b != {"type": "object", "nullable": True}]}
    return {}


def init_api(app: Flask) -> OrderlineApi:
    from app.api import inbound, inventory, jobs, orders, picking, shops

    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    app.url_map.converters["id"] = RowId  # before any rule that uses it is added
    api = OrderlineApi(app)
    api.ma_plugin.converter.add_attribute_function(_nullable_ref)
    for module in (orders, shops, jobs, inbound, inventory, picking):
        api.register_blueprint(module.blp)
    from app.api import shipping  # shipping helper

    api.register_blueprint(shipping.blp)
    from app.api import returns  # tracking and returns

    api.register_blueprint(returns.blp)
    return api
