"""REST API v1: marshmallow-validated, bearer-authenticated, described by /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from app.api.errors import OrderlineApi
from app.runtime import Runtime
from app.store import Database


def runtime() -> Runtime:
    return current_app.extensions["orderline"]  # type: ignore[no-any-return]


def db() -> Database:
    return runtime().db


API_CONFIG: dict[str, Any] = {
    "API_TITLE": "Orderline",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {"description": "The unified order store of every channel. Money is an exact decimal string."},
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    },
}


def init_api(app: Flask) -> OrderlineApi:
    from app.api import jobs, orders, shops

    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    api = OrderlineApi(app)
    for module in (orders, shops, jobs):
        api.register_blueprint(module.blp)
    return api
