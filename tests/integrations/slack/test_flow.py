"""The whole path: an order arrives, its card appears in Slack, a button moves the order, the card follows.

Real slack_bolt and slack_sdk against the fake Web API; every request signed with Slack's real algorithm.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Order, OrderEvent, OutboxEvent, SlackMessage
from tests.integrations.slack.conftest import (
    ANA,
    CARDS,
    FIXTURES,
    JONAS,
    STRANGER,
    VIEWER,
    card_value,
    click_payload,
    interaction_body,
    new_order,
    post_signed,
    run_all_jobs,
    signed,
    submission_payload,
    text_value,
)


def _status(runtime: Any, order_id: int) -> str:
    with runtime.db.session() as session:
        return session.get(Order, order_id).status


def _card(fake: Any) -> dict[str, Any]:
    cards = fake.messages(CARDS)
    assert len(cards) == 1, [m["text"] for m in cards]
    return cards[0]


def _buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def _ephemerals(fake: Any) -> list[str]:
    return [e["text"] for e in fake.ephemerals]


# --- signatures ---------------------------------------------------------------------------------------------


def test_signing_matches_slacks_documented_vector() -> None:
    body = (FIXTURES / "slash_command_docs_vector.txt").read_text()
    headers = signed(body, secret="8f742231b10e8888abcd99yyyzzz85a5", timestamp=1531420618)
    assert headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_unsigned_wrongly_signed_and_replayed_requests_get_401_and_change_nothing(
        runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    calls_before = len(fake_slack.calls())
    body = interaction_body(click_payload("approve", card_value(runtime, order_id)))
    unsigned = client.post("/slack/events", data=body, content_type="application/x-www-form-urlencoded")
    wrong = client.post("/slack/events", data=body, headers=signed(body, secret="not-the-secret"))
    replayed = client.post("/slack/events", data=body, headers=signed(body, timestamp=int(time.time()) - 301))
    tampered_headers = signed(body)
    tampered = client.post("/slack/events", data=body.replace("approve", "cancel"), headers=tampered_headers)
    for response in (unsigned, wrong, replayed, tampered):
        assert response.status_code == 401
        assert response.json == {"error": "invalid request"}
    assert _status(runtime, order_id) == "needs_review"
    assert len(fake_slack.calls()) == calls_before  # not even auth.test: nothing was read


def test_signed_garbage_is_a_clear_4xx_not_a_500(client, slack_shop, staff, fake_slack):
    for body in ("payload=%7Bnot-json", "payload=", "payload=%5B%5D"):
        response = post_signed(client, body)
        assert response.status_code == 400, (body, response.status_code, response.data)
        assert "not a Slack payload" in response.json["error"]
    # A signed form that is no Slack request type at all: Bolt's own "unhandled request".
    unknown = post_signed(client, "garbage=1")
    assert (unknown.status_code, unknown.json) == (404, {"error": "unhandled request"})


# --- the whole path -------------------------------------------------------------------------------------------


def test_order_to_card_to_click_to_moved_order_to_updated_card(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop, number="1001")
    run_all_jobs(runtime)  # triage → needs review → the card job
    card = _card(fake_slack)
    assert "Order 1001" in card["text"] and "needs review" in card["text"]
    assert card["metadata"] == {"event_type": "orderline_message", "event_payload": {"key": f"order:{order_id}"}}
    buttons = _buttons(card)
    assert {"orderline:approve", "orderline:hold", "orderline:cancel", "orderline:edit"} <= set(buttons)
    thread = fake_slack.replies(CARDS, card["ts"])
    assert len(thread) == 1 and "received" in thread[0]["text"] and "Waiting for review" in thread[0]["text"]

    # Jonas is an operator through the packers group; he approves from the card.
    click = click_payload("approve", buttons["orderline:approve"]["value"], user=JONAS, message_ts=card["ts"])
    started = time.perf_counter()
    response = post_signed(client, interaction_body(click))
    assert response.status_code == 200 and time.perf_counter() - started < 3
    assert _status(runtime, order_id) in ("approved", "allocated", "backordered")
    with runtime.db.session() as session:
        approved = session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id,
                                                            OrderEvent.type == "order.approved")).scalar_one()
        assert (approved.actor_kind, approved.actor_id) == ("staff", JONAS)

    run_all_jobs(runtime)
    card = _card(fake_slack)  # still one card: updated in place
    assert fake_slack.calls("chat.update")
    footers = [b["elements"][0]["text"] for b in card["blocks"] if b["type"] == "context"]
    assert "needs review" not in card["text"]
    assert any(f.startswith("Approved by u0jonas") and f"<@{JONAS}>" in f for f in footers), footers
    assert "orderline:approve" not in _buttons(card)
    thread = fake_slack.replies(CARDS, card["ts"])
    assert any("Approved by" in m["text"] for m in thread)
    # And the API shows the same thing.
    api = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json
    assert api["status"] == _status(runtime, order_id)


def test_a_stale_card_answers_with_the_current_state(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    old_value = card_value(runtime, order_id)
    post_signed(client, interaction_body(click_payload("approve", old_value, user=ANA)))
    # Jonas clicks Hold on the card he still sees (the old version): nothing happens, he is told why.
    response = post_signed(client, interaction_body(click_payload("hold", old_value, user=JONAS)))
    assert response.status_code == 200
    assert not fake_slack.calls("views.open")
    said = _ephemerals(fake_slack)[-1]
    assert "out of date" in said and "approved" in said.lower() or "allocated" in said.lower()
    assert f"<@{ANA}>" in said or "ana" in said.lower()


def test_roles_viewers_cannot_cancel_and_strangers_cannot_act(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    value = card_value(runtime, order_id)
    post_signed(client, interaction_body(click_payload("cancel", value, user=VIEWER)))
    assert "needs the manager role" in _ephemerals(fake_slack)[-1]
    post_signed(client, interaction_body(click_payload("cancel", value, user=JONAS)))
    assert "needs the manager role" in _ephemerals(fake_slack)[-1]
    post_signed(client, interaction_body(click_payload("approve", value, user=STRANGER)))
    assert "not set up" in _ephemerals(fake_slack)[-1]
    assert not fake_slack.calls("views.open")
    assert _status(runtime, order_id) == "needs_review"
    # Ana (manager) gets the cancel form.
    post_signed(client, interaction_body(click_payload("cancel", value, user=ANA)))
    opened = fake_slack.calls("views.open")[-1].args["view"]
    assert opened["callback_id"] == "orderline:cancel"


def test_hold_modal_needs_a_reason_then_holds(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    post_signed(client, interaction_body(click_payload("hold", card_value(runtime, order_id), user=JONAS)))
    view = fake_slack.calls("views.open")[-1].args["view"]
    assert view["callback_id"] == "orderline:hold"
    empty = post_signed(client, interaction_body(submission_payload("hold", view["private_metadata"],
                                                                    {"reason": text_value("  ")}, user=JONAS)))
    assert empty.status_code == 200 and empty.json["response_action"] == "errors"
    assert "reason" in empty.json["errors"]
    ok = post_signed(client, interaction_body(submission_payload(
        "hold", view["private_metadata"], {"reason": text_value("Call the customer about the address")},
        user=JONAS)))
    assert ok.status_code == 200 and not ok.data
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert (order.status, order.hold_reason) == ("on_hold", "Call the customer about the address")
    run_all_jobs(runtime)
    card = _card(fake_slack)
    assert "Call the customer about the address" in json.dumps(card["blocks"])
    assert "orderline:release" in _buttons(card)


def test_two_people_submit_the_same_form_one_wins_the_other_is_told(runtime, client, auth, slack_shop, staff,
                                                                     fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    value = card_value(runtime, order_id)
    post_signed(client, interaction_body(click_payload("hold", value, user=ANA)))
    post_signed(client, interaction_body(click_payload("hold", value, user=JONAS)))
    ana_view, jonas_view = (call.args["view"] for call in fake_slack.calls("views.open")[-2:])
    first = post_signed(client, interaction_body(submission_payload(
        "hold", ana_view["private_metadata"], {"reason": text_value("fraud check")}, user=ANA)))
    second = post_signed(client, interaction_body(submission_payload(
        "hold", jonas_view["private_metadata"], {"reason": text_value("address")}, user=JONAS)))
    assert first.status_code == 200 and not first.data
    assert second.json["response_action"] == "errors"
    assert f"@{ANA} did it first" in second.json["errors"]["reason"]
    with runtime.db.session() as session:
        assert session.get(Order, order_id).hold_reason == "fraud check"


def test_edit_modal_changes_address_and_level(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    post_signed(client, interaction_body(click_payload("edit", card_value(runtime, order_id), user=ANA)))
    view = fake_slack.calls("views.open")[-1].args["view"]
    values = {f"address.{name}": text_value(value) for name, value in (
        ("name", "Anna Berg"), ("line1", "Storgatan 12B"), ("postal_code", "411 01"), ("city", "Göteborg"),
        ("country_code", "se"))}
    values["shipping_level"] = {"value": {"type": "static_select", "selected_option": {"value": "express"}}}
    response = post_signed(client, interaction_body(submission_payload("edit", view["private_metadata"], values)))
    assert response.status_code == 200 and not response.data, response.data
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order.shipping_level == "express"
        assert (order.address("shipping").line1, order.address("shipping").country_code) == ("Storgatan 12B", "SE")
        assert order.events[-1].type == "order.edited"


def test_unknown_buttons_and_vanished_orders_get_a_clear_message(runtime, client, auth, slack_shop, staff,
                                                                  fake_slack):
    unknown = post_signed(client, interaction_body(click_payload("teleport", "{}")))
    assert unknown.status_code == 200
    assert "does not know the button" in _ephemerals(fake_slack)[-1]
    gone = post_signed(client, interaction_body(click_payload("approve", json.dumps({"order_id": 999999,
                                                                                     "version": 1}))))
    assert gone.status_code == 200
    assert "no longer exists" in _ephemerals(fake_slack)[-1]
    malformed = post_signed(client, interaction_body(click_payload("approve", "not json")))
    assert malformed.status_code == 200
    assert "does not name an order" in _ephemerals(fake_slack)[-1]


@pytest.mark.parametrize("redis_restarted", [False, True], ids=["redis-kept", "redis-restarted"])
def test_one_card_per_order_even_when_the_job_dies_after_posting(runtime, client, auth, slack_shop, staff,
                                                                  fake_slack, monkeypatch, redis_restarted):
    import integrations.slack.blocks as blocks_module
    from jobs import relay

    def boom(*_: Any) -> Any:
        raise RuntimeError("worker died after chat.postMessage")

    monkeypatch.setattr(blocks_module, "thread_blocks", boom)
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    assert len(fake_slack.messages(CARDS)) == 1  # posted, but the job failed before storing the ts
    with runtime.db.session() as session:
        assert session.execute(select(SlackMessage).where(SlackMessage.key == f"order:{order_id}")).first() is None
    monkeypatch.undo()
    if redis_restarted:  # Redis keeps nothing on disk: the attempt mark is gone with everything else
        runtime.redis.flushdb()
    relay.requeue_failed(runtime)
    run_all_jobs(runtime)
    assert len(fake_slack.messages(CARDS)) == 1, "the retry found the card by its metadata instead of reposting"
    assert fake_slack.calls("conversations.history")
    with runtime.db.session() as session:
        row = session.execute(select(SlackMessage).where(SlackMessage.key == f"order:{order_id}")).scalar_one()
        assert row.ts == fake_slack.messages(CARDS)[0]["ts"]


def test_429_is_retried_no_sooner_than_retry_after(runtime, client, auth, slack_shop, staff, fake_slack):
    from app.models import OutboxEvent
    from integrations.fakeserver import Fault
    from jobs import relay

    fake_slack.faults.add(Fault(status=429, headers={"Retry-After": "7"}, match="chat.postMessage"))
    new_order(client, auth, slack_shop)
    started = time.time()
    run_all_jobs(runtime)
    assert fake_slack.messages(CARDS) == []
    with runtime.db.session() as session:
        row = session.execute(select(OutboxEvent).where(OutboxEvent.job == "slack_sync_card")).scalar_one()
        assert row.status == "pending" and "rate-limited" in row.last_error
        assert row.next_attempt_at.timestamp() >= started + 7 - 0.5
        row.next_attempt_at = row.enqueued_at = None  # time passes (RQ's scheduler is not running in tests)
    relay.sweep(runtime)
    run_all_jobs(runtime)
    assert len(fake_slack.messages(CARDS)) == 1


def test_a_shopify_webhook_becomes_a_card_whose_button_moves_the_order(runtime, client, staff, fake_slack):
    """The whole path from a channel: signed orders/create → ingest → triage → card → Approve → card updated."""
    from app.models import Shop
    from tests.integrations.shopify.conftest import SHOP_DOMAIN, fixture_bytes, shopify_headers

    with runtime.db.session() as session:
        shop = Shop(channel="shopify", name="Stockholm Tees", external_id=SHOP_DOMAIN, currency="SEK",
                    settings={"slack_channel": CARDS}, credentials_encrypted=runtime.secrets.seal(
                        {"access_token": "shpat_orderline_test"}))
        session.add(shop)
    raw = fixture_bytes("orders_create.json")
    external_id = str(json.loads(raw)["id"])
    assert client.post("/webhooks/shopify", data=raw, headers=shopify_headers("orders/create", raw)).status_code == 200
    run_all_jobs(runtime)
    card = _card(fake_slack)
    links = [e.get("url") for e in _buttons(card).values()]
    assert f"https://{SHOP_DOMAIN}/admin/orders/{external_id}" in links
    assert "(shopify)" in card["text"]
    click = click_payload("approve", _buttons(card)["orderline:approve"]["value"], user=ANA, message_ts=card["ts"])
    assert post_signed(client, interaction_body(click)).status_code == 200
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        order = session.execute(select(Order).where(Order.external_id == external_id)).scalar_one()
        assert order.status != "needs_review"
    card = _card(fake_slack)
    assert "orderline:approve" not in _buttons(card)
    assert any(f"<@{ANA}>" in b["elements"][0]["text"] for b in card["blocks"] if b["type"] == "context")


def test_events_url_verification_is_answered(client, fake_slack):
    # Slack's handshake when the Events URL is saved (Events API docs: url_verification).
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"})
    response = client.post("/slack/events", data=body, headers=signed(body, content_type="application/json"))
    assert response.status_code == 200 and response.json == {"challenge": challenge}


def test_a_lost_answer_is_looked_up_not_reposted(runtime, client, auth, slack_shop, staff, fake_slack, monkeypatch):
    """chat.postMessage reached Slack but its answer never came back (a timeout): the retry finds the card."""
    from app.models import OutboxEvent
    from integrations.fakeserver import Fault
    from integrations.slack import client as slack_client
    from jobs import relay
    from jobs import slack as slack_jobs

    monkeypatch.setattr(slack_client, "TIMEOUT_SECONDS", 0.5)
    slack_jobs._cached_client.cache_clear()
    fake_slack.faults.add(Fault(hang_after=1.5, match="chat.postMessage"))
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    assert len(fake_slack.messages(CARDS)) == 1  # Slack has it; we do not know
    with runtime.db.session() as session:
        row = session.execute(select(OutboxEvent).where(OutboxEvent.job == "slack_sync_card")).scalar_one()
        assert row.status == "pending" and "no answer" in row.last_error
        row.next_attempt_at = row.enqueued_at = None
    relay.sweep(runtime)
    run_all_jobs(runtime)
    slack_jobs._cached_client.cache_clear()
    assert len(fake_slack.messages(CARDS)) == 1
    with runtime.db.session() as session:
        card = session.execute(select(SlackMessage).where(SlackMessage.key == f"order:{order_id}")).scalar_one()
        assert card.ts == fake_slack.messages(CARDS)[0]["ts"]


def test_an_order_changed_while_its_card_job_waited_is_refreshed_once(runtime, client, auth, slack_shop, staff,
                                                                       fake_slack):
    order_id = new_order(client, auth, slack_shop, number="2002")
    run_all_jobs(runtime)
    card = _card(fake_slack)
    updates, thread = len(fake_slack.calls("chat.update")), len(fake_slack.replies(CARDS, card["ts"]))
    url = f"/api/v1/orders/{order_id}/actions"
    assert client.post(f"{url}/hold", json={"reason": "customer called"}, headers=auth()).status_code == 200
    assert client.post(f"{url}/release", json={}, headers=auth()).status_code == 200
    assert client.post(f"{url}/note", json={"text": "gift wrap"}, headers=auth()).status_code == 200
    with runtime.db.session() as session:
        waiting = session.execute(select(OutboxEvent).where(OutboxEvent.job == "slack_sync_card",
                                                            OutboxEvent.status == "pending")).scalars().all()
        assert len(waiting) == 1, "three changes, one card job waiting"

    run_all_jobs(runtime)
    assert len(fake_slack.calls("chat.update")) == updates + 1
    replies = fake_slack.replies(CARDS, card["ts"])
    assert len(replies) == thread + 1, "one thread post tells all three changes"
    assert all(word in replies[-1]["text"] for word in ("Held", "Released", "gift wrap")), replies[-1]["text"]

    run_all_jobs(runtime)  # nothing changed since: Slack is not called again
    assert len(fake_slack.calls("chat.update")) == updates + 1


def test_a_card_refresh_waits_for_the_orders_next_steps(runtime, client, auth, slack_shop, staff, fake_slack,
                                                         monkeypatch):
    order_id = new_order(client, auth, slack_shop, number="3003")
    run_all_jobs(runtime)
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(slack_card_debounce_seconds=30))
    url = f"/api/v1/orders/{order_id}/actions"
    assert client.post(f"{url}/note", json={"text": "gift wrap"}, headers=auth()).status_code == 200
    with runtime.db.session() as session:
        waiting = session.execute(select(OutboxEvent).where(OutboxEvent.job == "slack_sync_card",
                                                            OutboxEvent.status == "pending")).scalar_one()
        assert waiting.next_attempt_at is not None
    updates = len(fake_slack.calls("chat.update"))
    run_all_jobs(runtime)
    assert len(fake_slack.calls("chat.update")) == updates, "the refresh waits in RQ's scheduler, not in a worker"


def test_a_busy_channel_defers_the_thread_post_not_the_card(runtime, client, auth, slack_shop, staff, fake_slack):
    from rq import Queue
    from rq.registry import ScheduledJobRegistry
    from sqlalchemy import update

    from app import pacing
    from app.store import utcnow

    order_id = new_order(client, auth, slack_shop, number="4004")
    run_all_jobs(runtime)
    card = _card(fake_slack)
    updates, thread = len(fake_slack.calls("chat.update")), len(fake_slack.replies(CARDS, card["ts"]))
    # Another message holds the channel's posting slots for the next 10 s.
    pacing.reserve(runtime.redis, f"slack:{CARDS}", 10.0, "post:elsewhere")
    assert client.post(f"/api/v1/orders/{order_id}/actions/note", json={"text": "gift wrap"},
                       headers=auth()).status_code == 200
    run_all_jobs(runtime)
    assert len(fake_slack.calls("chat.update")) == updates + 1, "the card is current at once"
    assert len(fake_slack.replies(CARDS, card["ts"])) == thread, "its thread waits for a slot"
    with runtime.db.session() as session:
        rows = session.execute(select(OutboxEvent).where(OutboxEvent.job == "slack_sync_card")
                               .order_by(OutboxEvent.id)).scalars().all()
        assert [r.status for r in rows][-2:] == ["done", "pending"] and rows[-1].attempts == 0
        assert rows[-1].next_attempt_at > utcnow()
        session.execute(update(OutboxEvent).where(OutboxEvent.id == rows[-1].id).values(next_attempt_at=utcnow()))

    pacing.release(runtime.redis, f"thread:order:{order_id}")  # as if the slot had come
    runtime.redis.delete(f"orderline:pace:slack:{CARDS}")
    registry = ScheduledJobRegistry(queue=Queue("staff", connection=runtime.redis))
    for job_id in registry.get_job_ids():
        registry.requeue(job_id)
    run_all_jobs(runtime)
    replies = fake_slack.replies(CARDS, card["ts"])
    assert len(replies) == thread + 1 and "gift wrap" in replies[-1]["text"]
