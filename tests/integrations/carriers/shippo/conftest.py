"""Shippo test harness: fixture files as bytes, the fake API on loopback, a client over `requests`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.carriers.shippo.client import ShippoCarrier
from integrations.carriers.shippo.fake import FakeShippo

FIXTURES = Path(__file__).parent / "fixtures"
API_TOKEN = "shippo_test_0123456789abcdef"
WEBHOOK_TOKEN = "hush-shippo-webhook-token"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


@pytest.fixture
def fake() -> Iterator[FakeShippo]:
    with FakeShippo(API_TOKEN) as server:
        yield server


@pytest.fixture
def client(fake: FakeShippo) -> ShippoCarrier:
    return ShippoCarrier(API_TOKEN, base_url=fake.url, timeout=2)
