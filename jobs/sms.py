"""Sending customer texts, in two steps so that Twilio is never asked twice for one text.

`send_sms(message_id)` decides: nothing for an opted-out number, a number that cannot be used is recorded
(skipped, staff alerted), a text due in the customer's quiet hours waits for the morning (a new outbox row with
`next_attempt_at`, which the sweeper enqueues when due), otherwise the message is claimed (status `claimed`)
and `deliver_sms` is queued, committed together.

`deliver_sms(message_id)` makes the call. Its effects are written in the same transaction that closes its
outbox row, so a call whose outcome was lost (a timeout, a killed worker) leaves the message `claimed`: the
next attempt first asks Twilio whether the message exists (same number, same words, since the claim) and only
sends when it does not. Twilio queues each sender's texts and sends them at the number's rate, so texts go to it
as soon as they are due; ORDERLINE_SMS_PACE_PER_SECOND can pace them per sending number here instead (through Redis);
429 and 5xx retry with backoff (jobs/retry.py, honouring Retry-After); a refusal (4xx) fails the message,
and 21610 marks the number opted out.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import structlog
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import outbox, pacing
from app.alerts import raise_alert
from app.config import Settings
from app.failures import PermanentError, TransientError
from app.models import Order, SmsMessage
from app.orders import actions
from app.sms import consent, delivery, quiet, retention
from app.sms.outbound import contact_for
from app.store import utcnow
from integrations.twilio.client import DEFAULT_TIMEOUT, OPTED_OUT, Rejected, SentMessage, TwilioSms
from jobs.context import JobContext

log = structlog.get_logger("orderline.jobs.sms")

# A claim older than this, or a second attempt, may already have reached Twilio: look before sending.
MAYBE_SENT_AFTER = timedelta(seconds=60)
# Pacing never holds a worker longer than this; beyond it the job retries later (something is misconfigured).
MAX_PACING_WAIT = 30.0
RETENTION_EVERY_SECONDS = 3600
# Seconds to wait for Twilio's answer to one call.
TWILIO_TIMEOUT = DEFAULT_TIMEOUT



def now() -> datetime:
    """The job's clock (tests move it to 23:00 local time)."""
    return utcnow()


def _locked(session: Session, message_id: int) -> SmsMessage | None:
    return session.execute(select(SmsMessage).where(SmsMessage.id == message_id).with_for_update()
                           ).scalar_one_or_none()


def _skip(session: Session, message: SmsMessage, order: Order | None, reason: str, text: str) -> None:
    message.status, message.error_code, message.error_message = "skipped", reason, text
    message.updated_at = utcnow()
    if order is not None:
        actions.record_event(session, order, delivery.SYSTEM, "sms.skipped", f"Text ({message.kind}) not sent: {text}",
                             message_id=message.id, kind=message.kind, reason=reason)


def _quiet_until(message: SmsMessage, order: Order | None, settings: Settings) -> datetime | None:
    if message.time_critical:
        return None
    shop_settings = (order.shop.settings or {}) if order is not None else {}
    window = quiet.parse_window(str(shop_settings.get("sms_quiet_hours") or settings.sms_quiet_hours))
    country = contact_for(order).country if order is not None else None
    zone = quiet.zone_for(country=country, phone=message.phone,
                          shop_timezone=order.shop.timezone if order is not None else None)
    return quiet.next_allowed(now(), zone, window)


def _erase_old_bodies(ctx: JobContext) -> None:
    try:
        due = ctx.runtime.redis.set("orderline:sms:retention", "1", nx=True, ex=RETENTION_EVERY_SECONDS)
    except Exception:  # noqa: BLE001 - housekeeping must never fail a send
        return
    if due:
        retention.erase_expired_bodies(ctx.session, ctx.runtime.settings.sms_body_retention_days)


