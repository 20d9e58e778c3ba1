"""Sending texts through the official `twilio` client (9.x), pointed at TWILIO_API_BASE_URL (PROTOCOLS §5.3, §5.6).

twilio-python has no base-URL option; its supported extension point is `http_client`. `_RebasedHttpClient` sends
every request for https://api.twilio.com to the configured base instead (the fake on loopback in tests, a proxy in
some deployments) and remembers the last answer's headers, since `TwilioRestException` drops them and a 429's
Retry-After matters.

Failures become `app.failures` types: 429, 5xx, timeouts and connection errors → TransientError (with
Retry-After); Twilio refusing the message (4xx, e.g. 21610 unsubscribed, 21211 invalid number) → `Rejected`,
a PermanentError carrying Twilio's error code. The SDK logs URLs and query parameters (phone numbers) at INFO,
so its logger is kept at WARNING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from app.failures import PermanentError, TransientError
from integrations.base import retry_after_seconds

TWILIO_API = "https://api.twilio.com"
DEFAULT_TIMEOUT = 15.0
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"

_sdk_log = logging.getLogger("orderline.twilio.sdk")
_sdk_log.setLevel(logging.WARNING)


class Rejected(PermanentError):
    """Twilio refused the message; retrying the same request cannot help."""

    def __init__(self, message: str, *, code: int | None, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str
    segments: int | None
    error_code: int | None = None


class _RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK ships no type hints
    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_sdk_log)
        self.base_url = base_url.rstrip("/")
        self.last_headers: dict[str, str] = {}

    def request(self, method: str, url: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API):]
        self.last_headers = {}
        response = super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                   timeout=timeout, allow_redirects=allow_redirects)
        self.last_headers = {str(k): str(v) for k, v in (response.headers or {}).items()}
        return response


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


class TwilioSms:
    """The two calls Orderline makes: create a message, and find one it may already have created."""

    def __init__(self, account_sid: str, auth_token: str, *, base_url: str = TWILIO_API,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if not account_sid or not auth_token:
            raise PermanentError("Twilio is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        self._http = _RebasedHttpClient(base_url or TWILIO_API, timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)

    def send(self, *, to: str, body: str, status_callback: str, from_: str | None = None,
             messaging_service_sid: str | None = None) -> SentMessage:
        """POST Messages.json. Either `from_` or `messaging_service_sid` names the sender."""
        if not from_ and not messaging_service_sid:
            raise PermanentError("no sender: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        sender: dict[str, Any] = (
            {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_})
        message = self._call(lambda: self._client.messages.create(
            to=to, body=body, status_callback=status_callback, **sender))
        return SentMessage(sid=str(message.sid), status=str(message.status or "queued"),
                           segments=_int(message.num_segments), error_code=_int(message.error_code))

    def find_sent(self, *, to: str, body: str, since: datetime, from_: str | None = None) -> SentMessage | None:
        """A message to `to` with exactly `body` created at or after `since`: how a send whose answer was lost
        (a timeout) is found before it is ever repeated."""
        filters: dict[str, Any] = {"to": to}
        if from_:
            filters["from_"] = from_
        messages = self._call(lambda: self._client.messages.list(limit=100, **filters))
        for message in messages:
            created = message.date_created
            if message.body == body and (created is None or created >= since.replace(microsecond=0)):
                return SentMessage(sid=str(message.sid), status=str(message.status or "queued"),
                                   segments=_int(message.num_segments), error_code=_int(message.error_code))
        return None

    def _call(self, call: Any) -> Any:
        try:
            return call()
        except TwilioRestException as error:
            raise self._classify(error.status, error.code, error.msg) from error
        except requests.Timeout as error:
            raise TransientError(f"Twilio did not answer in time: {type(error).__name__}") from error
        except requests.ConnectionError as error:
            raise TransientError(f"Twilio could not be reached: {type(error).__name__}") from error
        except TwilioException as error:
            # TwilioServiceException (RFC 9457 bodies) and unreadable answers.
            status = _int(getattr(error, "status", None)) or 500
            code = _int(getattr(error, "code", None))
            raise self._classify(status, code, str(getattr(error, "title", "") or error)) from error

    def _classify(self, status: int, code: int | None, message: str) -> Exception:
        text = f"Twilio {status}" + (f" error {code}" if code else "") + (f": {message}" if message else "")
        if status == 429 or status >= 500:
            return TransientError(text, retry_after=retry_after_seconds(self._http.last_headers))
        return Rejected(text, code=code, status=status)
