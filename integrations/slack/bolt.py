"""The Bolt app: buttons, modals, `/order`, App Home and thread replies, all turned into `actions.perform`.

Every listener acknowledges Slack at once (3-second rule) and never raises: a failure becomes a clear message
to the person who clicked, never a 500. Slack calls made here are the ones that must happen while the person
waits (`views.open` needs the trigger within 3 s, an ephemeral answer); cards are refreshed by the outbox job
that each committed action asks for (`app.slack_app` listener → `jobs.slack.sync_card`).

Permissions: a Slack user acts with the strongest role mapped to them or to one of their user groups
(`orderline slack staff add`); an unmapped user can do nothing. A click on a card older than the order
(the button's version is not the order's) answers with the order's current state instead of acting; two
clicks at once: one wins, the other is told who did it first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Alert, Order, OutboxEvent
from app.orders import actions
from app.orders.errors import Forbidden, IllegalTransition, NotFound, OrderError, VersionConflict
from app.orders.types import Actor, Role
from app.runtime import Runtime
from app.store import utcnow
from integrations.carriers.base import Rate
from integrations.slack import blocks, queries

log = structlog.get_logger("orderline.slack.bolt")

P = blocks.ACTION_PREFIX
Json = dict[str, Any]
# Opening these buttons shows a modal; the rest act at once.
MODAL_ACTIONS = ("hold", "cancel", "edit", "reply", "ship", "pack")
DIRECT_ACTIONS = ("approve", "release", "pick")
EVENT_DEDUPE_SECONDS = 3600
MAX_TEXT = 1600


@dataclass
class Hooks:
    """What the Bolt app needs from the rest of Orderline, given by the composition root (`app.slack_app`)."""

    # Re-run failed outbox jobs (an alert's Retry button); returns the ids requeued.
    requeue_jobs: Callable[[Sequence[int]], list[int]] = lambda ids: []
    # Rate shopping for "Ship with…" (the shipping module's `quote_rates`); None while it is not installed.
    quote_rates: Callable[[Session, int], list[Rate]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Refusal(Exception):
    """What to tell the person instead of acting."""


def _action(body: Json) -> Json:
    """The clicked element of a block_actions payload."""
    found = (body.get("actions") or [{}])[0]
    return found if isinstance(found, dict) else {}


def _user(body: Json) -> tuple[str, str]:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or ""), str(user.get("username") or user.get("name") or user.get("id") or "")
    return str(body.get("user_id") or ""), str(body.get("user_name") or body.get("user_id") or "")


def staff_actor(session: Session, user_id: str, name: str) -> Actor:
    role = queries.role_of(session, user_id) if user_id else None
    if role is None:
        raise Refusal(f"You are not set up in Orderline yet: ask a manager to run "
                      f"`orderline slack staff add {user_id or '<your Slack id>'} operator`.")
    return Actor.staff(user_id, name, role)


def current_state(session: Session, order: Order, *, who_first: bool) -> str:
    """What to say when the click came too late: the order's status and who moved it last."""
    change = queries.last_change(session, order.id)
    state = order.status.replace("_", " ")
    if change is None:
        return f"Order {order.number} is now {state}."
    who = blocks.actor_text(change)
    prefix = f"{who} did it first: " if who_first and change.actor_kind == "staff" else ""
    return (f"{prefix}order {order.number} is now *{state}* "
            f"({blocks.esc(change.message)}, {blocks.when(change.created_at)}).")


def _refresh_card(session: Session, order_id: int) -> None:
    """Ask for the card to be re-rendered (a stale card was clicked): only when it has one."""
    if queries.card_of(session, order_id) is not None:
        queries.request_card_sync(session, order_id, "update")


