"""One error shape for every answer that is not a success: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request
from flask_smorest import Api, abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

# Werkzeug names → our stable codes.
_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "body_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


def error_response(status: int, message: str, *, code: str | None = None,
                   fields: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code or _CODES.get(status, "error"), "message": message,
                                  "fields": fields or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_locations(messages: Any) -> dict[str, Any]:
    # webargs nests errors by location ({"json": {...}}); callers care about the field names.
    locations = {"json", "query", "path", "view_args", "headers", "form"}
    if isinstance(messages, dict) and set(messages) <= locations:
        flat: dict[str, Any] = {}
        for part in messages.values():
            if isinstance(part, dict):
                flat.update(part)
        return flat
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _message_for(error: HTTPException, fields: dict[str, Any]) -> str:
    data = getattr(error, "data", None) or {}
    if "message" in data:
        return str(data["message"])
    if error.code == 422 and fields:
        return "the request is not valid: " + ", ".join(sorted(map(str, fields)))
    if error.code == 413:
        return f"the request body is larger than the limit of {request.max_content_length} bytes"
    if error.code == 405:
        return f"{request.method} is not allowed on {request.path}"
    if error.code == 404:
        return f"nothing at {request.path}"
    return error.description or error.name


class ErrorDetail(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "validation_error"})
    message = ma.fields.String(required=True)
    fields_ = ma.fields.Dict(required=True, data_key="fields",
                             metadata={"description": "what is wrong, by field (nested like the request)"})


class Error(ma.Schema):
    """The body of every answer that is not a success (documentation only: error_response writes it)."""

    error = ma.fields.Nested(ErrorDetail, required=True)


class OrderlineApi(Api):  # type: ignore[misc]
    ERROR_SCHEMA = Error

    def handle_http_exception(self, error: HTTPException) -> Response:
        data = getattr(error, "data", None) or {}
        fields = _flatten_locations(data.get("errors") or data.get("messages") or {})
        status = error.code or 500
        # Werkzeug's own headers carry meaning too: Allow on a 405 says which methods would work.
        headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        return error_response(status, _message_for(error, fields), fields=fields, headers=headers)


def _no_constants(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and no column can store.
    raise ValueError(f"{name} is not a JSON value")


class JsonParser(FlaskParser):
    """Parses JSON bodies with exact decimals, and refuses bodies that say they are something else."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            if req.get_data(cache=True):
                raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
            return core.missing
        raw = req.get_data(cache=True)
        try:
            body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
        # ValueError covers bad syntax, bad UTF-8 and integers too long to read; RecursionError deep nesting.
        except (ValueError, RecursionError) as err:
            abort(400, message=f"the request body is not valid JSON: {err}")
        if not isinstance(body, dict):
            kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            kind = kinds.get(type(body), "a number")
            abort(422, message=f"the request body must be a JSON object, not {kind}",
                  errors={"_schema": ["must be a JSON object"]})
        return body
