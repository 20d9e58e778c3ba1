"""Tracking: what carriers say about parcels (webhooks through the inbox, and polls), applied exactly once.

A scan is stored once per (carrier, tracking number, fingerprint) in `tracking_events`, however often the
carrier repeats it; each new scan becomes a timeline entry (`shipment.tracking`, or `return.tracking` for a
return parcel). The parcel's status only moves forward in time: a scan older than the newest one applied is
recorded but does not change the status, `delivered` is final unless the carrier then reports the parcel
`returned`, and `returned` is final. When every shipment of a shipped order is delivered, the order becomes
`delivered`. An exception raises a staff alert.

Parcels are found by integration (`Shipment.provider` for shipments, `Return.carrier` for returns:
easypost, shippo, sandbox) and tracking number; a delivery about a number we do not know is kept in the
inbox as `ignored`, with why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import outbox
from app.alerts import raise_alert
from app.carrier_accounts import carrier_client
from app.config import Settings
from app.failures import TransientError
from app.models import InboundEvent, Order, Return, Shipment, TrackingEvent
from app.orders import actions
from app.orders.errors import OrderError
from app.orders.types import Actor
from app.runtime import Runtime
from app.store import utcnow
from integrations.carriers import all_carriers, carrier
from integrations.carriers.base import (
    TrackingStatus,
    TrackingUpdate,
    WebhookPayloadError,
    sort_updates,
)

log = structlog.get_logger("orderline.tracking")

# Inbox rows from carriers are stored under "carrier:<slug>", apart from the channels' own.
PROVIDER_PREFIX = "carrier:"

S = TrackingStatus
# Shipment statuses that tracking may change; `pending`, `purchasing` and `voided` parcels are not moving.
TRACKABLE = frozenset({"purchased", "in_transit", "out_for_delivery", "exception", "delivered"})
# What each carrier status makes the shipment (pre-transit leaves it `purchased`).
SHIPMENT_STATUS: dict[TrackingStatus, str] = {
    S.IN_TRANSIT: "in_transit", S.OUT_FOR_DELIVERY: "out_for_delivery", S.DELIVERED: "delivered",
    S.EXCEPTION: "exception", S.RETURNED: "returned",
}
# Still travelling: polled until one of the final statuses.
ACTIVE = frozenset({"purchased", "in_transit", "out_for_delivery", "exception"})
DEFAULT_STALE_DAYS = 5
ACTOR = Actor.system("Carrier tracking")


def fingerprint(update: TrackingUpdate) -> str:
    """The identity of one scan: the same scan from a webhook and from a poll is one row."""
    text = "|".join([update.occurred_at.isoformat(), str(update.status), update.detail, update.location or ""])
    return hashlib.sha256(text.encode()).hexdigest()


def advances(current: str | None, last_scan_at: datetime | None, update: TrackingUpdate) -> bool:
    """Whether `update` may become the parcel's status: never backwards, in time or in the journey."""
    if update.status is S.UNKNOWN:
        return False
    if current == S.RETURNED:
        return False
    if current == S.DELIVERED:
        return update.status is S.RETURNED  # a delivered parcel only moves again when it comes back
    if update.status is S.PRE_TRANSIT and current not in (None, S.PRE_TRANSIT):
        return False
    # Out of order: an older scan than the newest applied one is history, not news.
    return last_scan_at is None or update.occurred_at >= last_scan_at


# --- finding the parcel -----------------------------------------------------------------------------------


