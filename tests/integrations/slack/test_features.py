"""`/order`, App Home, the customer relay, ops alerts, the daily digest, Black Friday bursts, pacing and Block Kit
limits: each through the real Bolt app and slack_sdk against the fake Web API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import select

from app.alerts import raise_alert
from app.models import Order, OrderEvent, Shop
from app.orders.actions import record_event
from app.orders.types import Actor, ActorKind
from integrations.carriers.base import Parcel, ShipmentRequest
from integrations.carriers.sandbox.client import quote_rates
from integrations.slack import blocks
from jobs import slack as slack_jobs
from tests.integrations.slack.conftest import (
    ANA,
    CARDS,
    FIXTURES,
    OPS,
    STRANGER,
    card_value,
    click_payload,
    interaction_body,
    new_order,
    post_signed,
    run_all_jobs,
    signed,
)


def _slash(text: str, user: str = ANA) -> str:
    """bolt-python's slash command fixture, as `/order <text>` from `user`."""
    fields = dict(parse_qsl((FIXTURES / "slash_command.txt").read_text().strip()))
    fields.update(command="/order", text=text, user_id=user, user_name=user.lower(), team_id="T0G9PQBBK",
                  channel_id=CARDS)
    return urlencode(fields)


def _event(event: dict[str, Any], event_id: str) -> str:
    """An Events API envelope (Slack docs, "event_callback"; bolt-python tests/scenario_tests/test_events.py)."""
    return json.dumps({"token": "verification_token", "team_id": "T0G9PQBBK", "api_app_id": "A111",
                       "event": event, "type": "event_callback", "event_id": event_id,
                       "event_time": int(time.time()), "authorizations": []})


def _post_event(client: Any, body: str) -> Any:
    return client.post("/slack/events", data=body.encode(), headers=signed(body, content_type="application/json"))


# --- /order -------------------------------------------------------------------------------------------------


def test_order_command_number_search_pending_stats(runtime, client, auth, slack_shop, staff, fake_slack):
    new_order(client, auth, slack_shop, number="1001")
    new_order(client, auth, slack_shop, number="1002", customer={"name": "Bo Ek", "email": "bo@example.se"},
              line_items=[{"sku": "SCARF-9", "title": "Scarf", "quantity": 1, "unit_price": "99.00"}])
    run_all_jobs(runtime)

    card = post_signed(client, _slash("1001"))
    assert card.status_code == 200
    assert "Order 1001" in card.json["text"] and card.json["blocks"][0]["type"] == "header"
    assert "response_type" not in card.json or card.json["response_type"] == "ephemeral"

    by_email = post_signed(client, _slash("search anna.berg@example.se")).json
    assert "1001" in json.dumps(by_email["blocks"]) and "1002" not in json.dumps(by_email["blocks"])
    by_sku = post_signed(client, _slash("search SCARF-9")).json
    assert "1002" in json.dumps(by_sku["blocks"]) and "1001" not in json.dumps(by_sku["blocks"])
    by_phone = post_signed(client, _slash("search +46 70 123 45 67")).json
    assert "1001" in json.dumps(by_phone["blocks"])

    pending = post_signed(client, _slash("pending")).json
    assert "*Needs review* · 2" in pending["text"]
    stats = post_signed(client, _slash("stats today")).json
    assert "2 orders in" in stats["text"] and "SEK" in stats["text"]
    assert "manual 2" in json.dumps(stats["blocks"])

    # Text-only answers come back as text/plain (Bolt's ack with text alone).
    assert "No order numbered 4242" in post_signed(client, _slash("4242")).get_data(as_text=True)
    assert "don't know" in post_signed(client, _slash("frobnicate now")).get_data(as_text=True)
    assert "not set up" in post_signed(client, _slash("1001", user=STRANGER)).get_data(as_text=True)


# --- App Home ---------------------------------------------------------------------------------------------------


def test_app_home_shows_the_queues(runtime, client, auth, slack_shop, staff, fake_slack):
    new_order(client, auth, slack_shop, number="1001")
    run_all_jobs(runtime)
    body = _event({"type": "app_home_opened", "user": ANA, "channel": "D0HOME", "tab": "home",
                   "event_ts": "1700000000.000001"}, "Ev0HOME1")
    assert _post_event(client, body).status_code == 200
    view = fake_slack.published[ANA]
    text = json.dumps(view["blocks"], ensure_ascii=False)
    assert view["type"] == "home" and "Needs review* · 1" in text and "1001" in text
    assert any(b.get("accessory", {}).get("action_id") == "orderline:show" for b in view["blocks"])
    View(**{k: v for k, v in view.items() if k in ("type", "blocks")}).validate_json()


