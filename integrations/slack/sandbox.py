"""The demo's Slack workspace: the fake Slack Web API the tests use (`fake.py`), and a page, /sandbox/slack,
that shows its channels as Slack would and whose buttons and modals really work.

A click is sent as Slack sends it: a `block_actions` interaction (form field `payload=` JSON, the clicked
element taken from the stored message, a fresh trigger_id) signed with the signing secret (v0 HMAC-SHA256 over
`v0:{timestamp}:{body}`, headers X-Slack-Request-Timestamp / X-Slack-Signature) and POSTed to the app's own
POST /slack/events, as the sandbox user picked on the page. A modal the app opens with views.open is shown on
the page; submitting it sends a signed `view_submission`. The signing happens here, on the server: the
browser never sees the secret. The pages need a dashboard sign-in (they act as a Slack manager).

Registered as a `SandboxHook` when `orderline demo` imports this module (app/demo HOOK_MODULES).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, current_app, jsonify, render_template, request
from markupsafe import escape
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import delete, select

from app.dashboard import auth
from app.demo.sandbox import SandboxHook, add_page, page_blueprint, register_hook
from app.models import Shop, SlackMessage, SlackStaff
from app.runtime import Runtime
from integrations.slack import html
from integrations.slack.fake import FakeSlack

Json = dict[str, Any]
EXTENSION = "orderline.sandbox.slack"
TOKEN = "xoxb-orderline-sandbox"  # noqa: S105 - the fake's own token, valid nowhere else
TEAM_ID, API_APP_ID = "T0SANDBOX", "A0ORDERLINE"
ORDERS_CHANNEL, OPS_CHANNEL = "C0SBXORDERS", "C0SBXOPS"
CHANNELS: Mapping[str, str] = {ORDERS_CHANNEL: "orders", OPS_CHANNEL: "ops-alerts"}


@dataclass(frozen=True)
class SandboxUser:
    id: str
    username: str
    name: str
    role: str | None  # None: not mapped in Orderline (shows what an unknown Slack user is told)


USERS: tuple[SandboxUser, ...] = (
    SandboxUser("U0SBXANA01", "ana", "Ana Lindqvist", "manager"),
    SandboxUser("U0SBXJONAS", "jonas", "Jonas Ek", "operator"),
    SandboxUser("U0SBXKIM01", "kim", "Kim Nyberg", None),
)
BY_ID = {user.id: user for user in USERS}


def user_name(user_id: str) -> str:
    user = BY_ID.get(user_id)
    return user.name if user else user_id


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with a request body: v0 signature (slack_sdk's own generator) and timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": str(signature),
            "Content-Type": "application/x-www-form-urlencoded"}


def interaction_body(payload: Mapping[str, Any]) -> str:
    """Interactivity is one form field, `payload`, holding the JSON."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


