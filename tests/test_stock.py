"""Stock: locations, CSV imports checked whole (every bad row named by row and column, nothing half-written),
adjustments that never go below zero or below what orders hold; through the domain, the API and the CLI."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from app import stock
from app.cli import cli
from app.models import Location, StockLevel
from app.runtime import Runtime

CSV = "text/csv"


def add_location(runtime: Runtime, code: str, country: str = "SE", priority: int = 100, active: bool = True) -> int:
    with runtime.db.session() as session:
        location = Location(code=code, name=f"Warehouse {code}", country_code=country, priority=priority,
                            active=active)
        session.add(location)
        session.flush()
        return location.id


def import_csv(runtime: Runtime, text: str | bytes) -> stock.ImportResult:
    with runtime.db.session() as session:
        return stock.import_stock(session, text)


def levels(runtime: Runtime) -> dict[tuple[str, str], tuple[int, int, str | None]]:
    """{(location code, sku): (on_hand, reserved, bin)}"""
    with runtime.db.session() as session:
        rows = session.execute(stock.stock_query()).scalars().all()
        return {(r.location.code, r.sku): (r.on_hand, r.reserved, r.bin) for r in rows}


def problems_of(runtime: Runtime, text: str | bytes) -> list[str]:
    with pytest.raises(stock.StockImportError) as caught:
        import_csv(runtime, text)
    return [str(p) for p in caught.value.problems]


@pytest.fixture
def warehouses(runtime: Runtime) -> dict[str, int]:
    return {"STHLM": add_location(runtime, "STHLM", "SE", 10), "NJ": add_location(runtime, "NJ", "US", 20)}


# --- importing ------------------------------------------------------------------------------------------


def test_import_creates_then_updates_and_counts_changes(runtime: Runtime, warehouses: dict[str, int]) -> None:
    first = import_csv(runtime, "location,sku,on_hand,bin\n"
                                "STHLM,TEE-BLK-M,40,A-03-2\n"
                                "sthlm,CAP-01,5,\n"        # codes are case-insensitive; an empty bin is no bin
                                "NJ,TEE-BLK-M,12,R2-S4\n")
    assert (first.rows, first.created, first.updated, first.unchanged, first.changes) == (3, 3, 0, 0, 3)
    assert levels(runtime) == {("STHLM", "TEE-BLK-M"): (40, 0, "A-03-2"), ("STHLM", "CAP-01"): (5, 0, None),
                               ("NJ", "TEE-BLK-M"): (12, 0, "R2-S4")}

    # The count is absolute (a stock take), an empty bin keeps the stored one, and the bin column is optional.
    second = import_csv(runtime, "sku,location,on_hand,bin\n"
                                 "TEE-BLK-M,STHLM,38,\n"
                                 "CAP-01,STHLM,5,B-01\n"
                                 "TEE-BLK-M,NJ,12,R2-S4\n")
    assert (second.created, second.updated, second.unchanged) == (0, 2, 1)
    third = import_csv(runtime, "location,sku,on_hand\nNJ,TEE-BLK-M,12\nNJ,SOCK-3,7\n")
    assert (third.created, third.updated, third.unchanged) == (1, 0, 1)
    assert levels(runtime) == {("STHLM", "TEE-BLK-M"): (38, 0, "A-03-2"), ("STHLM", "CAP-01"): (5, 0, "B-01"),
                               ("NJ", "TEE-BLK-M"): (12, 0, "R2-S4"), ("NJ", "SOCK-3"): (7, 0, None)}


def test_import_reads_what_spreadsheets_write(runtime: Runtime, warehouses: dict[str, int]) -> None:
    # A byte order mark, semicolons (Swedish Excel), CRLF, blank lines, trailing empty cells, quoted cells.
    data = "\ufefflocation;sku;on_hand;bin\r\n\r\nSTHLM;\"TEE;BLK\";3;;\r\n NJ ; CAP-01 ; 4 ; A 1 \r\n".encode()
    result = import_csv(runtime, data)
    assert result.rows == 2
    assert levels(runtime) == {("STHLM", "TEE;BLK"): (3, 0, None), ("NJ", "CAP-01"): (4, 0, "A 1")}
    assert import_csv(runtime, "location\tsku\ton_hand\nNJ\tCAP-01\t9\n").updated == 1


BAD_FILES = [
    ("", "row 1: the file is empty; it needs a header row: location,sku,on_hand,bin"),
    ("sku,on_hand\nA,1\n", "row 1: the header lacks the column(s) location"),
    ("location,sku,qty\nSTHLM,A,1\n", "row 1, column qty: unknown column 'qty'"),
    ("location,sku,on_hand,sku\n", "row 1, column sku: is named twice"),
    ("location,sku,on_hand\nSTHLM,A,1\nXX,B,2\n",
     "row 3, column location: no location has the code 'XX' (locations: NJ, STHLM)"),
    ("location,sku,on_hand\n,A,1\n", "row 2, column location: is empty; give the location's code"),
    ("location,sku,on_hand\nST HLM,A,1\n", "row 2, column location: 'ST HLM' is not a location code"),
    ("location,sku,on_hand\nSTHLM,,1\n", "row 2, column sku: is empty"),
    ("location,sku,on_hand\nSTHLM," + "S" * 129 + ",1\n", "row 2, column sku: is 129 characters long; at most 128"),
    ("location,sku,on_hand\nSTHLM,A,\n", "row 2, column on_hand: is empty; give the counted quantity (0 or more)"),
    ("location,sku,on_hand\nSTHLM,A,abc\n", "row 2, column on_hand: 'abc' is not a whole number"),
    ("location,sku,on_hand\nSTHLM,A,2.5\n", "row 2, column on_hand: '2.5' is not a whole number"),
    ("location,sku,on_hand\nSTHLM,A,-2\n", "row 2, column on_hand: must not be negative (got -2)"),
    ("location,sku,on_hand\nSTHLM,A,2147483648\n", "row 2, column on_hand: 2147483648 is more than 2147483647"),
    ("location,sku,on_hand,bin\nSTHLM,A,1," + "B" * 65 + "\n", "row 2, column bin: is 65 characters long; at most 64"),
    ("location,sku,on_hand\nSTHLM,A,1,extra\n", "row 2: has 4 cell(s) where the header has 3"),
    ("location,sku,on_hand\nSTHLM,A\n", "row 2: has 2 cell(s) where the header has 3"),
    ("location,sku,on_hand\nSTHLM,A,1\nNJ,A,1\nsthlm,A,2\n",
     "row 4: repeats row 2 (location STHLM, SKU A); each location and SKU may appear once"),
    ("location,sku,on_hand\nSTHLM,A\x00B,1\n", "row 2, column sku: contains a NUL character"),
    ('location,sku,on_hand\nSTHLM,"A,1\n', "row 2: is not valid CSV: unexpected end of data"),
    (b"location,sku,on_hand\nSTHLM,\xe5tta,1\n", "row 2: is not UTF-8 text (byte 28 of the file)"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES, ids=[e.split(":")[0] + ":" + e.split(":")[1][:30]
                                                                for _, e in BAD_FILES])
def test_each_kind_of_bad_row_is_named_by_row_and_column(runtime: Runtime, warehouses: dict[str, int],
                                                         text: str | bytes, expected: str) -> None:
    problems = problems_of(runtime, text)
    assert any(p.startswith(expected) for p in problems), problems
    assert levels(runtime) == {}


def test_a_bad_row_anywhere_means_nothing_is_written(runtime: Runtime, warehouses: dict[str, int]) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,A,5\n")
    problems = problems_of(runtime, "location,sku,on_hand\nSTHLM,A,9\nNJ,NEW,3\nMARS,C,1\nNJ,B,lots\nVENUS,D,1\n")
    assert [p.split(" (")[0] for p in problems] == ["row 4, column location: no location has the code 'MARS'",
                                                    "row 5, column on_hand: 'lots' is not a whole number",
                                                    "row 6, column location: no location has the code 'VENUS'"]
    assert levels(runtime) == {("STHLM", "A"): (5, 0, None)}, "the good rows were not written either"


def test_every_problem_is_reported_up_to_a_limit(runtime: Runtime, warehouses: dict[str, int]) -> None:
    text = "location,sku,on_hand\n" + "".join(f"STHLM,S{i},x\n" for i in range(80))
    with pytest.raises(stock.StockImportError) as caught:
        import_csv(runtime, text)
    error = caught.value
    assert len(error.problems) == stock.MAX_REPORTED_PROBLEMS and error.truncated
    assert error.message.startswith("the stock file has 50+ problem(s), nothing was imported: row 2, column on_hand")
    assert error.fields["row 2"] == {"on_hand": ["'x' is not a whole number"]}


def test_a_count_below_what_orders_hold_is_refused(runtime: Runtime, warehouses: dict[str, int]) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,A,5\n")
    with runtime.db.session() as session:
        session.execute(sa.update(StockLevel).values(reserved=4))
    problems = problems_of(runtime, "location,sku,on_hand\nNJ,A,1\nSTHLM,A,3\n")
    assert problems == ["row 3, column on_hand: 3 is fewer than the 4 unit(s) of A reserved for orders at STHLM; "
                        "ship or release those first"]
    assert levels(runtime) == {("STHLM", "A"): (5, 4, None)}
    assert import_csv(runtime, "location,sku,on_hand\nSTHLM,A,4\n").updated == 1


def test_the_database_refuses_oversold_stock_whatever_the_code_does(runtime: Runtime,
                                                                    warehouses: dict[str, int]) -> None:
    import_csv(runtime, "location,sku,on_hand\nSTHLM,A,5\n")
    for values in ({"reserved": 6}, {"on_hand": -1}, {"reserved": -1}):
        with pytest.raises(sa.exc.IntegrityError):
            with runtime.db.session() as session:
                session.execute(sa.update(StockLevel).values(**values))
    assert levels(runtime) == {("STHLM", "A"): (5, 0, None)}


# --- adjusting ------------------------------------------------------------------------------------------


def adjust(runtime: Runtime, code: str, sku: str, **change: Any) -> stock.AdjustResult:
    with runtime.db.session() as session:
        return stock.adjust_stock(session, code, sku, **change)


def test_adjust_by_delta_to_a_count_and_the_bin(runtime: Runtime, warehouses: dict[str, int]) -> None:
    assert adjust(runtime, "sthlm", "A", delta=10).previous_on_hand == 0, "a delivery of a new SKU creates its row"
    assert adjust(runtime, "STHLM", "A", delta=-3).previous_on_hand == 10
    assert adjust(runtime, "STHLM", "A", on_hand=4, bin="C-9").level.on_hand == 4
    assert adjust(runtime, "STHLM", "A", bin="").level.bin is None
    assert levels(runtime) == {("STHLM", "A"): (4, 0, None)}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"delta": -5}, "delta", "STHLM has 4 × A; removing 5 would leave -1"),
    ({"on_hand": 1}, "on_hand", "STHLM would have 1 × A on hand, fewer than the 2 reserved for orders"),
    ({"delta": -3}, "delta", "STHLM would have 1 × A on hand, fewer than the 2 reserved for orders"),
    ({"delta": 2**31 - 1}, "delta", "2147483651 × A is more than 2147483647"),
    ({"delta": 1, "on_hand": 1}, "delta", "give either delta or on_hand, not both"),
    ({}, "delta", "give delta, on_hand or bin"),
])
def test_adjust_never_goes_below_zero_or_below_reserved(runtime: Runtime, warehouses: dict[str, int],
                                                        change: dict[str, Any], field: str, message: str) -> None:
    adjust(runtime, "STHLM", "A", on_hand=4)
    with runtime.db.session() as session:
        session.execute(sa.update(StockLevel).values(reserved=2))
    with pytest.raises(stock.StockError) as caught:
        adjust(runtime, "STHLM", "A", **change)
    assert caught.value.message.startswith(message) and field in caught.value.fields
    assert levels(runtime) == {("STHLM", "A"): (4, 2, None)}


def test_adjust_names_an_unknown_location_or_a_missing_row(runtime: Runtime, warehouses: dict[str, int]) -> None:
    with pytest.raises(stock.StockError, match=r"no location has the code 'MARS' \(locations: NJ, STHLM\)"):
        adjust(runtime, "mars", "A", delta=1)
    with pytest.raises(stock.StockError, match="NJ holds no A"):
        adjust(runtime, "NJ", "A", delta=-1)
    assert levels(runtime) == {}


# --- the API --------------------------------------------------------------------------------------------


def test_locations_api(client: Any, auth: Any) -> None:
    body = {"code": "sthlm", "name": "Stockholm warehouse", "country_code": "SE", "city": "Stockholm",
            "timezone": "Europe/Stockholm", "priority": 10}
    created = client.post("/api/v1/locations", json=body, headers=auth("manager"))
    assert created.status_code == 201, created.json
    assert created.json["code"] == "STHLM" and created.json["active"] is True
    assert client.post("/api/v1/locations", json={"code": "NJ", "name": "New Jersey", "country_code": "US"},
                       headers=auth()).status_code == 201
    listed = client.get("/api/v1/locations", headers=auth("viewer")).json
    assert [(loc["code"], loc["priority"]) for loc in listed] == [("STHLM", 10), ("NJ", 100)]

    duplicate = client.post("/api/v1/locations", json={**body, "code": "Sthlm"}, headers=auth())
    assert duplicate.status_code == 409 and duplicate.json["error"]["code"] == "duplicate_location"
    bad = client.post("/api/v1/locations", json={**body, "code": "NEW", "country_code": "XX", "timezone": "Mars/Base"},
                      headers=auth())
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"country_code", "timezone"}
    assert client.post("/api/v1/locations", json={**body, "code": "OP"}, headers=auth("operator")).status_code == 403


def test_import_api_takes_a_csv_body(client: Any, auth: Any, runtime: Runtime, warehouses: dict[str, int]) -> None:
    good = "location,sku,on_hand,bin\nSTHLM,TEE-BLK-M,40,A-03-2\nNJ,TEE-BLK-M,12,\n"
    response = client.post("/api/v1/inventory/import", data=good, content_type="text/csv; charset=utf-8",
                           headers=auth("manager"))
    assert response.status_code == 200, response.json
    assert response.json == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0, "queued_orders": []}

    bad = client.post("/api/v1/inventory/import", data="location,sku,on_hand\nSTHLM,TEE-BLK-M,39\nNJ,X,many\n",
                      content_type=CSV, headers=auth())
    assert bad.status_code == 422
    error = bad.json["error"]
    assert error["code"] == "invalid_stock_file"
    assert error["message"] == ("the stock file has 1 problem(s), nothing was imported: "
                                "row 3, column on_hand: 'many' is not a whole number")
    assert error["fields"] == {"row 3": {"on_hand": ["'many' is not a whole number"]}}
    assert levels(runtime)[("STHLM", "TEE-BLK-M")] == (40, 0, "A-03-2")

    as_json = client.post("/api/v1/inventory/import", json={"rows": []}, headers=auth())
    assert as_json.status_code == 415 and "text/csv" in as_json.json["error"]["message"]
    assert client.post("/api/v1/inventory/import", data=good, content_type=CSV,
                       headers=auth("operator")).status_code == 403


def test_inventory_api_lists_filters_and_pages(client: Any, auth: Any, runtime: Runtime,
                                               warehouses: dict[str, int]) -> None:
    import_csv(runtime, "location,sku,on_hand,bin\nSTHLM,A,5,A-1\nNJ,A,2,\nSTHLM,B,1,\nNJ,C,0,\n")
    everything = client.get("/api/v1/inventory", headers=auth("viewer")).json
    assert [(r["sku"], r["location"]) for r in everything["data"]] == [("A", "NJ"), ("A", "STHLM"), ("B", "STHLM"),
                                                                       ("C", "NJ")]
    assert everything["data"][1] == {**everything["data"][1], "on_hand": 5, "reserved": 0, "available": 5,
                                     "bin": "A-1"}
    assert everything["next_cursor"] is None
    only_a = client.get("/api/v1/inventory?sku=A&location=sthlm", headers=auth("viewer")).json["data"]
    assert [(r["sku"], r["location"], r["on_hand"]) for r in only_a] == [("A", "STHLM", 5)]

    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/inventory?limit=3" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auth("viewer")).json
        seen += [(r["sku"], r["location"]) for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(r["sku"], r["location"]) for r in everything["data"]]
    bad = client.get("/api/v1/inventory?cursor=nonsense", headers=auth("viewer"))
    assert bad.status_code == 422 and "cursor" in bad.json["error"]["fields"]


def test_adjust_api(client: Any, auth: Any, runtime: Runtime, warehouses: dict[str, int]) -> None:
    response = client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "A", "delta": 6,
                                                             "reason": "delivery 4411"}, headers=auth("operator"))
    assert response.status_code == 200, response.json
    assert response.json["previous_on_hand"] == 0 and response.json["queued_orders"] == []
    assert response.json["stock"]["location"] == "NJ" and response.json["stock"]["on_hand"] == 6
    too_many = client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "A", "delta": -7},
                           headers=auth("operator"))
    assert too_many.status_code == 422 and too_many.json["error"]["fields"] == {"delta": ["would leave -1 on hand"]}
    both = client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "A", "delta": 1, "on_hand": 1},
                       headers=auth("operator"))
    assert both.status_code == 422 and "delta" in both.json["error"]["fields"]
    unknown = client.post("/api/v1/inventory/adjust", json={"location": "MARS", "sku": "A", "delta": 1},
                          headers=auth("operator"))
    assert unknown.status_code == 422 and "location" in unknown.json["error"]["fields"]
    assert client.post("/api/v1/inventory/adjust", json={"location": "NJ", "sku": "A", "delta": 1},
                       headers=auth("viewer")).status_code == 403
    assert levels(runtime) == {("NJ", "A"): (6, 0, None)}


# --- the CLI --------------------------------------------------------------------------------------------


def orderline(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


def test_cli_locations_stock_import_and_show(app: Flask, runtime: Runtime, tmp_path: Any) -> None:
    added = orderline(app, "locations", "add", "--code", "sthlm", "--name", "Stockholm", "--country", "se",
                      "--priority", "10")
    assert added.exit_code == 0, added.output
    assert added.output.startswith("location 1 added: STHLM (Stockholm, SE)")
    again = orderline(app, "locations", "add", "--code", "STHLM", "--name", "Again", "--country", "SE")
    assert again.exit_code != 0 and "there is already a location STHLM" in again.output
    bad = orderline(app, "locations", "add", "--code", "NJ", "--name", "New Jersey", "--country", "XX")
    assert bad.exit_code != 0 and "country_code" in bad.output
    assert "STHLM\tStockholm\tSE\tpriority 10\tactive" in orderline(app, "locations", "list").output

    good = tmp_path / "stock.csv"
    good.write_text("location,sku,on_hand,bin\nSTHLM,TEE-BLK-M,40,A-03-2\nSTHLM,CAP-01,3,\n")
    imported = orderline(app, "stock", "import", str(good))
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.strip() == ("2 row(s): 2 created, 0 updated, 0 unchanged; "
                                       "0 waiting order(s) queued for allocation")
    broken = tmp_path / "broken.csv"
    broken.write_text("location,sku,on_hand\nSTHLM,TEE-BLK-M,1\nNJ,CAP-01,2\nSTHLM,CAP-01,-1\n")
    refused = orderline(app, "stock", "import", str(broken))
    assert refused.exit_code == 1
    assert "nothing was imported" in refused.output
    assert "row 3, column location: no location has the code 'NJ'" in refused.output
    assert "row 4, column on_hand: must not be negative (got -1)" in refused.output

    shown = orderline(app, "stock", "show").stdout.splitlines()
    assert shown == ["LOCATION\tSKU\tON_HAND\tRESERVED\tAVAILABLE\tBIN", "STHLM\tCAP-01\t3\t0\t3\t",
                     "STHLM\tTEE-BLK-M\t40\t0\t40\tA-03-2"]
    assert orderline(app, "stock", "show", "--sku", "CAP-01").stdout.splitlines()[1:] == ["STHLM\tCAP-01\t3\t0\t3\t"]
    assert orderline(app, "stock", "show", "--sku", "NOPE").stdout.strip() == "no stock"
