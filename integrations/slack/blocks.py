"""Block Kit for everything Orderline shows in Slack: order cards, modals, App Home, alerts, digests, summaries.

Pure functions of domain rows and plain values: no database queries, no Slack calls. Every card stays inside
Block Kit's limits (PROTOCOLS.md §4.4b: ≤ 50 blocks, section text ≤ 3,000 characters, button text ≤ 75):
a 200-line order lists its first lines and says how many more there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.models import Alert, Order, OrderEvent, Shop
from integrations.carriers.base import Rate

Block = dict[str, Any]

ACTION_PREFIX = "orderline:"
MAX_ITEM_LINES = 12
MAX_SECTION = 2900  # Slack's limit is 3,000; room for the "…" we append
SHIPPING_LEVELS = ("economy", "standard", "express", "overnight", "pickup")

# The buttons each status offers: (action, label, style). Everything goes through actions.perform.
BUTTONS: Mapping[str, Sequence[tuple[str, str, str | None]]] = {
    "received": (("approve", "Approve", "primary"), ("hold", "Hold", None), ("edit", "Edit", None),
                 ("cancel", "Cancel", "danger")),
    "needs_review": (("approve", "Approve", "primary"), ("hold", "Hold", None), ("edit", "Edit", None),
                     ("cancel", "Cancel", "danger")),
    "approved": (("hold", "Hold", None), ("edit", "Edit", None), ("cancel", "Cancel", "danger")),
    "backordered": (("hold", "Hold", None), ("edit", "Edit", None), ("cancel", "Cancel", "danger")),
    "allocated": (("pick", "Mark picked", "primary"), ("hold", "Hold", None), ("edit", "Edit", None),
                  ("cancel", "Cancel", "danger")),
    "picking": (("pack", "Mark packed", "primary"), ("hold", "Hold", None), ("cancel", "Cancel", "danger")),
    "packed": (("ship", "Ship with…", "primary"), ("hold", "Hold", None), ("cancel", "Cancel", "danger")),
    "on_hold": (("release", "Release", "primary"), ("cancel", "Cancel", "danger")),
}
STATUS_LABELS: Mapping[str, str] = {
    "received": "Received", "needs_review": ":eyes: Needs review", "approved": "Approved",
    "on_hold": ":double_vertical_bar: On hold", "allocated": "Allocated", "backordered": ":warning: Backordered",
    "picking": "Picking", "packed": "Packed", "partially_shipped": "Partly shipped",
    "shipped": ":truck: Shipped", "delivered": ":white_check_mark: Delivered", "cancelled": ":x: Cancelled",
    "return_requested": "Return requested", "returned": "Returned", "refunded": "Refunded",
}


def esc(text: object) -> str:
    """Text made safe for mrkdwn: Slack reads &, < and > as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_SECTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 75) -> Block:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text) or " "}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text) or " "}]}


def button_value(order: Order) -> str:
    """What a card's button carries: the order and the version the card showed (a stale click is detected)."""
    return json.dumps({"order_id": order.id, "version": order.version})


def read_value(value: str | None) -> tuple[int, int | None]:
    """(order id, version) from a button's value or a modal's private_metadata; ValueError when malformed."""
    data = json.loads(value or "")
    if not isinstance(data, dict) or not isinstance(data.get("order_id"), int):
        raise ValueError("no order id")
    version = data.get("version")
    return data["order_id"], version if isinstance(version, int) else None


def money(amount: Decimal | None, currency: str) -> str:
    return f"{currency} {amount if amount is not None else Decimal(0):,.2f}"


