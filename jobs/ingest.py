"""Ingest: turn a stored webhook delivery into changes to the unified order store, exactly once."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import privacy, tracking
from app import runtime as runtime_module
from app.failures import TransientError
from app.models import InboundEvent, Shop
from app.orders import actions
from app.orders.errors import OrderError
from app.requestctx import bind_request_id, clear_request_id
from app.runtime import Runtime, thread_command
from app.store import ALL_OR_NOTHING, all_or_nothing, utcnow
from integrations import channel
from integrations.base import (
    AppUninstalled,
    ChannelClient,
    ChannelEvent,
    CustomerDataRequest,
    CustomerRedact,
    FetchOrder,
    OrderRemoved,
    OrderSnapshot,
    PayloadError,
    RefundCreated,
    ShopAccess,
    ShopRedact,
)
from jobs.queues import QueueName
from jobs.retry import RetryPolicy

log = structlog.get_logger("orderline.ingest")

# Seconds to wait when a refund arrives before its order: the order's own webhook is usually right behind.
ORDER_NOT_YET_SEEN_RETRY = 30.0


def client_for(runtime: Runtime, shop: Shop) -> ChannelClient:
    """The channel API client for one shop, with its decrypted credentials and the base URL from settings."""
    credentials: dict[str, str] = {}
    if shop.credentials_encrypted and runtime.secrets is not None:
        credentials = dict(runtime.secrets.open(shop.credentials_encrypted))
    base_url = getattr(runtime.settings, f"{shop.channel}_api_base_url", None) or None
    access = ShopAccess(external_id=shop.external_id, credentials=credentials, api_base_url=base_url,
                        settings={"api_version": runtime.settings.shopify_api_version, **(shop.settings or {})})
    return channel(shop.channel).make_client(access)


# --- running the inbox ------------------------------------------------------------------------------------
#
# The inbox row is the durable record of the work, so a delivery costs the receiver one insert and, at most,
# one enqueue: deliveries that arrive while an ingest run is already queued or running only set nothing.
# A run first clears the wake flag, then drains every due delivery, so any delivery committed before the
# flag was cleared is seen by this run, and any committed after it wakes a new one. A lost wake (Redis
# restarted) is found by the sweeper, which wakes ingest whenever a due delivery has waited too long.
# Deliveries wake one of RUNS slots in turn, so up to RUNS workers ingest side by side (SKIP LOCKED splits
# the rows between them; the order row lock and channel timestamps keep one order's updates in order).

WAKE_KEY = "orderline:ingest:wake"
RUNS = 2
RUNNER = "jobs.ingest.ingest_pending"
BATCH = 100
# A run hands over to a fresh one after this long, so other jobs on the queue get their turn.
RUN_BUDGET_SECONDS = 30.0
# A due delivery waiting longer than this means its wake was lost.
STUCK_AFTER = timedelta(seconds=10)


def wake(runtime: Runtime, *, at: datetime | None = None, slot: int = 0) -> None:
    """Make sure an ingest run starts after this moment (or at `at`). Redis down: the sweeper wakes later."""
    slot %= RUNS
    try:
        if at is None and not thread_command(runtime.redis, "SET", f"{WAKE_KEY}:{slot}", "1", "NX", "EX", 60):
            return  # a run of this slot is queued or about to clear the flag: it will see this delivery
        queue = Queue(str(QueueName.INGEST), connection=runtime.redis)
        options: dict[str, Any] = dict(job_id=f"ingest-{secrets.token_hex(4)}", result_ttl=300,
                                       failure_ttl=7 * 24 * 3600, job_timeout=600)
        if at is not None:
            queue.enqueue_at(datetime.fromtimestamp(math.ceil(at.timestamp()), tz=UTC), RUNNER, slot, **options)
        else:
            queue.enqueue(RUNNER, slot, **options)
    except RedisError as error:
        log.warning("ingest.wake_failed", error=str(error))


def wake_if_stuck(runtime: Runtime) -> bool:
    """The sweeper's check: a due delivery that has waited too long means a lost wake."""
    cutoff = utcnow() - STUCK_AFTER
    with runtime.db.session() as session:
        stuck = session.execute(select(InboundEvent.id).where(
            InboundEvent.status == "received", InboundEvent.received_at <= cutoff,
            or_(InboundEvent.next_attempt_at.is_(None), InboundEvent.next_attempt_at <= cutoff)).limit(1)).first()
    if stuck is not None:
        for slot in range(RUNS):
            runtime.redis.delete(f"{WAKE_KEY}:{slot}")
            wake(runtime, slot=slot)
    return stuck is not None


