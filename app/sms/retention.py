"""How long a text's words are kept: `sms_body_retention_days` (ORDERLINE_SMS_BODY_RETENTION_DAYS, default 30)
after the text was created, long enough to answer a complaint about it; then the body is blanked and only
the metadata stays (kind, status, error code, times). Run from the send job at most once an hour."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import SmsMessage
from app.store import utcnow


def erase_expired_bodies(session: Session, days: int) -> int:
    cutoff = utcnow() - timedelta(days=max(days, 0))
    result = session.execute(update(SmsMessage)
                             .where(SmsMessage.created_at < cutoff, SmsMessage.body.is_not(None),
                                    SmsMessage.status.not_in(("pending", "scheduled", "claimed")))
                             .values(body=None, body_erased_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
