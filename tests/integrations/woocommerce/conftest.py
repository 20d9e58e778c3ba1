"""WooCommerce test harness: fixtures as bytes, WooCommerce's own signing, a registered shop, a fake store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import InboundEvent, Order, Shop
from integrations.woocommerce.fake import FakeWooCommerce, WebhookRequest, webhook_request

FIXTURES = Path(__file__).parent / "fixtures"
STORE_URL = "https://shop.example/"
WEBHOOK_SECRET = "wc-webhook-secret-0b7e"  # noqa: S105 - a test value


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def fixture_name(topic: str, variant: str | None = None) -> str:
    """`order.updated` + `completed` → `order_updated__completed.json`."""
    stem = topic.replace("/", "_").replace(".", "_")
    return f"{stem}__{variant}.json" if variant else f"{stem}.json"


def signed(topic: str, raw: bytes, *, secret: str = WEBHOOK_SECRET, webhook_id: int = 7) -> WebhookRequest:
    """The exact bytes and all seven X-WC-Webhook-* headers WooCommerce would send."""
    return webhook_request(topic, raw, secret, webhook_id=webhook_id, source=STORE_URL)


def post(client: Any, shop_id: int | str, request: WebhookRequest) -> Any:
    return client.post(f"/webhooks/woocommerce/{shop_id}", data=request.body, headers=request.headers)


def deliver(client: Any, shop_id: int | str, topic: str, fixture: str, **kwargs: Any) -> Any:
    """POST a fixture file's bytes, signed, to the real receiver."""
    return post(client, shop_id, signed(topic, fixture_bytes(fixture), **kwargs))


def count(runtime: Any, model: type[Any]) -> int:
    with runtime.db.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def inbound(runtime: Any) -> list[InboundEvent]:
    with runtime.db.session() as session:
        rows = list(session.execute(select(InboundEvent).order_by(InboundEvent.id)).scalars())
        session.expunge_all()
        return rows


def only_order(runtime: Any) -> Order:
    with runtime.db.session() as session:
        order = session.execute(select(Order)).scalar_one()
        _ = (order.line_items, order.refunds, order.addresses)  # loaded before the session closes
        session.expunge_all()
        return order


def add_shop(runtime: Any, *, external_id: str = STORE_URL, credentials: dict[str, str] | None = None,
             secret: Any = WEBHOOK_SECRET) -> int:
    with runtime.db.session() as session:
        shop = Shop(channel="woocommerce", name="Woo Test Store", external_id=external_id, currency="USD",
                    credentials_encrypted=runtime.secrets.seal(credentials or {"consumer_key": "ck_test",
                                                                               "consumer_secret": "cs_test"}),
                    webhook_secret_encrypted=runtime.secrets.seal(secret) if secret is not None else None)
        session.add(shop)
        session.flush()
        return int(shop.id)


@pytest.fixture
def woo_shop(runtime: Any) -> int:
    """A WooCommerce shop registered the way `orderline shops add` does; returns its Orderline id."""
    return add_shop(runtime)


@pytest.fixture
def fake_store() -> Iterator[FakeWooCommerce]:
    with FakeWooCommerce() as store:
        yield store
