"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up. Says nothing of its dependencies, so a restart loop never starts from here."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Database and Redis reachable. Webhooks are still accepted with Redis down; this says so."""
    runtime = current_app.extensions["orderline"]
    checks: dict[str, str] = {}
    try:
        with runtime.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        runtime.redis.ping()
        checks["redis"] = "ok"
    except RedisError as error:
        checks["redis"] = f"unreachable: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "degraded", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["orderline.metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
