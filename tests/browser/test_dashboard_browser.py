"""What staff do on the dashboard, in a real browser: the board fills, search narrows it, an approval moves the
order (and the API agrees), a failed job is requeued from the operations page."""

from __future__ import annotations

import re
from typing import Any

from app.models import OutboxEvent
from tests.browser.conftest import sign_in
from tests.conftest import order_payload
from tests.test_dashboard import add_failed_job


def create_orders(client: Any, auth: Any, shop_id: int, run_jobs: Any) -> tuple[int, int]:
    anna = client.post("/api/v1/orders", json=order_payload(shop_id), headers=auth("operator")).json["id"]
    bo = client.post("/api/v1/orders", json=order_payload(
        shop_id, customer={"name": "Bo Ek", "email": "bo.ek@example.se"},
        line_items=[{"sku": "SCARF-RED", "title": "Wool scarf", "quantity": 1, "unit_price": "449.00"}]),
        headers=auth("operator")).json["id"]
    run_jobs()  # triaged: both wait for review
    return anna, bo


def test_the_board_loads_with_orders_and_search_narrows_it(page: Any, live_server: str, client: Any, auth: Any,
                                                           tokens: dict[str, str], manual_shop: int,
                                                           run_jobs: Any) -> None:
    anna, bo = create_orders(client, auth, manual_shop, run_jobs)
    sign_in(page, live_server, tokens["viewer"])
    review = page.locator('section.column[data-status="needs_review"]')
    review.locator(f'a.card[data-order-id="{bo}"]').wait_for()
    assert review.locator("a.card").count() == 2
    assert review.locator(".count").inner_text() == "2"
    assert "Anna Berg" in review.inner_text() and "596.50 SEK" in review.inner_text()

    page.fill("input[name=q]", "scarf-red")
    page.locator(f'a.card[data-order-id="{anna}"]').wait_for(state="detached")
    assert page.locator("a.card").count() == 1
    assert page.locator(f'a.card[data-order-id="{bo}"]').is_visible()
    assert "q=scarf-red" in page.url  # the filtered board is a link that can be shared

    page.fill("input[name=q]", "")
    page.select_option("select[name=status]", "on_hold")
    page.locator("a.card").first.wait_for(state="detached")
    assert page.locator('section.column').count() == 1
    assert page.locator('section.column[data-status="on_hold"] .count').inner_text() == "0"


def test_the_board_updates_live(page: Any, live_server: str, client: Any, auth: Any, tokens: dict[str, str],
                                manual_shop: int, run_jobs: Any) -> None:
    sign_in(page, live_server, tokens["viewer"])
    page.locator('section.column[data-status="needs_review"]').wait_for()
    assert page.locator("a.card").count() == 0
    order_id = client.post("/api/v1/orders", json=order_payload(manual_shop), headers=auth("operator")).json["id"]
    run_jobs()
    # No reload: the board's poll brings the new order in.
    page.locator(f'section.column[data-status="needs_review"] a.card[data-order-id="{order_id}"]').wait_for()


def test_an_approval_from_the_dashboard_moves_the_order(page: Any, live_server: str, client: Any, auth: Any,
                                                        tokens: dict[str, str], manual_shop: int,
                                                        run_jobs: Any) -> None:
    anna, _bo = create_orders(client, auth, manual_shop, run_jobs)
    sign_in(page, live_server, tokens["operator"])
    page.click(f'a.card[data-order-id="{anna}"]')
    page.wait_for_url(re.compile(rf"/dashboard/orders/{anna}$"))
    assert page.locator("#order-status").inner_text() == "needs review"
    assert page.locator('form[data-action="cancel"] button').is_disabled()  # operators cannot cancel

    page.click('form[data-action="approve"] button')
    page.locator(".flash.ok").wait_for()
    assert "the order is now approved" in page.locator(".flash.ok").inner_text()
    assert page.locator("#order-status").inner_text() == "approved"
    assert "Approved by test operator" in page.locator("#timeline").inner_text()
    api = client.get(f"/api/v1/orders/{anna}", headers=auth("viewer")).json
    assert api["status"] == "approved"
    assert api["timeline"][-1]["actor"]["name"] == "test operator"

    # A hold needs a reason: typed into the action's own field.
    page.fill('form[data-action="hold"] input[name=reason]', "customer called about the address")
    page.click('form[data-action="hold"] button')
    page.locator(".flash.ok").wait_for()
    assert page.locator("#order-status").inner_text() == "on hold"
    assert client.get(f"/api/v1/orders/{anna}", headers=auth()).json["hold_reason"] == \
        "customer called about the address"


def test_the_ops_page_shows_a_failed_job_and_requeues_it(page: Any, live_server: str, client: Any, auth: Any,
                                                         tokens: dict[str, str], manual_shop: int, run_jobs: Any,
                                                         runtime: Any) -> None:
    anna, _bo = create_orders(client, auth, manual_shop, run_jobs)
    failed_id = add_failed_job(runtime, anna)
    sign_in(page, live_server, tokens["manager"])
    page.click("text=Operations")
    row = page.locator(f'#failed-jobs tr[data-job="{failed_id}"]')
    assert "ConnectionError: carrier down" in row.inner_text()
    assert page.locator('#queues tr[data-queue="fulfilment"]').is_visible()

    row.locator("button", has_text="Requeue").click()
    page.locator(".flash.ok").wait_for()
    assert f"job {failed_id} requeued" in page.locator(".flash.ok").inner_text()
    assert page.locator(f'#failed-jobs tr[data-job="{failed_id}"]').count() == 0
    with runtime.db.session() as session:
        assert session.get(OutboxEvent, failed_id).status == "pending"
    run_jobs()
    assert client.get("/api/v1/jobs?status=failed", headers=auth()).json == []