class SlackSandbox:
    """One sandbox workspace: the fake API, the signing secret, the views opened for the page's clicks."""

    def __init__(self, signing_secret: str | None = None) -> None:
        self.signing_secret = signing_secret or secrets.token_hex(16)
        self.fake: FakeSlack | None = None
        self._clicks = threading.Lock()  # one click at a time: the views it opened are told apart by trigger

    # --- the hook -----------------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self.fake is None:
            self.fake = FakeSlack(token=TOKEN, team_id=TEAM_ID).start()
        return self.fake

    def prepare(self, env: dict[str, str]) -> dict[str, str]:
        fake = self.start()
        return {"SLACK_API_BASE_URL": fake.api_url, "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": self.signing_secret, "SLACK_OPS_CHANNEL": OPS_CHANNEL}

    def attach(self, app: Flask) -> None:
        self.seed(app.extensions["orderline"])
        app.extensions[EXTENSION] = self
        if "sandbox_slack" not in app.blueprints:
            app.register_blueprint(bp)
        add_page(app, "Slack sandbox", "/sandbox/slack")

    def stop(self) -> None:
        if self.fake is not None:
            self.fake.stop()
            self.fake = None

    def seed(self, runtime: Runtime) -> None:
        """Every shop posts a card for every order to #orders; the sandbox's manager and operator are staff.
        The workspace is new on every run: the previous run's messages are gone, so their rows are forgotten
        (an old order that changes gets a new card instead of a failing chat.update)."""
        with runtime.db.session() as session:
            session.execute(delete(SlackMessage).where(SlackMessage.channel.in_(list(CHANNELS))))
            for shop in session.execute(select(Shop)).scalars():
                shop.settings = {**(shop.settings or {}), "slack_channel": ORDERS_CHANNEL, "slack_all_orders": True}
            for user in USERS:
                if user.role is None:
                    continue
                row = session.execute(select(SlackStaff).where(SlackStaff.slack_id == user.id)).scalar_one_or_none()
                if row is None:
                    session.add(SlackStaff(slack_id=user.id, kind="user", role=user.role, name=user.name, members=[]))

    # --- what the page shows ------------------------------------------------------------------------------

    def _fake(self) -> FakeSlack:
        if self.fake is None:
            abort(503, description="the Slack sandbox is not running")
        return self.fake

    def channel_html(self, channel: str, user_id: str) -> str:
        """The channel as `user_id` sees it: cards oldest first, each with its thread, then their ephemerals."""
        fake = self._fake()
        parts = []
        for message in fake.messages(channel):
            thread = "".join(
                f'<div class="sk-reply">{self._message_html(channel, reply)}</div>'
                for reply in fake.replies(channel, str(message["ts"])))
            thread_html = f'<div class="sk-thread">{thread}</div>' if thread else ""
            parts.append(f'<article class="sk-message" data-ts="{escape(message["ts"])}">'
                         f'{self._message_html(channel, message)}{thread_html}</article>')
        for note in fake.ephemerals:
            if note.get("channel") == channel and note.get("user") == user_id:
                body = html.blocks_html(note.get("blocks"), str(note.get("text") or ""), user_name, enabled=False)
                parts.append('<article class="sk-message sk-ephemeral"><div class="sk-meta">Orderline · '
                             f'<span class="muted">Only visible to you</span></div>{body}</article>')
        return "".join(parts) or '<p class="muted">Nothing posted here yet: orders arrive every few seconds.</p>'

    @staticmethod
    def _message_html(channel: str, message: Mapping[str, Any]) -> str:
        edited = ' <span class="muted">(edited)</span>' if message.get("edited") else ""
        body = html.blocks_html(message.get("blocks"), str(message.get("text") or ""), user_name)
        return (f'<div class="sk-meta"><strong>Orderline</strong> <span class="sk-app">APP</span>{edited}</div>'
                f'<div class="sk-body" data-channel="{escape(channel)}" '
                f'data-ts="{escape(str(message.get("ts")))}">{body}</div>')

    # --- what the page does -------------------------------------------------------------------------------

    def _message(self, channel: str, ts: str) -> Json:
        fake = self._fake()
        for message in fake.messages(channel):
            if message["ts"] == ts:
                return message
            for reply in fake.replies(channel, str(message["ts"])):
                if reply["ts"] == ts:
                    return reply
        abort(404, description=f"no message {ts} in {channel}")

    @staticmethod
    def _element(message: Mapping[str, Any], block_id: str, action_id: str) -> Json:
        for item in message.get("blocks") or []:
            if str(item.get("block_id") or "") != block_id:
                continue
            elements = list(item.get("elements") or []) + ([item["accessory"]] if item.get("accessory") else [])
            for element in elements:
                if element.get("action_id") == action_id:
                    return dict(element)
        abort(404, description="that button is not on the message any more")

    @staticmethod
    def _user(user_id: str) -> Json:
        user = BY_ID.get(user_id)
        if user is None:
            abort(422, description=f"unknown sandbox user {user_id}")
        return {"id": user.id, "username": user.username, "name": user.username, "team_id": TEAM_ID}

    def click_payload(self, channel: str, ts: str, block_id: str, action_id: str, user_id: str,
                      trigger_id: str) -> Json:
        """The block_actions payload Slack sends when `user_id` clicks the button (Slack's documented shape)."""
        message = self._message(channel, ts)
        element = self._element(message, block_id, action_id)
        action = {**element, "block_id": block_id, "action_ts": f"{time.time():.6f}"}
        fake = self._fake()
        return {
            "type": "block_actions", "user": self._user(user_id), "api_app_id": API_APP_ID, "token": "sandbox",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": trigger_id, "team": {"id": TEAM_ID, "domain": "orderline-sandbox"},
            "enterprise": None, "is_enterprise_install": False, "channel": {"id": channel, "name": CHANNELS.get(
                channel, channel)}, "message": message, "state": {"values": {}},
            "response_url": f"{fake.root}/actions/{trigger_id}", "actions": [action],
        }

    def submission_payload(self, view_id: str, user_id: str, values: Mapping[str, str]) -> Json:
        """The view_submission payload for the modal `view_id`, its inputs filled with `values` (by block id)."""
        view = self._fake().views.get(view_id)
        if view is None:
            abort(404, description="that form is closed")
        state: Json = {}
        for item in view.get("blocks") or []:
            if item.get("type") != "input":
                continue
            element = item.get("element") or {}
            block_id, kind = str(item.get("block_id")), str(element.get("type"))
            raw = values.get(block_id)
            if kind in ("static_select", "radio_buttons"):
                chosen = next((o for o in element.get("options") or [] if o.get("value") == raw), None)
                field: Json = {"type": kind, "selected_option": chosen}
            else:
                field = {"type": kind, "value": raw if raw else None}
            state[block_id] = {str(element.get("action_id") or "value"): field}
        return {
            "type": "view_submission", "team": {"id": TEAM_ID, "domain": "orderline-sandbox"},
            "user": self._user(user_id), "api_app_id": API_APP_ID, "token": "sandbox",
            "trigger_id": self._trigger(), "view": {**view, "state": {"values": state}, "app_id": API_APP_ID,
                                                    "bot_id": self._fake().bot_id, "root_view_id": view_id},
            "response_urls": [], "is_enterprise_install": False, "enterprise": None,
        }

    @staticmethod
    def _trigger() -> str:
        return f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"

    def deliver(self, payload: Mapping[str, Any]) -> tuple[int, str]:
        """POST the payload, signed, to the app's own /slack/events (through the whole WSGI app, as Slack's
        request would arrive); returns the status and the body the app answered."""
        body = interaction_body(payload)
        answer = current_app.test_client().post("/slack/events", data=body, headers=sign(self.signing_secret, body))
        return answer.status_code, answer.get_data(as_text=True)

    def click(self, channel: str, ts: str, block_id: str, action_id: str, user_id: str) -> Json:
        fake = self._fake()
        trigger = self._trigger()
        with self._clicks:
            known = set(list(fake.views))
            status, answer = self.deliver(self.click_payload(channel, ts, block_id, action_id, user_id, trigger))
            opened = [view_id for view_id in list(fake.views) if view_id not in known]
        result: Json = {"status": status, "answer": answer}
        if opened:
            view = fake.views[opened[-1]]
            result["modal"] = {"view_id": view["id"], "html": str(html.modal_form(view, user_name))}
        return result

    def submit(self, view_id: str, user_id: str, values: Mapping[str, str]) -> Json:
        status, answer = self.deliver(self.submission_payload(view_id, user_id, values))
        result: Json = {"status": status, "answer": answer, "closed": status == 200}
        try:
            parsed = json.loads(answer) if answer.strip() else {}
        except ValueError:
            parsed = {}
        if isinstance(parsed, dict) and parsed.get("response_action") == "errors":
            result["errors"], result["closed"] = parsed.get("errors") or {}, False
        return result


