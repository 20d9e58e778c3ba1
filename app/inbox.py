"""The webhook inbox: every verified delivery stored once, before it is acknowledged. The inbox is also
the ingest queue: a `received` row is work to do (jobs/ingest.py drains it)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import InboundEvent
from app.requestctx import current_request_id
from app.store import utcnow

# Headers worth keeping for replay and debugging; cookies and credentials never are.
_DROPPED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def keepable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS}


_INSERT_COLUMNS = ("provider", "shop_id", "topic", "delivery_id", "headers", "body", "status", "attempts",
                   "request_id", "received_at")


@lru_cache(maxsize=4)
def _insert_statement(dialect: str) -> Any:
    # Built once per dialect, so each webhook only binds values to an already-compiled statement.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (insert(InboundEvent)
            .values({name: bindparam(name) for name in _INSERT_COLUMNS})
            .on_conflict_do_nothing(index_elements=["provider", "delivery_id"])
            .returning(InboundEvent.id))


def store_delivery(connection: Connection, *, provider: str, shop_id: int | None, topic: str, delivery_id: str,
                   headers: Mapping[str, str], body: bytes) -> int | None:
    """Insert the delivery; None when this delivery id was stored before. One statement, no ORM: this runs
    on every webhook, inside the sender's timeout."""
    inserted = connection.execute(_insert_statement(connection.dialect.name), {
        "provider": provider, "shop_id": shop_id, "topic": topic, "delivery_id": delivery_id,
        "headers": keepable_headers(headers), "body": body, "status": "received", "attempts": 0,
        "request_id": current_request_id(), "received_at": utcnow(),
    }).scalar()
    return None if inserted is None else int(inserted)


def replay(session: Session, inbound_id: int) -> InboundEvent:
    """Process a stored delivery again (after a fix): back to `received`, due now. The caller wakes ingest."""
    event = session.execute(select(InboundEvent).where(InboundEvent.id == inbound_id)).scalar_one_or_none()
    if event is None:
        raise LookupError(f"no inbound event {inbound_id}")
    event.status, event.error, event.processed_at, event.next_attempt_at = "received", None, None, None
    return event
