"""Webhook receivers: verify the raw bytes, store the delivery, answer 2xx. No provider calls, no business logic."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Blueprint, Response, current_app, jsonify, request

from app.api.errors import error_response
from app.inbox import store_delivery
from app.models import Shop
from integrations import channel
from integrations.base import ChannelSpec, Delivery, WebhookVerificationError

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = structlog.get_logger("orderline.webhooks")


def _secrets(value: Any) -> list[str]:
    # A stored secret may be a list during a rotation: [new, old] are both accepted until the old is dropped.
    if isinstance(value, str):
        return [value] if value else []
    return [v for v in value or [] if isinstance(v, str) and v]


def _app_secrets(slug: str) -> list[str]:
    settings = current_app.extensions["orderline"].settings
    return _secrets([getattr(settings, f"{slug}_api_secret", ""), getattr(settings, f"{slug}_api_secret_previous", "")])


def _find_shop(session: Any, spec: ChannelSpec, delivery: Delivery, path_ref: str | None) -> Shop | None:
    if path_ref is not None:
        shop = session.get(Shop, int(path_ref)) if path_ref.isdigit() else None
        return shop if shop is not None and shop.channel == spec.slug else None
    return session.query(Shop).filter_by(channel=spec.slug, external_id=delivery.shop_ref).one_or_none()


def receive(slug: str, path_ref: str | None = None) -> Response:
    spec = channel(slug)
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH, before any parsing
    headers = request.headers
    try:
        delivery = spec.read_delivery(headers, raw, path_ref)
    except WebhookVerificationError as error:
        return error_response(401, str(error), code="invalid_signature")
    if delivery is None:
        return jsonify(status="ok")  # the channel's reachability ping: nothing to store
    try:
        if spec.signs_with_app_secret:
            spec.verify(headers, raw, _app_secrets(slug))
    except WebhookVerificationError as error:
        log.warning("webhook.rejected", kind=slug, error=str(error))
        return error_response(401, str(error), code="invalid_signature")
    runtime = current_app.extensions["orderline"]
    with runtime.db.session() as session:
        shop = _find_shop(session, spec, delivery, path_ref)
        if shop is None:
            return error_response(404, f"no {spec.display_name} shop '{path_ref or delivery.shop_ref}' is registered",
                                  code="unknown_shop")
        if not spec.signs_with_app_secret:
            secrets = _secrets(runtime.secrets.open(shop.webhook_secret_encrypted)
                               if shop.webhook_secret_encrypted else None)
            try:
                spec.verify(headers, raw, secrets)
            except WebhookVerificationError as error:
                log.warning("webhook.rejected", kind=slug, shop_id=shop.id, error=str(error))
                return error_response(401, str(error), code="invalid_signature")
        inbound_id = store_delivery(session, provider=slug, shop_id=shop.id, topic=delivery.topic,
                                    delivery_id=delivery.delivery_id, headers=headers, body=raw)
    if inbound_id is None:
        return jsonify(status="duplicate")
    return jsonify(status="accepted", id=inbound_id)


@bp.post("/shopify")
def shopify() -> Response:
    return receive("shopify")


@bp.post("/woocommerce/<shop_ref>")
def woocommerce(shop_ref: str) -> Response:
    return receive("woocommerce", shop_ref)


@bp.post("/bigcommerce/<shop_ref>")
def bigcommerce(shop_ref: str) -> Response:
    return receive("bigcommerce", shop_ref)
