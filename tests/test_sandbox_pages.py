"""The demo's Slack workspace and customer phone pages: what they send is what Slack and Twilio send (signed with
the real algorithms), the app accepts it and acts on it, and a tampered request is refused. Also the order
page's Slack card and SMS thread panels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import Order, SlackStaff, SmsMessage
from app.sms import texts
from integrations.slack.sandbox import OPS_CHANNEL, ORDERS_CHANNEL, TOKEN, SlackSandbox, interaction_body, sign
from integrations.twilio.sandbox import SHOP_NUMBER, PhoneSandbox, twiml_text
from integrations.twilio.signature import SIGNATURE_HEADER
from tests.conftest import order_payload
from tests.test_dashboard import signed_in
from tests.test_outbox import run_all_jobs

PUBLIC = "https://orders.example.com"  # differs from the test client's host, as behind a proxy
MARIA = "+46701234567"  # order_payload's "070-123 45 67" in Sweden; a demo customer's number
ANA, JONAS, KIM = "U0SBXANA01", "U0SBXJONAS", "U0SBXKIM01"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack_sandbox() -> Iterator[SlackSandbox]:
    sandbox = SlackSandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def phone_sandbox() -> Iterator[PhoneSandbox]:
    sandbox = PhoneSandbox()
    yield sandbox
    sandbox.stop()


def sandbox_settings(settings: Settings, slack: SlackSandbox, phone: PhoneSandbox, public: str) -> Settings:
    """The settings `orderline demo` gives the app: each hook's environment, read as the app reads it."""
    env = {**slack.prepare({}), **phone.prepare({"PUBLIC_BASE_URL": public})}
    return settings.with_overrides(
        slack_bot_token=env["SLACK_BOT_TOKEN"], slack_signing_secret=env["SLACK_SIGNING_SECRET"],
        slack_api_base_url=env["SLACK_API_BASE_URL"], slack_ops_channel=env["SLACK_OPS_CHANNEL"],
        twilio_account_sid=env["TWILIO_ACCOUNT_SID"], twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
        twilio_from_number=env["TWILIO_FROM_NUMBER"], twilio_api_base_url=env["TWILIO_API_BASE_URL"],
        public_base_url=env["PUBLIC_BASE_URL"], sms_pace_per_second=0, slack_card_debounce_seconds=0)


@pytest.fixture
def settings(settings: Settings, slack_sandbox: SlackSandbox, phone_sandbox: PhoneSandbox) -> Settings:
    return sandbox_settings(settings, slack_sandbox, phone_sandbox, PUBLIC)


@pytest.fixture
def shop(app: Any, manual_shop: int, slack_sandbox: SlackSandbox, phone_sandbox: PhoneSandbox) -> int:
    """A shop, then the sandboxes attached as the demo attaches them (after its shops are seeded)."""
    slack_sandbox.attach(app)
    phone_sandbox.attach(app)
    return manual_shop


def new_order(client: Any, auth: Any, shop_id: int) -> int:
    response = client.post("/api/v1/orders", json=order_payload(shop_id), headers=auth("operator"))
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def card_of(sandbox: SlackSandbox, number: str = "") -> dict[str, Any]:
    assert sandbox.fake is not None
    cards = [m for m in sandbox.fake.messages(ORDERS_CHANNEL) if number in m["text"]]
    assert len(cards) == 1, [m["text"] for m in sandbox.fake.messages(ORDERS_CHANNEL)]
    return cards[0]


def order_with_card(runtime: Any, client: Any, auth: Any, shop_id: int,
                    sandbox: SlackSandbox) -> tuple[int, dict[str, Any]]:
    """An order placed through the API, triaged, and its card as the sandbox channel holds it."""
    order_id = new_order(client, auth, shop_id)
    run_all_jobs(runtime)
    return order_id, card_of(sandbox)


def click(client: Any, csrf: str, card: dict[str, Any], action: str, user: str) -> Any:
    """What the Slack page's script posts when `user` clicks the card's `action` button."""
    return client.post("/sandbox/slack/click", headers={"X-CSRF-Token": csrf}, json={
        "channel": ORDERS_CHANNEL, "ts": card["ts"], "block_id": buttons(card)[f"orderline:{action}"],
        "action_id": f"orderline:{action}", "user": user})