# --- customer relay ---------------------------------------------------------------------------------------------


def test_customer_text_reaches_the_thread_and_a_thread_reply_goes_back(runtime, client, auth, slack_shop, staff,
                                                                        fake_slack):
    order_id = new_order(client, auth, slack_shop, number="1001")
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        record_event(session, order, Actor(ActorKind.CUSTOMER, "+46701234567", "Anna Berg"),
                     "order.customer_message", "Customer texted: var är mitt paket?",
                     text="var är mitt paket?", needs_staff=True)
    run_all_jobs(runtime)
    card = fake_slack.messages(CARDS)[0]
    relay = fake_slack.replies(CARDS, card["ts"])[-1]
    assert "var är mitt paket?" in relay["text"]
    assert any(b.get("block_id") == "relay" for b in relay["blocks"])

    reply = {"type": "message", "channel": CARDS, "user": ANA, "text": "It left Stockholm today",
             "ts": "1800000000.000300", "thread_ts": card["ts"], "event_ts": "1800000000.000300",
             "channel_type": "channel"}
    first = _post_event(client, _event(reply, "Ev0REPLY1"))
    again = _post_event(client, _event(reply, "Ev0REPLY1"))  # Slack's retry of the same event
    assert first.status_code == again.status_code == 200
    with runtime.db.session() as session:
        replies = session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id,
                                                           OrderEvent.type == "order.customer_reply")).scalars().all()
        assert [(r.data["text"], r.actor_id) for r in replies] == [("It left Stockholm today", ANA)]
    # The bot's own thread posts come back as message events too: never relayed.
    bot_echo = {**reply, "text": "timeline", "bot_id": "BZYBOTHED", "ts": "1800000000.000400"}
    _post_event(client, _event(bot_echo, "Ev0ECHO1"))
    with runtime.db.session() as session:
        assert session.execute(select(OrderEvent).where(OrderEvent.type == "order.customer_reply")).all().__len__() == 1


