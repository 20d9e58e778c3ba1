"""The staff dashboard through Flask's client: sign-in, roles, CSRF, the board, actions, operations, analytics."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.dashboard import analytics
from app.models import InboundEvent, Order, OutboxEvent, Return, Shipment, Shop
from app.orders import actions
from app.store import utcnow
from tests.conftest import order_payload


def sign_in(client: Any, tokens: dict[str, str], role: str = "manager", **form: str) -> Any:
    """Sign in with the role's token through the sign-in form (which carries its own CSRF token)."""
    page = client.get("/dashboard/sign-in").get_data(as_text=True)
    return client.post("/dashboard/sign-in", data={"token": tokens.get(role, role), "csrf_token": csrf_of(page),
                                                   **form})


def signed_in(client: Any, tokens: dict[str, str], role: str = "manager") -> str:
    """Sign in as `role`; returns the session's CSRF token as the pages carry it."""
    response = sign_in(client, tokens, role)
    assert response.status_code == 302, response.data
    return csrf_of(client.get("/dashboard/").get_data(as_text=True))


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def new_order(client: Any, auth: Any, shop_id: int, run_jobs: Any, **overrides: Any) -> int:
    response = client.post("/api/v1/orders", json=order_payload(shop_id, **overrides), headers=auth("operator"))
    assert response.status_code == 201, response.json
    run_jobs()  # triaged: waiting for review
    return int(response.json["id"])


def add_failed_job(runtime: Any, order_id: int) -> int:
    """A triage job that ran out of attempts, as the outbox records one."""
    with runtime.db.session() as session:
        failed = OutboxEvent(job="triage_order", payload={"order_id": order_id}, status="failed", attempts=5,
                             last_error="ConnectionError: carrier down", finished_at=utcnow())
        session.add(failed)
        session.flush()
        return failed.id


def status_of(client: Any, auth: Any, order_id: int) -> str:
    return str(client.get(f"/api/v1/orders/{order_id}", headers=auth("viewer")).json["status"])


# --- signing in -----------------------------------------------------------------------------------------


def test_pages_need_a_signed_in_token(client: Any, tokens: dict[str, str]) -> None:
    page = client.get("/dashboard/ops")
    assert page.status_code == 302 and "/dashboard/sign-in?next=/dashboard/ops" in page.headers["Location"]
    assert client.get("/dashboard/board.json").status_code == 401

    wrong = sign_in(client, tokens, "ol_not-a-real-token")
    assert wrong.status_code == 401 and "the API token is not valid" in wrong.get_data(as_text=True)
    assert client.get("/dashboard/board.json").status_code == 401
    # A sign-in form posted from elsewhere (no CSRF token) is refused even with a good token.
    assert client.post("/dashboard/sign-in", data={"token": tokens["viewer"]}).status_code == 403
    assert client.get("/dashboard/board.json").status_code == 401

    response = sign_in(client, tokens, "viewer", next="/dashboard/ops")
    assert (response.status_code, response.headers["Location"]) == (302, "/dashboard/ops")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert tokens["viewer"] not in cookie  # the session holds the token's id, never the token
    assert client.get("/dashboard/board.json").status_code == 200


def test_sign_in_never_redirects_off_the_dashboard(client: Any, tokens: dict[str, str]) -> None:
    for target in ("https://evil.example/", "//evil.example/dashboard", "/api/v1/orders"):
        response = sign_in(client, tokens, "viewer", next=target)
        assert response.headers["Location"] == "/dashboard/"


def test_revoking_the_token_ends_its_sessions(client: Any, tokens: dict[str, str], runtime: Any) -> None:
    signed_in(client, tokens, "operator")
    from app.models import ApiToken

    with runtime.db.session() as session:
        for token in session.query(ApiToken).filter(ApiToken.role == "operator"):
            token.revoked_at = utcnow()
    assert client.get("/dashboard/board.json").status_code == 401
    assert client.get("/dashboard/").status_code == 302


