"""The demo's customer phone: the fake Twilio Messages API the tests use (`fake.py`), and a page,
/sandbox/phone, that shows one demo customer's texts as a phone would and lets you text the shop's number.

A text typed on the page is delivered as Twilio delivers an incoming message: a form POST to the app's own
POST /sms/inbound with Twilio's fields (From, To, Body, MessageSid, AccountSid, NumMedia, …), signed with
X-Twilio-Signature (HMAC-SHA1 over PUBLIC_BASE_URL + path + the sorted parameters, with the account's auth
token). The TwiML the app answers with is what Twilio would text back: it is shown as the bot's reply.
Texts the app sends through the Messages API arrive in the fake; when the phone shows them they are reported
back as Twilio would, with signed status callbacks (`sent`, then `delivered`) to the URL the app gave.

Registered as a `SandboxHook` when `orderline demo` imports this module (app/demo HOOK_MODULES).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from flask import Flask, Response, abort, current_app, jsonify, render_template, request
from markupsafe import escape

from app.dashboard import auth
from app.demo.catalog import CUSTOMERS
from app.demo.sandbox import SandboxHook, add_page, page_blueprint, register_hook
from integrations.twilio.fake import FakeTwilio, inbound_params
from integrations.twilio.signature import SIGNATURE_HEADER, sign

Json = dict[str, Any]
EXTENSION = "orderline.sandbox.phone"
SHOP_NUMBER = "+46766860000"  # the demo shop's sending number (Swedish mobile range; the fake's, nowhere real)
MAX_TEXT = 1600
DELIVERED = ("sent", "delivered")


@dataclass
class Text:
    """One message on the phone: `incoming` is what the customer received (from the shop)."""

    at: float
    body: str
    incoming: bool
    how: str  # "sms" (a Messages API send), "reply" (TwiML answer), "sent" (typed on the phone)
    status: str = ""


@dataclass
class _Thread:
    typed: list[Text] = field(default_factory=list)  # typed on the phone and the TwiML answers


class PhoneSandbox:
    """The fake Twilio account and what the page's phones typed (the API sends are read from the fake)."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.fake: FakeTwilio | None = None
        self.public_base_url = ""
        self._threads: dict[str, _Thread] = {}
        self._lock = threading.Lock()

    # --- the hook -----------------------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        if self.fake is None:
            self.fake = FakeTwilio(account_sid=self.account_sid, auth_token=self.auth_token).start()
        return self.fake

    def prepare(self, env: dict[str, str]) -> dict[str, str]:
        fake = self.start()
        # The demo serves the app at its base URL; signatures are computed over it, as Twilio does.
        self.public_base_url = env.get("PUBLIC_BASE_URL") or os.environ.get("PUBLIC_BASE_URL") or \
            "http://127.0.0.1:5000"
        return {"TWILIO_API_BASE_URL": fake.url, "TWILIO_ACCOUNT_SID": self.account_sid,
                "TWILIO_AUTH_TOKEN": self.auth_token, "TWILIO_FROM_NUMBER": SHOP_NUMBER,
                "PUBLIC_BASE_URL": self.public_base_url}

    def attach(self, app: Flask) -> None:
        self.public_base_url = app.extensions["orderline"].settings.public_base_url
        app.extensions[EXTENSION] = self
        if "sandbox_phone" not in app.blueprints:
            app.register_blueprint(bp)
        add_page(app, "Customer phone", "/sandbox/phone")

    def stop(self) -> None:
        if self.fake is not None:
            self.fake.stop()
            self.fake = None

    # --- Twilio's side ------------------------------------------------------------------------------------

    def _fake(self) -> FakeTwilio:
        if self.fake is None:
            abort(503, description="the phone sandbox is not running")
        return self.fake

    def _post(self, url: str, params: Mapping[str, str]) -> tuple[int, str]:
        """POST a signed Twilio webhook to the app itself (the whole WSGI app, as Twilio's request arrives).
        `url` is the public URL Twilio would call; the request goes to its path on this app."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {SIGNATURE_HEADER: sign(self.auth_token, url, params)}
        answer = current_app.test_client().post(target, data=dict(params), headers=headers)
        return answer.status_code, answer.get_data(as_text=True)

    def inbound(self, phone: str, body: str) -> tuple[int, str, Json]:
        """Deliver a text from `phone` to the shop's number: (status, the TwiML reply's text, the params)."""
        params = inbound_params(from_=phone, to=SHOP_NUMBER, body=body, account_sid=self.account_sid)
        status, answer = self._post(self.public_base_url.rstrip("/") + "/sms/inbound", params)
        return status, twiml_text(answer) if status == 200 else "", params

    def deliver_status(self, phone: str) -> int:
        """Report the shop's texts to `phone` as delivered (sent, then delivered), as Twilio's callbacks do."""
        fake = self._fake()
        reported = 0
        for message in fake.sent_to(phone):
            if message["status"] not in ("queued", "accepted", "sending"):
                continue
            for status in DELIVERED:
                url, params, _headers = fake.callback(message["sid"], status)
                if url:
                    self._post(url, params)
            reported += 1
        return reported

    # --- the phone ----------------------------------------------------------------------------------------

    def send(self, phone: str, body: str) -> Json:
        with self._lock:
            thread = self._threads.setdefault(phone, _Thread())
            thread.typed.append(Text(time.time(), body, incoming=False, how="sent", status="sent"))
        status, reply, _params = self.inbound(phone, body)
        if reply:
            with self._lock:
                thread.typed.append(Text(time.time(), reply, incoming=True, how="reply"))
        return {"status": status, "reply": reply}

    def texts(self, phone: str) -> list[Text]:
        fake = self._fake()
        with self._lock:
            typed = list(self._threads.get(phone, _Thread()).typed)
        sent = [Text(_timestamp(m), str(m.get("body") or ""), incoming=True, how="sms", status=str(m["status"]))
                for m in fake.sent_to(phone)]
        return sorted(typed + sent, key=lambda t: t.at)

    def thread_html(self, phone: str) -> str:
        parts = []
        for text in self.texts(phone):
            label = {"sms": f"text · {text.status}", "reply": "reply", "sent": "sent"}[text.how]
            moment = time.strftime("%H:%M:%S", time.localtime(text.at))
            parts.append(f'<div class="ph-msg {"in" if text.incoming else "out"}" data-how="{text.how}">'
                         f'{escape(text.body)}<small>{escape(label)} · {moment}</small></div>')
        return "".join(parts) or '<p class="muted">No texts yet. Try “status” or “where is my order?”.</p>'


def _timestamp(message: Mapping[str, Any]) -> float:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(str(message.get("date_created"))).timestamp()
    except (TypeError, ValueError):
        return 0.0


def twiml_text(document: str) -> str:
    """The text of the <Message> elements of a TwiML answer ("" for an empty <Response/>)."""
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - the app's own answer, not outside input
    except ElementTree.ParseError:
        return ""
    return "\n".join("".join(m.itertext()).strip() for m in root.iter("Message"))


# --- the page ----------------------------------------------------------------------------------------------

bp = page_blueprint("sandbox_phone", __name__, "/sandbox/phone")
NUMBERS = {customer.phone: customer for customer in CUSTOMERS}


def _sandbox() -> PhoneSandbox:
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, PhoneSandbox):
        abort(404, description="the phone sandbox runs only in `orderline demo`")
    return found


def _phone(value: str | None) -> str:
    if not value or value not in NUMBERS:
        abort(422, description="pick one of the demo customers' numbers")
    return value


@bp.get("")
@auth.staff()
def page() -> str:
    _sandbox()
    return render_template("sandbox/phone.html", customers=CUSTOMERS, shop_number=SHOP_NUMBER)


@bp.get("/thread.json")
@auth.staff()
def thread_json() -> Response:
    sandbox = _sandbox()
    phone = _phone(request.args.get("phone"))
    sandbox.deliver_status(phone)  # the phone got them: tell Orderline, as Twilio would
    content = sandbox.thread_html(phone)
    return jsonify(html=content, fingerprint=hashlib.sha256(content.encode()).hexdigest()[:16])


@bp.post("/send")
@auth.staff()
def send() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object")
    phone = _phone(str(body.get("phone") or ""))
    text = str(body.get("body") or "").strip()
    if not text or len(text) > MAX_TEXT:
        abort(422, description=f"a text is 1 to {MAX_TEXT} characters")
    return jsonify(_sandbox().send(phone, text))


SANDBOX = PhoneSandbox()
register_hook(SandboxHook("phone", prepare=SANDBOX.prepare, attach=SANDBOX.attach, stop=SANDBOX.stop))
