"""The consent ledger: every opt-out and opt-in, with its source and time; the latest entry per number rules.

A number with no entry may get transactional texts (the customer gave it with an order); one whose latest entry
is `opted_out` gets nothing, ever, until it opts back in. Entries are keyed by a hash of the number as well, so
an erasure can blank the number itself and the opt-out still holds.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import SmsConsent
from app.store import utcnow

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


def phone_key(phone: str) -> str:
    return hashlib.sha256(f"orderline-sms-consent:{phone}".encode()).hexdigest()


def latest(session: Session, phone: str) -> SmsConsent | None:
    return session.execute(select(SmsConsent).where(SmsConsent.phone_key == phone_key(phone))
                           .order_by(SmsConsent.id.desc()).limit(1)).scalar_one_or_none()


def opted_out(session: Session, phone: str | None) -> bool:
    if not phone:
        return False
    entry = latest(session, phone)
    return entry is not None and entry.state == OPTED_OUT


def record(session: Session, phone: str, state: str, source: str, detail: str | None = None) -> bool:
    """Append `state` for `phone`; returns False (and appends nothing) when that is already its state."""
    entry = latest(session, phone)
    if entry is not None and entry.state == state:
        return False
    session.add(SmsConsent(phone_key=phone_key(phone), phone=phone, state=state, source=source,
                           detail=(detail or "")[:255] or None, created_at=utcnow()))
    session.flush()
    return True