def when(moment: datetime | None) -> str:
    """A Slack date token: each reader sees it in their own time zone."""
    if moment is None:
        return ""
    stamp = int(moment.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def admin_url(order: Order, shop: Shop) -> str | None:
    """The order's page in the sales channel's own admin, where there is one."""
    ext = order.external_id
    if shop.channel == "shopify":
        return f"https://{shop.external_id}/admin/orders/{ext}"
    if shop.channel == "woocommerce":
        return f"{shop.external_id.rstrip('/')}/wp-admin/post.php?post={ext}&action=edit"
    if shop.channel == "bigcommerce":
        return f"https://store-{shop.external_id}.mybigcommerce.com/manage/orders/{ext}"
    return None


def actor_text(event: OrderEvent) -> str:
    """Who did it, as Slack shows people: a Slack user id becomes a mention."""
    if event.actor_kind == "staff" and event.actor_id and event.actor_id.startswith(("U", "W")):
        return f"<@{event.actor_id}>"
    return esc(event.actor_name or event.actor_kind)


# --- timeline ----------------------------------------------------------------------------------------------


def shipping_line(event: OrderEvent) -> str | None:
    """How shipping and tracking entries read on a card (shipping/tracking helpers' event types)."""
    data = event.data or {}
    if event.type == "shipment.label_purchased":
        number = data.get("tracking_number") or ""
        link = f"<{data['tracking_url']}|{esc(number)}>" if data.get("tracking_url") else esc(number)
        return f":package: Shipped with {esc(data.get('carrier') or '?')} {esc(data.get('service') or '')} {link}"
    if event.type == "shipment.tracking":
        status = str(data.get("status") or "").replace("_", " ")
        return f":truck: {esc(status.capitalize())}" + (f": {esc(data['description'])}" if data.get("description")
                                                          else "")
    if event.type == "order.delivered":
        return ":white_check_mark: Delivered"
    if event.type == "order.step_failed":
        return f":rotating_light: {esc(data.get('step') or 'A step')} failed: {esc(data.get('message') or '')}"
    return None


def timeline_text(event: OrderEvent) -> str:
    """One timeline entry as a thread line."""
    if event.type == "order.customer_message":
        return f":speech_balloon: *Customer:* {esc((event.data or {}).get('text') or event.message)}"
    if event.type == "order.customer_reply":
        return f":outbox_tray: {actor_text(event)} to the customer: {esc((event.data or {}).get('text') or '')}"
    line = shipping_line(event) or esc(event.message)
    return f"{line} · {actor_text(event)} {when(event.created_at)}"


def thread_blocks(events: Sequence[OrderEvent], order: Order) -> tuple[str, list[Block]]:
    """The thread message telling `events`; a customer's message that needs staff gets a Reply button."""
    lines = [timeline_text(e) for e in events]
    text = "\n".join(lines)
    blocks: list[Block] = [section(text)]
    if any(e.type == "order.customer_message" and (e.data or {}).get("needs_staff") for e in events):
        blocks.append({"type": "actions", "block_id": "relay", "elements": [
            _button("reply", "Reply to the customer", order, "primary")]})
        blocks.append(context("Or answer in this thread: your reply goes to the customer by SMS."))
    return clip(text, 3000), blocks


# --- the order card ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardFacts:
    """What the card says beyond the order's columns, taken from its timeline by the caller."""

    last_change: OrderEvent | None = None
    last_staff: OrderEvent | None = None
    flags: Sequence[str] = ()
    shipping: Sequence[str] = ()


def card_facts(events: Iterable[OrderEvent]) -> CardFacts:
    """The card's status lines, flags and shipping lines, from the order's timeline (oldest first)."""
    last: OrderEvent | None = None
    staff: OrderEvent | None = None
    flags: list[str] = []
    shipping: list[str] = []
    for event in events:
        if event.type in ("order.customer_message", "order.customer_reply", "order.note_added"):
            continue
        last = event
        if event.actor_kind == "staff":
            staff = event
        line = shipping_line(event)
        if line and event.type != "order.step_failed":
            shipping.append(line)
        elif line:
            flags.append(line)
        elif event.type in ("order.needs_review", "order.backordered", "order.cancel_requested_by_channel"):
            flags.append(esc(event.message))
    return CardFacts(last, staff, flags[-5:], shipping[-4:])


def _button(action: str, label: str, order: Order, style: str | None = None) -> Block:
    element: Block = {"type": "button", "action_id": ACTION_PREFIX + action, "text": plain(label),
                      "value": button_value(order)}
    if style:
        element["style"] = style
    return element


def order_card(order: Order, facts: CardFacts = CardFacts()) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of an order's card."""
    shop = order.shop
    status = STATUS_LABELS.get(order.status, order.status)
    title = f"Order {order.number} · {shop.name} ({order.channel})"
    text = f"{title}: {order.status.replace('_', ' ')}, {money(order.total, order.currency)}"
    blocks: list[Block] = [{"type": "header", "text": plain(title, 150)}]
    address = order.address("shipping")
    where = ", ".join(p for p in (address.city, address.country_code) if p) if address else ""
    customer = esc(order.customer_name or "—") + (f" ({esc(order.customer_email)})" if order.customer_email else "")
    blocks.append({"type": "section", "fields": [
        {"type": "mrkdwn", "text": f"*Status*\n{status}"},
        {"type": "mrkdwn", "text": f"*Total*\n{money(order.total, order.currency)}"},
        {"type": "mrkdwn", "text": clip(f"*Customer*\n{customer}", 2000)},
        {"type": "mrkdwn", "text": clip(f"*Shipping*\n{esc(order.shipping_level)}" + (f" to {esc(where)}" if where
                                                                                        else ""), 2000)},
    ]})
    items = list(order.line_items)
    lines = [f"• {item.quantity} × {esc(item.title)}" + (f" `{esc(item.sku)}`" if item.sku else "")
             for item in items[:MAX_ITEM_LINES]]
    if len(items) > MAX_ITEM_LINES:
        rest = sum(item.quantity for item in items[MAX_ITEM_LINES:])
        lines.append(f"…and {len(items) - MAX_ITEM_LINES} more lines ({rest} units)")
    blocks.append(section("\n".join(lines) or "_no items_"))
    flags = list(facts.flags)
    reasons = [str(r.get("message")) for r in order.review_reasons or [] if r.get("message")]
    if reasons and order.status == "needs_review":
        # The approval rules' flags, one line each, instead of the timeline's one-line summary of them.
        flags = [f for f in flags if not f.startswith("Waiting for review")]
        flags[0:0] = [f":triangular_flag_on_post: {esc(reason)}" for reason in reasons]
    if order.risk_level and order.risk_level not in ("low", "normal"):
        flags.insert(0, f":warning: Risk {esc(order.risk_level)}")
    if order.status == "on_hold" and order.hold_reason:
        flags.insert(0, f":double_vertical_bar: Held: {esc(order.hold_reason)}")
    if order.status == "cancelled" and order.cancel_reason:
        flags.insert(0, f":x: Cancelled: {esc(order.cancel_reason)}")
    if order.note:
        flags.append(f":memo: {esc(order.note)}")
    if flags:
        blocks.append(section("\n".join(flags)))
    if facts.shipping:
        blocks.append(section("\n".join(facts.shipping)))
    buttons = [_button(action, label, order, style) for action, label, style in BUTTONS.get(order.status, ())]
    if order.customer_phone and order.status not in ("cancelled",):
        buttons.append(_button("reply", "Text customer", order))
    link = admin_url(order, shop)
    if link:
        buttons.append({"type": "button", "action_id": ACTION_PREFIX + "open", "text": plain(f"Open in {shop.channel}"),
                        "url": link})
    if buttons:
        blocks.append({"type": "actions", "block_id": f"order:{order.id}", "elements": buttons[:25]})
    # "Approved by @ana 10:42": the last thing a person did, then what the system did after it, if anything.
    lines = [f"{esc(e.message)} · {actor_text(e)} {when(e.created_at)}"
             for e in (facts.last_staff, facts.last_change) if e is not None]
    for line in dict.fromkeys(lines or [f"Placed {when(order.placed_at)}"]):
        blocks.append(context(line))
    return clip(text, 3000), blocks


# --- modals ------------------------------------------------------------------------------------------------


def _modal(callback_id: str, title: str, order: Order, blocks: list[Block], submit: str,
           extra: Mapping[str, Any] | None = None) -> Block:
    meta = {"order_id": order.id, "version": order.version, **(extra or {})}
    return {"type": "modal", "callback_id": ACTION_PREFIX + callback_id, "title": plain(title, 24),
            "submit": plain(submit, 24), "close": plain("Back", 24), "private_metadata": json.dumps(meta),
            "blocks": [section(f"*Order {esc(order.number)}* · {esc(order.customer_name or '')}"), *blocks]}


def _text_input(block_id: str, label: str, *, multiline: bool = False, initial: str | None = None,
                optional: bool = False, max_length: int = 500) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": "value", "multiline": multiline,
                      "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    return {"type": "input", "block_id": block_id, "label": plain(label, 2000), "element": element,
            "optional": optional}


