"""The webhook inbox: every verified delivery stored once, before it is acknowledged."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import outbox
from app.models import InboundEvent
from app.requestctx import current_request_id

# Headers worth keeping for replay and debugging; cookies and credentials never are.
_DROPPED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def keepable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS}


def store_delivery(session: Session, *, provider: str, shop_id: int | None, topic: str, delivery_id: str,
                   headers: Mapping[str, str], body: bytes) -> int | None:
    """Insert the delivery and ask for its ingest; None when this delivery id was stored before."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert(InboundEvent)
        .values(provider=provider, shop_id=shop_id, topic=topic, delivery_id=delivery_id,
                headers=keepable_headers(headers), body=body, status="received", attempts=0,
                request_id=current_request_id())
        .on_conflict_do_nothing(index_elements=["provider", "delivery_id"])
        .returning(InboundEvent.id)
    ).scalar()
    if inserted is None:
        return None
    outbox.add_job(session, outbox.JobName.INGEST_INBOUND, inbound_id=inserted)
    return int(inserted)


def replay(session: Session, inbound_id: int) -> InboundEvent:
    """Process a stored delivery again (after a fix): it goes back to `received` with a new ingest job."""
    event = session.execute(select(InboundEvent).where(InboundEvent.id == inbound_id)).scalar_one_or_none()
    if event is None:
        raise LookupError(f"no inbound event {inbound_id}")
    event.status, event.error, event.processed_at = "received", None, None
    outbox.add_job(session, outbox.JobName.INGEST_INBOUND, inbound_id=inbound_id)
    return event