def test_sign_out_needs_the_csrf_token(client: Any, tokens: dict[str, str]) -> None:
    csrf = signed_in(client, tokens)
    assert client.post("/dashboard/sign-out").status_code == 403  # a forged cross-site sign-out does nothing
    assert client.get("/dashboard/board.json").status_code == 200
    assert client.post("/dashboard/sign-out", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/dashboard/board.json").status_code == 401


# --- the board ------------------------------------------------------------------------------------------


def test_board_groups_orders_by_status_with_filters_and_search(client: Any, auth: Any, tokens: dict[str, str],
                                                               manual_shop: int, run_jobs: Any) -> None:
    anna = new_order(client, auth, manual_shop, run_jobs)
    bo = new_order(client, auth, manual_shop, run_jobs,
                   customer={"name": "Bo Ek", "email": "bo@example.se"},
                   line_items=[{"sku": "SCARF-RED", "title": "Scarf", "quantity": 1, "unit_price": "299.00"}])
    client.post(f"/api/v1/orders/{bo}/actions/hold", json={"reason": "address check"}, headers=auth("operator"))
    signed_in(client, tokens, "viewer")

    data = client.get("/dashboard/board.json").json
    columns = {c["status"]: c for c in data["columns"]}
    assert data["total"] == 2
    assert [o["id"] for o in columns["needs_review"]["orders"]] == [anna]
    assert [o["id"] for o in columns["on_hold"]["orders"]] == [bo]
    card = columns["needs_review"]["orders"][0]
    assert (card["customer"], card["total"], card["currency"], card["shop"]) == (
        "Anna Berg", "596.50", "SEK", "Phone sales")

    def ids(query: str) -> list[int]:
        found = client.get(f"/dashboard/board.json?{query}").json
        return sorted(o["id"] for c in found["columns"] for o in c["orders"])

    assert ids("q=anna.berg@example") == [anna]
    assert ids("q=scarf-red") == [bo]  # SKU, any case
    assert ids("q=nobody") == []
    assert ids("status=on_hold") == [bo]
    assert ids(f"shop_id={manual_shop}&channel=manual") == [anna, bo]
    assert ids("channel=shopify") == []
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert ids(f"placed_to={tomorrow}") == [anna, bo]
    assert ids(f"placed_from={tomorrow}") == []

    bad = client.get("/dashboard/board.json?status=lost&placed_from=yesterday")
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"status", "placed_from"}


# --- an order's page and its actions --------------------------------------------------------------------


def test_order_page_shows_the_order_and_an_action_per_registered_action(
        client: Any, auth: Any, tokens: dict[str, str], manual_shop: int, run_jobs: Any, runtime: Any) -> None:
    order_id = new_order(client, auth, manual_shop, run_jobs)
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        actions.record_event(session, order, actions.Actor.system(), "order.customer_message",
                             "Customer texted: var är mitt paket?", text="var är mitt paket?")
        session.add(Shipment(order_id=order_id, carrier="sandbox", service="ground", status="in_transit",
                             tracking_number="SBX123", tracking_url="https://track.example/SBX123"))
    signed_in(client, tokens, "operator")
    html = client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True)
    assert "Anna Berg" in html and "Storgatan 12" in html and "TEE-BLK-M" in html
    assert "596.50 SEK" in html
    assert 'href="https://track.example/SBX123"' in html
    assert "var är mitt paket?" in html and 'class="bubble customer"' in html  # the SMS thread
    assert 'id="slack-card"' in html  # the place the Slack card goes
    for name in actions.ACTIONS:
        assert f'data-action="{name}"' in html
    # An operator sees cancel, but cannot use it.
    cancel = re.search(r'data-action="cancel">(.*?)</form>', html, re.S)
    assert cancel and "disabled" in cancel.group(1)
    assert client.get("/dashboard/orders/999999").status_code == 404


