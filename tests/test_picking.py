"""Pick and pack: the `pick` and `pack` actions, pick lists per location sorted by bin, packing slips per
location for split orders, the printable HTML and the CLI."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from app.cli import cli
from app.models import Location, Order, OrderEvent, StockLevel
from app.runtime import Runtime
from tests.test_allocation import allocate, allocated, approved_order, status
from tests.test_stock import add_location, import_csv

STOCK = ("location,sku,on_hand,bin\n"
         "STHLM,TEE-BLK-M,10,B-02-1\n"
         "STHLM,CAP-01,10,A-01-3\n"
         "STHLM,SOCK-02,10,A-01-3\n"
         "STHLM,BAG-09,10,\n"
         "NJ,MUG-05,10,R2-S4\n")


@pytest.fixture
def stocked(runtime: Runtime) -> None:
    add_location(runtime, "STHLM", "SE", priority=10)
    add_location(runtime, "NJ", "US", priority=20)
    import_csv(runtime, STOCK)


def ready(runtime: Runtime, shop_id: int, *items: tuple[str, int], minutes: float = 0) -> int:
    order_id = approved_order(runtime, shop_id, *items, minutes=minutes)
    assert allocate(runtime, order_id).status == "allocated"
    return order_id


def act(client: Any, auth: Any, order_id: int, name: str, role: str = "operator", **body: Any) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/actions/{name}", json=body, headers=auth(role))


def number_of(runtime: Runtime, order_id: int) -> str:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.number


# --- the actions ----------------------------------------------------------------------------------------


def test_pick_then_pack_with_the_scale_weight(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                              stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1))

    picked = act(client, auth, order_id, "pick")
    assert picked.status_code == 200, picked.json
    assert picked.json["status"] == "picking"
    assert picked.json["timeline"][-1]["message"] == "Picked by test operator"
    assert allocated(runtime, order_id) == [("STHLM", "TEE-BLK-M", 2, "picked"), ("STHLM", "CAP-01", 1, "picked")]

    packed = act(client, auth, order_id, "pack", weight_grams=730)
    assert packed.status_code == 200, packed.json
    assert packed.json["status"] == "packed"
    assert packed.json["packed_weight_grams"] == 730
    assert packed.json["timeline"][-1]["message"] == "Packed by test operator (730 g on the scale)"
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None and order.packed_weight_grams == 730
        event = session.execute(sa.select(OrderEvent).where(OrderEvent.type == "order.packed")).scalar_one()
        assert event.data == {"weight_grams": 730}


def test_pack_without_a_weight_leaves_it_empty(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                               stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("CAP-01", 1))
    assert act(client, auth, order_id, "pick").status_code == 200
    packed = act(client, auth, order_id, "pack")
    assert packed.status_code == 200
    assert packed.json["packed_weight_grams"] is None
    assert packed.json["timeline"][-1]["message"] == "Packed by test operator"


def test_pack_before_pick_is_refused_naming_both_states(client: Any, auth: Any, runtime: Runtime,
                                                        manual_shop: int, stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("CAP-01", 1))
    response = act(client, auth, order_id, "pack", weight_grams=500)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "illegal_transition"
    assert "'allocated'" in response.json["error"]["message"] and "'packed'" in response.json["error"]["message"]
    assert status(runtime, order_id) == "allocated"
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        assert order is not None and order.packed_weight_grams is None


def test_pick_needs_an_allocated_order_and_only_once(client: Any, auth: Any, runtime: Runtime,
                                                     manual_shop: int, stocked: None) -> None:
    waiting = approved_order(runtime, manual_shop, ("CAP-01", 1))  # approved, not yet allocated
    refused = act(client, auth, waiting, "pick")
    assert refused.status_code == 409
    assert "'approved'" in refused.json["error"]["message"] and "'picking'" in refused.json["error"]["message"]

    order_id = ready(runtime, manual_shop, ("CAP-01", 1))
    assert act(client, auth, order_id, "pick").status_code == 200
    again = act(client, auth, order_id, "pick")
    assert again.status_code == 409
    assert "'picking'" in again.json["error"]["message"]


@pytest.mark.parametrize("weight", [0, -5, 1_000_001, "heavy", 1.5, True])
def test_a_weight_that_is_not_whole_positive_grams_is_refused(client: Any, auth: Any, runtime: Runtime,
                                                              manual_shop: int, stocked: None,
                                                              weight: Any) -> None:
    order_id = ready(runtime, manual_shop, ("CAP-01", 1))
    assert act(client, auth, order_id, "pick").status_code == 200
    response = act(client, auth, order_id, "pack", weight_grams=weight)
    assert response.status_code == 422
    assert "weight_grams" in str(response.json["error"]["fields"])
    assert status(runtime, order_id) == "picking"


def test_a_viewer_may_not_pick_or_pack(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                       stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("CAP-01", 1))
    refused = act(client, auth, order_id, "pick", role="viewer")
    assert refused.status_code == 403
    assert "operator" in refused.json["error"]["message"]
    assert status(runtime, order_id) == "allocated"
    assert act(client, auth, order_id, "pick").status_code == 200
    assert act(client, auth, order_id, "pack", role="viewer").status_code == 403
    assert act(client, auth, order_id, "pack", role="manager").status_code == 200


# --- pick lists -----------------------------------------------------------------------------------------


def test_pick_list_is_sorted_by_bin_with_totals_across_orders(client: Any, auth: Any, runtime: Runtime,
                                                              manual_shop: int, stocked: None) -> None:
    first = ready(runtime, manual_shop, ("TEE-BLK-M", 2), ("SOCK-02", 1), ("BAG-09", 1))
    second = ready(runtime, manual_shop, ("CAP-01", 3), ("TEE-BLK-M", 1), minutes=5)
    first_no, second_no = number_of(runtime, first), number_of(runtime, second)

    response = client.get("/api/v1/locations/sthlm/picklist", headers=auth("viewer"))
    assert response.status_code == 200, response.json
    pick = response.json
    assert pick["location"] == "STHLM" and pick["total"] == 8
    assert [(b["bin"], b["total"], [(line["sku"], line["quantity"]) for line in b["lines"]])
            for b in pick["bins"]] == [
        ("A-01-3", 4, [("CAP-01", 3), ("SOCK-02", 1)]),
        ("B-02-1", 3, [("TEE-BLK-M", 3)]),
        (None, 1, [("BAG-09", 1)]),  # no bin: last
    ]
    tees = pick["bins"][1]["lines"][0]
    assert [(o["order_id"], o["number"], o["quantity"]) for o in tees["orders"]] == [
        (first, first_no, 2), (second, second_no, 1)]
    assert [(o["order_id"], o["units"], o["split"]) for o in pick["orders"]] == [(first, 4, False),
                                                                                 (second, 4, False)]

    only = client.get(f"/api/v1/locations/STHLM/picklist?order_id={second}", headers=auth("viewer")).json
    assert only["total"] == 4 and [b["bin"] for b in only["bins"]] == ["A-01-3", "B-02-1"]

    # A picked order stays on the list (marked picked) until it is packed; then it is gone.
    assert act(client, auth, first, "pick").status_code == 200
    pick = client.get("/api/v1/locations/STHLM/picklist", headers=auth("viewer")).json
    assert pick["total"] == 8
    assert {o["status"] for o in pick["bins"][1]["lines"][0]["orders"]} == {"picked", "reserved"}
    assert act(client, auth, first, "pack").status_code == 200
    pick = client.get("/api/v1/locations/STHLM/picklist", headers=auth("viewer")).json
    assert pick["total"] == 4 and [o["order_id"] for o in pick["orders"]] == [second]


def test_pick_list_html_lists_the_bins_in_order(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                                stocked: None) -> None:
    ready(runtime, manual_shop, ("TEE-BLK-M", 2), ("BAG-09", 1), ("CAP-01", 1))
    response = client.get("/api/v1/locations/STHLM/picklist?format=html", headers=auth("viewer"))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "@media print" in page
    assert page.index("A-01-3") < page.index("B-02-1") < page.index("(no bin)")
    assert page.index("CAP-01") < page.index("TEE-BLK-M") < page.index("BAG-09")


def test_pick_list_of_an_unknown_location_is_404(client: Any, auth: Any, stocked: None) -> None:
    for code in ("NOPE", "bad code", "x" * 40):
        response = client.get(f"/api/v1/locations/{code}/picklist", headers=auth("viewer"))
        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/locations/STHLM/picklist").status_code == 401


def test_split_order_shows_what_ships_elsewhere(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                                stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 1), ("MUG-05", 2))
    assert sorted(allocated(runtime, order_id)) == [("NJ", "MUG-05", 2, "reserved"),
                                                    ("STHLM", "TEE-BLK-M", 1, "reserved")]
    pick = client.get("/api/v1/locations/STHLM/picklist", headers=auth("viewer")).json
    (order,) = pick["orders"]
    assert order["split"] is True
    assert order["elsewhere"] == [{"location": "NJ", "sku": "MUG-05", "quantity": 2}]
    page = client.get("/api/v1/locations/STHLM/picklist?format=html", headers=auth("viewer")).get_data(as_text=True)
    assert "other items ship from another location" in page and "2× MUG-05 from NJ" in page
    assert "[split]" in page

    nj = client.get("/api/v1/locations/NJ/picklist", headers=auth("viewer")).json
    assert [(b["bin"], b["total"]) for b in nj["bins"]] == [("R2-S4", 2)]
    assert nj["orders"][0]["elsewhere"] == [{"location": "STHLM", "sku": "TEE-BLK-M", "quantity": 1}]


# --- packing slips --------------------------------------------------------------------------------------


def test_a_split_order_has_one_packing_slip_per_location(client: Any, auth: Any, runtime: Runtime,
                                                         manual_shop: int, stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 1), ("MUG-05", 2))
    number = number_of(runtime, order_id)
    response = client.get(f"/api/v1/orders/{order_id}/packing-slip", headers=auth("viewer"))
    assert response.status_code == 200, response.json
    data = response.json
    assert data["number"] == number
    assert data["ship_to"]["line1"] == "Storgatan 12" and data["ship_to"]["city"] == "Göteborg"
    slips = {s["location"]: s for s in data["slips"]}
    assert set(slips) == {"STHLM", "NJ"}
    assert [(i["sku"], i["title"], i["quantity"]) for i in slips["STHLM"]["items"]] == [("TEE-BLK-M", "TEE-BLK-M", 1)]
    assert slips["STHLM"]["elsewhere"] == [{"location": "NJ", "sku": "MUG-05", "quantity": 2}]
    assert [(i["sku"], i["quantity"]) for i in slips["NJ"]["items"]] == [("MUG-05", 2)]
    assert slips["NJ"]["elsewhere"] == [{"location": "STHLM", "sku": "TEE-BLK-M", "quantity": 1}]
    assert {s["parcels"] for s in data["slips"]} == {2}

    nj = client.get(f"/api/v1/orders/{order_id}/packing-slip?location=nj&format=html", headers=auth("viewer"))
    assert nj.status_code == 200 and nj.mimetype == "text/html"
    page = nj.get_data(as_text=True)
    assert f"order #{number}" in page and "Storgatan 12" in page and "Göteborg" in page
    assert "MUG-05" in page and "1× TEE-BLK-M from STHLM" in page and "ships from NJ" in page

    assert client.get(f"/api/v1/orders/{order_id}/packing-slip?location=NOPE",
                      headers=auth("viewer")).status_code == 404
    assert client.get("/api/v1/orders/999999/packing-slip", headers=auth("viewer")).status_code == 404


def test_an_order_without_tracked_stock_gets_one_slip_of_its_items(client: Any, auth: Any, runtime: Runtime,
                                                                   manual_shop: int) -> None:
    order_id = approved_order(runtime, manual_shop, ("TEE-BLK-M", 2), ("WRAP", 1))
    data = client.get(f"/api/v1/orders/{order_id}/packing-slip", headers=auth("viewer")).json
    (slip,) = data["slips"]
    assert slip["location"] is None and slip["units"] == 3


# --- the command ----------------------------------------------------------------------------------------


def test_picklist_command_prints_and_writes_html(app: Any, runtime: Runtime, manual_shop: int, stocked: None,
                                                 tmp_path: Path) -> None:
    ready(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1))
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["picklist", "sthlm"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Pick list STHLM") and "3 units" in lines[0]
    assert [line.split("\t")[:3] for line in lines[2:]] == [
        ["A-01-3", "CAP-01", "1"], ["A-01-3", "total", "1"], ["B-02-1", "TEE-BLK-M", "2"], ["B-02-1", "total", "2"]]

    target = tmp_path / "pick.html"
    result = runner.invoke(cli, ["picklist", "STHLM", "--html", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert page.index("A-01-3") < page.index("B-02-1")

    missing = runner.invoke(cli, ["picklist", "NOPE"])
    assert missing.exit_code != 0 and "no location 'NOPE'" in missing.output


# --- PDF ------------------------------------------------------------------------------------------------


def pdf_pages(data: bytes) -> list[str]:
    """The text a printer would print, page by page."""
    return [page.extract_text() for page in PdfReader(BytesIO(data)).pages]


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages(data))


def test_pick_list_and_packing_slips_as_pdf(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                            stocked: None) -> None:
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 1), ("MUG-05", 2))
    number = number_of(runtime, order_id)
    response = client.get("/api/v1/locations/STHLM/picklist?format=pdf", headers=auth("viewer"))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    text = pdf_text(response.data)
    assert "Pick list: STHLM" in text and "TEE-BLK-M" in text and "[split]" in text
    assert "2× MUG-05 from NJ" in text

    slips = client.get(f"/api/v1/orders/{order_id}/packing-slip?format=pdf", headers=auth("viewer"))
    assert slips.status_code == 200 and slips.mimetype == "application/pdf"
    pages = pdf_pages(slips.data)
    assert len(pages) == 2  # one slip per location the order ships from
    assert all(f"order #{number}" in page and "Göteborg" in page for page in pages)
    assert "parcel 1 of 2" in pages[0] and "parcel 2 of 2" in pages[1]


def test_picklist_command_writes_a_pdf(app: Any, runtime: Runtime, manual_shop: int, stocked: None,
                                       tmp_path: Path) -> None:
    ready(runtime, manual_shop, ("TEE-BLK-M", 2), ("CAP-01", 1))
    target = tmp_path / "pick.pdf"
    result = app.test_cli_runner().invoke(cli, ["picklist", "STHLM", "--pdf", str(target)])
    assert result.exit_code == 0, result.output
    text = pdf_text(target.read_bytes())
    assert text.index("A-01-3") < text.index("B-02-1") and "CAP-01" in text


# --- cancelling after picking -----------------------------------------------------------------------------


def on_hand(runtime: Runtime, sku: str, code: str = "STHLM") -> tuple[int, int]:
    with runtime.db.session() as session:
        level = session.execute(sa.select(StockLevel).join(StockLevel.location)
                                .where(StockLevel.sku == sku, Location.code == code)).scalar_one()
        return level.on_hand, level.reserved


@pytest.mark.parametrize("restock", [True, False])
def test_cancel_after_picking_restocks_or_writes_off(client: Any, auth: Any, runtime: Runtime, manual_shop: int,
                                                     stocked: None, restock: bool) -> None:
    before = on_hand(runtime, "TEE-BLK-M")
    order_id = ready(runtime, manual_shop, ("TEE-BLK-M", 2))
    assert act(client, auth, order_id, "pick").status_code == 200
    cancelled = act(client, auth, order_id, "cancel", role="manager", reason="parcel dropped", restock=restock)
    assert cancelled.status_code == 200, cancelled.json
    on_hand_now, reserved_now = on_hand(runtime, "TEE-BLK-M")
    assert (on_hand_now, reserved_now) == (before[0] - (0 if restock else 2), before[1])
    released = cancelled.json["timeline"][-1]
    assert released["type"] == "order.stock_released"
    assert ("written off" in released["message"]) is (not restock)
