"""The transactional outbox: work is recorded in the same transaction as the change that asks for it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from app.models import OutboxEvent
from app.requestctx import current_request_id
from app.store import utcnow

# Ids of the outbox rows a session added, read by the relay once the session commits.
SESSION_KEY = "orderline.outbox_ids"


class JobName(StrEnum):
    """Every job the domain can ask for; `jobs.registry` maps each to its function and queue."""

    TRIAGE_ORDER = "triage_order"
    RECONCILE_SHOP = "reconcile_shop"
    ALLOCATE_ORDER = "allocate_order"
    # shipping helper
    AUTO_PICK_PACK = "auto_pick_pack"
    BUY_LABEL = "buy_label"
    VOID_LABEL = "void_label"
    PUSH_FULFILMENT = "push_fulfilment"
    # --- tracking and returns ---
    POLL_SHIPMENT = "poll_shipment"
    RETURN_LABEL = "return_label"
    RETURN_REFUND = "return_refund"
    # --- Slack (jobs/slack.py) ---
    SLACK_SYNC_CARD = "slack_sync_card"
    SLACK_POST_ALERT = "slack_post_alert"
    SLACK_DIGEST = "slack_digest"
    # --- end Slack ---
    # --- SMS (jobs/sms.py) ---
    SEND_SMS = "send_sms"
    DELIVER_SMS = "deliver_sms"
    # --- end SMS ---


def add_job(session: Session, job: JobName, **payload: Any) -> OutboxEvent:
    """Record that `job` must run with `payload` once this transaction commits."""
    row = OutboxEvent(job=str(job), payload=payload, request_id=current_request_id())
    session.add(row)
    # Not flushed here: the commit inserts every row a transaction added in one statement per flush, and
    # the after-commit hook reads their ids then.
    session.info.setdefault(SESSION_KEY, []).append(row)
    return row


def add_coalesced(session: Session, job: JobName, key: str,
                  merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
                  delay_seconds: float = 0.0, running: int | None = None, **payload: Any) -> OutboxEvent:
    """`add_job` for a job that redoes the whole of something each time it runs (refresh a Slack card): if a
    row with the same `key` is still waiting, this request joins it (payloads combined by `merge`, else the
    newer wins) instead of queueing a second run. A row a worker is running is locked, so it is skipped and a
    new row added: whatever this transaction commits is always seen by a run that starts after it. Holding
    the joined row's lock until commit keeps its run from starting before then. With `delay_seconds` a new
    row waits that long first, so that a burst of changes (an order's chain of steps) shares one run. A job
    asking for its own follow-up names its row as `running` (SQLite has no row locks to tell it apart)."""
    query = select(OutboxEvent).where(OutboxEvent.coalesce_key == key, OutboxEvent.status == "pending")
    if running is not None:
        query = query.where(OutboxEvent.id != running)
    waiting = session.execute(
        query.order_by(OutboxEvent.id.desc()).limit(1).with_for_update(skip_locked=True)).scalar_one_or_none()
    if waiting is None:
        row = add_job(session, job, **payload)
        row.coalesce_key = key
        if delay_seconds > 0:
            row.next_attempt_at = utcnow() + timedelta(seconds=delay_seconds)
        return row
    waiting.payload = merge(dict(waiting.payload), payload) if merge else {**waiting.payload, **payload}
    return waiting


def take_committed_ids(session: Session) -> list[int]:
    """The outbox ids this session committed; called once, from the after-commit hook. A row added inside
    a savepoint that was rolled back is no longer persistent, and is left out."""
    return [row.id for row in session.info.pop(SESSION_KEY, []) if inspect(row).persistent]
