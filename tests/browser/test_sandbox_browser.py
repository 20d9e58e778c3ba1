"""The demo's sandbox pages in a real browser: a button on a Slack card moves the order (and the card changes on
the page without a reload); texting "status" on the customer phone gets the bot's answer naming the status."""

from __future__ import annotations

from typing import Any

from app.sms import texts
from integrations.slack.sandbox import ORDERS_CHANNEL, SlackSandbox
from tests.browser.conftest import sign_in
from tests.test_outbox import run_all_jobs
from tests.test_sandbox_pages import (  # noqa: F401 - fixtures: the sandboxes, their settings, a shop
    _no_proxy,
    card_of,
    new_order,
    phone_sandbox,
    settings,
    shop,
    slack_sandbox,
)

ANA = "U0SBXANA01"


def test_approve_on_a_sandbox_slack_card_moves_the_order_and_the_card_updates(
        page: Any, live_server: str, client: Any, auth: Any, tokens: dict[str, str], shop: int,  # noqa: F811
        slack_sandbox: SlackSandbox, runtime: Any) -> None:  # noqa: F811
    order_id = new_order(client, auth, shop)
    run_all_jobs(runtime)
    card = card_of(slack_sandbox)
    sign_in(page, live_server, tokens["viewer"])  # a viewer may look; the Slack user picked is who acts
    page.goto(f"{live_server}/sandbox/slack")
    page.select_option("#sk-user", ANA)
    message = page.locator(f'article.sk-message[data-ts="{card["ts"]}"]')
    assert "Needs review" in message.locator(".sk-body").first.inner_text()

    message.locator('button[data-action-id="orderline:approve"]').click()
    page.locator("#sk-status", has_text="Orderline answered 200").wait_for()
    api = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json
    assert api["status"] in ("approved", "allocated")
    assert next(e for e in api["timeline"] if e["type"] == "order.approved")["actor"]["id"] == ANA

    run_all_jobs(runtime)  # the worker updates the card; the page's poll shows it
    message.locator('button[data-action-id="orderline:approve"]').wait_for(state="detached")
    assert "Approved by" in message.inner_text()
    assert slack_sandbox.fake is not None and slack_sandbox.fake.messages(ORDERS_CHANNEL)[0].get("edited")


def test_texting_status_on_the_sandbox_phone_gets_the_orders_status(
        page: Any, live_server: str, client: Any, auth: Any, tokens: dict[str, str], shop: int,  # noqa: F811
        runtime: Any) -> None:
    order_id = new_order(client, auth, shop)
    run_all_jobs(runtime)
    number = client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json["number"]
    sign_in(page, live_server, tokens["viewer"])
    page.goto(f"{live_server}/sandbox/phone")
    page.select_option("#ph-number", "+46701234567")  # Maria Lind: order_payload's number
    page.fill("#ph-compose input[name=body]", "status")
    page.click("#ph-compose button")
    reply = page.locator('.ph-msg.in[data-how="reply"]')
    reply.wait_for()
    answer = reply.inner_text()
    assert number in answer
    assert any(texts.render(language, "state.needs_review") in answer for language in texts.LANGUAGES), answer
    assert page.locator('.ph-msg.out[data-how="sent"]').inner_text().startswith("status")
