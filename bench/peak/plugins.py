"""Where the merged branches plug into the drill: the EasyPost, Slack and Twilio fakes (the ones the tests
use, reached through the real SDKs), the env pointing Orderline at them, and the two kinds of signed
traffic that arrive through them: staff clicking Approve on Slack cards, customers texting in.

    start_carrier -> extras["carrier_fake"]: FakeEasyPost (fail_next, purchases(reference), shipments)
    start_slack   -> extras["slack_fake"]:   PeakSlack (the FakeSlack and the signing secret)
    start_twilio  -> extras["twilio_fake"]:  PeakTwilio (the FakeTwilio, auth token, who said STOP when)

Signing reuses the sandboxes' helpers (integrations/slack/sandbox.py sign/interaction_body/click_payload,
integrations/twilio/fake.py inbound_params/signed): the app checks these with the real algorithms.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from .faults import module_present

Started = tuple[Any, dict[str, str]] | None

EASYPOST_KEY = "EZTKpeakdrill"
SLACK_ORDERS_CHANNEL = "C0PEAKORDERS"
SLACK_MANAGER = "U0SBXANA01"  # the sandbox's manager (integrations/slack/sandbox.USERS), made staff by the drill
# Shop settings once shipping, Slack and SMS are merged: orders flow on to a bought label and a shipment
# pushed to the channel; orders that need staff (review, problems) get a Slack card. Not every order: at
# peak, a card per order and its updates (Slack takes ~1 post/s per channel) outnumber every other job 5:1
# and starve reconciliation (measured: 1,000+ notify jobs pending 200 s after the load).
SHOP_SETTINGS_AFTER_MERGE: dict[str, Any] = {"auto_pick_pack": True, "carrier": "easypost",
                                             "slack_channel": SLACK_ORDERS_CHANNEL, "slack_all_orders": False}


def start_carrier() -> Started:
    if not module_present("app.shipping") or not module_present("integrations.carriers.easypost.fake"):
        return None
    from integrations.carriers.easypost.fake import FakeEasyPost

    fake = FakeEasyPost(api_key=EASYPOST_KEY).start()
    return fake, {"EASYPOST_API_KEY": EASYPOST_KEY, "EASYPOST_API_BASE_URL": fake.url}


@dataclass
class PeakSlack:
    fake: Any
    signing_secret: str
    clicked: set[int] = field(default_factory=set)

    def stop(self) -> None:
        self.fake.stop()

    def card_keys(self) -> list[str]:
        """One key per top-level card in the orders channel: the order its buttons act on."""
        import json

        keys = []
        for message in self.fake.messages(SLACK_ORDERS_CHANNEL):
            values = [e.get("value") for b in message.get("blocks") or []
                      for e in list(b.get("elements") or []) + ([b["accessory"]] if b.get("accessory") else [])
                      if str(e.get("action_id", "")).startswith("orderline:") and e.get("value")]
            ids = {json.loads(v).get("order_id") for v in values if v.startswith("{")}
            keys.append(f"order:{sorted(ids)[0]}" if ids else f"ts:{message['ts']}")
        return keys


def start_slack() -> Started:
    if not module_present("integrations.slack.sandbox"):
        return None
    from integrations.slack.fake import FakeSlack
    from integrations.slack.sandbox import OPS_CHANNEL, TEAM_ID, TOKEN

    fake = FakeSlack(token=TOKEN, team_id=TEAM_ID).start()
    plugin = PeakSlack(fake, "peak-drill-slack-signing-secret")
    return plugin, {"SLACK_API_BASE_URL": fake.api_url, "SLACK_BOT_TOKEN": TOKEN,
                    "SLACK_SIGNING_SECRET": plugin.signing_secret, "SLACK_OPS_CHANNEL": OPS_CHANNEL}


@dataclass
class PeakTwilio:
    fake: Any
    auth_token: str
    public_base_url: str
    stops: dict[str, int] = field(default_factory=dict)  # number -> texts it had been sent when STOP was acked
    texts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        self.fake.stop()

    def sent_after_stop(self) -> list[str]:
        return [f"{number}: {len(self.fake.sent_to(number)) - before} after STOP"
                for number, before in self.stops.items() if len(self.fake.sent_to(number)) > before]


def start_twilio() -> Started:
    if not module_present("integrations.twilio.fake"):
        return None
    from integrations.twilio.fake import FakeTwilio

    sid, token = "AC" + "7" * 32, "peak-drill-twilio-token"
    fake = FakeTwilio(account_sid=sid, auth_token=token).start()
    # Signatures are over the public URL; the drill fills in the web port once gunicorn has one.
    plugin = PeakTwilio(fake, token, "")
    return plugin, {"TWILIO_API_BASE_URL": fake.url, "TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token,
                    "TWILIO_FROM_NUMBER": "+46700000100"}


def staff_via_slack(extras: dict[str, Any], base_url: str, order_ids: list[int]) -> int:
    """Click Approve on the Slack card of each order waiting for review (a signed block_actions POST to
    /slack/events, as Slack sends it); each order is clicked once, the API approves what is left."""
    slack: PeakSlack | None = extras.get("slack_fake")
    if slack is None:
        return 0
    from integrations.slack.sandbox import SlackSandbox, interaction_body, sign

    sandbox = SlackSandbox(slack.signing_secret)
    sandbox.fake = slack.fake
    wanted = set(order_ids) - slack.clicked
    sent = 0
    for message, key in zip(slack.fake.messages(SLACK_ORDERS_CHANNEL), slack.card_keys(), strict=False):
        order_id = int(key.split(":")[1]) if key.startswith("order:") else None
        if order_id not in wanted:
            continue
        block = next((b for b in message.get("blocks") or [] for e in b.get("elements") or []
                      if e.get("action_id") == "orderline:approve"), None)
        if block is None:
            continue
        payload = sandbox.click_payload(SLACK_ORDERS_CHANNEL, str(message["ts"]), str(block.get("block_id") or ""),
                                        "orderline:approve", SLACK_MANAGER, sandbox._trigger())
        body = interaction_body(payload)
        try:
            requests.post(f"{base_url}/slack/events", data=body, headers=sign(slack.signing_secret, body), timeout=10)
        except requests.RequestException:
            continue
        slack.clicked.add(order_id)  # type: ignore[arg-type]
        sent += 1
    return sent


def customers_text_in(extras: dict[str, Any], base_url: str, phones: list[str] | None = None) -> int:
    """Some customers text "status", one in five of those then STOP (signed POST /sms/inbound)."""
    twilio: PeakTwilio | None = extras.get("twilio_fake")
    if twilio is None or not phones:
        return 0
    from integrations.twilio.fake import inbound_params, signed

    sent = 0
    for phone in random.sample(phones, min(3, len(phones))):
        if phone in twilio.stops:
            continue
        body = "STOP" if random.random() < 0.2 else "status"
        params = inbound_params(from_=phone, to="+46700000100", body=body, account_sid=twilio.fake.account_sid)
        url = twilio.public_base_url.rstrip("/") + "/sms/inbound"
        with twilio.lock:
            try:
                answer = requests.post(f"{base_url}/sms/inbound", data=params,
                                       headers=signed(twilio.auth_token, url, params), timeout=10)
            except requests.RequestException:
                continue
            if body == "STOP" and answer.status_code == 200:
                twilio.stops[phone] = len(twilio.fake.sent_to(phone))
        sent += 1
    return sent


# `--no-providers` turns the carrier, Slack and SMS parts off: the drill of webhooks, ingest, reconciliation
# and faults alone (what CI runs while the full drill's notification backlog is open, see the README).
enabled = True


def all_started() -> dict[str, Started]:
    if not enabled:
        return {"carrier_fake": None, "slack_fake": None, "twilio_fake": None}
    return {"carrier_fake": start_carrier(), "slack_fake": start_slack(), "twilio_fake": start_twilio()}