def find_shipment(session: Session, slug: str, number: str) -> Shipment | None:
    """The live shipment with this tracking number (locked: a webhook and a poll for it apply one at a time)."""
    return session.execute(
        select(Shipment).where(Shipment.tracking_number == number, Shipment.provider == slug,
                               Shipment.status != "voided")
        .order_by(Shipment.id.desc()).limit(1).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def find_return(session: Session, slug: str, number: str) -> Return | None:
    return session.execute(
        select(Return).where(Return.tracking_number == number, Return.carrier == slug)
        .order_by(Return.id.desc()).limit(1).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


# --- applying scans ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What one batch of scans did: `found` is False for a number nobody here knows."""

    found: bool
    new_events: int = 0
    status: str | None = None
    reason: str | None = None


def _store_new(session: Session, slug: str, number: str, updates: Sequence[TrackingUpdate], *, source: str,
               shipment_id: int | None = None, return_id: int | None = None) -> list[TrackingUpdate]:
    """Store the scans not seen before; returns them oldest first. The caller holds the parcel's row lock."""
    seen = set(session.execute(select(TrackingEvent.fingerprint).where(
        TrackingEvent.carrier == slug, TrackingEvent.tracking_number == number)).scalars())
    new: list[TrackingUpdate] = []
    for update in sort_updates(updates):
        key = fingerprint(update)
        if key in seen:
            continue
        seen.add(key)
        new.append(update)
        session.add(TrackingEvent(
            carrier=slug, tracking_number=number, fingerprint=key, shipment_id=shipment_id, return_id=return_id,
            status=str(update.status), raw_status=(update.raw_status or "")[:64] or None,
            description=update.detail, location=(update.location or "")[:255] or None,
            occurred_at=update.occurred_at, source=source, created_at=utcnow()))
    return new


def _describe(update: TrackingUpdate) -> str:
    where = f" ({update.location})" if update.location else ""
    return f"{update.status.replace('_', ' ').capitalize()}: {update.detail}{where}"


def apply_updates(session: Session, settings: Settings, slug: str, number: str,
                  updates: Sequence[TrackingUpdate], *, source: str) -> Applied:
    """Apply a carrier's scans for one tracking number, to its shipment or its return parcel."""
    shipment = find_shipment(session, slug, number)
    if shipment is not None:
        return _apply_to_shipment(session, settings, shipment, updates, source=source)
    parcel = find_return(session, slug, number)
    if parcel is not None:
        return _apply_to_return(session, settings, parcel, updates, source=source)
    return Applied(False, reason=f"no shipment or return has {slug} tracking number {number}")


def _apply_to_shipment(session: Session, settings: Settings, shipment: Shipment,
                       updates: Sequence[TrackingUpdate], *, source: str) -> Applied:
    assert shipment.provider is not None and shipment.tracking_number is not None
    now = utcnow()
    new = _store_new(session, shipment.provider, shipment.tracking_number, updates, source=source,
                     shipment_id=shipment.id)
    order = shipment.order
    for update in new:
        actions.record_event(session, order, ACTOR, "shipment.tracking", _describe(update),
                             shipment_id=shipment.id, status=str(update.status), description=update.detail,
                             occurred_at=update.occurred_at.isoformat(), location=update.location)
        if update.estimated_delivery is not None:
            shipment.expected_delivery = update.estimated_delivery
        if shipment.status not in TRACKABLE or not advances(shipment.tracking_status, shipment.last_scan_at, update):
            continue
        shipment.tracking_status = str(update.status)
        shipment.last_scan_at = update.occurred_at
        if update.status in SHIPMENT_STATUS:
            shipment.status = SHIPMENT_STATUS[update.status]
        if update.status is S.DELIVERED:
            shipment.delivered_at = update.occurred_at
        elif update.status is S.EXCEPTION:
            raise_alert(session, "shipment_exception", f"shipment:{shipment.id}",
                        f"Order {order.number}: the carrier reports a problem with {shipment.tracking_number}: "
                        f"{update.detail}", order_id=order.id, shipment_id=shipment.id)
    shipment.last_tracking_at = now
    shipment.next_poll_at = next_poll_at(settings, shipment, now)
    if new and shipment.status == "delivered":
        _deliver_order_if_complete(session, order)
    return Applied(True, len(new), shipment.status)


def _deliver_order_if_complete(session: Session, order: Order) -> None:
    live = [s for s in order.shipments if s.status != "voided"]
    if live and all(s.status == "delivered" for s in live):
        session.flush()
        actions.mark_delivered(session, order.id, ACTOR)


def _apply_to_return(session: Session, settings: Settings, parcel: Return, updates: Sequence[TrackingUpdate], *,
                     source: str) -> Applied:
    assert parcel.carrier is not None and parcel.tracking_number is not None
    # A return has no scan-time column: the newest scan stored before these is the last one applied.
    last = session.execute(select(func.max(TrackingEvent.occurred_at)).where(
        TrackingEvent.return_id == parcel.id)).scalar()
    new = _store_new(session, parcel.carrier, parcel.tracking_number, updates, source=source, return_id=parcel.id)
    for update in new:
        actions.record_event(session, parcel.order, ACTOR, "return.tracking", _describe(update),
                             return_id=parcel.id, status=str(update.status), description=update.detail,
                             occurred_at=update.occurred_at.isoformat())
        if advances(parcel.tracking_status, last, update):
            parcel.tracking_status, last = str(update.status), update.occurred_at
            # Staff still mark it received when they open the box; tracking only says it is on its way.
            if parcel.status == "label_ready" and update.status is not S.PRE_TRANSIT:
                parcel.status = "in_transit"
    parcel.next_poll_at = next_return_poll_at(settings, parcel, utcnow())
    return Applied(True, len(new), parcel.status)


# --- webhooks through the inbox ---------------------------------------------------------------------------


def identify(slug: str, payload: Any, raw: bytes) -> tuple[str, str]:
    """(topic, delivery id) of a verified carrier webhook, for the inbox's dedupe.

    EasyPost Events carry an id (`evt_…`); Shippo's webhooks carry none, so the body's hash stands in
    (Shippo resends the same body when it retries).
    """
    if not isinstance(payload, dict):
        raise WebhookPayloadError("the body is not a JSON object")
    if slug == "easypost":
        topic, delivery = str(payload.get("description") or ""), str(payload.get("id") or "")
    else:
        topic, delivery = str(payload.get("event") or ""), ""
    if not topic:
        raise WebhookPayloadError(f"the {carrier(slug).display_name} webhook names no event")
    return topic[:128], (delivery or "sha256:" + hashlib.sha256(raw).hexdigest())[:255]


def process_delivery(settings: Settings, session: Session, inbound: InboundEvent) -> tuple[str, str | None]:
    """Apply one stored carrier webhook (called by jobs/ingest.py). Returns (inbox status, reason)."""
    slug = inbound.provider.removeprefix(PROVIDER_PREFIX)
    try:
        spec = carrier(slug)
        updates = spec.parse_webhook(json.loads(inbound.body))
    except (LookupError, WebhookPayloadError, ValueError) as error:
        return "failed", f"{type(error).__name__}: {error}"[:2000]
    if not updates:
        return "ignored", f"{spec.display_name} event '{inbound.topic}' carries no tracking"
    by_number: dict[str, list[TrackingUpdate]] = {}
    for update in updates:
        by_number.setdefault(update.tracking_number, []).append(update)
    unknown: list[str] = []
    for number, group in by_number.items():
        savepoint = session.begin_nested()
        try:
            applied = apply_updates(session, settings, slug, number, group, source="webhook")
        except (OrderError, IntegrityError) as error:
            # Staff changed the order meanwhile, or a poll stored the same scan first: try the delivery again.
            savepoint.rollback()
            raise TransientError(f"tracking {number}: {type(error).__name__}: {error}") from error
        savepoint.commit()
        if not applied.found:
            unknown.append(applied.reason or number)
            log.info("tracking.unknown_number", carrier=slug, tracking_number=number)
    if len(unknown) == len(by_number):
        return "ignored", "; ".join(unknown)[:2000]
    return "processed", ("; ".join(unknown)[:2000] or None)


# --- carrier clients --------------------------------------------------------------------------------------


def secrets_for(settings: Settings, slug: str) -> list[str]:
    """The webhook secrets of a carrier: the current one and, during a rotation, the previous one."""
    pairs = {"easypost": (settings.easypost_webhook_secret, settings.easypost_webhook_secret_previous),
             "shippo": (settings.shippo_webhook_token, settings.shippo_webhook_token_previous)}
    return [s for s in pairs.get(slug, ()) if s]


# --- polling ----------------------------------------------------------------------------------------------


def poll_interval(settings: Settings, shipment: Shipment, now: datetime) -> timedelta:
    """How long to wait for carrier news before asking: shorter on the last leg, or once it is due."""
    if shipment.provider == "sandbox":
        # The offline carrier's parcels travel in minutes (demo, development): follow them as they move.
        return _sandbox_poll_interval(settings)
    near = timedelta(minutes=settings.tracking_poll_near_minutes)
    if shipment.status == "out_for_delivery":
        return near
    if shipment.expected_delivery is not None and shipment.expected_delivery - now <= timedelta(days=1):
        return near
    return timedelta(minutes=settings.tracking_poll_minutes)


def _sandbox_poll_interval(settings: Settings) -> timedelta:
    return timedelta(minutes=max(0.25, settings.sandbox_carrier_minutes_to_deliver / 6))


def next_poll_at(settings: Settings, shipment: Shipment, now: datetime) -> datetime | None:
    if shipment.status not in ACTIVE or not shipment.tracking_number:
        return None
    return now + poll_interval(settings, shipment, now)


# Return parcels on their way back: polled at the normal interval until staff receive them.
RETURN_TRAVELLING = frozenset({"label_ready", "in_transit"})


def next_return_poll_at(settings: Settings, parcel: Return, now: datetime) -> datetime | None:
    if parcel.status not in RETURN_TRAVELLING or not parcel.tracking_number:
        return None
    if parcel.carrier == "sandbox":
        return now + _sandbox_poll_interval(settings)
    return now + timedelta(minutes=settings.tracking_poll_minutes)


def _pollable(shipment: Shipment) -> bool:
    return shipment.provider in all_carriers()


def schedule_due_polls(runtime: Runtime, *, limit: int = 500) -> int:
    """The sweeper's call: ask for a poll of every travelling shipment the carrier has been quiet about.
    Claims each by moving its next_poll_at, so the next sweep does not ask again while the job runs."""
    settings = runtime.settings
    now = utcnow()
    quiet_since = now - timedelta(minutes=settings.tracking_poll_minutes)
    scheduled = 0
    with runtime.db.session() as session:
        due = session.execute(
            select(Shipment).where(
                Shipment.status.in_(ACTIVE), Shipment.tracking_number.is_not(None),
                Shipment.provider.in_(list(all_carriers())),
                or_(Shipment.next_poll_at <= now,
                    and_(Shipment.next_poll_at.is_(None),
                         func.coalesce(Shipment.last_tracking_at, Shipment.shipped_at, Shipment.created_at)
                         <= quiet_since)))
            .order_by(Shipment.id).limit(limit).with_for_update(skip_locked=True)
        ).scalars().all()
        for shipment in due:
            outbox.add_job(session, outbox.JobName.POLL_SHIPMENT, shipment_id=shipment.id)
            # Until the job reports: if it is lost, the sweep asks again after one more interval.
            shipment.next_poll_at = now + poll_interval(settings, shipment, now)
            scheduled += 1
        coming_back = session.execute(
            select(Return).where(Return.status.in_(RETURN_TRAVELLING), Return.next_poll_at <= now,
                                 Return.carrier.in_(list(all_carriers())))
            .order_by(Return.id).limit(limit).with_for_update(skip_locked=True)).scalars().all()
        for parcel in coming_back:
            outbox.add_job(session, outbox.JobName.POLL_SHIPMENT, return_id=parcel.id)
            parcel.next_poll_at = next_return_poll_at(settings, parcel, now)
            scheduled += 1
    return scheduled


def poll_return(runtime: Runtime, session: Session, return_id: int) -> Applied | None:
    """Ask the carrier for a return parcel's scans and apply them (until staff receive it)."""
    parcel = session.execute(select(Return).where(Return.id == return_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if parcel is None or parcel.status not in RETURN_TRAVELLING or not parcel.tracking_number or not parcel.carrier:
        return None
    client = carrier_client(runtime.settings, parcel.carrier, parcel.order.shop)
    updates = client.track(parcel.tracking_number, parcel.label_carrier)
    return _apply_to_return(session, runtime.settings, parcel, updates, source="poll")


def poll_shipment(runtime: Runtime, session: Session, shipment_id: int) -> Applied | None:
    """Ask the carrier for a shipment's scans and apply them; alert when it has not been scanned for days."""
    shipment = session.execute(select(Shipment).where(Shipment.id == shipment_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if shipment is None or shipment.status not in ACTIVE or not shipment.tracking_number or not _pollable(shipment):
        return None
    assert shipment.provider is not None
    client = carrier_client(runtime.settings, shipment.provider, shipment.order.shop)
    # Shippo looks numbers up per carrier: the one that moves the parcel (USPS, DHL Express…).
    updates = client.track(shipment.tracking_number, shipment.carrier)
    applied = _apply_to_shipment(session, runtime.settings, shipment, updates, source="poll")
    _alert_if_stalled(session, shipment)
    return applied


def stale_days(shipment: Shipment) -> int:
    value = (shipment.order.shop.settings or {}).get("tracking_stale_days", DEFAULT_STALE_DAYS)
    return value if isinstance(value, int) and value > 0 else DEFAULT_STALE_DAYS


def _alert_if_stalled(session: Session, shipment: Shipment) -> None:
    if shipment.status not in ACTIVE:
        return
    last = shipment.last_scan_at or shipment.shipped_at or shipment.created_at
    days = stale_days(shipment)
    if last is not None and utcnow() - last >= timedelta(days=days):
        order = shipment.order
        raise_alert(session, "shipment_stalled", f"shipment:{shipment.id}",
                    f"Order {order.number}: no carrier scan of {shipment.tracking_number} for {days} days or more "
                    f"(last {last:%Y-%m-%d %H:%M} UTC)", order_id=order.id, shipment_id=shipment.id)