class OrderlineSlack:
    """The Bolt listeners, bound to one runtime."""

    def __init__(self, runtime: Runtime, client: WebClient, hooks: Hooks) -> None:
        self.runtime = runtime
        self.client = client
        self.hooks = hooks

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    # --- talking back -----------------------------------------------------------------------------------

    def tell(self, body: Json, text: str, message_blocks: list[Json] | None = None) -> None:
        """An ephemeral answer where the click happened; a DM when it came from App Home (no channel)."""
        user_id, _ = _user(body)
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        arguments: Json = {"text": blocks.clip(text, 3000)}
        if message_blocks:
            arguments["blocks"] = message_blocks
        try:
            if channel:
                self.client.chat_postEphemeral(channel=channel, user=user_id, **arguments)
            elif user_id:
                self.client.chat_postMessage(channel=user_id, **arguments)
        except SlackApiError as error:
            log.warning("slack.tell_failed", error=str(error.response.get("error")))

    # --- buttons ----------------------------------------------------------------------------------------

    def _order_for_click(self, session: Session, body: Json, action: Json) -> tuple[Order, int | None]:
        try:
            order_id, version = blocks.read_value(action.get("value"))
        except (ValueError, TypeError):
            raise Refusal("This button does not name an order; it may come from an old version of Orderline.") from None
        order = session.get(Order, order_id)
        if order is None:
            raise Refusal(f"That order no longer exists in Orderline (id {order_id}).")
        if version is not None and order.version != version:
            _refresh_card(session, order.id)
            raise Refusal("This card is out of date, so nothing was done. " + current_state(session, order,
                                                                                          who_first=False))
        return order, version

    def _clicked(self, session: Session, body: Json) -> tuple[Actor, Order, int | None]:
        """Who clicked (mapped staff) and the order the button names, checked to be current."""
        user_id, user_name = _user(body)
        actor = staff_actor(session, user_id, user_name)
        order, version = self._order_for_click(session, body, _action(body))
        return actor, order, version

    def act(self, ack: Ack, body: Json, name: str) -> None:
        """Approve, release, mark picked: at once, as the clicking user."""
        ack()
        action = _action(body)
        try:
            with self.runtime.db.session() as session:
                actor, order, version = self._clicked(session, body)
                actions.perform(session, order.id, name, actor, expected_version=version)
        except Refusal as refusal:
            self.tell(body, str(refusal))
        except VersionConflict:
            self._told_first(body, action)
        except OrderError as error:
            self.tell(body, f"Nothing was done: {error.message}.")

    def _told_first(self, body: Json, action: Json) -> None:
        try:
            order_id, _ = blocks.read_value(action.get("value"))
        except (ValueError, TypeError):
            return
        with self.runtime.db.session() as session:
            order = session.get(Order, order_id)
            if order is not None:
                _refresh_card(session, order.id)
                self.tell(body, current_state(session, order, who_first=True))

    def open_modal(self, ack: Ack, body: Json, name: str) -> None:
        """Hold, cancel, edit, reply, ship with…, mark packed (weight): a modal first; its submission acts."""
        ack()
        try:
            with self.runtime.db.session() as session:
                actor, order, _version = self._clicked(session, body)
                spec = actions.ACTIONS.get(name)
                needed = spec.role if spec is not None else Role.OPERATOR
                if not actor.may(needed):
                    raise Refusal(f"'{name}' needs the {needed} role; you are a {actor.role}.")
                view = self._modal(session, name, order)
            self.client.views_open(trigger_id=body.get("trigger_id"), view=view)
        except Refusal as refusal:
            self.tell(body, str(refusal))
        except SlackApiError as error:
            self.tell(body, f"Slack did not open the form ({error.response.get('error')}); try again.")

    def _modal(self, session: Session, name: str, order: Order) -> Json:
        if name == "hold":
            return blocks.hold_modal(order)
        if name == "cancel":
            return blocks.cancel_modal(order)
        if name == "edit":
            return blocks.edit_modal(order)
        if name == "pack":
            return blocks.pack_modal(order)
        if name == "reply":
            message = next((e for e in reversed(order.events) if e.type == "order.customer_message"), None)
            return blocks.reply_modal(order, (message.data or {}).get("text") if message else None)
        if self.hooks.quote_rates is None:
            raise Refusal("Rate shopping is not set up in this Orderline, so labels cannot be bought from Slack yet.")
        try:
            rates = self.hooks.quote_rates(session, order.id)
        except OrderError as error:
            raise Refusal(f"No rates: {error.message}.") from error
        return blocks.ship_modal(order, rates)

    def show(self, ack: Ack, body: Json) -> None:
        """App Home's and alerts' "Show"/"Open order": the card, to the asker only."""
        ack()
        user_id, user_name = _user(body)
        try:
            with self.runtime.db.session() as session:
                staff_actor(session, user_id, user_name)
                order_id, _ = blocks.read_value(_action(body).get("value"))
                order = session.get(Order, order_id)
                if order is None:
                    raise Refusal(f"That order no longer exists in Orderline (id {order_id}).")
                text, card = blocks.order_card(order, blocks.card_facts(order.events))
            self.tell(body, text, card)
        except Refusal as refusal:
            self.tell(body, str(refusal))
        except (ValueError, TypeError):
            self.tell(body, "This button does not name an order.")

    def _alert_click(self, body: Json, what: str) -> tuple[Json, str]:
        """The alert button's value and the clicker's id, once the clicker is known to be an operator."""
        user_id, user_name = _user(body)
        value = json.loads(_action(body).get("value") or "{}")
        if not isinstance(value, dict) or not isinstance(value.get("alert_id"), int):
            raise ValueError("no alert id")
        with self.runtime.db.session() as session:
            if not staff_actor(session, user_id, user_name).may(Role.OPERATOR):
                raise Refusal(f"{what} needs the operator role.")
        return value, user_id

    def _close_alert(self, alert_id: int, user_id: str, **note: Any) -> bool:
        """Mark the alert resolved and ask for its message to say so; False when it was already closed."""
        with self.runtime.db.session() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise Refusal("That alert no longer exists.")
            if alert.resolved_at is not None:
                return False
            alert.resolved_at = utcnow()
            alert.data = {**(alert.data or {}), "resolved_by": user_id, **note}
            queries.request_alert_post(session, alert.id)
            return True

    def retry_job(self, ack: Ack, body: Json) -> None:
        """An alert's Retry: every failed job of the alert's kind runs again, and the alert is closed (a new
        failure opens a new one, so the channel shows whether the retry worked)."""
        ack()
        try:
            value, user_id = self._alert_click(body, "Retrying a job")
            ids = [int(value["outbox_id"])]
            with self.runtime.db.session() as session:
                alert = session.get(Alert, value["alert_id"])
                job = (alert.data or {}).get("job") if alert is not None else None
                if job:
                    ids = list(session.execute(select(OutboxEvent.id).where(
                        OutboxEvent.job == job, OutboxEvent.status == "failed")).scalars()) or ids
            requeued = self.hooks.requeue_jobs(ids)
            if not requeued:
                self.tell(body, "Nothing to retry: those jobs are not failed any more.")
                return
            self._close_alert(value["alert_id"], user_id, retried=len(requeued))
            self.tell(body, f"{len(requeued)} job(s) requeued.")
        except Refusal as refusal:
            self.tell(body, str(refusal))
        except (ValueError, TypeError, KeyError):
            self.tell(body, "This button does not name a job.")

    def resolve_alert(self, ack: Ack, body: Json) -> None:
        ack()
        try:
            value, user_id = self._alert_click(body, "Resolving an alert")
            self._close_alert(value["alert_id"], user_id)
        except Refusal as refusal:
            self.tell(body, str(refusal))
        except (ValueError, TypeError, KeyError):
            self.tell(body, "This button does not name an alert.")

    def unknown_action(self, ack: Ack, body: Json) -> None:
        ack()
        action_id = _action(body).get("action_id", "?")
        self.tell(body, f"Orderline does not know the button `{blocks.esc(action_id)}`; nothing was done.")

    # --- modal submissions ------------------------------------------------------------------------------

    def submit(self, ack: Ack, body: Json, name: str) -> None:
        """A modal's submission: the action, with the modal's order version; errors shown on the form."""
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        user_id, user_name = _user(body)
        first_block = next(iter(values), "reason")
        try:
            order_id, version = blocks.read_value(view.get("private_metadata"))
        except (ValueError, TypeError):
            ack(response_action="errors", errors={first_block: "This form does not name an order."})
            return
        arguments = self._arguments(name, values)
        if isinstance(arguments, tuple):  # (block id, problem)
            ack(response_action="errors", errors={arguments[0]: arguments[1]})
            return
        try:
            with self.runtime.db.session() as session:
                actor = staff_actor(session, user_id, user_name)
                actions.perform(session, order_id, name, actor, expected_version=version, **arguments)
        except Refusal as refusal:
            ack(response_action="errors", errors={first_block: str(refusal)})
            return
        except VersionConflict:
            with self.runtime.db.session() as session:
                order = session.get(Order, order_id)
                text = current_state(session, order, who_first=True) if order else "The order no longer exists."
                if order is not None:
                    _refresh_card(session, order_id)
            ack(response_action="errors", errors={first_block: _plain(text)})
            return
        except NotFound as error:
            problem = ("Buying labels from Slack is not available in this Orderline yet." if name == "ship"
                       and "action" in error.message else error.message)
            ack(response_action="errors", errors={first_block: problem})
            return
        except (Forbidden, IllegalTransition) as error:
            ack(response_action="errors", errors={first_block: error.message})
            return
        except OrderError as error:
            block = next((b for b in values if b.split(".")[0] in error.fields), first_block)
            ack(response_action="errors", errors={block: error.message})
            return
        ack()

    @staticmethod
    def _arguments(name: str, values: Json) -> Json | tuple[str, str]:
        if name in ("hold", "cancel"):
            reason = (blocks.state_value(values, "reason") or "").strip()
            if not reason:
                return "reason", "Please give a reason."
            if name == "cancel":
                return {"reason": reason, "restock": blocks.state_value(values, "restock") != "no"}
            return {"reason": reason}
        if name == "reply":
            text = (blocks.state_value(values, "text") or "").strip()
            if not text:
                return "text", "Please write the reply."
            return {"text": text} if len(text) <= MAX_TEXT else ("text", f"At most {MAX_TEXT} characters.")
        if name == "pack":
            weight = (blocks.state_value(values, "weight_grams") or "").strip().replace(" ", "")
            if not weight:
                return {}
            return {"weight_grams": int(weight)} if weight.isdigit() else ("weight_grams", "Whole grams, e.g. 1250.")
        if name == "ship":
            try:
                rate = json.loads(blocks.state_value(values, "rate") or "")
                return {"carrier": str(rate["carrier"]), "service": str(rate["service"])}
            except (ValueError, TypeError, KeyError):
                return "rate", "Please choose a rate."
        if name == "edit":
            address = {field_name: (blocks.state_value(values, f"address.{field_name}") or "").strip() or None
                       for field_name, _label in blocks.ADDRESS_FIELDS}
            if address.get("country_code"):
                address["country_code"] = str(address["country_code"]).upper()
            return {"shipping_address": address, "shipping_level": blocks.state_value(values, "shipping_level"),
                    "note": (blocks.state_value(values, "note") or "").strip() or None}
        return {}

    # --- /order -----------------------------------------------------------------------------------------

    def command(self, ack: Ack, body: Json) -> None:
        user_id, user_name = _user(body)
        text = str(body.get("text") or "").strip()
        try:
            with self.runtime.db.session() as session:
                staff_actor(session, user_id, user_name)
                answer, answer_blocks = self._command(session, text)
            ack(text=blocks.clip(answer, 3000), blocks=answer_blocks)
        except Refusal as refusal:
            ack(text=str(refusal))

    def _command(self, session: Session, text: str) -> tuple[str, list[Json]]:
        word, _, rest = text.partition(" ")
        word = word.lower()
        if not text or word == "help":
            return USAGE, [blocks.section(USAGE)]
        if re.fullmatch(r"#?[\w-]+", text) and word not in ("search", "pending", "stats"):
            found = queries.orders_numbered(session, text)
            if not found:
                return f"No order numbered {blocks.esc(text)}.", []
            order = found[0]
            card_text, card = blocks.order_card(order, blocks.card_facts(order.events))
            if len(found) > 1:
                card.append(blocks.context(f"{len(found) - 1} more orders share this number (other shops): "
                                           "`/order search` narrows it down."))
            return card_text, card
        if word == "search":
            if len(rest.strip()) < 2:
                return "Search for an email, phone, name or SKU: `/order search anna.berg@example.se`", []
            return self._list(f"Orders matching “{rest.strip()}”", queries.search(session, rest))
        if word == "pending":
            lines: list[str] = []
            for title, statuses in PENDING_QUEUES:
                orders, count = queries.queue(session, statuses, limit=10)
                lines.append(f"*{title}* · {count}")
                lines.extend(_order_line(o) for o in orders)
            late_orders, late_count = queries.late(session, utcnow(), limit=10)
            lines.append(f"*Late against the shipping promise* · {late_count}")
            lines.extend(_order_line(o) for o in late_orders)
            joined = "\n".join(lines)
            return joined, [blocks.section(joined)]
        if word == "stats":
            period = rest.strip().lower() or "today"
            if period not in ("today", "week"):
                return "`/order stats today` or `/order stats week`", []
            now = utcnow()
            since = now.replace(hour=0, minute=0, second=0, microsecond=0)
            if period == "week":
                since -= timedelta(days=since.weekday())
            figures = queries.figures(session, period, since, now, now=now)
            return blocks.figures_blocks(f"Orders {'today' if period == 'today' else 'this week'} (UTC)", figures)
        return f"I don't know `{blocks.esc(word)}`.\n{USAGE}", []

    @staticmethod
    def _list(title: str, orders: Iterable[Order]) -> tuple[str, list[Json]]:
        found = list(orders)
        if not found:
            return f"{title}: none.", []
        message_blocks: list[Json] = [blocks.section(f"*{blocks.esc(title)}*")]
        for order in found[:10]:
            message_blocks.append({"type": "section",
                                   "text": {"type": "mrkdwn", "text": blocks.clip(_order_line(order))},
                                   "accessory": {"type": "button", "action_id": P + "show",
                                                 "text": blocks.plain("Show"), "value": blocks.button_value(order)}})
        return f"{title}: {len(found)} found", message_blocks

    # --- App Home and events ----------------------------------------------------------------------------

    def home(self, event: Json) -> None:
        user_id = str(event.get("user") or "")
        with self.runtime.db.session() as session:
            if queries.role_of(session, user_id) is None:
                view: Json = {"type": "home", "blocks": [blocks.section(
                    "You are not set up in Orderline yet: ask a manager to run "
                    f"`orderline slack staff add {user_id} operator`.")]}
            else:
                sections: list[tuple[str, Sequence[Order]]] = []
                totals: dict[str, int] = {}
                for title, statuses in PENDING_QUEUES:
                    orders, totals[title] = queries.queue(session, statuses)
                    sections.append((title, orders))
                exceptions, totals["Carrier exceptions"] = queries.exceptions(session)
                sections.append(("Carrier exceptions", exceptions))
                late_orders, totals["Late against the shipping promise"] = queries.late(session, utcnow())
                sections.append(("Late against the shipping promise", late_orders))
                view = blocks.home_view(sections, total=totals)
        try:
            self.client.views_publish(user_id=user_id, view=view)
        except SlackApiError as error:
            log.warning("slack.home_not_published", error=str(error.response.get("error")))

    def first_delivery(self, body: Json) -> bool:
        """Slack retries an event it thinks we missed: each event_id is handled once."""
        event_id = str(body.get("event_id") or "")
        if not event_id:
            return True
        try:
            return bool(self.redis.set(f"orderline:slack:event:{event_id}", "1", nx=True, ex=EVENT_DEDUPE_SECONDS))
        except RedisError:
            return True  # better a rare double reply check (the action itself is versioned) than a lost one

    def thread_reply(self, body: Json, event: Json) -> None:
        """A person answering in an order card's thread: the answer goes to the customer (`reply` action)."""
        if event.get("bot_id") or event.get("subtype") or not event.get("thread_ts"):
            return
        if event.get("thread_ts") == event.get("ts") or not self.first_delivery(body):
            return
        channel, user_id = str(event.get("channel") or ""), str(event.get("user") or "")
        text = str(event.get("text") or "").strip()
        reply_to = {"channel": {"id": channel}, "user": {"id": user_id}}
        try:
            with self.runtime.db.session() as session:
                card = queries.card_in_thread(session, channel, str(event["thread_ts"]))
                if card is None or card.order_id is None:
                    return  # a thread that is not an order card's: not ours
                actor = staff_actor(session, user_id, user_id)
                if not text:
                    return
                actions.perform(session, card.order_id, "reply", actor, text=text)
        except Refusal as refusal:
            self.tell(reply_to, str(refusal))
        except OrderError as error:
            self.tell(reply_to, f"Not sent to the customer: {error.message}.")


