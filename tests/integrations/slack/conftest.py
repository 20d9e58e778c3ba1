"""Slack test harness: the fake Web API on loopback, the real slack_bolt/slack_sdk pointed at it, and requests
signed with Slack's real v0 algorithm (slack_sdk's SignatureVerifier computes the same HMAC on the app side)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.config import Settings
from app.models import Order, SlackStaff
from integrations.slack.fake import FakeSlack
from tests.conftest import order_payload
from tests.test_outbox import run_all_jobs

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "xoxb-orderline-test"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CARDS = "CCARDS01"
OPS = "COPS0001"
ANA, JONAS, VIEWER, STRANGER = "U0ANA", "U0JONAS", "U0VIEW", "U0NOBODY"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # PROTOCOLS.md §4.5: slack_sdk routes even 127.0.0.1 through a proxy set in the environment.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_slack: FakeSlack) -> Settings:
    # The fake is up before the app (and its Bolt App) is built.
    # No debounce: a test runs the jobs right after each change (test_flow checks the debounce itself).
    return settings.with_overrides(slack_bot_token=TOKEN, slack_signing_secret=SIGNING_SECRET,
                                   slack_api_base_url=fake_slack.api_url, slack_ops_channel=OPS,
                                   slack_card_debounce_seconds=0)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def signed(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None,
           content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    """Headers Slack sends: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", "Content-Type": content_type}


def interaction_body(payload: dict[str, Any]) -> str:
    """Interactivity is one form field, `payload=<urlencoded JSON>` (as bolt-python's own tests build it)."""
    return "payload=" + quote(json.dumps(payload))


def click_payload(action: str, value: str, *, user: str = ANA, channel: str = CARDS,
                  message_ts: str = "1700000000.000100") -> dict[str, Any]:
    """bolt-python's block_actions fixture, with our button in it."""
    payload = copy.deepcopy(fixture("block_actions.json"))
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0G9PQBBK"}
    payload["channel"] = {"id": channel, "name": "orders"}
    payload["container"].update(channel_id=channel, message_ts=message_ts)
    payload["message"]["ts"] = message_ts
    payload["actions"][0].update(action_id=f"orderline:{action}", value=value, block_id="order")
    return payload


def submission_payload(callback: str, private_metadata: str, values: dict[str, Any], *,
                       user: str = ANA) -> dict[str, Any]:
    """bolt-python's view_submission fixture, with our modal's callback, metadata and state."""
    payload = copy.deepcopy(fixture("view_submission.json"))
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0G9PQBBK"}
    payload["team"]["id"] = "T0G9PQBBK"
    payload["view"].update(callback_id=f"orderline:{callback}", private_metadata=private_metadata,
                           state={"values": values})
    return payload


def text_value(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def post_signed(client: Any, body: str, **kwargs: Any) -> Any:
    return client.post("/slack/events", data=body.encode(), headers=signed(body, **kwargs))


@pytest.fixture
def staff(runtime: Any) -> None:
    with runtime.db.session() as session:
        session.add_all([SlackStaff(slack_id=ANA, kind="user", role="manager", name="Ana", members=[]),
                         SlackStaff(slack_id="S0PACKERS", kind="group", role="operator", name="packers",
                                    members=[JONAS]),
                         SlackStaff(slack_id=VIEWER, kind="user", role="viewer", name="Vera", members=[])])


@pytest.fixture
def slack_shop(runtime: Any, manual_shop: int) -> int:
    with runtime.db.session() as session:
        from app.models import Shop

        shop = session.get(Shop, manual_shop)
        shop.settings = {"slack_channel": CARDS}
        shop.name = "Phone sales"
    return manual_shop


def new_order(client: Any, auth: Any, shop_id: int, **overrides: Any) -> int:
    response = client.post("/api/v1/orders", json=order_payload(shop_id, **overrides), headers=auth("operator"))
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def order_version(runtime: Any, order_id: int) -> int:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.version


def card_value(runtime: Any, order_id: int) -> str:
    return json.dumps({"order_id": order_id, "version": order_version(runtime, order_id)})


__all__ = ["run_all_jobs"]
