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


# Personal data inside free text: a provider's error message ("The 'To' number +46 70 … is not valid"), an
# exception, a traceback. Emails, and phone numbers written with a "+" or with separators; a bare run of
# digits is left alone, since channel order ids look just like that.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+-])(?:\+\d(?:[ ()-]{0,2}\d){6,14}|\(?\d+(?:\)?[ -]{1,2}\(?\d+){1,6})(?!\w)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_VERBATIM_KEYS = {"timestamp", "level", "logger", "request_id"}


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if digits < 7 or digits > 15 or (not text.startswith("+") and _DATE.search(text)):
        return text
    return "[phone]"


def scrub_text(text: str) -> str:
    return _PHONE.sub(_mask_phone, _EMAIL.sub("[email]", text))


def scrub(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str) and key not in _VERBATIM_KEYS:
            event_dict[key] = scrub_text(value)
    return event_dict


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged (a test's capture, a server's redirect),
    not to the stream that happened to be there when logging was configured."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        # Level filtering first: a disabled log call costs a method call, not the whole processor chain.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, scrub, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Werkzeug's access log repeats what our request log says, with the client address.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