# --- the page ----------------------------------------------------------------------------------------------

bp = page_blueprint("sandbox_slack", __name__, "/sandbox/slack")


def _sandbox() -> SlackSandbox:
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, SlackSandbox):
        abort(404, description="the Slack sandbox runs only in `orderline demo`")
    return found


def _channel(value: str | None) -> str:
    channel = value or ORDERS_CHANNEL
    if channel not in CHANNELS:
        abort(422, description=f"no channel {channel} in the sandbox")
    return channel


def _args() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object")
    return {str(k): v for k, v in body.items()}


@bp.get("")
@auth.staff()
def page() -> str:
    _sandbox()
    return render_template("sandbox/slack.html", channels=CHANNELS, users=USERS, orders=ORDERS_CHANNEL)


@bp.get("/channel.json")
@auth.staff()
def channel_json() -> Response:
    channel = _channel(request.args.get("channel"))
    user = request.args.get("user") or USERS[0].id
    content = _sandbox().channel_html(channel, user)
    return jsonify(html=content, fingerprint=hashlib.sha256(content.encode()).hexdigest()[:16])


@bp.post("/click")
@auth.staff()
def click() -> Response:
    args = _args()
    result = _sandbox().click(_channel(args.get("channel")), str(args.get("ts") or ""),
                              str(args.get("block_id") or ""), str(args.get("action_id") or ""),
                              str(args.get("user") or ""))
    return jsonify(result)


@bp.post("/submit")
@auth.staff()
def submit() -> Response:
    args = _args()
    raw_values: Any = args.get("values") or {}
    values = {str(k): str(v) for k, v in raw_values.items()} if isinstance(raw_values, dict) else {}
    return jsonify(_sandbox().submit(str(args.get("view_id") or ""), str(args.get("user") or ""), values))


SANDBOX = SlackSandbox()
register_hook(SandboxHook("slack", prepare=SANDBOX.prepare, attach=SANDBOX.attach, stop=SANDBOX.stop))
