"""Orderline's web application: the composition root that wires settings, store, jobs and blueprints."""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import Any

import structlog
from flask import Flask, Request, Response, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import events
from app.config import Settings, load_settings
from app.logs import configure_logging
from app.orders.errors import OrderError
from app.requestctx import bind_request_id, clear_request_id, new_request_id
from app.runtime import Runtime, build_runtime, install
from app.secrets_box import SecretBox

log = structlog.get_logger("orderline.web")
_request_log = logging.getLogger("orderline.web")


class ConfigurationError(RuntimeError):
    pass


def resolve_secret_key(settings: Settings) -> str:
    """The key that encrypts shop secrets. Development generates one into the instance folder."""
    if settings.secret_key:
        return settings.secret_key
    if settings.is_production:
        raise ConfigurationError("ORDERLINE_SECRET_KEY must be set in production")
    path = settings.instance_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
        log.warning("dev_default.secret_key", path=str(path),
                    message="generated a development ORDERLINE_SECRET_KEY; set your own in production")
    return path.read_text().strip()


def check_production(settings: Settings) -> None:
    if settings.is_production and not settings.database_url:
        raise ConfigurationError("DATABASE_URL must be set in production (the SQLite file is a development default)")


class MachineRequestsWithoutSession(SecureCookieSessionInterface):
    """Webhooks (signed by the sender, never carrying our cookie) skip the signed-cookie session the dashboard
    uses: opening one costs a signing serializer per request, ~6 % of a delivery's time on the hot path."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(("/webhooks/", "/sms/")):
            return self.null_session_class()
        return super().open_session(app, request)


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` is a Settings, or overrides on top of the environment."""
    settings = config if isinstance(config, Settings) else load_settings(**(config or {}))
    configure_logging(settings.log_level, json=settings.log_json)
    check_production(settings)
    if not settings.database_url:
        Path(settings.instance_dir).mkdir(parents=True, exist_ok=True)

    app = Flask(__name__)
    app.session_interface = MachineRequestsWithoutSession()
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = install(build_runtime(settings))
    app.extensions["orderline"] = runtime
    runtime.secrets = SecretBox(resolve_secret_key(settings))
    app.extensions["orderline.secrets"] = runtime.secrets

    from integrations import all_channels
    from jobs.relay import install_after_commit

    # Import every channel now: not on a webhook's clock, and not again in every forked job.
    all_channels()
    install_after_commit(runtime)
    events.install(runtime.db.sessionmaker)
    # shipping helper: registers its event listener; carriers loaded now, not again in every forked job
    # (the EasyPost and Shippo SDKs take ~0.4 s to import).
    from app import shipping as _shipping  # noqa: F401
    from integrations.carriers import all_carriers

    all_carriers()
    _instrument(app, runtime)
    _register(app)
    return app


def _instrument(app: Flask, runtime: Runtime) -> None:
    from app.web.metrics import Metrics

    metrics = Metrics(runtime)
    app.extensions["orderline.metrics"] = metrics

    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.request_id = new_request_id(request.headers.get("X-Request-ID"))
        bind_request_id(g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.observe_request(request.method, endpoint, response.status_code, elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # Checked first: a dropped log call still runs structlog's chain up to its level filter.
        if endpoint != "/metrics" and _request_log.isEnabledFor(logging.INFO):
            log.info("request", method=request.method, path=request.path, status=response.status_code,
                     duration_ms=round(elapsed * 1000, 2))
        return response

    @app.teardown_request
    def clear(_error: BaseException | None) -> None:
        clear_request_id()


def _register(app: Flask) -> None:
    from app.api import init_api
    from app.api.errors import error_response
    from app.web.ops import bp as ops_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(ops_bp)
    app.register_blueprint(webhooks_bp)
    from app.tracking_webhooks import bp as carrier_webhooks_bp  # tracking and returns

    app.register_blueprint(carrier_webhooks_bp)
    # --- SMS: Twilio webhooks, and the listener that turns timeline entries into texts ---
    from app.sms import milestones
    from app.sms.routes import bp as sms_bp

    app.register_blueprint(sms_bp)
    milestones.install()
    # --- end SMS ---
    init_api(app)

    # --- Slack: POST /slack/events and the card listener ---
    from app.slack_app import init_slack

    init_slack(app, app.extensions["orderline"])
    # --- end Slack ---
    # --- staff dashboard (/dashboard) ---
    from app.dashboard import init_dashboard

    init_dashboard(app, app.extensions["orderline"])
    # --- end staff dashboard ---

    @app.errorhandler(OrderError)
    def order_error(error: OrderError) -> Response:
        return error_response(error.http_status, error.message, code=error.code, fields=error.fields)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_down(error: Exception) -> Response:
        # Never a 2xx for something not stored: 503 makes senders retry later.
        log.error("database.unavailable", error=type(error).__name__)
        return error_response(503, "the database is unavailable; nothing was stored, try again shortly",
                              headers={"Retry-After": "5"})
