"""The order page's "Slack card" and "Text messages" panels (the `panels.register` hook).

Slack: the card as staff see it. When the card was posted to the Slack sandbox (the demo), its blocks and
thread are read back from the sandbox's fake Slack; otherwise (a real workspace, whose history this page does
not fetch) the card is drawn from the order as the card job renders it (`integrations/slack/blocks.py`).
SMS: every text stored for the order (`sms_messages`), both ways, with its delivery status.
"""

from __future__ import annotations

from flask import current_app, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import object_session

from app.dashboard import panels
from app.models import Order, SlackMessage, SmsMessage
from integrations.slack import blocks, html


def _css() -> str:
    return url_for("dashboard.static", filename="sandbox/sandbox.css")


def _sandbox_message(row: SlackMessage) -> tuple[str, list[str]] | None:
    """(card HTML, thread HTML) of the card as the sandbox workspace holds it, or None outside the demo."""
    sandbox = current_app.extensions.get("orderline.sandbox.slack")
    fake = getattr(sandbox, "fake", None)
    if fake is None or not row.ts:
        return None
    from integrations.slack.sandbox import user_name

    found = next((m for m in fake.messages(row.channel) if m["ts"] == row.ts), None)
    if found is None:
        return None
    card = html.blocks_html(found.get("blocks"), str(found.get("text") or ""), user_name, enabled=False)
    thread = [str(html.blocks_html(r.get("blocks"), str(r.get("text") or ""), user_name, enabled=False))
              for r in fake.replies(row.channel, row.ts)]
    return str(card), thread


def slack_card(order: Order) -> Markup | None:
    session = object_session(order)
    if session is None:
        return None
    row = session.execute(select(SlackMessage).where(SlackMessage.order_id == order.id,
                                                     SlackMessage.kind == "card")).scalars().first()
    if row is None:
        return None
    where = f"#{escape(row.channel)}" + ("" if row.ts else " (being posted)")
    from_sandbox = _sandbox_message(row)
    if from_sandbox is not None:
        card, thread = from_sandbox
        replies = "".join(f'<div class="sk-reply">{reply}</div>' for reply in thread)
        note = f"In {where}, as the Slack sandbox shows it" + (f" · {len(thread)} thread replies" if thread else "")
        return Markup(f'<link rel="stylesheet" href="{_css()}">'  # noqa: S704
                      f'<p class="muted">{note}</p><div class="sk-card">{card}</div>'
                      + (f'<div class="sk-thread">{replies}</div>' if replies else ""))
    _text, card_blocks = blocks.order_card(order, blocks.card_facts(order.events))
    rendered = html.blocks_html(card_blocks, enabled=False)
    return Markup(f'<link rel="stylesheet" href="{_css()}">'  # noqa: S704
                  f'<p class="muted">In {where}; drawn from the order as the card shows it now</p>'
                  f'<div class="sk-card">{rendered}</div>')


def sms_thread(order: Order) -> Markup | None:
    session = object_session(order)
    if session is None:
        return None
    texts = list(session.execute(select(SmsMessage).where(SmsMessage.order_id == order.id)
                                 .order_by(SmsMessage.created_at, SmsMessage.id)).scalars())
    if not texts:
        return None
    bubbles = []
    for text in texts:
        side = "customer" if text.direction == "inbound" else "staff"
        detail = f"{text.kind.replace('_', ' ')} · {text.status} · {text.created_at:%Y-%m-%d %H:%M} UTC"
        bubbles.append(f'<div class="bubble {side}" data-direction="{escape(text.direction)}">'
                       f'{escape(text.body or "")}<small>{escape(detail)}</small></div>')
    return Markup(f'<div class="sms-thread">{"".join(bubbles)}</div>')  # noqa: S704


panels.register("slack", "Slack card", slack_card)
panels.register("sms", "Text messages", sms_thread)