PENDING_QUEUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Needs review", ("needs_review",)),
    ("Backordered", ("backordered",)),
    ("On hold", ("on_hold",)),
)
USAGE = ("`/order 1001` shows an order's card · `/order search <email, phone, name or SKU>` · "
         "`/order pending` lists what waits · `/order stats [today|week]`")


def _order_line(order: Order) -> str:
    return (f"• *{blocks.esc(order.number)}* {blocks.esc(order.customer_name or '')} · "
            f"{blocks.money(order.total, order.currency)} · {order.status.replace('_', ' ')} · {order.channel}")


def _plain(text: str) -> str:
    """Modal errors are plain text: drop mrkdwn markup and mentions' brackets."""
    return re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text).replace("*", "").replace("<@", "@").replace(">", "")


def _guard(func: Callable[..., None], tell: Callable[[Json, str], None]) -> Callable[[Ack, Json], None]:
    """Bolt answers 500 when a listener raises: ack, log, and tell the person nothing was done instead."""

    def listener(ack: Ack, body: Json) -> None:
        try:
            func(ack, body)
        except Exception:
            log.exception("slack.listener_failed", type=body.get("type"))
            if ack.response is None:
                ack()
            if body.get("type") == "block_actions":
                tell(body, "Something went wrong in Orderline; the error is logged. Nothing was changed.")

    return listener


