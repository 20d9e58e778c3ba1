"""Slack jobs: keep each order's card current, post alerts once, send digests, fold bursts into summaries.

One message per key ("order:42", "alert:7", "digest:3:2026-11-26", "summary:C1:2026-11-26T10"), never two:

1. The `SlackMessage` row with the key is inserted or locked in the job's transaction. A second copy of the job
   (RQ delivers at least once) waits on that row (PostgreSQL) or on the database (SQLite) and then finds `ts`.
2. Before `chat.postMessage` the attempt is marked in Redis; the message carries metadata naming the key.
3. A retry that finds the mark but no `ts` (the worker died, or Slack's answer was lost) looks the message up in
   the channel's history by that metadata before it posts again. Redis keeps nothing across a restart, so the
   marks are trusted only since the first mark after one (`_marks_since`): a message about something older
   than that is looked up in the history before its first post, in case its mark was lost.
4. Once `ts` is stored the message is only ever updated in place (`chat.update`), and only when what it shows
   changed: a card whose order moved on three times while its job waited is refreshed once.

Posting is paced to about one message per second per channel across workers (`integrations.slack.client.pace`);
a 429 becomes a retry no sooner than Slack's `Retry-After`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import outbox
from app.failures import Busy
from app.models import Alert, Order, OrderEvent, OutboxEvent, Shop, SlackMessage
from app.runtime import Runtime
from app.store import utcnow
from integrations.slack import blocks, queries
from jobs.context import JobContext

if TYPE_CHECKING:  # slack_sdk is imported by the first Slack job, not by every process that loads the registry
    from slack_sdk import WebClient

log = structlog.get_logger("orderline.slack")

METADATA_TYPE = "orderline_message"
HISTORY_PAGES = 5
ATTEMPT_TTL_SECONDS = 7 * 24 * 3600
MARKS_SINCE_KEY = "orderline:slack:marks-since"
SUMMARY_REFRESH_SECONDS = 10.0
DEFAULT_DIGEST_AT = "08:00"


@functools.lru_cache(maxsize=4)
def _cached_client(token: str, base_url: str) -> WebClient:
    from integrations.slack.client import make_client

    return make_client(token, base_url)


def call(client: WebClient, method: str, **arguments: Any) -> Any:
    from integrations.slack import client as slack_client

    return slack_client.call(client, method, **arguments)


def pace(runtime: Runtime, channel: str, holder: str) -> None:
    from integrations.slack.client import pace as take_slot

    take_slot(runtime.redis, channel, holder)


def client_for(runtime: Runtime) -> WebClient:
    s = runtime.settings
    return _cached_client(s.slack_bot_token, s.slack_api_base_url)


def configured(runtime: Runtime) -> bool:
    return bool(runtime.settings.slack_bot_token)


def channel_for(runtime: Runtime, shop: Shop) -> str:
    """Where a shop's cards go: its own `slack_channel`, else the ops channel."""
    return str((shop.settings or {}).get("slack_channel") or runtime.settings.slack_ops_channel or "")


# --- one message per key ----------------------------------------------------------------------------------


def _row(session: Session, key: str, kind: str, channel: str, order_id: int | None) -> SlackMessage:
    """The message's row, locked for this transaction; inserted when it is the first time."""
    query = select(SlackMessage).where(SlackMessage.key == key).with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is not None:
        return row
    savepoint = session.begin_nested()
    try:
        row = SlackMessage(key=key, kind=kind, channel=channel, order_id=order_id, post_attempts=0, data={})
        session.add(row)
        session.flush()
        savepoint.commit()
        return row
    except IntegrityError:
        savepoint.rollback()  # another copy inserted it meanwhile: use theirs
        return session.execute(query).scalar_one()


def _attempt_key(key: str) -> str:
    return f"orderline:slack:attempt:{key}"


