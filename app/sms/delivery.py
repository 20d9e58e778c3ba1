"""What happened to a text after Twilio took it: status callbacks (POST /sms/status, already verified) and
the send job's outcomes. A status only ever moves forward: callbacks can arrive out of order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.alerts import raise_alert
from app.models import Order, SmsMessage
from app.orders import actions
from app.orders.types import Actor
from app.sms import consent, phones
from app.store import utcnow

# Later states outrank earlier ones; the final ones share a rank, so the first final word stands.
RANK: dict[str, int] = {
    "pending": 0, "scheduled": 0, "claimed": 1, "accepted": 2, "queued": 2, "sending": 3, "sent": 4,
    "delivered": 6, "undelivered": 6, "failed": 6, "canceled": 6, "skipped": 6, "read": 7,
}
FAILED = {"undelivered", "failed"}
OPTED_OUT_CODE = "21610"
# This many failed texts to one number within a week is a staff alert (a wrong number, a blocked phone).
FAILURE_ALERT_COUNT = 3
SYSTEM = Actor.system("Orderline SMS")


def advance(message: SmsMessage, status: str) -> bool:
    """Move `message` to `status` if that is forward; returns whether it moved."""
    if RANK.get(status, -1) <= RANK.get(message.status, 0):
        return False
    message.status = status
    message.updated_at = utcnow()
    return True


def note_failure(session: Session, message: SmsMessage, code: str | None, text: str | None) -> None:
    """A text that did not arrive: on the timeline, the number opted out on 21610, staff told when it repeats."""
    message.error_code = code
    message.error_message = (text or "")[:500] or None
    order = session.get(Order, message.order_id) if message.order_id else None
    if code == OPTED_OUT_CODE and message.phone:
        consent.record(session, message.phone, consent.OPTED_OUT, "twilio_21610", detail=message.provider_sid)
    if order is not None:
        actions.record_event(session, order, SYSTEM, "sms.failed",
                             f"Text ({message.kind}) not delivered" + (f": Twilio error {code}" if code else ""),
                             message_id=message.id, kind=message.kind, error_code=code)
    if message.phone and code != OPTED_OUT_CODE:
        since = utcnow() - timedelta(days=7)
        failures = session.execute(select(func.count(SmsMessage.id)).where(
            SmsMessage.phone == message.phone, SmsMessage.status.in_(FAILED), SmsMessage.direction == "outbound",
            SmsMessage.updated_at >= since)).scalar_one()
        if failures >= FAILURE_ALERT_COUNT:
            raise_alert(session, "sms_undeliverable", consent.phone_key(message.phone),
                        f"{failures} texts to {phones.redact(message.phone)} failed this week"
                        + (f" (last: Twilio error {code})" if code else ""),
                        order_id=message.order_id, error_code=code)


def apply_callback(session: Session, params: dict[str, str], message_id: int | None) -> str:
    """Apply one status callback; returns what happened ("updated", "stale", "unknown")."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    query = select(SmsMessage).with_for_update()
    message = session.execute(query.where(SmsMessage.provider_sid == sid)).scalar_one_or_none() if sid else None
    if message is None and message_id is not None:
        # The send's answer was lost (a timeout) but Twilio made the message: the callback names our row.
        message = session.execute(query.where(SmsMessage.id == message_id,
                                              SmsMessage.direction == "outbound")).scalar_one_or_none()
        if message is not None and message.provider_sid is None and sid:
            message.provider_sid = sid[:64]
    if message is None or status not in RANK:
        return "unknown"
    if not advance(message, status):
        return "stale"
    if status == "sent" and message.sent_at is None:
        message.sent_at = utcnow()
    if status in FAILED:
        note_failure(session, message, (params.get("ErrorCode") or "")[:16] or None, params.get("ErrorMessage"))
    return "updated"
