"""Shopify test harness: fixtures as bytes, Shopify's real signing, a registered shop, a fake Admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import Settings
from app.models import InboundEvent, Order, Shop
from integrations.shopify.fake import FakeShopify
from tests.conftest import SHOPIFY_TEST_SECRET

FIXTURES = Path(__file__).parent / "fixtures"
SHOP_DOMAIN = "activepieces-test.myshopify.com"
ACCESS_TOKEN = "shpat_orderline_test"
API_VERSION = "2026-07"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def fixture_name(topic: str, variant: str | None = None) -> str:
    """`orders/partially_fulfilled` + `snowboards` → `orders_partially_fulfilled__snowboards.json`."""
    stem = topic.replace("/", "_").replace(".", "_")
    return f"{stem}__{variant}.json" if variant else f"{stem}.json"


def sign(raw: bytes, secret: str = SHOPIFY_TEST_SECRET) -> str:
    """What Shopify puts in X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def shopify_headers(
    topic: str,
    raw: bytes,
    *,
    domain: str = SHOP_DOMAIN,
    webhook_id: str | None = None,
    secret: str = SHOPIFY_TEST_SECRET,
) -> dict[str, str]:
    """All eight X-Shopify-* headers of a real delivery."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": sign(raw, secret),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Name": "orderline",
    }


@pytest.fixture
def fake_shopify() -> Iterator[FakeShopify]:
    with FakeShopify(access_token=ACCESS_TOKEN) as fake:
        yield fake


@pytest.fixture
def app(settings: Settings, fake_shopify: FakeShopify) -> Iterator[Any]:
    """The app with its Shopify Admin API pointed at the fake."""
    app = create_app(
        settings.with_overrides(shopify_api_base_url=fake_shopify.url, shopify_api_version=API_VERSION)
    )
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["orderline"]
    runtime.redis.flushdb()
    runtime.db.dispose()


@pytest.fixture
def shop_id(runtime: Any) -> int:
    with runtime.db.session() as session:
        shop = Shop(
            channel="shopify",
            name="Activepieces test store",
            external_id=SHOP_DOMAIN,
            currency="USD",
            credentials_encrypted=runtime.secrets.seal({"access_token": ACCESS_TOKEN}),
            webhook_secret_encrypted=runtime.secrets.seal("secret"),
        )
        session.add(shop)
        session.flush()
        return int(shop.id)


@pytest.fixture
def deliver(client: Any) -> Any:
    """deliver(topic, fixture_file, **header_options) → the receiver's response to those exact bytes."""

    def post(topic: str, name: str, **options: Any) -> Any:
        raw = fixture_bytes(name)
        return client.post("/webhooks/shopify", data=raw, headers=shopify_headers(topic, raw, **options))

    return post


def inbound_rows(runtime: Any) -> list[InboundEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(InboundEvent).order_by(InboundEvent.id)).scalars())


def count(runtime: Any, model: Any) -> int:
    with runtime.db.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def the_order(runtime: Any, external_id: str) -> Order:
    with runtime.db.session() as session:
        order = session.execute(select(Order).where(Order.external_id == external_id)).scalar_one()
        order.line_items, order.refunds, order.addresses  # noqa: B018 - load while the session is open
        return order
