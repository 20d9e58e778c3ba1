"""A fake Twilio Messages API on 127.0.0.1: the real `twilio` client is pointed at it (TWILIO_API_BASE_URL).

    fake = FakeTwilio(account_sid="AC…", auth_token="…").start()
    client = TwilioSms(fake.account_sid, fake.auth_token, base_url=fake.url)
    fake.opt_out("+46701234567")          # later creates to that number answer 400, code 21610
    fake.fail_next(429, retry_after=1)    # or 500, 503; fake.hang_next(seconds) holds a request (a timeout)
    fake.sent_to("+46701234567")          # the messages created for a number, oldest first
    fake.callback(sid, "delivered")       # (url, params, headers) of the status callback Twilio would POST

Served under /2010-04-01/Accounts/{AccountSid}/, HTTP Basic auth (AccountSid:AuthToken) checked on every call:

* POST Messages.json (form: To, From or MessagingServiceSid, Body, MediaUrl, StatusCallback): 201 with the
  Message resource shaped like twilio-python's fixture (status "queued", or "accepted" with a Messaging Service);
  400 code 21604 without To, 21602 without Body or MediaUrl, 21211 for a To that is not E.164, 21610 for an
  opted-out number; no message is created on an error, as at Twilio.
* GET Messages.json (To, From filters; newest first, one page): the list the client reads back after a timeout.
* GET Messages/{Sid}.json.

Errors use Twilio's legacy body {code, message, more_info, status}, which the SDK raises as TwilioRestException.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from integrations.fakeserver import Fault, Faults, LoopbackServer, RecordedRequest, header, retry_after_header
from integrations.fakeserver import split_target as _split
from integrations.twilio.signature import SIGNATURE_HEADER, sign

Json = dict[str, Any]
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages(?:/(?P<sid>SM\w+))?\.json$")
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
            "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")

ERRORS: Mapping[int, str] = {
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
}


def _segments(body: str) -> int:
    # Rough on purpose: the app counts segments exactly (app.sms.segments); this only fills the field.
    if all(ch in _GSM7 for ch in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _error(status: int, code: int) -> tuple[int, dict[str, str], Json]:
    return status, {}, {"code": code, "message": ERRORS.get(code, "error"),
                        "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class FakeTwilio(LoopbackServer[RecordedRequest]):
    """Twilio's Messages resource, in memory."""

    thread_name = "fake-twilio"

    def __init__(self, account_sid: str = "AC" + "f" * 32, auth_token: str = "fake-twilio-token") -> None:  # noqa: S107
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.faults = Faults()
        self.messages: dict[str, Json] = {}
        self.opted_out: set[str] = set()

    # --- what tests drive and look at ---------------------------------------------------------------------

    def opt_out(self, number: str) -> None:
        with self._lock:
            self.opted_out.add(number)

    def opt_in(self, number: str) -> None:
        with self._lock:
            self.opted_out.discard(number)

    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        self.faults.add(Fault(status=status, headers=retry_after_header(retry_after), match="POST"), times)

    def hang_after_next(self, seconds: float) -> None:
        """Create the next message, then hold the answer `seconds`: the client times out, the message exists."""
        self.faults.add(Fault(hang_after=seconds, match="POST"))

    def sent_to(self, number: str) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(m) for m in self.messages.values() if m["to"] == number]

    def all_sent(self) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(m) for m in self.messages.values()]

    def callback(self, sid: str, status: str, *, error_code: int | None = None) -> tuple[str, dict[str, str],
                                                                                         dict[str, str]]:
        """The status callback Twilio would POST for message `sid`: (url, form params, headers)."""
        with self._lock:
            message = self.messages[sid]
            url = message["_status_callback"]
            message["status"] = status
        params = {"SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": message["to"],
                  "MessageSid": sid, "AccountSid": self.account_sid, "From": message["from"] or "",
                  "ApiVersion": "2010-04-01"}
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return url, params, {SIGNATURE_HEADER: sign(self.auth_token, url, params)}

    # --- the API ------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Any, Any]:
        path, query = _split(path)
        self.record(RecordedRequest(method, path, query, dict(headers), body, datetime.now(UTC).timestamp()))
        fault = self.faults.take(f"{method} {path}")
        if fault is not None and fault.status is not None:
            self.hold(fault.hang)
            if fault.body is not None:
                return fault.status, fault.headers, fault.body
            return fault.status, fault.headers, {"code": 20429 if fault.status == 429 else 20500,
                                                 "message": "Too Many Requests" if fault.status == 429
                                                 else "Internal Server Error",
                                                 "more_info": "https://www.twilio.com/docs/errors/20429",
                                                 "status": fault.status}
        if fault is not None:
            self.hold(fault.hang)
        match = _MESSAGES.match(path)
        if match is None:
            return 404, {}, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        if match["account"] != self.account_sid or not self._authorized(headers):
            return 401, {"WWW-Authenticate": 'Basic realm="Twilio API"'}, {
                "code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401}
        if method == "POST" and not match["sid"]:
            reply = self._create(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            if fault is not None:
                self.hold(fault.hang_after)
            return reply
        if method == "GET" and match["sid"]:
            with self._lock:
                found = self.messages.get(match["sid"])
            return (200, {}, self._public(found)) if found else (404, {}, {"code": 20404, "status": 404})
        if method == "GET":
            return 200, {}, self._list(query)
        return 405, {}, {"code": 20004, "message": "Method not allowed", "status": 405}

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header(headers, "Authorization") == f"Basic {expected}"

    def _create(self, form: list[tuple[str, str]]) -> tuple[int, Any, Any]:
        fields = dict(form)
        to, body = fields.get("To", ""), fields.get("Body", "")
        media = [value for name, value in form if name == "MediaUrl"]
        if not to:
            return _error(400, 21604)
        if not _E164.match(to):
            return _error(400, 21211)
        if not body and not media:
            return _error(400, 21602)
        with self._lock:
            if to in self.opted_out:
                return _error(400, 21610)
            sid = "SM" + secrets.token_hex(16)
            now = format_datetime(datetime.now(UTC), usegmt=False).replace("-0000", "+0000")
            service = fields.get("MessagingServiceSid")
            message: Json = {
                "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
                "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
                "error_code": None, "error_message": None, "from": fields.get("From") or None,
                "messaging_service_sid": service, "num_media": str(len(media)),
                "num_segments": str(_segments(body)), "price": None, "price_unit": "USD",
                "sid": sid, "status": "accepted" if service else "queued",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
                "to": to, "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
                "_status_callback": fields.get("StatusCallback", ""),
            }
            self.messages[sid] = message
            return 201, {}, self._public(message)

    @staticmethod
    def _public(message: Json | None) -> Json:
        return {k: v for k, v in (message or {}).items() if not k.startswith("_")}

    def _list(self, query: Mapping[str, str]) -> Json:
        with self._lock:
            found = [self._public(m) for m in reversed(list(self.messages.values()))
                     if (not query.get("To") or m["to"] == query["To"])
                     and (not query.get("From") or m["from"] == query["From"])]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        return {"messages": found, "end": max(len(found) - 1, 0), "first_page_uri": uri, "next_page_uri": None,
                "page": 0, "page_size": len(found), "previous_page_uri": None, "start": 0, "uri": uri}


def inbound_params(*, from_: str, to: str, body: str, account_sid: str = "AC" + "f" * 32,
                   media_urls: tuple[str, ...] = (), sid: str | None = None,
                   opt_out_type: str | None = None) -> dict[str, str]:
    """The form parameters of an incoming-message webhook (shared/fixtures/twilio/inbound_sms.txt)."""
    sid = sid or "SM" + secrets.token_hex(16)
    params = {"ToCountry": "SE", "SmsMessageSid": sid, "NumMedia": str(len(media_urls)), "SmsSid": sid,
              "SmsStatus": "received", "Body": body, "To": to, "NumSegments": "1", "MessageSid": sid,
              "AccountSid": account_sid, "From": from_, "ApiVersion": "2010-04-01"}
    for index, url in enumerate(media_urls):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = "image/jpeg"
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return params


def signed(auth_token: str, url: str, params: Mapping[str, str]) -> dict[str, str]:
    """Headers of a form POST of `params` to `url`, signed as Twilio signs it."""
    return {SIGNATURE_HEADER: sign(auth_token, url, params)}
