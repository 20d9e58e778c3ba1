"""Alerts for staff: one row per problem, however often it recurs, until someone resolves it."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app import events
from app.models import Alert
from app.store import utcnow

log = structlog.get_logger("orderline.alerts")


def raise_alert(session: Session, kind: str, key: str, message: str, **data: Any) -> Alert:
    """Open an alert, or count one more occurrence of the open alert with the same key."""
    dedupe_key = f"{kind}:{key}"
    if session.get_bind().dialect.name == "postgresql":
        # Two transactions raising the same new alert would both find none and insert two: one at a time per key
        # (SQLite already lets one writer in at a time).
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": dedupe_key})
    alert = session.execute(select(Alert).where(Alert.dedupe_key == dedupe_key, Alert.resolved_at.is_(None))
                            .with_for_update()).scalar_one_or_none()
    if alert is None:
        alert = Alert(kind=kind, dedupe_key=dedupe_key, message=message, data=data)
        session.add(alert)
    else:
        alert.count += 1
        alert.last_seen_at = utcnow()
        alert.message = message
        alert.data = data
    events.note(session, alert)
    log.warning("alert", kind=kind, count=alert.count if alert.count else 1)
    return alert
