"""Approval rules: a shop that approves automatically still gets a person on the orders its rules flag."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import order_payload

RULES = {"max_order_value": "1000.00", "review_risk_levels": ["medium", "high"], "first_time_express": True,
         "international": True, "home_country": "SE", "review_skus": ["GIFT-*"], "review_tags": ["Check-Address"]}


@pytest.fixture
def auto_shop(client: Any, auth: Any, manual_shop: int) -> int:
    response = client.patch(f"/api/v1/shops/{manual_shop}",
                            json={"settings": {"auto_approve": True, "approval": RULES}}, headers=auth("manager"))
    assert response.status_code == 200, response.json
    return manual_shop


def triaged(client: Any, auth: Any, run_jobs: Any, shop_id: int, **overrides: Any) -> dict[str, Any]:
    created = client.post("/api/v1/orders", json=order_payload(shop_id, **overrides), headers=auth("operator"))
    assert created.status_code == 201, created.json
    run_jobs()
    return client.get(f"/api/v1/orders/{created.json['id']}", headers=auth("viewer")).json


def test_an_ordinary_order_is_approved_and_goes_on(client, auth, run_jobs, auto_shop) -> None:
    order = triaged(client, auth, run_jobs, auto_shop)
    assert order["status"] == "approved"
    assert order["review_reasons"] == []


@pytest.mark.parametrize(("overrides", "rule", "words"), [
    ({"line_items": [{"sku": "TV-85", "title": "TV", "quantity": 1, "unit_price": "12999.00"}]},
     "max_order_value", "above the 1000.00 limit"),
    ({"risk_level": "high"}, "risk", "risk high"),
    ({"shipping_level": "express"}, "first_time_express", "First order"),
    ({"shipping_address": {"line1": "Storgatan 12", "city": "Göteborg", "postal_code": "4110", "country_code": "SE"}},
     "address", "'4110' is not a valid SE postal code"),
    ({"shipping_address": {"city": "Göteborg", "postal_code": "411 01", "country_code": "SE"}},
     "address", "no street"),
    ({"shipping_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "62701",
                           "country_code": "US"}, "customer": {"name": "Al", "phone": "+1 217 555 0100"}},
     "international", "Ships abroad: US"),
    ({"line_items": [{"sku": "GIFT-500", "title": "Gift card", "quantity": 1, "unit_price": "500.00"}]},
     "sku", "GIFT-500"),
    ({"tags": ["check-address"]}, "tag", "Tagged check-address"),
])
def test_each_rule_sends_the_order_to_review_with_its_reason(client, auth, run_jobs, auto_shop, overrides, rule,
                                                              words) -> None:
    order = triaged(client, auth, run_jobs, auto_shop, **overrides)
    assert order["status"] == "needs_review"
    assert [r["rule"] for r in order["review_reasons"]] == [rule]
    assert words in order["review_reasons"][0]["message"]
    entry = order["timeline"][-1]
    assert entry["type"] == "order.needs_review" and words in entry["message"]


def test_a_returning_customer_with_express_is_not_flagged(client, auth, run_jobs, auto_shop) -> None:
    triaged(client, auth, run_jobs, auto_shop)
    again = triaged(client, auth, run_jobs, auto_shop, shipping_level="express",
                    customer={"name": "Anna Berg", "email": "ANNA.BERG@example.se"})
    assert again["status"] == "approved", again["review_reasons"]


def test_countries_without_postal_codes_need_none(client, auth, run_jobs, manual_shop) -> None:
    order = triaged(client, auth, run_jobs, manual_shop, shipping_address={
        "line1": "1 Queen's Road", "city": "Hong Kong", "country_code": "HK"}, customer={"name": "Wing"})
    assert order["status"] == "needs_review"  # the shop reviews everything...
    assert order["review_reasons"] == []      # ...but nothing is wrong with the address


@pytest.mark.parametrize(("approval", "message"), [
    ({"max_order_value": 500.5}, "decimal string"),
    ({"review_risk_levels": ["severe"]}, "'severe' is not one of low, medium, high"),
    ({"home_country": "XX"}, "not an ISO 3166 country code"),
    ({"max_value": "10"}, "unknown rule 'max_value'"),
])
def test_bad_rules_are_refused_when_saved(client, auth, manual_shop, approval, message) -> None:
    response = client.patch(f"/api/v1/shops/{manual_shop}", json={"settings": {"approval": approval}},
                            headers=auth("manager"))
    assert response.status_code == 422
    assert message in str(response.json["error"]["fields"]["settings"])