def send_sms(ctx: JobContext) -> None:
    session, settings = ctx.session, ctx.runtime.settings
    message = _locked(session, ctx.int_arg("message_id"))
    if message is None or message.status not in ("pending", "scheduled"):
        return  # sent, skipped or already claimed: a repeated job changes nothing
    _erase_old_bodies(ctx)
    order = session.get(Order, message.order_id) if message.order_id else None
    if message.phone is None:
        _skip(session, message, order, "invalid_phone", "the customer's phone number cannot be used")
        if order is not None:
            # One alert per shop, counting the orders: on a busy day a shop's checkout letting bad numbers
            # through is one problem, not a message in the ops channel for every order.
            raise_alert(session, "sms_invalid_phone", f"shop:{order.shop_id}",
                        f"{order.shop.name}: customers' phone numbers that cannot be used for texts "
                        f"(latest: order {order.number})", order_id=order.id, shop_id=order.shop_id)
        return
    if consent.opted_out(session, message.phone):
        _skip(session, message, order, "opted_out", "the customer opted out of texts")
        return
    later = _quiet_until(message, order, settings)
    if later is not None:
        message.status, message.send_after = "scheduled", later
        row = outbox.add_job(session, outbox.JobName.SEND_SMS, message_id=message.id)
        row.next_attempt_at = later
        log.info("sms.scheduled", message_id=message.id, send_after=later.isoformat())
        return
    message.status, message.claimed_at, message.updated_at = "claimed", utcnow(), utcnow()
    outbox.add_job(session, outbox.JobName.DELIVER_SMS, message_id=message.id)


def _client(settings: Settings) -> TwilioSms:
    return TwilioSms(settings.twilio_account_sid, settings.twilio_auth_token, base_url=settings.twilio_api_base_url,
                     timeout=TWILIO_TIMEOUT)


def pace(redis: Redis, sender: str, per_second: float) -> float:
    """Reserve the next send slot for `sender`; returns the seconds to wait for it."""
    if per_second <= 0:
        return 0.0
    return pacing.reserve(redis, f"sms:{sender}", 1.0 / per_second)


def _callback_url(settings: Settings, message_id: int) -> str:
    return f"{settings.public_base_url.rstrip('/')}/sms/status?m={message_id}"


def _record_sent(session: Session, message: SmsMessage, sent: SentMessage, order: Order | None) -> None:
    message.provider_sid = sent.sid
    message.sent_at = message.sent_at or utcnow()
    if sent.segments:
        message.segments = sent.segments
    delivery.advance(message, sent.status)
    if order is not None:
        actions.record_event(session, order, delivery.SYSTEM, "sms.sent", f"Texted the customer ({message.kind})",
                             message_id=message.id, kind=message.kind, segments=message.segments)


def deliver_sms(ctx: JobContext) -> None:
    session, settings = ctx.session, ctx.runtime.settings
    message = _locked(session, ctx.int_arg("message_id"))
    if message is None or message.status != "claimed" or message.phone is None or message.body is None:
        return
    order = session.get(Order, message.order_id) if message.order_id else None
    if consent.opted_out(session, message.phone):
        _skip(session, message, order, "opted_out", "the customer opted out of texts")
        return
    client = _client(settings)
    claimed_at = message.claimed_at or utcnow()
    from_number = None if message.sender and message.sender.startswith("MG") else message.sender
    if ctx.may_have_run_before or utcnow() - claimed_at > MAYBE_SENT_AFTER:
        found = client.find_sent(to=message.phone, body=message.body, since=claimed_at - timedelta(seconds=5),
                                 from_=from_number)
        if found is not None:
            log.info("sms.found_after_lost_answer", message_id=message.id)
            _record_sent(session, message, found, order)
            return
    wait = pace(ctx.runtime.redis, message.sender or "default", settings.sms_pace_per_second)
    if wait > MAX_PACING_WAIT:
        raise TransientError(f"sending number busy for {wait:.0f}s", retry_after=wait)
    time.sleep(wait)
    try:
        sent = client.send(to=message.phone, body=message.body, status_callback=_callback_url(settings, message.id),
                           from_=from_number, messaging_service_sid=None if from_number else message.sender)
    except Rejected as error:
        if error.status in (401, 403):
            # Our credentials, not this text: every send would fail alike. The job fails (requeue it once
            # the settings are fixed); the message stays claimed, so the requeued job looks before sending.
            raise PermanentError(f"Twilio refused Orderline's credentials: {error}") from error
        message.status = "failed"
        delivery.note_failure(session, message, str(error.code) if error.code else None, str(error))
        if error.code != OPTED_OUT and order is not None:
            raise_alert(session, "sms_rejected", str(order.id),
                        f"Order {order.number}: Twilio refused a text ({message.kind}): {error}", order_id=order.id,
                        error_code=error.code)
        log.warning("sms.rejected", message_id=message.id, code=error.code)
        return
    _record_sent(session, message, sent, order)
    log.info("sms.sent", message_id=message.id, kind=message.kind, status=sent.status)
