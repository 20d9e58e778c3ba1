"""BigCommerce test harness: fixture files, the fake API on loopback, a registered shop, real signing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.models import Shop
from integrations.bigcommerce.fake import FakeBigCommerce
from integrations.bigcommerce.webhooks import SECRET_HEADER, standard_signature

FIXTURES = Path(__file__).parent / "fixtures"
STORE_HASH = "abc123"
ACCESS_TOKEN = "bc-test-access-token"
WEBHOOK_SECRET = "hush-bigcommerce-webhook-secret"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def fixture_for(topic: str, variant: str = "") -> str:
    return topic.replace("/", "_").replace(".", "_") + (f"__{variant}" if variant else "") + ".json"


def standard_headers(body: bytes, secret: str = WEBHOOK_SECRET, *, message_id: str = "msg_2bVxT5m1",
                     timestamp: int | None = None) -> dict[str, str]:
    """Headers of a Standard Webhooks signed delivery, signed over exactly `body`."""
    sent_at = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(sent_at),
            "webhook-signature": standard_signature(secret, message_id, sent_at, body)}


def secret_header(secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", SECRET_HEADER: secret}


def stock_order(fake: FakeBigCommerce, order_id: int = 250, **fields: Any) -> dict[str, Any]:
    """The docs' example order (with its products and shipping addresses) served as `order_id`."""
    order = {**load("api_get_order_response.json"), "id": order_id, **fields}
    fake.add_order(order, load("api_get_order_products_response.json"),
                   load("api_get_order_shipping_addresses_response.json"))
    return order


@pytest.fixture
def fake() -> Iterator[FakeBigCommerce]:
    with FakeBigCommerce(store_hash=STORE_HASH, access_token=ACCESS_TOKEN) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, fake: FakeBigCommerce) -> Settings:
    # The ingest job builds its client from this setting, so it talks to the fake.
    return settings.with_overrides(bigcommerce_api_base_url=fake.url)


@pytest.fixture
def shop(runtime: Any) -> int:
    with runtime.db.session() as session:
        row = Shop(channel="bigcommerce", name="Fog Linen US", external_id=STORE_HASH, currency="USD",
                   credentials_encrypted=runtime.secrets.seal({"store_hash": STORE_HASH,
                                                               "access_token": ACCESS_TOKEN}),
                   webhook_secret_encrypted=runtime.secrets.seal(WEBHOOK_SECRET))
        session.add(row)
        session.flush()
        return int(row.id)
