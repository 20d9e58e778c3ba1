"""REST API v1 as a caller sees it: listing and search, one order, manual orders, shops, jobs, and errors.

Every bad request must get a precise JSON error and leave nothing behind; both databases run every test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from app.models import ApiToken, Order, OrderEvent, OutboxEvent, Return, Shipment, Shop
from app.orders import actions
from app.orders.types import Actor, NewLineItem, NewOrder
from app.store import utcnow
from tests.conftest import order_payload

ORDERS = "/api/v1/orders"


def create(client: Any, auth: Any, shop_id: int, **overrides: Any) -> dict[str, Any]:
    response = client.post(ORDERS, json=order_payload(shop_id, **overrides), headers=auth("operator"))
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def counts(runtime: Any) -> tuple[int, int, int]:
    with runtime.db.session() as session:
        return tuple(session.scalar(sa.select(sa.func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Order, OrderEvent, OutboxEvent))


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error body, after checking it has the one shape every error has."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


def field(error: dict[str, Any], *path: str) -> Any:
    value: Any = error["fields"]
    for part in path:
        assert isinstance(value, dict) and part in value, (path, error)
        value = value[part]
    return value


def at(days_ago: float) -> str:
    return (datetime(2026, 3, 1, 12, tzinfo=UTC) - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def shopify_shop(runtime: Any) -> int:
    with runtime.db.session() as session:
        shop = Shop(channel="shopify", name="Web shop", external_id="acme.myshopify.com", currency="SEK")
        session.add(shop)
        session.flush()
        return shop.id


def channel_order(runtime: Any, shop_id: int, number: str, **fields: Any) -> int:
    """An order as a channel would bring it (the API only creates manual ones)."""
    with runtime.db.session() as session:
        shop = session.get(Shop, shop_id)
        mug = NewLineItem(title="Mug", quantity=1, unit_price=Decimal("89.00"))
        data = NewOrder(currency="SEK", external_id=f"ext-{number}", number=number, line_items=[mug],
                        **fields)
        return actions.create_order(session, shop, data, Actor.system()).id


# --- listing, search and paging -------------------------------------------------------------------------


def test_list_filters_by_status_channel_shop_and_placed_range(client: Any, auth: Any, runtime: Any,
                                                               manual_shop: int, shopify_shop: int) -> None:
    old = create(client, auth, manual_shop, number="M-OLD", placed_at=at(30))["id"]
    new = create(client, auth, manual_shop, number="M-NEW", placed_at=at(1))["id"]
    web = channel_order(runtime, shopify_shop, "W-1", placed_at=datetime.fromisoformat(at(10)))
    assert client.post(f"{ORDERS}/{new}/actions/approve", json={}, headers=auth()).status_code == 200

    def ids(query: str) -> list[int]:
        response = client.get(f"{ORDERS}?{query}", headers=auth("viewer"))
        assert response.status_code == 200, response.json
        return [o["id"] for o in response.json["data"]]

    assert ids("") == [new, web, old]
    listed = client.get(ORDERS, headers=auth("viewer")).json["data"]
    assert [(o["number"], o["total"], o["customer"]["name"]) for o in listed] == [
        ("M-NEW", "596.50", "Anna Berg"), ("W-1", "89.00", None), ("M-OLD", "596.50", "Anna Berg")]
    assert ids("status=approved") == [new]
    assert ids("status=approved&status=received") == [new, web, old], "status repeats mean any of them"
    assert ids("channel=shopify") == [web]
    assert ids(f"shop_id={manual_shop}") == [new, old]
    assert ids(f"placed_from={quote(at(15))}&placed_to={quote(at(5))}") == [web]
    assert ids("placed_from=2026-02-20") == [new], "a bare date is midnight UTC"
    assert ids(f"placed_to={quote(at(30))}") == [], "placed_to is exclusive"
    error = error_of(client.get(f"{ORDERS}?status=lost", headers=auth()), 422)
    assert "status" in error["fields"]
    error = error_of(client.get(f"{ORDERS}?placed_from=2026-02-20T10:00:00", headers=auth()), 422)
    assert "placed_from" in error["fields"], "a time without an offset is ambiguous"


def test_search_matches_number_name_email_phone_and_sku(client: Any, auth: Any, manual_shop: int) -> None:
    anna = create(client, auth, manual_shop, number="PH-1001")["id"]
    bo = create(client, auth, manual_shop, number="PH-2002",
                customer={"name": "Bo Ek", "email": "bo@example.com", "phone": "+46 8 123 456 78"},
                line_items=[{"sku": "MUG_RED", "title": "Mug", "quantity": 1, "unit_price": "89.00"}])["id"]

    def found(q: str) -> set[int]:
        response = client.get(ORDERS, query_string={"q": q}, headers=auth("viewer"))
        assert response.status_code == 200
        return {o["id"] for o in response.json["data"]}

    assert found("ph-2002") == {bo}, "number, case-insensitive"
    assert found("anna ber") == {anna}, "customer name"
    assert found("BO@EXAMPLE") == {bo}, "email"
    assert found("+46701234") == {anna}, "phone, as normalized"
    assert found("tee-blk") == {anna}, "SKU of a line item"
    assert found("MUG_") == {bo}
    assert found("%") == set() and found("_") == {bo}, "LIKE wildcards are searched for literally"
    assert found("nobody") == set()


def test_paging_walks_every_order_once_newest_first(client: Any, auth: Any, manual_shop: int) -> None:
    # Placed out of creation order, two at the same instant: the order is by placed_at, then id.
    days = [5, 1, 9, 3, 3, 7, 0.5]
    created = [create(client, auth, manual_shop, number=f"P{i}", placed_at=at(day))["id"]
               for i, day in enumerate(days)]
    expected = [oid for _, oid in sorted(zip(days, created, strict=True), key=lambda p: (p[0], -p[1]))]

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(ORDERS, query_string=query, headers=auth("viewer")).json
        pages += 1
        assert len(page["data"]) <= 3
        seen += [o["id"] for o in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage!", "aWQ6MTI", "MjAyNi0wMy0wMXwx", "x" * 201])
def test_a_cursor_the_api_did_not_give_out_is_422(client: Any, auth: Any, cursor: str) -> None:
    error = error_of(client.get(ORDERS, query_string={"cursor": cursor}, headers=auth()), 422)
    assert error["code"] == "validation_error"
    assert "cursor" in error["fields"]


def test_one_order_has_items_addresses_shipments_returns_and_timeline(client: Any, auth: Any, runtime: Any,
                                                                      manual_shop: int) -> None:
    billing = {"name": "Anna Berg", "line1": "Box 12", "city": "Göteborg", "country_code": "SE"}
    order_id = create(client, auth, manual_shop, billing_address=billing, note="ring twice")["id"]
    with runtime.db.session() as session:
        session.add(Shipment(order_id=order_id, status="shipped", carrier="postnord",
                             tracking_number="PN123SE", cost=Decimal("59.000000"), cost_currency="SEK"))
        session.add(Return(order_id=order_id, rma="RMA-1", reason="too small",
                           refund_amount=Decimal("199.00")))

    order = client.get(f"{ORDERS}/{order_id}", headers=auth("viewer")).json
    assert [(i["sku"], i["quantity"], i["unit_price"]) for i in order["line_items"]] == [
        ("TEE-BLK-M", 2, "199.00"), ("CAP-01", 1, "149.50")]
    assert order["shipping_address"]["line1"] == "Storgatan 12"
    assert order["billing_address"]["line1"] == "Box 12"
    assert [(s["carrier"], s["tracking_number"], s["cost"]) for s in order["shipments"]] == [
        ("postnord", "PN123SE", "59.00")]
    assert [(r["rma"], r["refund_amount"]) for r in order["returns"]] == [("RMA-1", "199.00")]
    assert [e["type"] for e in order["timeline"]] == ["order.received"]
    assert order["timeline"][0]["actor"]["name"] == "test operator"
    assert order["customer"] == {"name": "Anna Berg", "email": "anna.berg@example.se",
                                 "phone": "+46701234567", "locale": None}
    assert order["note"] == "ring twice"


# --- creating manual orders -----------------------------------------------------------------------------


def test_create_manual_order_computes_exact_totals_and_normalizes_the_phone(client: Any, auth: Any,
                                                                            manual_shop: int) -> None:
    response = client.post(ORDERS, json=order_payload(manual_shop, tax_total="136.63", discount_total="10"),
                           headers=auth("operator"))
    assert response.status_code == 201
    order = response.json
    # 2 × 199.00 + 149.50 = 547.50; + 49.00 shipping + 136.63 tax − 10 discount = 723.13, to the öre.
    assert (order["subtotal"], order["shipping_total"], order["tax_total"], order["discount_total"],
            order["total"]) == ("547.50", "49.00", "136.63", "10.00", "723.13")
    assert order["customer"]["phone"] == "+46701234567", "070-123 45 67 read as a Swedish number"
    assert order["status"] == "received" and order["channel"] == "manual"
    assert response.headers["Location"] == f"{ORDERS}/{order['id']}"
    assert client.get(response.headers["Location"], headers=auth("viewer")).json["total"] == "723.13"


def test_totals_use_the_currency_decimals_and_the_phone_the_shipping_country(client: Any, auth: Any,
                                                                            manual_shop: int) -> None:
    order = create(client, auth, manual_shop, currency="JPY", shipping_total="500",
                   customer={"name": "Kari Nordmann", "phone": "412 34 567"},
                   shipping_address={"line1": "Karl Johans gate 1", "city": "Oslo", "country_code": "NO"},
                   line_items=[{"title": "Tea", "quantity": 3, "unit_price": "1250"}])
    assert (order["subtotal"], order["total"]) == ("3750", "4250")
    assert order["customer"]["phone"] == "+4741234567"


def test_a_number_given_twice_in_one_shop_is_409(client: Any, auth: Any, runtime: Any,
                                                 manual_shop: int) -> None:
    first = create(client, auth, manual_shop, number="TILL-7")
    error = error_of(client.post(ORDERS, json=order_payload(manual_shop, number="TILL-7"),
                                 headers=auth("operator")), 409)
    assert error["code"] == "duplicate_order"
    assert "TILL-7" in error["message"] and str(first["id"]) in error["message"]
    assert "number" in error["fields"]
    generated = create(client, auth, manual_shop)["number"]
    error = error_of(client.post(ORDERS, json=order_payload(manual_shop, number=generated),
                                 headers=auth("operator")), 409)
    assert error["code"] == "duplicate_order", "a number the shop generated is taken too"
    assert counts(runtime)[0] == 2


def test_orders_only_go_to_a_known_manual_shop(client: Any, auth: Any, runtime: Any,
                                               shopify_shop: int) -> None:
    for shop_id, words in ((shopify_shop, "shopify"), (999_999, "does not exist")):
        error = error_of(client.post(ORDERS, json=order_payload(shop_id), headers=auth("operator")), 422)
        assert "shop_id" in error["fields"] and words in error["message"]
    assert counts(runtime) == (0, 0, 0)


# --- bad input: a precise 4xx, and nothing half-written ---------------------------------------------------


def _item(**overrides: Any) -> list[dict[str, Any]]:
    return [{"title": "Mug", "quantity": 1, "unit_price": "89.00", **overrides}]


PRICE = ("line_items", "0", "unit_price")


# (what is wrong, payload overrides, status, path naming the field in error.fields)
BAD_ORDERS: list[tuple[str, dict[str, Any], int, tuple[str, ...]]] = [
    ("quantity as a string", {"line_items": _item(quantity="2")}, 422, ("line_items", "0", "quantity")),
    ("quantity as a fraction", {"line_items": _item(quantity=1.5)}, 422, ("line_items", "0", "quantity")),
    ("quantity true", {"line_items": _item(quantity=True)}, 422, ("line_items", "0", "quantity")),
    ("shop_id as a string", {"shop_id": "1"}, 422, ("shop_id",)),
    ("shop_id past any integer column", {"shop_id": 2**63}, 422, ("shop_id",)),
    ("unknown top-level field", {"colour": "red"}, 422, ("colour",)),
    ("unknown nested field", {"customer": {"name": "A", "nickname": "B"}}, 422, ("customer", "nickname")),
    ("zero quantity", {"line_items": _item(quantity=0)}, 422, ("line_items", "0", "quantity")),
    ("negative quantity", {"line_items": _item(quantity=-3)}, 422, ("line_items", "0", "quantity")),
    ("negative price", {"line_items": _item(unit_price="-1.00")}, 422, PRICE),
    ("negative shipping", {"shipping_total": "-5.00"}, 422, ("shipping_total",)),
    ("price as a JSON number", {"line_items": _item(unit_price=89.9)}, 422, PRICE),
    ("price in exponent form", {"line_items": _item(unit_price="1e3")}, 422, PRICE),
    ("absurd price", {"line_items": _item(unit_price="9" * 30)}, 422, PRICE),
    ("unknown currency", {"currency": "XYZ"}, 422, ("currency",)),
    ("lower-case currency", {"currency": "sek"}, 422, ("currency",)),
    ("öre below the öre", {"line_items": _item(unit_price="1.001")}, 422, PRICE),
    ("yen have no decimals", {"currency": "JPY", "shipping_total": "0",
                              "line_items": _item(unit_price="1.5")}, 422, PRICE),
    ("no line items", {"line_items": []}, 422, ("line_items",)),
    ("NUL in a name", {"customer": {"name": "Anna\x00Berg"}}, 422, ("customer", "name")),
    ("not a phone number", {"customer": {"phone": "call me"}}, 422, ("customer", "phone")),
    ("unknown country", {"shipping_address": {"country_code": "XX"}}, 422,
     ("shipping_address", "country_code")),
    ("lone surrogate", {"note": "\ud800"}, 422, ("note",)),
    ("date before the calendar", {"placed_at": "0001-01-01T00:00:00+01:00"}, 422, ("placed_at",)),
    ("date without offset", {"placed_at": "2026-03-01T10:00:00"}, 422, ("placed_at",)),
]


@pytest.mark.parametrize(("what", "overrides", "status", "path"), BAD_ORDERS, ids=[c[0] for c in BAD_ORDERS])
def test_bad_order_is_refused_naming_the_field(client: Any, auth: Any, runtime: Any, manual_shop: int,
                                               what: str, overrides: dict[str, Any], status: int,
                                               path: tuple[str, ...]) -> None:
    payload = {**order_payload(manual_shop), **overrides}
    if overrides.get("shop_id") == "1":
        payload["shop_id"] = str(manual_shop)
    error = error_of(client.post(ORDERS, json=payload, headers=auth("operator")), status)
    assert error["code"] == "validation_error"
    assert field(error, *path), what
    assert path[0] in error["message"]
    assert counts(runtime) == (0, 0, 0)


RAW_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("malformed JSON", b'{"shop_id": 1,', "application/json", 400, "not valid JSON"),
    ("NaN is not JSON", b'{"shop_id": NaN}', "application/json", 400, "not valid JSON"),
    ("too deep to parse", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "not valid JSON"),
    ("an integer too long to read", b'{"shop_id": 1' + b"0" * 5000 + b"}", "application/json", 400,
     "not valid JSON"),
    ("not UTF-8", b'{"note": "\xff"}', "application/json", 400, "not valid JSON"),
    ("an array", b"[]", "application/json", 422, "must be a JSON object, not an array"),
    ("a string", b'"order"', "application/json", 422, "not a string"),
    ("null", b"null", "application/json", 422, "not null"),
    ("a form", b"shop_id=1", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
    ("text", b'{"shop_id": 1}', "text/plain", 415, "Content-Type: application/json"),
]


@pytest.mark.parametrize(("what", "body", "content_type", "status", "words"), RAW_BODIES,
                         ids=[c[0] for c in RAW_BODIES])
def test_a_body_that_is_not_a_json_object_is_refused(client: Any, auth: Any, runtime: Any, manual_shop: int,
                                                     what: str, body: bytes, content_type: str, status: int,
                                                     words: str) -> None:
    response = client.post(ORDERS, data=body, content_type=content_type, headers=auth("operator"))
    error = error_of(response, status)
    assert words in error["message"], what
    assert counts(runtime) == (0, 0, 0)


def test_a_body_over_the_limit_is_413(app: Any, client: Any, auth: Any, runtime: Any,
                                      manual_shop: int) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = order_payload(manual_shop, note="x")
    body = json.dumps(payload).replace('"x"', json.dumps("x" * limit))
    response = client.post(ORDERS, data=body, content_type="application/json", headers=auth("operator"))
    error = error_of(response, 413)
    assert error["code"] == "body_too_large" and str(limit) in error["message"]
    assert counts(runtime) == (0, 0, 0)
    just_under = json.dumps(order_payload(manual_shop, note="x" * 1000))
    assert client.post(ORDERS, data=just_under, content_type="application/json",
                       headers=auth("operator")).status_code == 201


def test_tokens_missing_malformed_unknown_or_revoked_are_401(client: Any, auth: Any, runtime: Any,
                                                            tokens: dict[str, str], manual_shop: int) -> None:
    with runtime.db.session() as session:
        session.execute(sa.update(ApiToken).where(ApiToken.name == "test viewer").values(revoked_at=utcnow()))
    bad_request = 'error="invalid_request"'
    cases = [
        ({}, "send an API token", 'Bearer realm="orderline"'),
        ({"Authorization": f"Basic {tokens['manager']}"}, "must be 'Bearer <token>'", bad_request),
        ({"Authorization": "Bearer"}, "must be 'Bearer <token>'", bad_request),
        ({"Authorization": "Bearer ol_not-a-token"}, "not valid", 'error="invalid_token"'),
        (auth("viewer"), "revoked", 'error="invalid_token"'),
    ]
    for headers, words, challenge in cases:
        for response in (client.get(ORDERS, headers=headers),
                         client.post(ORDERS, json=order_payload(manual_shop), headers=headers)):
            error = error_of(response, 401)
            assert error["code"] == "unauthorized" and words in error["message"]
            assert challenge in response.headers["WWW-Authenticate"]
    assert counts(runtime) == (0, 0, 0)
    assert client.get(ORDERS, headers=auth("operator")).status_code == 200


def test_a_role_too_low_is_403(client: Any, auth: Any, runtime: Any, manual_shop: int) -> None:
    error = error_of(client.post(ORDERS, json=order_payload(manual_shop), headers=auth("viewer")), 403)
    assert error["code"] == "forbidden" and "operator" in error["message"]
    assert counts(runtime) == (0, 0, 0)


def test_unknown_things_and_wrong_methods(client: Any, auth: Any, runtime: Any, manual_shop: int) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    before = counts(runtime)
    for path in (f"{ORDERS}/{order_id + 1000}", f"{ORDERS}/{2**40}", f"{ORDERS}/0", f"{ORDERS}/abc",
                 "/api/v1/nothing-here", "/api/v1/shops/99999", "/definitely/not/here"):
        error = error_of(client.get(path, headers=auth()), 404)
        assert error["code"] == "not_found", path
    error = error_of(client.post(f"{ORDERS}/{order_id}/actions/explode", json={}, headers=auth()), 404)
    assert error["code"] == "not_found"
    error = error_of(client.post(f"{ORDERS}/{order_id + 1000}/actions/approve", json={}, headers=auth()), 404)
    assert str(order_id + 1000) in error["message"]
    for method, path, allowed in (("delete", f"{ORDERS}/{order_id}", "GET"),
                                  ("put", ORDERS, "POST"),
                                  ("get", f"{ORDERS}/{order_id}/actions/approve", "POST")):
        response = getattr(client, method)(path, headers=auth())
        error = error_of(response, 405)
        assert error["code"] == "method_not_allowed" and method.upper() in error["message"]
        assert allowed in response.headers["Allow"]
    assert counts(runtime) == before


def test_actions_refuse_bad_bodies_without_touching_the_order(client: Any, auth: Any, runtime: Any,
                                                               manual_shop: int) -> None:
    order = create(client, auth, manual_shop)
    url = f"{ORDERS}/{order['id']}/actions/hold"
    for body, name in (({"reason": "x", "why": "y"}, "why"), ({"reason": 5}, "reason"),
                       ({"reason": "x", "expected_version": 2**40}, "expected_version"),
                       ({"reason": "a\x00b"}, "reason")):
        error = error_of(client.post(url, json=body, headers=auth()), 422)
        assert name in error["fields"]
    after = client.get(f"{ORDERS}/{order['id']}", headers=auth()).json
    assert (after["status"], after["version"], len(after["timeline"])) == ("received", 1, 1)


# --- shops ----------------------------------------------------------------------------------------------

SECRETS = {"credentials": {"access_token": "shpat_TOPSECRET123"}, "webhook_secret": "whsec_ALSOSECRET456"}


def _shop(**overrides: Any) -> dict[str, Any]:
    return {"channel": "shopify", "name": "Acme", "external_id": "acme.myshopify.com", "currency": "SEK",
            "timezone": "Europe/Stockholm", **SECRETS, **overrides}


def test_shop_secrets_go_in_encrypted_and_never_come_out(app: Any, client: Any, auth: Any,
                                                         runtime: Any) -> None:
    response = client.post("/api/v1/shops", json=_shop(), headers=auth("manager"))
    assert response.status_code == 201, response.json
    shop = response.json
    assert shop["has_credentials"] and shop["has_webhook_secret"]
    assert response.headers["Location"] == f"/api/v1/shops/{shop['id']}"
    patched = client.patch(f"/api/v1/shops/{shop['id']}", headers=auth("manager"),
                           json={"name": "Acme AB", "webhook_secret": "whsec_NEW789xx"})
    assert patched.status_code == 200 and patched.json["name"] == "Acme AB"
    answers = [response, patched, client.get(f"/api/v1/shops/{shop['id']}", headers=auth("viewer")),
               client.get("/api/v1/shops", headers=auth("viewer"))]
    for answer in answers:
        text = answer.get_data(as_text=True)
        for secret in ("TOPSECRET", "ALSOSECRET", "NEW789", '"credentials"', '"webhook_secret"'):
            assert secret not in text
    with runtime.db.engine.connect() as connection:
        raw = connection.execute(
            sa.text("SELECT credentials_encrypted, webhook_secret_encrypted FROM shops")).one()
    assert "TOPSECRET" not in raw[0] and "NEW789" not in raw[1]
    box = app.extensions["orderline.secrets"]
    assert box.open(raw[0]) == SECRETS["credentials"] and box.open(raw[1]) == "whsec_NEW789xx"


def test_shop_rules_duplicates_roles_and_bad_fields(client: Any, auth: Any, runtime: Any) -> None:
    assert client.post("/api/v1/shops", json=_shop(), headers=auth()).status_code == 201
    error = error_of(client.post("/api/v1/shops", json=_shop(name="Again"), headers=auth()), 409)
    assert error["code"] == "duplicate_shop" and "external_id" in error["fields"]
    assert client.post("/api/v1/shops", json=_shop(channel="woocommerce"), headers=auth()).status_code == 201
    for role in ("viewer", "operator"):
        assert error_of(client.post("/api/v1/shops", json=_shop(external_id=role), headers=auth(role)),
                        403)["code"] == "forbidden"
        assert error_of(client.patch("/api/v1/shops/1", json={"name": "x"}, headers=auth(role)), 403)
    for body, name in (({"channel": "manual"}, "channel"), ({"timezone": "Mars/Olympus"}, "timezone"),
                       ({"currency": "sek"}, "currency"), ({"settings": {"a\x00": 1}}, "settings"),
                       ({"settings": {"n": "\x00"}}, "settings"), ({"name": ""}, "name")):
        shop_id = client.get("/api/v1/shops", headers=auth()).json[0]["id"]
        error = error_of(client.patch(f"/api/v1/shops/{shop_id}", json=body, headers=auth()), 422)
        assert name in error["fields"]
    with runtime.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Shop)) == 2


def test_shop_settings_keep_fractions(client: Any, auth: Any, manual_shop: int) -> None:
    # The body parser reads fractions as Decimal, which a JSON column cannot store as such.
    settings = {"auto_approve": True, "risk": {"max_score": 0.75, "limit": 12}, "tags": ["vip"]}
    response = client.patch(f"/api/v1/shops/{manual_shop}", json={"settings": settings}, headers=auth())
    assert response.status_code == 200, response.json
    assert client.get(f"/api/v1/shops/{manual_shop}", headers=auth()).json["settings"] == settings


# --- jobs -----------------------------------------------------------------------------------------------


def test_failed_jobs_are_listed_and_can_be_requeued(client: Any, auth: Any, runtime: Any, manual_shop: int,
                                                    run_jobs: Any) -> None:
    order_id = create(client, auth, manual_shop)["id"]
    run_jobs()  # triage is done: the order waits for review
    with runtime.db.session() as session:
        failed = OutboxEvent(job="triage_order", payload={"order_id": order_id}, status="failed", attempts=5,
                             last_error="ConnectionError: carrier down", finished_at=utcnow())
        session.add(failed)
        session.flush()
        failed_id = failed.id

    listed = client.get("/api/v1/jobs?status=failed", headers=auth("viewer"))
    assert listed.status_code == 200
    assert [(j["id"], j["job"], j["last_error"]) for j in listed.json] == [
        (failed_id, "triage_order", "ConnectionError: carrier down")]
    assert error_of(client.post(f"/api/v1/jobs/{failed_id}/requeue", headers=auth("operator")), 403)

    requeued = client.post(f"/api/v1/jobs/{failed_id}/requeue", headers=auth("manager"))
    assert requeued.status_code == 202
    assert (requeued.json["status"], requeued.json["attempts"]) == ("pending", 0)
    assert client.get("/api/v1/jobs?status=failed", headers=auth()).json == []
    run_jobs()
    with runtime.db.session() as session:
        assert session.get(OutboxEvent, failed_id).status == "done"

    error = error_of(client.post(f"/api/v1/jobs/{failed_id}/requeue", headers=auth()), 409)
    assert error["code"] == "conflict" and "done" in error["message"]
    assert error_of(client.post("/api/v1/jobs/999999/requeue", headers=auth()), 404)
    assert "status" in error_of(client.get("/api/v1/jobs?status=exploded", headers=auth()), 422)["fields"]
