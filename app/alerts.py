"""Alerts for staff: one row per problem, however often it recurs, until someone resolves it."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import events
from app.models import Alert
from app.store import utcnow

log = structlog.get_logger("orderline.alerts")


def raise_alert(session: Session, kind: str, key: str, message: str, **data: Any) -> Alert:
    """Open an alert, or count one more occurrence of the open alert with the same key."""
    dedupe_key = f"{kind}:{key}"
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