def hold_modal(order: Order) -> Block:
    return _modal("hold", "Hold order", order, [_text_input("reason", "Why is it on hold?", multiline=True)], "Hold")


RESTOCK_CHOICES = (("yes", "Put the goods back in stock"), ("no", "Write picked goods off (damaged or lost)"))


def cancel_modal(order: Order) -> Block:
    options = [{"text": plain(label), "value": value} for value, label in RESTOCK_CHOICES]
    return _modal("cancel", "Cancel order", order, [
        section(":warning: Cancelling cannot be undone here."),
        _text_input("reason", "Reason for cancelling", multiline=True),
        {"type": "input", "block_id": "restock", "label": plain("The goods"),
         "element": {"type": "radio_buttons", "action_id": "value", "options": options,
                     "initial_option": options[0]}}], "Cancel order")


def pack_modal(order: Order) -> Block:
    """Packed, with the scale's weight when it differs from what the SKUs say (optional)."""
    return _modal("pack", "Mark packed", order, [
        _text_input("weight_grams", "Weight on the scale, in grams (leave empty if as expected)", optional=True,
                    max_length=7)], "Packed")


def reply_modal(order: Order, customer_text: str | None = None) -> Block:
    blocks: list[Block] = []
    if customer_text:
        blocks.append(context(f"The customer wrote: {esc(customer_text)}"))
    blocks.append(_text_input("text", f"Text to {order.customer_name or 'the customer'}", multiline=True,
                              max_length=1600))
    return _modal("reply", "Reply to customer", order, blocks, "Send")