def ingest_pending(slot: int = 0) -> str:
    """The RQ entry point: ingest every due delivery in the inbox, in arrival order, in batches."""
    runtime = runtime_module.current()
    runtime.redis.delete(f"{WAKE_KEY}:{slot}")  # from here on, each new delivery wakes another run
    deadline = time.monotonic() + RUN_BUDGET_SECONDS
    done = 0
    while True:
        count, retry_at = ingest_batch(runtime)
        done += count
        if retry_at is not None:
            wake(runtime, at=retry_at, slot=slot)
        if count < BATCH:
            break
        if time.monotonic() > deadline:
            wake(runtime, slot=slot)
            break
    return f"ingested {done} deliveries"


def ingest_batch(runtime: Runtime, limit: int = BATCH) -> tuple[int, datetime | None]:
    """Ingest up to `limit` due deliveries in one transaction. Returns how many were handled and the earliest
    retry any of them asked for.

    First all or nothing, without a savepoint per delivery (two round trips each, a third of the statements):
    almost every batch succeeds whole. If any delivery fails, that attempt is rolled back entirely and the
    batch is redone with a savepoint around each delivery, so the failure is recorded and the rest applied."""
    try:
        return _ingest_rows(runtime, limit, all_or_nothing=True)
    except Exception as error:  # noqa: BLE001 - whatever it was, nothing of that attempt was committed
        log.info("ingest.batch_redone_one_by_one", error=f"{type(error).__name__}: {error}"[:300])
        return _ingest_rows(runtime, limit, all_or_nothing=False)


def _ingest_rows(runtime: Runtime, limit: int, *, all_or_nothing: bool) -> tuple[int, datetime | None]:
    now = utcnow()
    retry_at: datetime | None = None
    try:
        with runtime.db.session() as session:
            session.info[ALL_OR_NOTHING] = all_or_nothing
            rows = session.execute(
                select(InboundEvent)
                .where(InboundEvent.status == "received",
                       or_(InboundEvent.next_attempt_at.is_(None), InboundEvent.next_attempt_at <= now))
                .order_by(InboundEvent.id).limit(limit)
                # Two runs at once split the inbox between them instead of waiting on each other.
                .with_for_update(skip_locked=True)
            ).scalars().all()
            for inbound in rows:
                bind_request_id(inbound.request_id)
                later = ingest_one(runtime, session, inbound)
                if later is not None and (retry_at is None or later < retry_at):
                    retry_at = later
            actions.flush_new_orders(session)
    finally:
        clear_request_id()
    return len(rows), retry_at


def ingest_one(runtime: Runtime, session: Session, inbound: InboundEvent) -> datetime | None:
    """Apply one delivery; returns when to try again if the channel asked us to wait."""
    try:
        status, reason = process(runtime, session, inbound)
    except TransientError as error:
        inbound.attempts += 1
        policy = RetryPolicy(runtime.settings.job_max_attempts, runtime.settings.job_backoff_base_seconds,
                             runtime.settings.job_backoff_cap_seconds)
        inbound.error = f"{type(error).__name__}: {error}"[:2000]
        if policy.gives_up_after(inbound.attempts):
            inbound.status, inbound.processed_at = "failed", utcnow()
            log.error("ingest.gave_up", kind=inbound.provider, error=inbound.error)
            return None
        inbound.next_attempt_at = utcnow() + timedelta(seconds=policy.delay(inbound.attempts, error.retry_after))
        log.warning("ingest.retry_scheduled", kind=inbound.provider, error=inbound.error)
        return inbound.next_attempt_at
    # Every change to the inbox row at once, after the work: one UPDATE per delivery.
    inbound.attempts += 1
    inbound.status, inbound.error, inbound.processed_at = status, reason, utcnow()
    inbound.next_attempt_at = None
    log.info("ingest.done", kind=inbound.provider, status=status, error=reason)
    return None


# What a delivery that cannot be applied raises: it is recorded as failed with the reason, never retried.
UNUSABLE_PAYLOAD = (PayloadError, OrderError, ValueError, KeyError, TypeError, AttributeError)


