"""Ingest: turn a stored webhook delivery into changes to the unified order store, exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import privacy
from app.failures import TransientError
from app.models import InboundEvent, Shop
from app.orders import actions
from app.orders.errors import OrderError
from app.runtime import Runtime
from app.store import utcnow
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
from jobs.context import JobContext

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


def ingest_inbound(ctx: JobContext) -> None:
    session = ctx.session
    inbound = session.execute(select(InboundEvent).where(InboundEvent.id == ctx.int_arg("inbound_id"))
                              .with_for_update()).scalar_one_or_none()
    if inbound is None or inbound.status != "received":
        return  # already processed (a repeated job) or erased
    inbound.attempts += 1
    status, error = process(ctx.runtime, session, inbound)
    inbound.status, inbound.error, inbound.processed_at = status, error, utcnow()
    log.info("ingest.done", kind=inbound.provider, status=status, error=error)


def process(runtime: Runtime, session: Session, inbound: InboundEvent) -> tuple[str, str | None]:
    """Apply one delivery. Returns (status, reason): processed, ignored, stale or failed.

    A mapping failure never loses the delivery: it stays stored as `failed` with the reason, replayable.
    Transient provider errors propagate, so the job retries with backoff.
    """
    spec = channel(inbound.provider)
    if inbound.topic in spec.ignored_topics:
        return "ignored", f"topic {inbound.topic} is not used by Orderline"
    handler = spec.topics.get(inbound.topic)
    if handler is None:
        return "failed", f"unknown topic '{inbound.topic}'"
    shop = session.get(Shop, inbound.shop_id) if inbound.shop_id else None
    if shop is None:
        return "failed", "the shop this delivery belongs to no longer exists"
    savepoint = session.begin_nested()
    try:
        payload = json.loads(inbound.body)
        event = handler(payload)
        status = _APPLY[type(event)](runtime, session, shop, inbound, event)
        savepoint.commit()
        return status, None
    except TransientError:
        savepoint.rollback()
        raise
    except (PayloadError, OrderError, ValueError, KeyError, TypeError, AttributeError) as error:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors: a signed body that is not JSON.
        savepoint.rollback()
        return "failed", f"{type(error).__name__}: {error}"[:2000]


def _apply_snapshot(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent,
                    event: OrderSnapshot) -> str:
    inbound.order_external_id = event.order.external_id
    _order, outcome = actions.apply_channel_order(session, shop, event.order)
    return "stale" if outcome == "stale" else "processed"


def _apply_fetch(runtime: Runtime, session: Session, shop: Shop, inbound: InboundEvent, event: FetchOrder) -> str:
    inbound.order_external_id = event.external_id
    order = client_for(runtime, shop).fetch_order(event.external_id)
    _order, outcome = actions.apply_channel_order(session, shop, order)
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