def buttons(card: dict[str, Any]) -> dict[str, str]:
    """action_id → block_id of the card's buttons."""
    return {e["action_id"]: b["block_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}


def status_of(runtime: Any, order_id: int) -> str:
    with runtime.db.session() as session:
        return str(session.get(Order, order_id).status)


# --- Slack -----------------------------------------------------------------------------------------------


def test_the_hook_seeds_staff_and_every_shop_posts_each_order_to_the_sandbox_channel(
        runtime: Any, client: Any, auth: Any, shop: int, slack_sandbox: SlackSandbox) -> None:
    with runtime.db.session() as session:
        roles = {row.slack_id: row.role for row in session.execute(select(SlackStaff)).scalars()}
    assert roles == {ANA: "manager", JONAS: "operator"}  # Kim is left unmapped on purpose
    new_order(client, auth, shop)
    run_all_jobs(runtime)
    card = card_of(slack_sandbox)
    assert "needs review" in card["text"]
    assert slack_sandbox.fake is not None
    assert slack_sandbox.fake.calls("chat.postMessage")[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_click_on_the_slack_page_is_a_signed_block_action_that_moves_the_order_and_updates_the_card(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int,
        slack_sandbox: SlackSandbox) -> None:
    order_id, card = order_with_card(runtime, client, auth, shop, slack_sandbox)
    csrf = signed_in(client, tokens, "viewer")
    page = client.get("/sandbox/slack")
    assert page.status_code == 200 and "Jonas Ek" in page.get_data(as_text=True)
    shown = client.get(f"/sandbox/slack/channel.json?channel={ORDERS_CHANNEL}&user={JONAS}").json["html"]
    assert f'data-ts="{card["ts"]}"' in shown and 'data-action-id="orderline:approve"' in shown

    answer = click(client, csrf, card, "approve", JONAS)
    assert answer.status_code == 200 and answer.json["status"] == 200, answer.json
    assert status_of(runtime, order_id) != "needs_review"
    timeline = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json["timeline"]
    approved = next(e for e in timeline if e["type"] == "order.approved")
    assert approved["actor"]["id"] == JONAS

    run_all_jobs(runtime)
    card = card_of(slack_sandbox)
    assert "orderline:approve" not in buttons(card) and card.get("edited")
    shown = client.get(f"/sandbox/slack/channel.json?channel={ORDERS_CHANNEL}&user={JONAS}").json["html"]
    assert "Approved by" in shown and "(edited)" in shown


def test_the_sandbox_signature_is_accepted_and_a_tampered_or_stale_one_refused(
        runtime: Any, client: Any, auth: Any, shop: int, slack_sandbox: SlackSandbox, app: Any) -> None:
    order_id, card = order_with_card(runtime, client, auth, shop, slack_sandbox)
    with app.test_request_context():
        payload = slack_sandbox.click_payload(ORDERS_CHANNEL, card["ts"], buttons(card)["orderline:approve"],
                                              "orderline:approve", ANA, "1.2.trigger")
    body = interaction_body(payload)
    headers = sign(slack_sandbox.signing_secret, body)
    assert headers["X-Slack-Signature"].startswith("v0=") and len(headers["X-Slack-Signature"]) == 67
    assert json.loads(dict(parse_qsl(body))["payload"])["type"] == "block_actions"

    tampered = body.replace(str(order_id), str(order_id + 1), 1)
    assert tampered != body
    assert client.post("/slack/events", data=tampered, headers=headers).status_code == 401
    stale = sign(slack_sandbox.signing_secret, body, timestamp=int(headers["X-Slack-Request-Timestamp"]) - 600)
    assert client.post("/slack/events", data=body, headers=stale).status_code == 401
    wrong_secret = sign("not-the-secret", body)
    assert client.post("/slack/events", data=body, headers=wrong_secret).status_code == 401
    assert status_of(runtime, order_id) == "needs_review"  # nothing of that was acted on

    assert client.post("/slack/events", data=body, headers=headers).status_code == 200
    assert status_of(runtime, order_id) != "needs_review"


def test_a_modal_opens_on_the_page_and_its_signed_submission_holds_the_order(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int,
        slack_sandbox: SlackSandbox) -> None:
    order_id, card = order_with_card(runtime, client, auth, shop, slack_sandbox)
    csrf = signed_in(client, tokens, "operator")
    opened = click(client, csrf, card, "hold", ANA).json
    modal = opened["modal"]
    assert "Hold order" in modal["html"] and 'name="reason"' in modal["html"]

    empty = client.post("/sandbox/slack/submit", headers={"X-CSRF-Token": csrf},
                        json={"view_id": modal["view_id"], "user": ANA, "values": {"reason": ""}}).json
    assert empty["closed"] is False and empty["errors"] == {"reason": "Please give a reason."}
    done = client.post("/sandbox/slack/submit", headers={"X-CSRF-Token": csrf}, json={
        "view_id": modal["view_id"], "user": ANA, "values": {"reason": "address looks odd"}}).json
    assert done["closed"] is True, done
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert (order.status, order.hold_reason) == ("on_hold", "address looks odd")


def test_an_unmapped_sandbox_user_is_told_so_and_nothing_moves(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int,
        slack_sandbox: SlackSandbox) -> None:
    order_id, card = order_with_card(runtime, client, auth, shop, slack_sandbox)
    csrf = signed_in(client, tokens, "viewer")
    click(client, csrf, card, "approve", KIM)
    assert status_of(runtime, order_id) == "needs_review"
    shown = client.get(f"/sandbox/slack/channel.json?channel={ORDERS_CHANNEL}&user={KIM}").json["html"]
    assert "Only visible to you" in shown and "not set up in Orderline" in shown


def test_the_slack_page_needs_a_signed_in_person_and_a_csrf_token(client: Any, tokens: dict[str, str],
                                                                   shop: int) -> None:
    assert client.get("/sandbox/slack").status_code == 302  # to the sign-in page
    assert client.post("/sandbox/slack/click", json={}).status_code == 401
    signed_in(client, tokens, "viewer")
    assert client.post("/sandbox/slack/click", json={"channel": ORDERS_CHANNEL}).status_code == 403  # no CSRF
    assert client.get(f"/sandbox/slack/channel.json?channel={OPS_CHANNEL}").status_code == 200
    assert client.get("/sandbox/slack/channel.json?channel=CNOPE").status_code == 422


# --- the phone -------------------------------------------------------------------------------------------


def test_a_text_from_the_phone_is_a_signed_twilio_webhook_answered_with_the_orders_status(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int,
        phone_sandbox: PhoneSandbox) -> None:
    order_id = new_order(client, auth, shop)
    run_all_jobs(runtime)
    csrf = signed_in(client, tokens, "viewer")
    assert "Maria Lind" in client.get("/sandbox/phone").get_data(as_text=True)
    answer = client.post("/sandbox/phone/send", headers={"X-CSRF-Token": csrf},
                         json={"phone": MARIA, "body": "status"}).json
    assert answer["status"] == 200
    number = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json["number"]
    states = {texts.render(language, "state.needs_review") for language in texts.LANGUAGES}
    assert number in answer["reply"] and any(state in answer["reply"] for state in states), answer
    thread = client.get("/sandbox/phone/thread.json", query_string={"phone": MARIA}).json["html"]
    assert "status" in thread and number in thread
    with runtime.db.session() as session:
        stored = session.execute(select(SmsMessage).where(SmsMessage.direction == "inbound")).scalar_one()
        assert (stored.phone, stored.sender, stored.body, stored.order_id) == (MARIA, SHOP_NUMBER, "status", order_id)


def test_the_phone_signature_is_accepted_and_a_tampered_one_refused(
        app: Any, client: Any, shop: int, phone_sandbox: PhoneSandbox) -> None:
    with app.test_request_context():
        status, reply, params = phone_sandbox.inbound(MARIA, "hello")
    assert status == 200 and reply  # accepted: even an unknown order gets an answer
    from integrations.twilio.signature import sign as twilio_sign

    url = PUBLIC + "/sms/inbound"
    good = twilio_sign(phone_sandbox.auth_token, url, params)
    forged = {**params, "Body": "cancel", "MessageSid": "SM" + "0" * 32}
    assert client.post("/sms/inbound", data=forged, headers={SIGNATURE_HEADER: good}).status_code == 403
    other_host = twilio_sign(phone_sandbox.auth_token, "https://evil.example/sms/inbound", params)
    assert client.post("/sms/inbound", data=params, headers={SIGNATURE_HEADER: other_host}).status_code == 403


def test_texts_the_app_sends_show_on_the_phone_and_are_reported_delivered(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int,
        phone_sandbox: PhoneSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    monkeypatch.setattr("jobs.sms.now", lambda: datetime(2026, 11, 26, 12, 0, tzinfo=UTC))  # not quiet hours
    order_id = new_order(client, auth, shop)
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        from app.sms import outbound

        outbound.queue(session, order, kind="staff_reply", dedupe_key="test:reply", text_key="status",
                       values={"state": "on its way"}, settings=runtime.settings)
    run_all_jobs(runtime)
    assert phone_sandbox.fake is not None and phone_sandbox.fake.sent_to(MARIA)
    signed_in(client, tokens, "viewer")
    thread = client.get("/sandbox/phone/thread.json", query_string={"phone": MARIA}).json["html"]
    assert "on its way" in thread
    with runtime.db.session() as session:
        sent = session.execute(select(SmsMessage).where(SmsMessage.dedupe_key == "test:reply")).scalar_one()
        assert sent.status == "delivered"  # the signed status callbacks were accepted


def test_twiml_text_reads_the_messages() -> None:
    assert twiml_text('<?xml version="1.0"?><Response><Message>Hej &amp; tack</Message></Response>') == "Hej & tack"
    assert twiml_text("<Response/>") == "" and twiml_text("not xml") == ""


# --- the order page's panels ---------------------------------------------------------------------------


def test_the_order_page_shows_the_slack_card_and_the_sms_thread(
        runtime: Any, client: Any, auth: Any, tokens: dict[str, str], shop: int, app: Any,
        phone_sandbox: PhoneSandbox) -> None:
    order_id = new_order(client, auth, shop)
    run_all_jobs(runtime)
    with app.test_request_context():
        phone_sandbox.inbound(MARIA, "status")
    signed_in(client, tokens, "viewer")
    page = client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True)
    slack = page.split('id="slack-card"')[1].split("</section>")[0]
    assert "as the Slack sandbox shows it" in slack and "Approve" in slack and "No Slack card" not in slack
    sms = page.split('id="sms-thread"')[1].split("</section>")[0]
    assert 'data-direction="inbound"' in sms and 'data-direction="outbound"' in sms and "status" in sms