ADDRESS_FIELDS = (("name", "Name"), ("line1", "Street address"), ("line2", "Address line 2"),
                  ("postal_code", "Postal code"), ("city", "City"), ("region", "Region"),
                  ("country_code", "Country code"))


def edit_modal(order: Order) -> Block:
    address = order.address("shipping")
    blocks: list[Block] = []
    for name, label in ADDRESS_FIELDS:
        blocks.append(_text_input(f"address.{name}", label, initial=getattr(address, name, None) if address else None,
                                  optional=name in ("line2", "region"), max_length=2 if name == "country_code"
                                  else 255))
    options = [{"text": plain(level.capitalize()), "value": level} for level in SHIPPING_LEVELS]
    current = next((o for o in options if o["value"] == order.shipping_level), options[1])
    blocks.append({"type": "input", "block_id": "shipping_level", "label": plain("Shipping level"),
                   "element": {"type": "static_select", "action_id": "value", "options": options,
                               "initial_option": current}})
    blocks.append(_text_input("note", "Note for the team", multiline=True, initial=order.note, optional=True))
    return _modal("edit", "Edit order", order, blocks, "Save")


def rate_value(rate: Rate) -> str:
    return json.dumps({"carrier": rate.carrier, "service": rate.service})


def ship_modal(order: Order, rates: Sequence[Rate]) -> Block:
    """The rates from rate shopping, cheapest first; the chosen carrier and service go to the `ship` action."""
    if not rates:
        return _modal("ship", "Ship with…", order, [section("No carrier offered a rate for this parcel.")], "Close")
    ordered = sorted(rates, key=lambda r: (r.amount, r.delivery_days or 99))[:100]
    options = []
    for rate in ordered:
        days = f", {rate.delivery_days} day{'s' if rate.delivery_days != 1 else ''}" if rate.delivery_days else ""
        options.append({"text": plain(f"{rate.carrier} {rate.service}: {rate.currency} {rate.amount}{days}"),
                        "value": rate_value(rate)})
    return _modal("ship", "Ship with…", order, [{
        "type": "input", "block_id": "rate", "label": plain("Carrier and service"),
        "element": {"type": "radio_buttons" if len(options) <= 10 else "static_select", "action_id": "value",
                    "options": options, "initial_option": options[0]}}], "Buy label")


def state_value(values: Mapping[str, Any], block_id: str) -> str | None:
    """A submitted modal's value for one input (text, select or radio), or None."""
    field = (values.get(block_id) or {}).get("value") or {}
    if field.get("selected_option"):
        return str(field["selected_option"].get("value"))
    value = field.get("value")
    return None if value is None else str(value)


# --- App Home, alerts, digest, summary ---------------------------------------------------------------------


def home_view(queues: Sequence[tuple[str, Sequence[Order]]], *, total: Mapping[str, int]) -> Block:
    """The queue at a glance: one section per queue, each order with a button that shows its card."""
    blocks: list[Block] = [{"type": "header", "text": plain("Orders that need you", 150)}]
    for title, orders in queues:
        count = total.get(title, len(orders))
        blocks.append({"type": "divider"})
        blocks.append(section(f"*{esc(title)}* · {count}" + ("" if orders else "\n_nothing waiting_")))
        for order in orders[:8]:
            if len(blocks) >= 48:
                break
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(
                f"*{esc(order.number)}* {esc(order.customer_name or '')} · {money(order.total, order.currency)} · "
                f"{esc(order.channel)} · placed {when(order.placed_at)}")},
                "accessory": {"type": "button", "action_id": ACTION_PREFIX + "show",
                              "text": plain("Show"), "value": button_value(order)}})
    return {"type": "home", "blocks": blocks[:50]}


