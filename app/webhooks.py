"""Webhook receivers: verify the raw bytes, store the delivery, answer 2xx. No provider calls, no business logic."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from flask import Blueprint, Response, current_app, jsonify, request

from app.api.errors import error_response
from app.inbox import store_delivery
from app.models import Shop
from integrations import channel
from integrations.base import ChannelSpec, Delivery, WebhookVerificationError
from jobs.ingest import wake

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


@dataclass(frozen=True)
class KnownShop:
    id: int
    secrets: list[str]
    expires: float


# Shops change rarely and every webhook needs one: a short-lived per-process cache keeps the lookup and the
# decryption off the hot path. A rotated secret is picked up within SHOP_CACHE_SECONDS (the old one keeps
# working meanwhile, as the channels themselves allow).
SHOP_CACHE_SECONDS = 30.0


def _find_shop(spec: ChannelSpec, delivery: Delivery, path_ref: str | None) -> KnownShop | None:
    cache: dict[tuple[str, str], KnownShop] = current_app.extensions.setdefault("orderline.shop_cache", {})
    key = (spec.slug, path_ref if path_ref is not None else delivery.shop_ref)
    known = cache.get(key)
    if known is not None and known.expires > time.monotonic():
        return known
    runtime = current_app.extensions["orderline"]
    with runtime.db.session() as session:
        if path_ref is not None:
            shop = session.get(Shop, int(path_ref)) if path_ref.isdigit() and len(path_ref) < 10 else None
            shop = shop if shop is not None and shop.channel == spec.slug else None
        else:
            shop = session.query(Shop).filter_by(channel=spec.slug, external_id=delivery.shop_ref).one_or_none()
        if shop is None:
            cache.pop(key, None)
            return None
        secrets = _secrets(runtime.secrets.open(shop.webhook_secret_encrypted)) if shop.webhook_secret_encrypted else []
        known = KnownShop(shop.id, secrets, time.monotonic() + SHOP_CACHE_SECONDS)
    cache[key] = known
    return known


def receive(slug: str, path_ref: str | None = None) -> Response:
    spec = channel(slug)
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH, before any parsing
    headers = request.headers
    try:
        delivery = spec.read_delivery(headers, raw, path_ref)
        if delivery is None:
            return jsonify(status="ok")  # the channel's reachability ping: nothing to store
        if spec.signs_with_app_secret:
            spec.verify(headers, raw, _app_secrets(slug))
        shop = _find_shop(spec, delivery, path_ref)
        if shop is None:
            return error_response(404, f"no {spec.display_name} shop '{path_ref or delivery.shop_ref}' is registered",
                                  code="unknown_shop")
        if not spec.signs_with_app_secret:
            spec.verify(headers, raw, shop.secrets)
    except WebhookVerificationError as error:
        log.warning("webhook.rejected", kind=slug, error=str(error))
        return error_response(401, str(error), code="invalid_signature")
    runtime = current_app.extensions["orderline"]
    inbound_id = store_delivery(runtime.db, provider=slug, shop_id=shop.id, topic=delivery.topic,
                                delivery_id=delivery.delivery_id, headers=headers, body=raw)
    if inbound_id is None:
        return jsonify(status="duplicate")
    wake(runtime, slot=inbound_id)
    return Response(f'{{"status":"accepted","id":{inbound_id}}}\n', mimetype="application/json")


@bp.post("/shopify")
def shopify() -> Response:
    return receive("shopify")


@bp.post("/woocommerce/<shop_ref>")
def woocommerce(shop_ref: str) -> Response:
    return receive("woocommerce", shop_ref)


@bp.post("/bigcommerce/<shop_ref>")
def bigcommerce(shop_ref: str) -> Response:
    return receive("bigcommerce", shop_ref)