def process(runtime: Runtime, session: Session, inbound: InboundEvent) -> tuple[str, str | None]:
    """Apply one delivery. Returns (status, reason): processed, ignored, stale or failed.

    A mapping failure never loses the delivery: it stays stored as `failed` with the reason, replayable.
    Transient provider errors propagate, so the job retries with backoff.
    """
    if inbound.provider.startswith(tracking.PROVIDER_PREFIX):  # a carrier's tracking webhook (app/tracking.py)
        return tracking.process_delivery(runtime.settings, session, inbound)
    spec = channel(inbound.provider)
    if inbound.topic in spec.ignored_topics:
        return "ignored", f"topic {inbound.topic} is not used by Orderline"
    handler = spec.topics.get(inbound.topic)
    if handler is None:
        return "failed", f"unknown topic '{inbound.topic}'"
    shop = session.get(Shop, inbound.shop_id) if inbound.shop_id else None
    if shop is None:
        return "failed", "the shop this delivery belongs to no longer exists"
    try:
        event = handler(json.loads(inbound.body))
    except UNUSABLE_PAYLOAD as error:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors: a signed body that is not JSON.
        return "failed", _reason(error)
    # A delivery that calls the channel's API keeps its savepoint even in an all-or-nothing batch: its 429
    # is recorded as a retry at the channel's time, not answered by redoing the batch and asking again.
    savepoint = session.begin_nested() if not all_or_nothing(session) or isinstance(event, FetchOrder) else None
    try:
        status = _APPLY[type(event)](runtime, session, shop, inbound, event)
        if savepoint is not None:
            savepoint.commit()
        return status, None
    except (TransientError, *UNUSABLE_PAYLOAD) as error:
        if savepoint is None:
            raise RedoOneByOne(f"{inbound.provider} delivery {inbound.id}: {type(error).__name__}: {error}") from error
        savepoint.rollback()
        if isinstance(error, TransientError):
            raise
        return "failed", _reason(error)


def _reason(error: Exception) -> str:
    """What staff read on a failed delivery: the error, with the fields an order check named."""
    fields = getattr(error, "fields", None)
    return (f"{type(error).__name__}: {error}" + (f" {json.dumps(fields, default=str)}" if fields else ""))[:2000]


class RedoOneByOne(Exception):  # noqa: N818 - an instruction, not an error
    """A delivery failed in an all-or-nothing batch: the batch is redone with a savepoint per delivery."""


def _apply_snapshot(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                    event: OrderSnapshot) -> str:
    _order, outcome = actions.apply_channel_order(session, shop, event.order)
    inbound.order_external_id = event.order.external_id  # after the order's flushes: one UPDATE of the row
    return "stale" if outcome == "stale" else "processed"


def _apply_fetch(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent, event: FetchOrder) -> str:
    order = client_for(runtime, shop).fetch_order(event.external_id)
    _order, outcome = actions.apply_channel_order(session, shop, order)
    inbound.order_external_id = event.external_id
    return "stale" if outcome == "stale" else "processed"


def _apply_refund(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                  event: RefundCreated) -> str:
    inbound.order_external_id = event.order_external_id
    outcome = actions.apply_channel_refund(session, shop, event.order_external_id, event.refund)
    if outcome == "unknown_order":
        raise TransientError(f"order {event.order_external_id} not ingested yet", retry_after=ORDER_NOT_YET_SEEN_RETRY)
    return "processed"


def _apply_removed(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                   event: OrderRemoved) -> str:
    inbound.order_external_id = event.external_id
    actions.remove_on_channel(session, shop, event.external_id, reason=event.reason)
    return "processed"


def _apply_uninstalled(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                       event: AppUninstalled) -> str:
    shop.active, shop.uninstalled_at = False, utcnow()
    return "processed"


def _apply_data_request(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                        event: CustomerDataRequest) -> str:
    privacy.export_customer(session, shop, email=event.customer_email, phone=event.customer_phone,
                            order_external_ids=event.order_external_ids)
    return "processed"


def _apply_redact(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                  event: CustomerRedact) -> str:
    privacy.redact_customer(session, shop, email=event.customer_email, phone=event.customer_phone,
                            order_external_ids=event.order_external_ids)
    # This delivery itself names the customer: it goes too.
    inbound.body, inbound.headers = privacy.REDACTED_BODY, {}
    return "processed"


def _apply_shop_redact(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                       event: ShopRedact) -> str:
    privacy.erase_shop(session, shop, keep_inbound_id=inbound.id)
    return "processed"


_APPLY: dict[type[Any], Callable[..., str]] = {
    OrderSnapshot: _apply_snapshot,
    FetchOrder: _apply_fetch,
    RefundCreated: _apply_refund,
    OrderRemoved: _apply_removed,
    AppUninstalled: _apply_uninstalled,
    CustomerDataRequest: _apply_data_request,
    CustomerRedact: _apply_redact,
    ShopRedact: _apply_shop_redact,
}
assert set(_APPLY) == set(ChannelEvent.__args__)  # every kind of channel event has its handler