def _find_posted(client: WebClient, channel: str, key: str) -> str | None:
    """The ts of a message already posted with our metadata for `key` (newest history first)."""
    cursor = ""
    for _page in range(HISTORY_PAGES):
        answer = call(client, "conversations.history", channel=channel, limit=200, include_all_metadata=True,
                      **({"cursor": cursor} if cursor else {}))
        for message in answer.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == METADATA_TYPE and (meta.get("event_payload") or {}).get("key") == key:
                return str(message["ts"])
        cursor = str((answer.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return None
    return None


def _marks_since(runtime: Runtime) -> datetime:
    """Since when every post attempt has its Redis mark: the first call after Redis started empty sets it."""
    now = utcnow()
    before = runtime.redis.set(MARKS_SINCE_KEY, now.isoformat(), nx=True, get=True)
    if isinstance(before, bytes):
        return datetime.fromisoformat(before.decode())
    return now


def start_marks(runtime: Runtime) -> None:
    """Called as a process starts: messages about anything newer need no history lookup before posting."""
    try:
        _marks_since(runtime)
    except RedisError:
        pass  # Redis down at start: the first post after it is back starts the marks


def _rendered(text: str, message_blocks: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps([text, message_blocks], sort_keys=True, default=str).encode()).hexdigest()


def keep_message(runtime: Runtime, session: Session, *, key: str, kind: str, channel: str, text: str,
                 message_blocks: list[dict[str, Any]], order_id: int | None = None,
                 about_since: datetime | None = None) -> SlackMessage:
    """Post the message for `key` once, or update it in place when it changed; returns its row with `ts` set.
    `about_since`: when the thing the message is about came to be (no post for it can be older)."""
    client = client_for(runtime)
    row = _row(session, key, kind, channel, order_id)
    if row.ts is None and (runtime.redis.exists(_attempt_key(key)) or
                           (about_since is not None and about_since < _marks_since(runtime))):
        row.ts = _find_posted(client, row.channel, key)
        if row.ts:
            log.info("slack.message_found", key=key, ts=row.ts)
    rendered = _rendered(text, message_blocks)
    if row.ts is None:
        pace(runtime, row.channel, f"post:{key}")
        row.post_attempts += 1
        runtime.redis.set(_attempt_key(key), "1", ex=ATTEMPT_TTL_SECONDS)
        answer = call(client, "chat.postMessage", channel=row.channel, text=text, blocks=message_blocks,
                      unfurl_links=False, metadata={"event_type": METADATA_TYPE, "event_payload": {"key": key}})
        row.ts = str(answer["ts"])
        row.channel = str(answer.get("channel") or row.channel)  # Slack answers a channel name with its id
        log.info("slack.message_posted", key=key, ts=row.ts)
    elif (row.data or {}).get("rendered") != rendered:
        call(client, "chat.update", channel=row.channel, ts=row.ts, text=text, blocks=message_blocks)
    row.data = {**(row.data or {}), "rendered": rendered}
    row.updated_at = utcnow()
    session.flush()
    return row


def _post_in_thread(runtime: Runtime, row: SlackMessage, text: str, message_blocks: list[dict[str, Any]]) -> None:
    pace(runtime, row.channel, f"thread:{row.key}")
    call(client_for(runtime), "chat.postMessage", channel=row.channel, thread_ts=row.ts, text=text,
         blocks=message_blocks, unfurl_links=False)


# --- order cards ------------------------------------------------------------------------------------------


def sync_card(ctx: JobContext) -> None:
    """Post or refresh order `order_id`'s card, then tell the card's thread what happened since last time.
    `reason` "info" (a new order the shop wants to see) folds into the hour's summary during a burst."""
    runtime, session = ctx.runtime, ctx.session
    order = session.get(Order, ctx.int_arg("order_id"))
    if order is None or not configured(runtime):
        return
    channel = channel_for(runtime, order.shop)
    if not channel:
        return
    key = f"order:{order.id}"
    has_card = session.execute(select(SlackMessage.id).where(SlackMessage.key == key)).first() is not None
    if not has_card and ctx.payload.get("reason") == "info" and _bursting(runtime, session, channel):
        _fold_into_summary(runtime, session, order, channel)
        return
    events = list(order.events)
    text, card = blocks.order_card(order, blocks.card_facts(events))
    row = keep_message(runtime, session, key=key, kind="card", channel=channel, text=text, message_blocks=card,
                       order_id=order.id, about_since=order.created_at)
    new = [event for event in events if event.id > (row.last_event_id or 0)]
    if new:
        thread_text, thread = blocks.thread_blocks(new, order)
        try:
            _post_in_thread(runtime, row, thread_text, thread)
        except Busy as busy:
            # The card is current; its thread catches up in a later run, at the slot kept for it.
            queries.request_card_sync(session, order.id, "update", debounce_seconds=busy.retry_after or 1.0,
                                      running=ctx.outbox_id)
            return
        row.last_event_id = new[-1].id


def _bursting(runtime: Runtime, session: Session, channel: str) -> bool:
    since = utcnow() - timedelta(minutes=1)
    recent = session.execute(select(func.count()).select_from(SlackMessage).where(
        SlackMessage.channel == channel, SlackMessage.kind == "card", SlackMessage.created_at >= since)).scalar_one()
    return int(recent) >= runtime.settings.slack_burst_per_minute


def _fold_into_summary(runtime: Runtime, session: Session, order: Order, channel: str) -> None:
    """Count the order on this hour's summary card. The card is refreshed at most every few seconds; a job
    whose order is not on it yet retries until a refresh shows it, so the last order of a burst is counted."""
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    key = f"summary:{channel}:{hour:%Y-%m-%dT%H}"
    row = _row(session, key, "summary", channel, None)
    ids: list[int] = list((row.data or {}).get("order_ids") or [])
    if order.id not in ids:
        ids.append(order.id)
    shown = int((row.data or {}).get("shown") or 0)
    if order.id in ids[:shown]:
        return
    refreshed = (row.data or {}).get("refreshed_at")
    age = (utcnow() - datetime.fromisoformat(refreshed)).total_seconds() if refreshed else None
    if age is not None and age < SUMMARY_REFRESH_SECONDS:
        row.data = {**(row.data or {}), "order_ids": ids}
        session.flush()
        # Not an error: this order waits for the next refresh. The outbox runs the job again no sooner.
        raise _SummaryPending(retry_after=SUMMARY_REFRESH_SECONDS - age)
    orders = list(session.execute(select(Order).where(Order.id.in_(ids)).order_by(Order.id)).scalars())
    text, summary = blocks.summary_message(hour, orders, order.shop.name)
    row = keep_message(runtime, session, key=key, kind="summary", channel=channel, text=text, message_blocks=summary,
                       about_since=hour)
    row.data = {**(row.data or {}), "order_ids": ids, "shown": len(ids), "refreshed_at": utcnow().isoformat()}


class _SummaryPending(Busy):
    def __init__(self, retry_after: float) -> None:
        super().__init__("waiting for the summary card's next refresh", retry_after=retry_after)

    def __reduce__(self) -> tuple[Any, ...]:  # kept picklable for RQ's failure records
        return (_SummaryPending, (self.retry_after,))


# --- alerts -----------------------------------------------------------------------------------------------


def post_alert(ctx: JobContext) -> None:
    """The ops channel's message for alert `alert_id`: posted once, then updated (count, resolved)."""
    runtime, session = ctx.runtime, ctx.session
    alert = session.get(Alert, ctx.int_arg("alert_id"))
    channel = runtime.settings.slack_ops_channel
    if alert is None or not channel or not configured(runtime):
        return
    text, message = blocks.alert_message(alert)
    keep_message(runtime, session, key=f"alert:{alert.id}", kind="alert", channel=channel, text=text,
                 message_blocks=message, about_since=alert.created_at)


# --- daily digest -----------------------------------------------------------------------------------------


def _zone(shop: Shop) -> ZoneInfo:
    try:
        return ZoneInfo(shop.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _digest_at(shop: Shop) -> time:
    raw = str((shop.settings or {}).get("slack_digest_at") or DEFAULT_DIGEST_AT)
    try:
        return time.fromisoformat(raw)
    except ValueError:
        return time.fromisoformat(DEFAULT_DIGEST_AT)


def digest_window(shop: Shop, day: date) -> tuple[datetime, datetime]:
    """The shop's local calendar day `day`, in UTC."""
    zone = _zone(shop)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def send_digest(ctx: JobContext) -> None:
    """Shop `shop_id`'s figures for local day `day` (ISO date) in the ops channel (else the shop's channel)."""
    runtime, session = ctx.runtime, ctx.session
    shop = session.get(Shop, ctx.int_arg("shop_id"))
    day = date.fromisoformat(str(ctx.payload.get("day")))
    channel = runtime.settings.slack_ops_channel or (channel_for(runtime, shop) if shop else "")
    if shop is None or not channel or not configured(runtime):
        return
    since, until = digest_window(shop, day)
    figures = queries.figures(session, f"{shop.name}, {day:%a %d %b}", since, until, shop_id=shop.id,
                              now=utcnow())
    text, message = blocks.figures_blocks(f"Daily digest: {shop.name}, {day:%A %d %B}", figures)
    keep_message(runtime, session, key=f"digest:{shop.id}:{day.isoformat()}", kind="digest", channel=channel,
                 text=text, message_blocks=message, about_since=until)


def schedule_digests(runtime: Runtime, now: datetime | None = None) -> int:
    """Ask for yesterday's digest of every active shop whose local morning time has passed (the sweeper
    calls this; a digest already sent or asked for is not asked for again)."""
    if not configured(runtime):
        return 0
    now = now or utcnow()
    asked = 0
    with runtime.db.session() as session:
        waiting = {(row.payload.get("shop_id"), row.payload.get("day")) for row in session.execute(
            select(OutboxEvent).where(OutboxEvent.job == str(outbox.JobName.SLACK_DIGEST),
                                      OutboxEvent.status == "pending")).scalars()}
        for shop in session.execute(select(Shop).where(Shop.active.is_(True))).scalars():
            if not (runtime.settings.slack_ops_channel or channel_for(runtime, shop)):
                continue  # nowhere to post it: asking would only make a job that does nothing, every sweep
            local = now.astimezone(_zone(shop))
            if local.time() < _digest_at(shop):
                continue
            day = (local.date() - timedelta(days=1)).isoformat()
            sent = session.execute(select(SlackMessage.id).where(
                SlackMessage.key == f"digest:{shop.id}:{day}", SlackMessage.ts.is_not(None))).first()
            if sent is None and (shop.id, day) not in waiting:
                outbox.add_job(session, outbox.JobName.SLACK_DIGEST, shop_id=shop.id, day=day)
                asked += 1
    return asked


# --- what the listener asks for -----------------------------------------------------------------------------

# Timeline entries that mean a person must look at the order: it gets a card if it has none.
NEEDS_PERSON = frozenset({"order.needs_review", "order.backordered", "order.step_failed",
                          "order.cancel_requested_by_channel"})


def card_reason(events: Sequence[OrderEvent], shop: Shop, has_card: bool) -> str | None:
    """Why this transaction's entries for one order call for a card sync, or None."""
    if has_card:
        return "update"
    for event in events:
        data = event.data or {}
        if event.type in NEEDS_PERSON:
            return "needs_person"
        if event.type == "order.customer_message" and data.get("needs_staff"):
            return "needs_person"
        if event.type == "shipment.tracking" and data.get("status") in ("exception", "returned"):
            return "needs_person"
    if any(event.type == "order.received" for event in events) and (shop.settings or {}).get("slack_all_orders"):
        return "info"
    return None
