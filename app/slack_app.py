"""Slack wired into Orderline: `POST /slack/events` (Bolt's Flask adapter), the listener that decides which
orders get a card, and the `orderline slack` commands.

The request path: the signature is checked first (the same v0 HMAC-SHA256 Bolt checks, so a malformed body
that is unsigned is still a 401, not a parse error), then Bolt parses and dispatches. Replayed requests (a
timestamp more than five minutes off) are refused the same way, before anything is read or stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
import structlog
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import events, outbox
from app.alerts import raise_alert
from app.events import Happened
from app.models import Alert, Order, OrderEvent, SlackMessage, SlackStaff
from app.orders.types import Role
from app.runtime import Runtime
from app.runtime import current as current_runtime
from integrations.slack.queries import request_alert_post, request_card_sync

if TYPE_CHECKING:  # slack_bolt and slack_sdk are imported only where Slack is configured (startup stays quick)
    from slack_bolt import App
    from slack_bolt.adapter.flask import SlackRequestHandler

log = structlog.get_logger("orderline.slack")

bp = Blueprint("slack", __name__)
EXTENSION = "orderline.slack"


# --- the listener ----------------------------------------------------------------------------------------


def on_happened(session: Session, happened: Happened) -> None:
    """Before each commit: a card sync for every order whose card must change or appear; each new or
    recurring alert to the ops channel. Only outbox rows are written here; jobs talk to Slack."""
    try:
        runtime = current_runtime()
    except RuntimeError:
        return
    settings = runtime.settings
    if not settings.slack_bot_token:
        return
    from jobs.slack import card_reason

    by_order: dict[int, list[OrderEvent]] = defaultdict(list)
    for entry in happened.order_events:
        by_order[entry.order_id].append(entry)
    if by_order:
        carded = set(session.execute(select(SlackMessage.order_id).where(
            SlackMessage.order_id.in_(list(by_order)), SlackMessage.kind == "card")).scalars())
        for order_id, entries in by_order.items():
            order = session.get(Order, order_id)
            if order is None:
                continue
            reason = card_reason(entries, order.shop, order_id in carded)
            if reason is not None:
                request_card_sync(session, order_id, reason, debounce_seconds=settings.slack_card_debounce_seconds)
    if settings.slack_ops_channel:
        alerts = list(happened.alerts) + _carrier_exception_alerts(session, happened.order_events)
        for alert in dict.fromkeys(alerts):
            repeat = (alert.count or 1) > 1  # the message exists: its count can wait for more repeats
            request_alert_post(session, alert.id,
                               debounce_seconds=settings.slack_card_debounce_seconds if repeat else 0.0)


def _carrier_exception_alerts(session: Session, entries: Sequence[OrderEvent]) -> list[Alert]:
    """A carrier reporting a problem with a parcel is also an ops alert (one per shipment, with Open order)."""
    raised: list[Alert] = []
    for entry in entries:
        data = entry.data or {}
        if entry.type != "shipment.tracking" or data.get("status") != "exception":
            continue
        what = data.get("description") or "no details"
        alert = raise_alert(session, "carrier_exception", f"shipment:{data.get('shipment_id')}",
                            f"Carrier exception on order {entry.order.number}: {what}",
                            order_id=entry.order_id, shipment_id=data.get("shipment_id"))
        raised.append(alert)
    if raised:
        session.flush()
        # Raised while this commit's listeners run: it is posted here, not heard again by a later commit.
        pending = session.info.get(events.PENDING_KEY, [])
        session.info[events.PENDING_KEY] = [item for item in pending if item not in raised]
    return raised


events.listen("slack", on_happened)


# --- the endpoint ----------------------------------------------------------------------------------------


def build_bolt(runtime: Runtime) -> App:
    from integrations.slack.bolt import Hooks, build_app
    from integrations.slack.client import make_client
    from jobs.relay import requeue_failed

    settings = runtime.settings
    client = make_client(settings.slack_bot_token, settings.slack_api_base_url)
    hooks = Hooks(requeue_jobs=lambda ids: requeue_failed(runtime, ids))
    try:  # the shipping module's rate shopping, once it is merged
        from app.shipping import quote_rates  # type: ignore[import-not-found,unused-ignore]

        hooks.quote_rates = quote_rates
    except ImportError:
        pass
    return build_app(runtime, client, settings.slack_signing_secret, hooks)


def init_slack(app: Flask, runtime: Runtime) -> None:
    """Mount the Bolt app when Slack is configured (bot token and signing secret)."""
    app.register_blueprint(bp)
    settings = runtime.settings
    if settings.slack_bot_token:
        from jobs.slack import start_marks

        start_marks(runtime)
    if settings.slack_bot_token and settings.slack_signing_secret:
        from slack_bolt.adapter.flask import SlackRequestHandler

        app.extensions[EXTENSION] = SlackRequestHandler(build_bolt(runtime))


def _refuse(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


@bp.post("/slack/events")
def slack_events() -> Any:
    handler: SlackRequestHandler | None = current_app.extensions.get(EXTENSION)
    runtime: Runtime = current_app.extensions["orderline"]
    if handler is None:
        return _refuse(404, "Slack is not configured here (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)")
    from slack_sdk.signature import SignatureVerifier

    body = request.get_data(as_text=True)
    verifier = SignatureVerifier(runtime.settings.slack_signing_secret)
    if not verifier.is_valid_request(body, dict(request.headers)):
        log.warning("slack.refused_signature", retry=request.headers.get("X-Slack-Retry-Num"))
        return _refuse(401, "invalid request")  # Bolt's own answer to a bad or stale signature
    try:
        return handler.handle(request)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # A signed body Bolt cannot parse (it was not sent by Slack as Slack sends): say so, store nothing.
        log.warning("slack.malformed", error=f"{type(error).__name__}: {error}")
        return _refuse(400, "the request body is not a Slack payload Orderline can read")


# --- commands --------------------------------------------------------------------------------------------


@click.group("slack")
def slack_cli() -> None:
    """Slack: who may do what, and the daily digest."""


@slack_cli.group("staff")
def staff_group() -> None:
    """Map Slack users (U…) and user groups (S…) to roles."""


@staff_group.command("add")
@click.argument("slack_id")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@click.option("--name", default=None, help="A name to recognise the entry by.")
@with_appcontext
def staff_add(slack_id: str, role: str, name: str | None) -> None:
    """Give SLACK_ID (a user U… or a user group S…) ROLE; a group's members are fetched from Slack now."""
    runtime = current_runtime()
    kind = "group" if slack_id.startswith("S") else "user"
    members: list[str] = []
    if kind == "group":
        from slack_sdk.errors import SlackApiError

        from integrations.slack.client import make_client

        client = make_client(runtime.settings.slack_bot_token, runtime.settings.slack_api_base_url)
        try:
            members = list(client.usergroups_users_list(usergroup=slack_id).get("users") or [])
        except SlackApiError as error:
            raise click.ClickException(
                f"Slack would not list group {slack_id}: {error.response.get('error')}") from error
    with runtime.db.session() as session:
        row = session.execute(select(SlackStaff).where(SlackStaff.slack_id == slack_id)).scalar_one_or_none()
        if row is None:
            row = SlackStaff(slack_id=slack_id, kind=kind, role=role, name=name, members=members)
            session.add(row)
        else:
            row.role, row.members = role, members
            row.name = name or row.name
    click.echo(f"{slack_id} ({kind}{f', {len(members)} members' if kind == 'group' else ''}) is now a {role}")