def test_order_page_shows_where_a_split_order_ships_from(client: Any, auth: Any, tokens: dict[str, str],
                                                         manual_shop: int, run_jobs: Any, runtime: Any) -> None:
    from app import stock
    from app.models import Location

    with runtime.db.session() as session:
        session.add_all([Location(code="STHLM", name="Stockholm", country_code="SE", priority=10),
                         Location(code="NJ", name="New Jersey", country_code="US", priority=20)])
        session.flush()
        stock.import_stock(session, "location,sku,on_hand\nSTHLM,TEE-BLK-M,1\nNJ,TEE-BLK-M,5\nSTHLM,CAP-01,3\n")
    order_id = new_order(client, auth, manual_shop, run_jobs)
    client.post(f"/api/v1/orders/{order_id}/actions/approve", headers=auth("operator"))
    run_jobs()  # allocation: one T-shirt from Stockholm, the other from New Jersey
    assert status_of(client, auth, order_id) == "allocated"
    signed_in(client, tokens, "viewer")
    html = client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True)
    ships_from = re.search(r'id="ships-from">(.*?)</section>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "split: 2 locations" in ships_from
    assert re.search(r"<strong>STHLM</strong> Stockholm: 1× <code>TEE-BLK-M</code>, 1× <code>CAP-01</code>",
                     ships_from)
    assert re.search(r"<strong>NJ</strong> New Jersey: 1× <code>TEE-BLK-M</code>", ships_from)


def test_an_action_from_the_dashboard_moves_the_order(client: Any, auth: Any, tokens: dict[str, str],
                                                      manual_shop: int, run_jobs: Any) -> None:
    order_id = new_order(client, auth, manual_shop, run_jobs)
    version = client.get(f"/api/v1/orders/{order_id}", headers=auth()).json["version"]
    csrf = signed_in(client, tokens, "operator")

    forged = client.post(f"/dashboard/orders/{order_id}/actions/approve", data={"expected_version": version})
    assert forged.status_code == 403
    assert status_of(client, auth, order_id) == "needs_review"

    done = client.post(f"/dashboard/orders/{order_id}/actions/approve",
                       data={"csrf_token": csrf, "expected_version": version}, follow_redirects=True)
    assert "approve: done — the order is now approved" in done.get_data(as_text=True)
    assert status_of(client, auth, order_id) == "approved"
    timeline = client.get(f"/api/v1/orders/{order_id}", headers=auth()).json["timeline"]
    assert timeline[-1]["type"] == "order.approved" and timeline[-1]["actor"]["name"] == "test operator"

    # A stale page (the old version) is refused and says so, instead of acting on what the person did not see.
    stale = client.post(f"/dashboard/orders/{order_id}/actions/hold",
                        data={"csrf_token": csrf, "expected_version": version, "reason": "check"},
                        follow_redirects=True)
    assert "changed since you loaded it" in stale.get_data(as_text=True)
    assert status_of(client, auth, order_id) == "approved"


def test_roles_apply_as_in_the_api(client: Any, auth: Any, tokens: dict[str, str], manual_shop: int,
                                   run_jobs: Any) -> None:
    order_id = new_order(client, auth, manual_shop, run_jobs)
    csrf = signed_in(client, tokens, "viewer")
    refused = client.post(f"/dashboard/orders/{order_id}/actions/approve", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert "needs the operator role" in refused.get_data(as_text=True)
    assert status_of(client, auth, order_id) == "needs_review"
    noted = client.post(f"/dashboard/orders/{order_id}/actions/note", data={"csrf_token": csrf, "text": "called"},
                        follow_redirects=True)
    assert "note: done" in noted.get_data(as_text=True)

    csrf = signed_in(client, tokens, "operator")
    refused = client.post(f"/dashboard/orders/{order_id}/actions/cancel",
                          data={"csrf_token": csrf, "reason": "fraud"}, follow_redirects=True)
    assert "needs the manager role" in refused.get_data(as_text=True)
    empty = client.post(f"/dashboard/orders/{order_id}/actions/hold", data={"csrf_token": csrf, "reason": " "},
                        follow_redirects=True)
    assert "needs a reason" in empty.get_data(as_text=True)

    csrf = signed_in(client, tokens, "manager")
    client.post(f"/dashboard/orders/{order_id}/actions/cancel", data={"csrf_token": csrf, "reason": "fraud"})
    assert status_of(client, auth, order_id) == "cancelled"
    # A cancelled order offers nothing the transition table refuses; a note is still possible.
    html = client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True)
    for name, offered in (("approve", False), ("release", False), ("pick", False), ("note", True)):
        form = re.search(rf'data-action="{name}">(.*?)</form>', html, re.S)
        assert form and ("not possible while the order is cancelled" in form.group(1)) != offered, name


# --- operations -----------------------------------------------------------------------------------------


def test_ops_page_lists_failed_jobs_and_a_manager_requeues_one(client: Any, auth: Any, tokens: dict[str, str],
                                                               manual_shop: int, run_jobs: Any,
                                                               runtime: Any) -> None:
    order_id = new_order(client, auth, manual_shop, run_jobs)
    failed_id = add_failed_job(runtime, order_id)
    csrf = signed_in(client, tokens, "operator")
    html = client.get("/dashboard/ops").get_data(as_text=True)
    assert f'data-job="{failed_id}"' in html and "ConnectionError: carrier down" in html
    assert client.post(f"/dashboard/ops/jobs/{failed_id}/requeue", data={"csrf_token": csrf}).status_code == 403

    csrf = signed_in(client, tokens, "manager")
    client.post(f"/dashboard/ops/jobs/{failed_id}/requeue", data={"csrf_token": csrf})
    with runtime.db.session() as session:
        assert session.get(OutboxEvent, failed_id).status == "pending"
    run_jobs()
    with runtime.db.session() as session:
        assert session.get(OutboxEvent, failed_id).status == "done"
    again = client.post(f"/dashboard/ops/jobs/{failed_id}/requeue", data={"csrf_token": csrf}, follow_redirects=True)
    assert "is done; only failed jobs can be requeued" in again.get_data(as_text=True)

    depths = client.get("/dashboard/ops.json").json
    assert depths["depths"]["redis"] == "ok"
    assert {q["name"] for q in depths["depths"]["queues"]} == {"ingest", "staff", "fulfilment", "providers",
                                                               "notify", "background"}


def test_ops_page_replays_a_failed_delivery(client: Any, tokens: dict[str, str], runtime: Any) -> None:
    with runtime.db.session() as session:
        delivery = InboundEvent(provider="shopify", topic="orders/create", delivery_id="d-1", headers={},
                                body=b"not json", status="failed", attempts=1, error="the body is not JSON")
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    csrf = signed_in(client, tokens, "manager")
    html = client.get("/dashboard/ops").get_data(as_text=True)
    assert f'data-inbound="{delivery_id}"' in html and "the body is not JSON" in html
    client.post(f"/dashboard/ops/inbound/{delivery_id}/replay", data={"csrf_token": csrf})
    with runtime.db.session() as session:
        assert session.get(InboundEvent, delivery_id).status == "received"
    # No demo running: the Black Friday button is absent and its route says why.
    assert "Black Friday" not in html
    assert client.post("/dashboard/ops/burst", data={"csrf_token": csrf}).status_code == 404


# --- analytics ------------------------------------------------------------------------------------------


def test_analytics_figures(client: Any, auth: Any, tokens: dict[str, str], manual_shop: int, run_jobs: Any,
                           runtime: Any) -> None:
    now = utcnow()
    two_days_ago = (now - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    fast = new_order(client, auth, manual_shop, run_jobs, placed_at=two_days_ago.isoformat())
    slow = new_order(client, auth, manual_shop, run_jobs, placed_at=two_days_ago.isoformat(),
                     shipping_level="express",
                     line_items=[{"sku": "CAP-01", "title": "Cap", "quantity": 3, "unit_price": "100.00"}])
    waiting = new_order(client, auth, manual_shop, run_jobs, placed_at=two_days_ago.isoformat(),
                        shipping_level="express")
    new_order(client, auth, manual_shop, run_jobs)  # today, standard: within its promise
    cancelled = new_order(client, auth, manual_shop, run_jobs)
    client.post(f"/api/v1/orders/{cancelled}/actions/cancel", json={"reason": "x"}, headers=auth())
    with runtime.db.session() as session:
        session.add(Shipment(order_id=fast, status="in_transit", shipped_at=two_days_ago + timedelta(hours=10)))
        session.add(Shipment(order_id=slow, status="in_transit", shipped_at=two_days_ago + timedelta(hours=30)))
        session.add(Return(order_id=slow, rma="RMA-1", status="requested"))
    signed_in(client, tokens, "viewer")

    data = client.get("/dashboard/analytics.json?days=7").json
    per_day = data["orders_per_day"]
    day = two_days_ago.strftime("%Y-%m-%d")
    assert per_day["orders"]["manual"][day] == 3 and sum(per_day["orders"]["manual"].values()) == 4
    assert Decimal(per_day["revenue"]["SEK"]["manual"][day]) == Decimal("596.50") * 2 + Decimal("349.00")
    assert data["lead_time"]["shipped_orders"] == 2
    assert data["lead_time"]["hours"]["p50"] == 10.0 and data["lead_time"]["hours"]["p99"] == 30.0
    # express promises 24 h: the 30-hour one shipped late, the unshipped one is overdue; standard's 72 h held.
    late = data["late"]
    assert late["per_day"][day] == {"on_time": 1, "late": 1, "overdue": 1, "open": 0}
    assert late["totals"] == {"on_time": 1, "late": 1, "overdue": 1, "open": 1}
    returns = {r["sku"]: r for r in data["returns_by_sku"]}
    assert returns["CAP-01"]["returned"] == 3 and returns["CAP-01"]["sold"] == 3 + 1 + 1 + 1
    assert returns["CAP-01"]["rate"] == 0.5
    assert returns["TEE-BLK-M"]["returned"] == 0

    # A shop may promise more time for express: then the 30-hour shipment was on time.
    with runtime.db.session() as session:
        session.get(Shop, manual_shop).settings = {"shipping_promise_hours": {"express": 36, "standard": "soon"}}
    late = client.get("/dashboard/analytics.json?days=7").json["late"]
    assert late["per_day"][day] == {"on_time": 2, "late": 0, "overdue": 1, "open": 0}
    assert waiting  # overdue: 48 h > 36 h, not shipped

    assert client.get("/dashboard/analytics.json?days=0").status_code == 422
    assert client.get("/dashboard/analytics.json?days=lots").status_code == 422
    assert "chart-orders" in client.get("/dashboard/analytics").get_data(as_text=True)


@pytest.mark.parametrize(("hours", "p", "expected"), [([1.0], 50, 1.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
                                                     ([1.0, 2.0, 3.0, 4.0], 90, 4.0)])
def test_percentile_is_nearest_rank(hours: list[float], p: int, expected: float) -> None:
    assert analytics.percentile(hours, p) == expected


def test_pages_forbid_framing_and_foreign_scripts(client: Any, tokens: dict[str, str]) -> None:
    signed_in(client, tokens, "viewer")
    page = client.get("/dashboard/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.get_data(as_text=True)  # every script is a file the policy allows
    assert client.get("/dashboard/static/dashboard/board.js").status_code == 200


def test_panels_and_sandbox_pages_plug_in(client: Any, auth: Any, tokens: dict[str, str], manual_shop: int,
                                          run_jobs: Any, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from markupsafe import Markup

    from app.dashboard import panels

    monkeypatch.setattr(panels, "_panels", {})
    panels.register("slack", "Slack card in #orders", lambda order: Markup(f"<p>card for {order.number}</p>"))

    def broken(order: Any) -> Markup:
        raise RuntimeError("boom")

    panels.register("broken", "Broken", broken)
    app.extensions["orderline.demo.pages"] = [("Slack sandbox", "/sandbox/slack")]
    order_id = new_order(client, auth, manual_shop, run_jobs)
    signed_in(client, tokens, "viewer")
    html = client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True)
    number = client.get(f"/api/v1/orders/{order_id}", headers=auth()).json["number"]
    assert "Slack card in #orders" in html and f"card for {number}" in html
    assert "This panel could not be shown" in html  # a broken panel does not take the page down
    assert 'href="/sandbox/slack"' in html
