"""A fake Slack Web API on 127.0.0.1 for tests, the demo and the benchmark: Slack's wire protocol, in memory.

    fake = FakeSlack(token="xoxb-test").start()        # before the Bolt App is built: App() calls auth.test
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    fake.faults.add(Fault(status=429, headers={"Retry-After": "2"}, match="chat.postMessage"))
    fake.messages("C1")                                 # what the channel shows now, oldest first
    fake.stop()

Served under /api/ (POST, JSON or form bodies, `Authorization: Bearer` checked on every call): auth.test,
chat.postMessage, chat.update, chat.postEphemeral, views.open, views.update, views.publish,
conversations.history (with `include_all_metadata`), conversations.replies, usergroups.users.list.
Answers use Slack's shapes (PROTOCOLS.md §4.4): `{"ok": true, …}`, errors `{"ok": false, "error": code}`
with HTTP 200, rate limits as HTTP 429 with `Retry-After` and `{"ok": false, "error": "ratelimited"}`.
With `post_interval` set, a second chat.postMessage to one channel sooner than that is answered 429, as Slack
limits posting to about one message per second per channel.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from integrations.fakeserver import Faults, LoopbackServer, Reply, header, retry_after_header, split_target

Json = dict[str, Any]
# Fields slack_sdk sends as JSON text inside a form body.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


@dataclass(frozen=True)
class SlackCall:
    """One Web API call as the fake received it, its arguments decoded whichever way they were sent."""

    method: str
    args: Json
    headers: dict[str, str]
    at: float


@dataclass
class _Channel:
    messages: list[Json] = field(default_factory=list)
    last_post: float = 0.0


class FakeSlack(LoopbackServer[SlackCall]):
    thread_name = "fake-slack"

    def __init__(self, *, token: str = "xoxb-test-token",  # noqa: S107 - a fake's token
                 team_id: str = "T0G9PQBBK", bot_user_id: str = "W23456789",
                 bot_id: str = "BZYBOTHED", post_interval: float = 0.0, port: int = 0) -> None:
        super().__init__(port=port)
        self.token, self.team_id, self.bot_user_id, self.bot_id = token, team_id, bot_user_id, bot_id
        self.post_interval = post_interval
        self.faults = Faults()
        self.views: dict[str, Json] = {}
        self.published: dict[str, Json] = {}  # user id -> the App Home view
        self.ephemerals: list[Json] = []
        self.usergroups: dict[str, list[str]] = {}
        self._channels: dict[str, _Channel] = {}
        self._clock = 1_700_000_000.0
        self._state = threading.Lock()

    @property
    def api_url(self) -> str:
        """The base URL to give slack_sdk's WebClient (it appends the method name)."""
        return self.root + "/api/"

    # --- what tests read ----------------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [call for call in self.requests if method is None or call.method == method]

    def messages(self, channel: str) -> list[Json]:
        """Top-level messages in `channel`, oldest first (thread replies are under each one's "replies")."""
        with self._state:
            return [dict(m) for m in self._channel(channel).messages
                    if "thread_ts" not in m or m["thread_ts"] == m["ts"]]

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        with self._state:
            return [dict(m) for m in self._channel(channel).messages
                    if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    # --- the server ---------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        route, query = split_target(path)
        name = route.removeprefix("/api/")
        args = self._arguments(headers, body, query)
        self.record(SlackCall(name, args, dict(headers), time.time()))
        fault = self.faults.take(f"{method} {route}")
        if fault is not None and fault.status is not None:
            self.hold(fault.hang)
            if fault.status == 429:
                return 429, {**retry_after_header(1), **fault.headers}, fault.body or {"ok": False,
                                                                                          "error": "ratelimited"}
            return fault.status, fault.headers, fault.body if fault.body is not None else {"ok": False,
                                                                                           "error": "fatal_error"}
        if header(headers, "Authorization") != f"Bearer {self.token}":
            reply: Reply = 200, {}, {"ok": False, "error": "invalid_auth"}
        else:
            handler = getattr(self, "_" + name.replace(".", "_"), None)
            reply = handler(args) if handler else (200, {}, {"ok": False, "error": "unknown_method"})
        if fault is not None:
            self.hold(fault.hang_after)  # the effect happened; the answer comes late (or never reaches the client)
        return reply

    @staticmethod
    def _arguments(headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Json:
        args: Json = dict(query)
        content_type = header(headers, "Content-Type")
        if body and content_type.startswith("application/json"):
            args.update(json.loads(body))
        elif body:
            args.update({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
            for name in _JSON_FIELDS:
                if isinstance(args.get(name), str) and args[name]:
                    args[name] = json.loads(args[name])
        return args

    def _channel(self, channel: str) -> _Channel:
        return self._channels.setdefault(channel, _Channel())

    def _next_ts(self) -> str:
        self._clock += 0.000100
        return f"{self._clock:.6f}"

    # --- methods ------------------------------------------------------------------------------------------

    def _auth_test(self, _args: Json) -> Reply:
        return 200, {"x-oauth-scopes": "chat:write,commands,usergroups:read,channels:history"}, {
            "ok": True, "url": "https://orderline-test.slack.com/", "team": "Orderline Test", "user": "orderline",
            "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id}

    def _chat_postMessage(self, args: Json) -> Reply:
        channel = str(args.get("channel") or "")
        if not channel:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return 200, {}, {"ok": False, "error": "no_text"}
        with self._state:
            room = self._channel(channel)
            now = time.monotonic()
            if self.post_interval and now - room.last_post < self.post_interval:
                wait = self.post_interval - (now - room.last_post)
                return 429, retry_after_header(max(1, round(wait + 0.5))), {"ok": False, "error": "ratelimited"}
            room.last_post = now
            ts = self._next_ts()
            message: Json = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "ts": ts,
                             "text": args.get("text", ""), "blocks": args.get("blocks") or []}
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            if args.get("metadata"):
                message["metadata"] = args["metadata"]
            room.messages.append(message)
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: Json) -> Reply:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        with self._state:
            found = next((m for m in self._channel(channel).messages if m["ts"] == ts), None)
            if found is None:
                return 200, {}, {"ok": False, "error": "message_not_found"}
            found["text"] = args.get("text", found["text"])
            if "blocks" in args:
                found["blocks"] = args["blocks"] or []
            if args.get("metadata"):
                found["metadata"] = args["metadata"]
            found["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "text": found["text"], "message": dict(found)}

    def _chat_postEphemeral(self, args: Json) -> Reply:
        if not args.get("channel") or not args.get("user"):
            return 200, {}, {"ok": False, "error": "channel_not_found" if not args.get("channel") else "user_not_found"}
        with self._state:
            ts = self._next_ts()
            self.ephemerals.append({**args, "message_ts": ts})
        return 200, {}, {"ok": True, "message_ts": ts}

    def _view(self, args: Json, view_id: str | None = None) -> Json:
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        return {**(view or {}), "id": view_id or "V" + uuid.uuid4().hex[:10].upper(),
                "hash": uuid.uuid4().hex[:16], "team_id": self.team_id}

    def _views_open(self, args: Json) -> Reply:
        if not args.get("trigger_id"):
            return 200, {}, {"ok": False, "error": "invalid_trigger_id"}
        view = self._view(args)
        with self._state:
            self.views[view["id"]] = view
        return 200, {}, {"ok": True, "view": view}

    def _views_update(self, args: Json) -> Reply:
        view_id = str(args.get("view_id") or "")
        with self._state:
            if view_id not in self.views:
                return 200, {}, {"ok": False, "error": "not_found"}
            self.views[view_id] = self._view(args, view_id)
            return 200, {}, {"ok": True, "view": self.views[view_id]}

    def _views_publish(self, args: Json) -> Reply:
        user = str(args.get("user_id") or "")
        if not user:
            return 200, {}, {"ok": False, "error": "invalid_arguments"}
        view = self._view(args)
        with self._state:
            self.published[user] = view
        return 200, {}, {"ok": True, "view": view}

    def _conversations_history(self, args: Json) -> Reply:
        channel = str(args.get("channel") or "")
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._state:
            top = [m for m in self._channel(channel).messages if "thread_ts" not in m or m["thread_ts"] == m["ts"]]
        newest_first = list(reversed(top))
        start = int(args.get("cursor") or 0)
        page = newest_first[start:start + limit]
        shown = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(newest_first)
        return 200, {}, {"ok": True, "messages": shown, "has_more": more,
                         "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _conversations_replies(self, args: Json) -> Reply:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        with self._state:
            thread = [m for m in self._channel(channel).messages if m["ts"] == ts or m.get("thread_ts") == ts]
        return 200, {}, {"ok": True, "messages": thread, "has_more": False}

    def _usergroups_users_list(self, args: Json) -> Reply:
        group = str(args.get("usergroup") or "")
        if group not in self.usergroups:
            return 200, {}, {"ok": False, "error": "no_such_subteam"}
        return 200, {}, {"ok": True, "users": list(self.usergroups[group])}
