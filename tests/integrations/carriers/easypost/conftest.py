"""EasyPost test harness: fixture files as bytes, the fake API on loopback, a client of the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.carriers.easypost.client import EasyPostCarrier
from integrations.carriers.easypost.fake import FakeEasyPost

FIXTURES = Path(__file__).parent / "fixtures"
API_KEY = "EZTKtest0123456789"
# The official vector's secret (SOURCES.md): "sécret" with a precomposed é.
VECTOR_SECRET = "s\u00e9cret"
VECTOR_SIGNATURE = "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


@pytest.fixture
def fake() -> Iterator[FakeEasyPost]:
    with FakeEasyPost(API_KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeEasyPost) -> EasyPostCarrier:
    return EasyPostCarrier(API_KEY, api_base=fake.url, timeout=2)