def test_reply_button_opens_a_modal_that_sends(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    post_signed(client, interaction_body(click_payload("reply", card_value(runtime, order_id))))
    view = fake_slack.calls("views.open")[-1].args["view"]
    assert view["callback_id"] == "orderline:reply"
    from tests.integrations.slack.conftest import submission_payload, text_value

    done = post_signed(client, interaction_body(submission_payload("reply", view["private_metadata"],
                                                                   {"text": text_value("Back in stock Friday")})))
    assert done.status_code == 200 and not done.data
    with runtime.db.session() as session:
        assert session.get(Order, order_id).events[-1].data["text"] == "Back in stock Friday"


# --- alerts -----------------------------------------------------------------------------------------------------


def test_an_alert_is_posted_once_and_kept_current(runtime, client, auth, slack_shop, staff, fake_slack):
    order_id = new_order(client, auth, slack_shop)
    for _ in range(3):
        with runtime.db.session() as session:
            raise_alert(session, "carrier_failed", "sandbox", "Sandbox Post answers 500", order_id=order_id,
                        outbox_id=4242)
    run_all_jobs(runtime)
    posted = fake_slack.messages(OPS)
    assert len(posted) == 1
    assert "×3" in json.dumps(posted[0]["blocks"], ensure_ascii=False)
    buttons = {e["action_id"]: e for b in posted[0]["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert {"orderline:retry_job", "orderline:show", "orderline:resolve_alert"} <= set(buttons)

    retry = click_payload("retry_job", buttons["orderline:retry_job"]["value"], channel=OPS)
    assert post_signed(client, interaction_body(retry)).status_code == 200
    assert "Nothing to retry" in fake_slack.ephemerals[-1]["text"]  # job 4242 does not exist
    resolve = click_payload("resolve_alert", buttons["orderline:resolve_alert"]["value"], channel=OPS)
    post_signed(client, interaction_body(resolve))
    run_all_jobs(runtime)
    assert len(fake_slack.messages(OPS)) == 1
    assert "Resolved" in json.dumps(fake_slack.messages(OPS)[0]["blocks"])


# --- digest -----------------------------------------------------------------------------------------------------


def test_daily_digest_once_at_the_shops_morning(runtime, client, auth, slack_shop, staff, fake_slack):
    new_order(client, auth, slack_shop)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    early = tomorrow.replace(hour=7, minute=0)
    morning = tomorrow.replace(hour=8, minute=5)
    assert slack_jobs.schedule_digests(runtime, now=early) == 0
    assert slack_jobs.schedule_digests(runtime, now=morning) == 1
    assert slack_jobs.schedule_digests(runtime, now=morning) == 0  # already asked for
    run_all_jobs(runtime)
    digest = fake_slack.messages(OPS)
    assert len(digest) == 1 and "Daily digest" in digest[0]["text"] and "1 orders in" in digest[0]["text"]
    assert slack_jobs.schedule_digests(runtime, now=morning + timedelta(hours=1)) == 0  # sent: never again


# --- Black Friday -----------------------------------------------------------------------------------------------


def test_a_burst_of_new_orders_folds_into_one_summary_card(runtime, client, auth, slack_shop, staff, fake_slack,
                                                            monkeypatch):
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(slack_burst_per_minute=2))
    monkeypatch.setattr(slack_jobs, "SUMMARY_REFRESH_SECONDS", 0.0)
    with runtime.db.session() as session:
        session.get(Shop, slack_shop).settings = {"slack_channel": CARDS, "slack_all_orders": True,
                                                  "auto_approve": True}
    for n in range(6):
        new_order(client, auth, slack_shop, number=f"BF{n}")
    run_all_jobs(runtime)
    top = fake_slack.messages(CARDS)
    cards = [m for m in top if m["text"].startswith("Order ")]
    summaries = [m for m in top if "new orders" in m["text"]]
    assert len(cards) == 2 and len(summaries) == 1
    assert summaries[0]["text"].startswith("4 new orders")


def test_posts_are_paced_per_channel(runtime, client, auth, slack_shop, staff, fake_slack):
    fake_slack.post_interval = 1.0  # the fake answers 429 to anything faster, as Slack would
    for number in ("P1", "P2"):
        new_order(client, auth, slack_shop, number=number)
    run_all_jobs(runtime)
    posts = fake_slack.calls("chat.postMessage")
    assert len(fake_slack.messages(CARDS)) == 2 and len(posts) == 4  # two cards, two thread posts, no 429s
    gaps = [b.at - a.at for a, b in zip(posts, posts[1:], strict=False)]
    assert min(gaps) >= 0.9


# --- Block Kit limits -----------------------------------------------------------------------------------------


def test_every_card_and_modal_stays_inside_block_kit_limits(runtime, client, auth, slack_shop):
    items = [{"sku": f"SKU-{n}", "title": "A very long product title " * 8, "quantity": 1, "unit_price": "1.00"}
             for n in range(200)]
    order_id = new_order(client, auth, slack_shop, line_items=items, note="x & <y> " * 150)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        text, card = blocks.order_card(order, blocks.card_facts(order.events))
        assert len(card) <= 50 and "more lines" in json.dumps(card)
        for block in card:
            Block.parse(block).validate_json()
        request = ShipmentRequest(reference="r1", from_address=blocks_address("SE"), to_address=blocks_address("SE"),
                                  parcels=(Parcel(weight_grams=1200),))
        rates = quote_rates(request, today=datetime.now(UTC))
        ship = blocks.ship_modal(order, rates)
        labels = [o["text"]["text"] for o in ship["blocks"][-1]["element"]["options"]]
        assert labels and all(r.carrier in label for r, label in zip(sorted(
            rates, key=lambda r: (r.amount, r.delivery_days or 99)), labels, strict=False))
        assert json.loads(ship["blocks"][-1]["element"]["options"][0]["value"]).keys() == {"carrier", "service"}
        for view in (blocks.hold_modal(order), blocks.cancel_modal(order), blocks.edit_modal(order),
                     blocks.reply_modal(order, "hej"), blocks.pack_modal(order), ship):
            View(**view).validate_json()
        alert_text, alert_blocks = blocks.alert_message(raise_alert(session, "k", "x", "y" * 4000, order_id=1))
        for block in alert_blocks:
            Block.parse(block).validate_json()


def blocks_address(country: str) -> Any:
    from app.orders.types import NewAddress

    return NewAddress(name="Warehouse", line1="Storgatan 1", city="Stockholm", postal_code="111 22",
                      country_code=country)


def test_shipping_and_tracking_entries_read_on_the_card(runtime, client, auth, slack_shop):
    order_id = new_order(client, auth, slack_shop)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        system = Actor.system()
        record_event(session, order, system, "shipment.label_purchased", "Label bought", shipment_id=1,
                     carrier="UPS", service="Ground", tracking_number="1Z999AA10123456784",
                     tracking_url="https://example.com/t/1Z999AA10123456784")
        record_event(session, order, system, "order.delivered", "Delivered")
        session.flush()
        text, card = blocks.order_card(order, blocks.card_facts(order.events))
    flat = json.dumps(card)
    assert "Shipped with UPS Ground" in flat and "1Z999AA10123456784" in flat and "Delivered" in flat


@pytest.mark.parametrize("value", ["", "{}", "[1]", '{"order_id": "1"}'])
def test_read_value_refuses_malformed(value):
    with pytest.raises(ValueError):
        blocks.read_value(value)


def test_money_shows_the_currency_and_two_places():
    assert blocks.money(Decimal("1234.5"), "SEK") == "SEK 1,234.50"


def test_a_failing_job_kind_alerts_once_and_retry_runs_them_again(runtime, client, auth, slack_shop, staff,
                                                                   fake_slack, monkeypatch):
    from app import outbox
    from app.failures import PermanentError
    from app.models import OutboxEvent
    from jobs import registry
    from jobs.queues import QueueName

    calls: list[int] = []

    def flaky(ctx: Any) -> None:
        calls.append(ctx.outbox_id)
        if len(calls) <= 3:
            raise PermanentError("carrier answered 500")

    monkeypatch.setitem(registry.JOBS, "buy_label_test", registry.JobSpec(flaky, QueueName.PROVIDERS))
    for _ in range(3):
        with runtime.db.session() as session:
            outbox.add_job(session, "buy_label_test")  # type: ignore[arg-type]
    run_all_jobs(runtime)
    alerts = fake_slack.messages(OPS)
    assert len(alerts) == 1 and "buy_label_test" in alerts[0]["text"]
    assert "×3" in json.dumps(alerts[0]["blocks"], ensure_ascii=False)
    retry = next(e for b in alerts[0]["blocks"] if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"] == "orderline:retry_job")
    post_signed(client, interaction_body(click_payload("retry_job", retry["value"], user=STRANGER, channel=OPS)))
    assert "not set up" in fake_slack.ephemerals[-1]["text"]
    post_signed(client, interaction_body(click_payload("retry_job", retry["value"], channel=OPS)))
    assert "3 job(s) requeued" in fake_slack.ephemerals[-1]["text"]
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        assert {row.status for row in session.execute(select(OutboxEvent).where(
            OutboxEvent.job == "buy_label_test")).scalars()} == {"done"}
    assert len(fake_slack.messages(OPS)) == 1 and "Resolved" in json.dumps(fake_slack.messages(OPS)[0]["blocks"])


def test_pick_pack_and_ship_with_a_chosen_rate(runtime, client, auth, slack_shop, staff, fake_slack):
    from app.models import Location, StockLevel
    from tests.integrations.slack.conftest import JONAS, submission_payload, text_value

    with runtime.db.session() as session:
        # Labels wait for staff here (no automatic label after packing), so the card offers "Ship with…".
        session.get(Shop, slack_shop).settings = {"slack_channel": CARDS, "auto_label": False}
        location = Location(code="STHLM", name="Stockholm", country_code="SE")
        session.add(location)
        session.flush()
        session.add_all([StockLevel(location_id=location.id, sku="TEE-BLK-M", on_hand=10, reserved=0),
                         StockLevel(location_id=location.id, sku="CAP-01", on_hand=10, reserved=0)])
    order_id = new_order(client, auth, slack_shop)
    run_all_jobs(runtime)
    post_signed(client, interaction_body(click_payload("approve", card_value(runtime, order_id), user=JONAS)))
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        assert session.get(Order, order_id).status == "allocated"
    card = fake_slack.messages(CARDS)[0]
    pick = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == "orderline:pick")
    post_signed(client, interaction_body(click_payload("pick", pick["value"], user=JONAS)))
    post_signed(client, interaction_body(click_payload("pack", card_value(runtime, order_id), user=JONAS)))
    view = fake_slack.calls("views.open")[-1].args["view"]
    bad = post_signed(client, interaction_body(submission_payload(
        "pack", view["private_metadata"], {"weight_grams": text_value("1,2 kg")}, user=JONAS))).json
    assert bad["errors"] == {"weight_grams": "Whole grams, e.g. 1250."}
    ok = post_signed(client, interaction_body(submission_payload(
        "pack", view["private_metadata"], {"weight_grams": text_value("1250")}, user=JONAS)))
    assert ok.status_code == 200 and not ok.data
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert (order.status, order.packed_weight_grams) == ("packed", 1250)
    run_all_jobs(runtime)
    card = fake_slack.messages(CARDS)[0]
    assert "orderline:ship" in {e["action_id"] for b in card["blocks"] if b["type"] == "actions"
                                for e in b["elements"]}

    # "Ship with…": the modal lists the sandbox carrier's rates; choosing one buys that label.
    post_signed(client, interaction_body(click_payload("ship", card_value(runtime, order_id), user=JONAS)))
    view = fake_slack.calls("views.open")[-1].args["view"]
    options = view["blocks"][-1]["element"]["options"]
    assert len(options) > 1
    chosen = options[-1]  # not the cheapest: staff's choice must win over rate shopping
    rate = json.loads(chosen["value"])
    shipped = post_signed(client, interaction_body(submission_payload(
        "ship", view["private_metadata"],
        {"rate": {"value": {"type": "radio_buttons", "selected_option": chosen}}}, user=JONAS)))
    assert shipped.status_code == 200 and not shipped.data
    run_all_jobs(runtime)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        (shipment,) = order.shipments
        assert order.status == "shipped"
        assert (shipment.carrier, shipment.service) == (rate["carrier"], rate["service"])
        number = shipment.tracking_number
    card_text = json.dumps(fake_slack.messages(CARDS)[0]["blocks"])
    assert number and number in card_text


def test_a_carrier_exception_gets_a_card_and_one_ops_alert(runtime, client, auth, slack_shop, staff, fake_slack):
    from app.models import Shipment

    with runtime.db.session() as session:
        session.get(Shop, slack_shop).settings = {"slack_channel": CARDS, "auto_approve": True}
    order_id = new_order(client, auth, slack_shop, number="EX1")
    run_all_jobs(runtime)
    assert fake_slack.messages(CARDS) == []  # approved automatically: nobody needs to look
    for description in ("Address not found", "Address not found, returning to sender"):
        with runtime.db.session() as session:
            order = session.get(Order, order_id)
            shipment = order.shipments[0] if order.shipments else Shipment(order=order, status="exception")
            session.add(shipment)
            session.flush()
            record_event(session, order, Actor.system("PostNord"), "shipment.tracking", description,
                         shipment_id=shipment.id, status="exception", description=description)
    run_all_jobs(runtime)
    assert len(fake_slack.messages(CARDS)) == 1
    assert "Address not found" in json.dumps(fake_slack.messages(CARDS)[0]["blocks"])
    alerts = fake_slack.messages(OPS)
    assert len(alerts) == 1 and "Carrier exception on order EX1" in alerts[0]["text"]
    assert "×2" in json.dumps(alerts[0]["blocks"], ensure_ascii=False)
    assert "orderline:show" in json.dumps(alerts[0]["blocks"])


def test_no_digest_is_asked_for_when_there_is_nowhere_to_post_it(runtime, manual_shop, monkeypatch):
    monkeypatch.setattr(runtime, "settings", runtime.settings.with_overrides(slack_ops_channel=""))
    morning = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9)
    assert slack_jobs.schedule_digests(runtime, now=morning) == 0


def test_a_card_names_each_approval_rule_that_flagged_the_order(runtime, client, auth, slack_shop, staff,
                                                                 fake_slack):
    with runtime.db.session() as session:
        session.get(Shop, slack_shop).settings = {
            "slack_channel": CARDS, "auto_approve": True, "approval": {"max_order_value": "100.00"}}
    new_order(client, auth, slack_shop, shipping_level="express")  # first order, express, above the limit
    run_all_jobs(runtime)
    (card,) = fake_slack.messages(CARDS)
    text = json.dumps(card["blocks"], ensure_ascii=False)
    lines = [line for block in card["blocks"] if block["type"] == "section" and "text" in block
             for line in block["text"]["text"].split("\n")]
    flagged = [line for line in lines if line.startswith(":triangular_flag_on_post:")]
    assert len(flagged) == 2, text
    assert "is above the 100.00 limit" in flagged[0]
    assert "First order from this customer, with express shipping" in flagged[1]