@staff_group.command("list")
@with_appcontext
def staff_list() -> None:
    with current_runtime().db.session() as session:
        for row in session.execute(select(SlackStaff).order_by(SlackStaff.slack_id)).scalars():
            extra = f" ({len(row.members or [])} members)" if row.kind == "group" else ""
            click.echo(f"{row.slack_id}\t{row.kind}\t{row.role}\t{row.name or ''}{extra}")


@staff_group.command("remove")
@click.argument("slack_id")
@with_appcontext
def staff_remove(slack_id: str) -> None:
    with current_runtime().db.session() as session:
        row = session.execute(select(SlackStaff).where(SlackStaff.slack_id == slack_id)).scalar_one_or_none()
        if row is None:
            raise click.ClickException(f"{slack_id} is not mapped")
        session.delete(row)
    click.echo(f"{slack_id} removed")


@slack_cli.command("digest")
@click.option("--shop", "shop_id", type=int, required=True)
@click.option("--day", required=True, help="The shop's local day, YYYY-MM-DD.")
@with_appcontext
def digest(shop_id: int, day: str) -> None:
    """Ask for a shop's digest of DAY now (posted once: asking again updates it)."""
    with current_runtime().db.session() as session:
        outbox.add_job(session, outbox.JobName.SLACK_DIGEST, shop_id=shop_id, day=day)
    click.echo(f"digest of shop {shop_id} for {day} queued")