def build_app(runtime: Runtime, client: WebClient, signing_secret: str, hooks: Hooks | None = None) -> App:
    """The Bolt App with Orderline's listeners. `client` is already pointed at SLACK_API_BASE_URL."""
    handlers = OrderlineSlack(runtime, client, hooks or Hooks())
    # process_before_response: the listener finishes before the HTTP answer, so a gunicorn worker never
    # carries work past its request; every listener here is a short transaction and at most one Slack call.
    # token_verification_enabled=False: auth.test runs on the first request, so the web app starts even
    # while Slack is unreachable.
    app = App(client=client, signing_secret=signing_secret, process_before_response=True,
              token_verification_enabled=False, raise_error_for_unhandled_request=False)
    for name in DIRECT_ACTIONS:
        app.action(P + name)(_guard(lambda ack, body, name=name: handlers.act(ack, body, name), handlers.tell))
    for name in MODAL_ACTIONS:
        app.action(P + name)(_guard(lambda ack, body, name=name: handlers.open_modal(ack, body, name),
                                    handlers.tell))
        app.view(P + name)(_guard(lambda ack, body, name=name: handlers.submit(ack, body, name), handlers.tell))
    app.action(P + "show")(_guard(handlers.show, handlers.tell))
    app.action(P + "open")(_guard(lambda ack, body: ack(), handlers.tell))  # a link button: Slack opens the URL itself
    app.action(P + "retry_job")(_guard(handlers.retry_job, handlers.tell))
    app.action(P + "resolve_alert")(_guard(handlers.resolve_alert, handlers.tell))
    app.action(re.compile(".*"))(_guard(handlers.unknown_action, handlers.tell))
    app.view(re.compile(".*"))(_guard(lambda ack, body: ack(), handlers.tell))
    app.command("/order")(_guard(handlers.command, handlers.tell))

    @app.event("app_home_opened")
    def home_opened(event: Json, body: Json) -> None:
        if event.get("tab", "home") == "home" and handlers.first_delivery(body):
            try:
                handlers.home(event)
            except Exception:
                log.exception("slack.home_failed")

    @app.event("message")
    def message(event: Json, body: Json) -> None:
        try:
            handlers.thread_reply(body, event)
        except Exception:
            log.exception("slack.thread_reply_failed")

    @app.error
    def on_error(error: Exception, body: Json, context: BoltContext) -> None:
        log.error("slack.bolt_error", error=f"{type(error).__name__}: {error}")

    return app
