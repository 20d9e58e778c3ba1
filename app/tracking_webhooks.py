"""Carrier tracking webhooks: verify the raw bytes, store the delivery in the inbox, answer 2xx.

POST /webhooks/carriers/easypost (X-Hmac-Signature) and /webhooks/carriers/shippo (?token=). The ingest
job applies them (app/tracking.py process_delivery); nothing here calls a carrier or changes a shipment.
"""

from __future__ import annotations

import json

import structlog
from flask import Blueprint, Response, current_app, jsonify, request

from app import tracking
from app.api.errors import error_response
from app.inbox import store_delivery
from integrations.carriers import carrier
from integrations.carriers.base import WebhookPayloadError, WebhookVerificationError
from jobs.ingest import wake

bp = Blueprint("carrier_webhooks", __name__, url_prefix="/webhooks/carriers")
log = structlog.get_logger("orderline.webhooks")


@bp.post("/<slug>")
def receive(slug: str) -> Response:
    try:
        spec = carrier(slug)
    except LookupError as error:
        return error_response(404, str(error), code="unknown_carrier")
    if not spec.sends_webhooks:
        return error_response(404, f"the {spec.display_name} carrier sends no webhooks; its parcels are polled",
                              code="unknown_carrier")
    raw = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH, before any parsing
    runtime = current_app.extensions["orderline"]
    try:
        spec.verify_webhook(request.headers, raw, tracking.secrets_for(runtime.settings, slug), request.args)
    except WebhookVerificationError as error:
        log.warning("webhook.rejected", kind=f"carrier:{slug}", error=str(error))
        return error_response(401, str(error), code="invalid_signature")
    try:
        topic, delivery_id = tracking.identify(slug, json.loads(raw), raw)
    except (ValueError, WebhookPayloadError) as error:
        message = str(error) if isinstance(error, WebhookPayloadError) else "the body is not JSON"
        return error_response(400, f"{spec.display_name} webhook: {message}", code="invalid_payload")
    inbound_id = store_delivery(runtime.db, provider=tracking.PROVIDER_PREFIX + slug, shop_id=None, topic=topic,
                                delivery_id=delivery_id, headers=request.headers, body=raw)
    if inbound_id is None:
        return jsonify(status="duplicate")
    wake(runtime, slot=inbound_id)
    return jsonify(status="accepted", id=inbound_id)
