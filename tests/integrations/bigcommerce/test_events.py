"""Scopes → channel events, and the spec as core code sees it through the registry."""

from __future__ import annotations

import pytest

from integrations import channel
from integrations.base import FetchOrder, OrderRemoved, PayloadError
from integrations.bigcommerce import events
from tests.integrations.bigcommerce.conftest import FIXTURES, fixture_for, load

SPEC = channel("bigcommerce")


def test_registered_under_its_slug_with_every_scope_listed() -> None:
    assert SPEC.slug == "bigcommerce" and SPEC.display_name == "BigCommerce"
    assert not SPEC.signs_with_app_secret
    assert set(SPEC.topics) == {"store/order/created", "store/order/updated", "store/order/statusUpdated",
                                "store/order/refund/created", "store/order/archived"}
    assert not set(SPEC.topics) & SPEC.ignored_topics


@pytest.mark.parametrize("topic", sorted(SPEC.all_topics))
def test_every_scope_has_a_fixture_whose_scope_is_that_topic(topic: str) -> None:
    assert (FIXTURES / fixture_for(topic)).is_file(), f"add fixtures/{fixture_for(topic)}"
    assert load(fixture_for(topic))["scope"] == topic


@pytest.mark.parametrize("topic", ["store/order/created", "store/order/updated", "store/order/statusUpdated",
                                   "store/order/refund/created"])
def test_order_scopes_fetch_the_order_they_name(topic: str) -> None:
    assert SPEC.topics[topic](load(fixture_for(topic))) == FetchOrder("250")


def test_archived_removes_the_order_as_archived() -> None:
    event = SPEC.topics["store/order/archived"](load("store_order_archived.json"))
    assert event == OrderRemoved("250", "archived")


@pytest.mark.parametrize(("payload", "reason"), [
    ({"scope": "store/order/created"}, "no 'data' object"),
    ({"data": {"type": "order"}}, "data.id None"),
    ({"data": {"type": "order", "id": True}}, "data.id True"),
    ({"data": {"type": "cart", "id": 5}}, "not 'order'"),
    (["not", "an", "object"], "no 'data' object"),
])
def test_payloads_without_an_order_id_are_payload_errors(payload: object, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        events.fetch_order(payload)


def test_string_order_ids_are_normalised() -> None:
    assert events.order_id({"data": {"type": "order", "id": "0250"}}) == "250"
