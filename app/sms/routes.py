"""Twilio's webhooks: POST /sms/inbound (a customer's text, answered with TwiML) and POST /sms/status
(delivery status callbacks). Both are verified by X-Twilio-Signature over PUBLIC_BASE_URL + the request's path
and query, so they verify behind a proxy that rewrites the host; a missing or wrong signature is 403 and
nothing is read, stored or answered."""

from __future__ import annotations

import structlog
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError
from twilio.twiml.messaging_response import MessagingResponse

from app.runtime import Runtime
from app.sms import conversation, delivery, phones
from integrations.twilio.signature import SIGNATURE_HEADER, verify

bp = Blueprint("sms", __name__)
log = structlog.get_logger("orderline.sms")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["orderline"]
    return runtime


def _public_url(runtime: Runtime) -> str:
    """The URL Twilio requested, as Twilio saw it: the public base, then this request's path and query."""
    query = request.query_string.decode("latin-1")
    return runtime.settings.public_base_url.rstrip("/") + request.path + (f"?{query}" if query else "")


def _verified(runtime: Runtime) -> list[tuple[str, str]] | None:
    params = list(request.form.items(multi=True))
    if verify(runtime.settings.twilio_auth_token, _public_url(runtime), params,
              request.headers.get(SIGNATURE_HEADER, "")):
        return params
    return None


def _forbidden() -> Response:
    log.warning("sms.signature_refused", path=request.path)
    return Response("invalid or missing X-Twilio-Signature\n", status=403, mimetype="text/plain")


def _twiml(reply: str | None) -> Response:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), status=200, mimetype="text/xml")


@bp.post("/sms/inbound")
def inbound() -> Response:
    runtime = _runtime()
    params = _verified(runtime)
    if params is None:
        return _forbidden()
    # Repeated names (MediaUrl is numbered, but be safe) keep their last value for reading.
    fields = dict(params)
    try:
        with runtime.db.session() as session:
            reply = conversation.handle(session, fields)
    except IntegrityError:
        # The same MessageSid delivered twice at once: the other request stored it; answer as it did.
        with runtime.db.session() as session:
            reply = conversation.handle(session, fields)
    log.info("sms.inbound", sender=phones.redact(fields.get("From")), replied=bool(reply))
    return _twiml(reply)


@bp.post("/sms/status")
def status() -> Response:
    runtime = _runtime()
    params = _verified(runtime)
    if params is None:
        return _forbidden()
    hint = request.args.get("m", "")
    with runtime.db.session() as session:
        message_id = int(hint) if hint.isdigit() and len(hint) <= 9 else None  # fits an INTEGER column
        outcome = delivery.apply_callback(session, dict(params), message_id)
    log.info("sms.status", outcome=outcome, status=dict(params).get("MessageStatus"))
    return Response(status=204)
