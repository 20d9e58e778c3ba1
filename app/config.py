"""Settings, read once from the environment (and a `.env` file in the working directory)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

DEFAULT_INSTANCE_DIR = Path("instance")


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # Where state lives. An empty DATABASE_URL means the embedded SQLite file.
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    # "production" refuses the development defaults (SQLite fallback, embedded Redis, generated keys).
    env: str = "development"
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    log_json: bool = True
    # Jobs
    job_max_attempts: int = 8
    job_backoff_base_seconds: float = 2.0
    job_backoff_cap_seconds: float = 600.0
    sweep_interval_seconds: float = 15.0
    # A job enqueued longer ago than this with no trace in Redis is considered lost and re-enqueued.
    sweep_grace_seconds: float = 60.0
    worker_ttl_seconds: int = 35
    # Providers (used by later integrations; listed here so the README has one table).
    shopify_api_secret: str = ""
    # During a secret rotation Shopify may sign with the old secret for up to an hour: both are accepted.
    shopify_api_secret_previous: str = ""
    shopify_api_base_url: str = ""
    shopify_api_version: str = "2026-07"
    bigcommerce_api_base_url: str = "https://api.bigcommerce.com"
    reconcile_interval_seconds: int = 300
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_api_base_url: str = "https://slack.com/api/"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    # --- carriers (app/shipping.py buys labels; app/tracking.py, app/returns.py) ---
    easypost_api_key: str = ""
    easypost_api_base_url: str = ""
    easypost_webhook_secret: str = ""
    easypost_webhook_secret_previous: str = ""
    shippo_api_token: str = ""
    shippo_api_base_url: str = ""
    shippo_webhook_token: str = ""
    shippo_webhook_token_previous: str = ""
    sandbox_carrier_state_dir: str = ""
    sandbox_carrier_minutes_to_deliver: float = 10.0
    # A parcel with no carrier news for this long is polled; near its expected delivery, more often.
    tracking_poll_minutes: int = 720
    tracking_poll_near_minutes: int = 120
    # --- end carriers ---
    # --- Slack (integrations/slack) ---
    # The channel that hears alerts (failed jobs, missed webhooks, carrier exceptions) and the daily digests.
    slack_ops_channel: str = ""
    # More cards than this per channel per minute is a burst: informational cards fold into a summary card.
    slack_burst_per_minute: int = 20
    # A card waits this long before it is refreshed, so an order's chain of steps (approved → … → shipped in a
    # second or two) is one update and one thread post instead of six: Slack takes about one post a second.
    slack_card_debounce_seconds: float = 2.0
    # --- end Slack ---
    # --- SMS (app/sms) ---
    twilio_messaging_service_sid: str = ""
    # Sends per second per sending number, or 0 to hand every text to Twilio at once. Twilio queues each
    # sender's messages and sends them at the number's rate (1 segment/s on a long code), keeping a queue for
    # hours (RELIABILITY.md §3), so pacing here only matters to keep a huge burst under that queue's limit.
    sms_pace_per_second: float = 0.0
    # Local time at the customer's address in which only time-critical texts (out for delivery) are sent.
    sms_quiet_hours: str = "21:00-08:00"
    # Days a text's body is kept after it was sent or received; then only its metadata remains.
    sms_body_retention_days: int = 30
    # --- end SMS ---
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.instance_dir / 'orderline.sqlite3').resolve()}"

    def with_overrides(self, **overrides: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **overrides)


ENV_NAMES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "instance_dir": "ORDERLINE_INSTANCE_DIR",
    "env": "ORDERLINE_ENV",
    "secret_key": "ORDERLINE_SECRET_KEY",
    "public_base_url": "PUBLIC_BASE_URL",
    "max_body_bytes": "ORDERLINE_MAX_BODY_BYTES",
    "log_level": "LOG_LEVEL",
    "log_json": "LOG_JSON",
    "job_max_attempts": "ORDERLINE_JOB_MAX_ATTEMPTS",
    "job_backoff_base_seconds": "ORDERLINE_JOB_BACKOFF_BASE_SECONDS",
    "job_backoff_cap_seconds": "ORDERLINE_JOB_BACKOFF_CAP_SECONDS",
    "sweep_interval_seconds": "ORDERLINE_SWEEP_INTERVAL_SECONDS",
    "sweep_grace_seconds": "ORDERLINE_SWEEP_GRACE_SECONDS",
    "worker_ttl_seconds": "ORDERLINE_WORKER_TTL_SECONDS",
    "shopify_api_secret": "SHOPIFY_API_SECRET",
    "shopify_api_secret_previous": "SHOPIFY_API_SECRET_PREVIOUS",
    "shopify_api_base_url": "SHOPIFY_API_BASE_URL",
    "shopify_api_version": "SHOPIFY_API_VERSION",
    "bigcommerce_api_base_url": "BIGCOMMERCE_API_BASE_URL",
    "reconcile_interval_seconds": "ORDERLINE_RECONCILE_INTERVAL_SECONDS",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_api_base_url": "SLACK_API_BASE_URL",
    # --- Slack ---
    "slack_ops_channel": "SLACK_OPS_CHANNEL",
    "slack_burst_per_minute": "SLACK_BURST_PER_MINUTE",
    "slack_card_debounce_seconds": "SLACK_CARD_DEBOUNCE_SECONDS",
    # --- end Slack ---
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
    "twilio_api_base_url": "TWILIO_API_BASE_URL",
    # --- carriers: tracking and returns ---
    "easypost_api_key": "EASYPOST_API_KEY",
    "easypost_api_base_url": "EASYPOST_API_BASE_URL",
    "easypost_webhook_secret": "EASYPOST_WEBHOOK_SECRET",
    "easypost_webhook_secret_previous": "EASYPOST_WEBHOOK_SECRET_PREVIOUS",
    "shippo_api_token": "SHIPPO_API_TOKEN",
    "shippo_api_base_url": "SHIPPO_API_BASE_URL",
    "shippo_webhook_token": "SHIPPO_WEBHOOK_TOKEN",
    "shippo_webhook_token_previous": "SHIPPO_WEBHOOK_TOKEN_PREVIOUS",
    "sandbox_carrier_state_dir": "SANDBOX_CARRIER_STATE_DIR",
    "sandbox_carrier_minutes_to_deliver": "SANDBOX_CARRIER_MINUTES_TO_DELIVER",
    "tracking_poll_minutes": "ORDERLINE_TRACKING_POLL_MINUTES",
    "tracking_poll_near_minutes": "ORDERLINE_TRACKING_POLL_NEAR_MINUTES",
    # --- SMS (app/sms) ---
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "sms_pace_per_second": "ORDERLINE_SMS_PACE_PER_SECOND",
    "sms_quiet_hours": "ORDERLINE_SMS_QUIET_HOURS",
    "sms_body_retention_days": "ORDERLINE_SMS_BODY_RETENTION_DAYS",
    # --- end SMS ---
}


def normalize_database_url(url: str) -> str:
    # Managed platforms hand out postgres:// URLs; SQLAlchemy wants an explicit driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment; `overrides` (tests, CLI flags) win."""
    if environ is None:
        load_dotenv(Path.cwd() / ".env", override=False)
        environ = dict(os.environ)
    defaults = Settings()
    values: dict[str, Any] = {}
    for name, env_name in ENV_NAMES.items():
        raw = environ.get(env_name)
        if raw is None or raw == "":
            continue
        current = getattr(defaults, name)
        if isinstance(current, bool):
            values[name] = _bool(raw)
        elif isinstance(current, int):
            values[name] = int(raw)
        elif isinstance(current, float):
            values[name] = float(raw)
        elif isinstance(current, Path):
            values[name] = Path(raw)
        else:
            values[name] = raw
    values.update(overrides)
    return defaults.with_overrides(**values)