def alert_message(alert: Alert) -> tuple[str, list[Block]]:
    data = alert.data or {}
    text = f":rotating_light: {esc(alert.message)}"
    if (alert.count or 1) > 1:
        text += f" (×{alert.count}, last {when(alert.last_seen_at)})"
    blocks: list[Block] = [section(text)]
    buttons: list[Block] = []
    if isinstance(data.get("outbox_id"), int):
        buttons.append({"type": "button", "action_id": ACTION_PREFIX + "retry_job", "text": plain("Retry"),
                        "style": "primary",
                        "value": json.dumps({"alert_id": alert.id, "outbox_id": data["outbox_id"]})})
    if isinstance(data.get("order_id"), int):
        buttons.append({"type": "button", "action_id": ACTION_PREFIX + "show", "text": plain("Open order"),
                        "value": json.dumps({"order_id": data["order_id"]})})
    if alert.resolved_at is None:
        buttons.append({"type": "button", "action_id": ACTION_PREFIX + "resolve_alert", "text": plain("Resolved"),
                        "value": json.dumps({"alert_id": alert.id})})
    else:
        blocks.append(context(f":white_check_mark: Resolved {when(alert.resolved_at)}"))
    if buttons:
        blocks.append({"type": "actions", "block_id": f"alert:{alert.id}", "elements": buttons})
    blocks.append(context(f"{esc(alert.kind)} · first seen {when(alert.created_at)}"))
    return clip(alert.message, 3000), blocks


@dataclass(frozen=True)
class Figures:
    """A period's numbers for the digest and `/order stats`."""

    label: str
    orders_in: int
    shipped: int
    late: int
    returns: int
    revenue: Mapping[str, Decimal]
    by_status: Mapping[str, int]
    by_channel: Mapping[str, int]


def figures_blocks(title: str, figures: Figures) -> tuple[str, list[Block]]:
    revenue = ", ".join(f"{cur} {amount:,.2f}" for cur, amount in sorted(figures.revenue.items())) or "—"
    text = (f"{title}: {figures.orders_in} orders in, {figures.shipped} shipped, {figures.late} late, "
            f"{figures.returns} returns, revenue {revenue}")
    statuses = ", ".join(f"{esc(k.replace('_', ' '))} {v}" for k, v in sorted(figures.by_status.items())) or "—"
    channels = ", ".join(f"{esc(k)} {v}" for k, v in sorted(figures.by_channel.items())) or "—"
    blocks: list[Block] = [
        {"type": "header", "text": plain(title, 150)},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Orders in*\n{figures.orders_in}"},
            {"type": "mrkdwn", "text": f"*Shipped*\n{figures.shipped}"},
            {"type": "mrkdwn", "text": f"*Late*\n{figures.late}"},
            {"type": "mrkdwn", "text": f"*Returns*\n{figures.returns}"},
            {"type": "mrkdwn", "text": clip(f"*Revenue*\n{revenue}", 2000)},
        ]},
        section(f"*By status:* {statuses}\n*By channel:* {channels}"),
    ]
    return text, blocks


def summary_message(hour: datetime, orders: Sequence[Order], shop_name: str) -> tuple[str, list[Block]]:
    """A burst's informational cards folded into one: counted per status, the latest few listed."""
    by_status: dict[str, int] = {}
    for order in orders:
        by_status[order.status] = by_status.get(order.status, 0) + 1
    text = f"{len(orders)} new orders for {shop_name} since {hour:%H:%M} UTC (busy hour: summarised)"
    latest = ", ".join(f"{esc(o.number)}" for o in orders[-15:])
    statuses = ", ".join(f"{esc(k.replace('_', ' '))} {v}" for k, v in sorted(by_status.items()))
    blocks: list[Block] = [
        section(f":zap: *{len(orders)} new orders* for {esc(shop_name)} since {when(hour)}\n{statuses}"),
        context(f"Latest: {latest}. Orders that need a person still get their own card; "
                "`/order pending` lists the queue."),
    ]
    return text, blocks
