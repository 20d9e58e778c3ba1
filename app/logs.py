"""Structured JSON logs with the request id, and nothing personal or secret in them."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Keys whose values never reach a log line, whoever logs them.
_REDACTED_KEYS = re.compile(
    r"(email|phone|name|address|line1|line2|postal|token|secret|password|authorization|cookie|credential|body)",
    re.IGNORECASE,
)
_ALLOWED_KEYS = {"event", "logger", "level", "timestamp", "request_id", "job", "queue", "worker", "outbox_id",
                 "order_id", "shop_id", "status", "path", "method", "duration_ms", "error", "count", "kind"}


def redact(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if key not in _ALLOWED_KEYS and _REDACTED_KEYS.search(key):
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Werkzeug's access log repeats what our request log says, with the client address.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
