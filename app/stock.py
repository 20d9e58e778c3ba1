"""Stock and allocation: stock levels per location and SKU, and reservations that can never oversell.

Rules every function here keeps:

- **Locks in one order.** Whoever changes stock rows locks them `SELECT … FOR UPDATE`, sorted by
  (sku, location id); whoever also changes an order locks the order row first. With one global order no
  two transactions can wait on each other in a circle, so concurrent allocations, cancellations and imports
  never deadlock. On SQLite every write transaction starts with `BEGIN IMMEDIATE` (`app/store.py`), which
  already lets one writer in at a time; `FOR UPDATE` is simply not rendered there.
- **Read after the lock.** Rows are (re)loaded with `populate_existing` while locked, so a decision is
  made on the latest committed figures, never on a copy the session held from before.
- **The database has the last word.** `stock_levels` has CHECK constraints (`on_hand >= 0`,
  `reserved >= 0`, `reserved <= on_hand`): a bug in here fails a transaction; it cannot oversell.
- **All or nothing.** An order is allocated only when every unit it needs can be reserved; otherwise
  nothing is reserved and it is backordered with what is missing. Stock is never stranded on an order that
  cannot ship, and stock arriving goes to the oldest waiting order it completes.
- Nothing here commits: callers own the transaction, as with `app/orders/actions.py`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import and_, event, exists, func, inspect, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, contains_eager

from app import outbox
from app.models import Allocation, LineItem, Location, Order, OutboxEvent, StockLevel
from app.orders.errors import OrderError
from app.orders.statuses import OrderStatus
from app.store import once_per_transaction, transaction_info, utcnow

log = structlog.get_logger("orderline.stock")

INT32_MAX = 2**31 - 1  # stock figures live in PostgreSQL `integer` columns
MAX_SKU = 128
MAX_BIN = 64
MAX_IMPORT_ROWS = 100_000
MAX_REPORTED_PROBLEMS = 50
RowT = TypeVar("RowT")
CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")


class Strategy(StrEnum):
    """How an order's units are spread over locations; a shop picks one in `settings["allocation"]`."""

    # One location that can ship everything (by priority), else as few locations as possible.
    SINGLE_LOCATION_FIRST = "single_location_first"
    # Take from locations in priority order, as much as each has.
    SPLIT = "split"
    # Locations in the shipping country first: one of them that has everything, else as much as the
    # domestic ones have (by priority), then the rest (by priority).
    NEAREST = "nearest"


DEFAULT_STRATEGY = Strategy.SINGLE_LOCATION_FIRST


class AllocationStatus(StrEnum):
    RESERVED = "reserved"
    PICKED = "picked"
    SHIPPED = "shipped"
    RELEASED = "released"


# Allocations that still hold stock in `reserved` (picked goods are off the shelf but still on hand).
HOLDING = (AllocationStatus.RESERVED.value, AllocationStatus.PICKED.value)
# Orders waiting for stock: backordered ones, and approved ones whose allocation has not happened (yet).
WAITING = (OrderStatus.BACKORDERED.value, OrderStatus.APPROVED.value)


class StockError(OrderError):
    """A stock change that cannot be made as asked; nothing was written."""

    code = "validation_error"
    http_status = 422


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"row {self.row}" + (f", column {self.column}" if self.column else "") + f": {self.message}"


class StockImportError(StockError):
    """The CSV (or its rows) cannot be imported; every problem found is listed, and nothing was written."""

    code = "invalid_stock_file"

    def __init__(self, problems: Sequence[RowProblem], *, truncated: bool = False, what: str = "stock file") -> None:
        self.problems = list(problems)
        self.truncated = truncated
        head = "; ".join(str(p) for p in self.problems[:5])
        more = len(self.problems) - 5
        count = f"{len(self.problems)}{'+' if truncated else ''}"
        message = (f"the {what} has {count} problem(s), nothing was imported: {head}"
                   + (f"; and {more} more" if more > 0 else "") + (" (stopped counting)" if truncated else ""))
        fields: dict[str, Any] = {}
        for problem in self.problems:
            where = fields.setdefault(f"row {problem.row}", {})
            where.setdefault(problem.column or "_row", []).append(problem.message)
        super().__init__(message, fields=fields)


# --- reading a stock file -------------------------------------------------------------------------------

COLUMNS = ("location", "sku", "on_hand", "bin")
REQUIRED_COLUMNS = ("location", "sku", "on_hand")


@dataclass(frozen=True)
class StockRow:
    """One line of a stock file: `on_hand` is the counted quantity (absolute, not a change)."""

    row: int
    location: str
    sku: str
    on_hand: int
    # None leaves the stored bin as it is.
    bin: str | None = None


class _Problems:
    def __init__(self, what: str = "stock file") -> None:
        self.items: list[RowProblem] = []
        self.truncated = False
        self.what = what

    def add(self, row: int, column: str | None, message: str) -> None:
        if len(self.items) >= MAX_REPORTED_PROBLEMS:
            self.truncated = True
            return
        self.items.append(RowProblem(row, column, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise StockImportError(self.items, truncated=self.truncated, what=self.what)


def _text_of(data: str | bytes) -> str:
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8-sig")  # spreadsheets often start their UTF-8 with a byte order mark
        except UnicodeDecodeError as error:
            line = raw[:error.start].count(b"\n") + 1
            raise StockImportError([RowProblem(line, None, f"is not UTF-8 text (byte {error.start + 1} "
                                                           f"of the file); save the file as UTF-8 CSV")]) from None
    return data.removeprefix("\ufeff")


def _delimiter(text: str) -> str:
    # Swedish and other European spreadsheets write CSV with semicolons; a header tells which it is.
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        return ","
    for candidate in (";", "\t"):
        if candidate in first:
            return candidate
    return ","


def normalize_code(code: str) -> str:
    return code.strip().upper()


def _cell_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return "is not valid Unicode"
    return None


def parse_csv(data: str | bytes) -> list[StockRow]:
    """Read a stock file: a header naming `location`, `sku`, `on_hand` (and optionally `bin`), then one row
    per location and SKU. Every problem is reported with its row (the file's line) and column."""
    rows, problems = _parse(data)
    problems.raise_if_any()
    return rows


@dataclass(frozen=True)
class TableSpec(Generic[RowT]):
    """What a CSV import reads: its columns, and how one row's cells become a value (the product catalogue
    reads its file with the same rules and messages as stock files)."""

    what: str  # "stock file"
    columns: tuple[str, ...]
    required: tuple[str, ...]
    optional_note: str  # "(bin is optional)"
    # (file line, cells by column name, problems) → the row, or None when it has problems (added to problems)
    read_row: Callable[[int, dict[str, str], _Problems], RowT | None]
    # A row's identity within the file, and how a repeat of it is described.
    key: Callable[[RowT], tuple[str, ...]]
    describe_key: Callable[[RowT], str]
    unique_as: str  # "location and SKU"


def read_table(data: str | bytes, spec: TableSpec[RowT]) -> tuple[list[RowT], _Problems]:
    """Every row of a CSV file with a header row; each problem named by row (the file's line) and column."""
    text = _text_of(data)
    problems = _Problems(spec.what)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    header: list[str] | None = None
    rows: list[RowT] = []
    seen: dict[tuple[str, ...], int] = {}
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.add(start, None, f"is not valid CSV: {error}")
            break
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (and a line of empty cells) are skipped
        if header is None:
            header = _read_header(start, cells, problems, spec)
            if header is None:
                break
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            problems.add(start, None, f"the file has more than {MAX_IMPORT_ROWS} rows; split it into smaller files")
            break
        values = _row_values(start, header, cells, problems)
        row = spec.read_row(start, values, problems) if values is not None else None
        if row is not None:
            key = spec.key(row)
            if key in seen:
                problems.add(start, None, f"repeats row {seen[key]} ({spec.describe_key(row)}); "
                                          f"each {spec.unique_as} may appear once")
            else:
                seen[key] = start
                rows.append(row)
    if header is None and not problems.items:
        problems.add(1, None, "the file is empty; it needs a header row: " + ",".join(spec.columns))
    return rows, problems


def _parse(data: str | bytes) -> tuple[list[StockRow], _Problems]:
    return read_table(data, STOCK_FILE)


def _read_header(row: int, cells: list[str], problems: _Problems, spec: TableSpec[Any]) -> list[str] | None:
    names = [cell.strip().lower() for cell in cells]
    ok = True
    for index, name in enumerate(names):
        if name not in spec.columns:
            problems.add(row, name or f"#{index + 1}",
                         f"unknown column '{cells[index].strip()}'; the columns are {', '.join(spec.columns)} "
                         f"{spec.optional_note}")
            ok = False
        elif names.index(name) != index:
            problems.add(row, name, "is named twice")
            ok = False
    missing = [name for name in spec.required if name not in names]
    if missing:
        problems.add(row, None, f"the header lacks the column(s) {', '.join(missing)}; "
                                f"the first row must name the columns {', '.join(spec.columns)} {spec.optional_note}")
        ok = False
    return names if ok else None


def _row_values(row: int, header: list[str], cells: list[str], problems: _Problems) -> dict[str, str] | None:
    if len(cells) > len(header) and not any(cell.strip() for cell in cells[len(header):]):
        cells = cells[:len(header)]  # trailing empty cells, as spreadsheets write them
    if len(cells) != len(header):
        problems.add(row, None, f"has {len(cells)} cell(s) where the header has {len(header)}")
        return None
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
    before = len(problems.items)
    for name, value in values.items():
        problem = _cell_problem(value)
        if problem:
            problems.add(row, name, problem)
    return values if len(problems.items) == before else None


def _read_row(row: int, values: dict[str, str], problems: _Problems) -> StockRow | None:
    before = len(problems.items)
    location = normalize_code(values["location"])
    if not location:
        problems.add(row, "location", "is empty; give the location's code")
    elif not CODE_PATTERN.fullmatch(location):
        problems.add(row, "location", f"'{values['location']}' is not a location code")
    sku = sku_problem(row, values["sku"], problems)
    on_hand = _whole_number(row, values["on_hand"], problems)
    bin_ = values.get("bin") or None
    if bin_ is not None and len(bin_) > MAX_BIN:
        problems.add(row, "bin", f"is {len(bin_)} characters long; at most {MAX_BIN}")
    if len(problems.items) > before or on_hand is None or sku is None:
        return None
    return StockRow(row, location, sku, on_hand, bin_)


def sku_problem(row: int, value: str, problems: _Problems) -> str | None:
    """The SKU cell, or None (with the problem added) when it is empty or too long."""
    if not value:
        problems.add(row, "sku", "is empty")
        return None
    if len(value) > MAX_SKU:
        problems.add(row, "sku", f"is {len(value)} characters long; at most {MAX_SKU}")
        return None
    return value


STOCK_FILE: TableSpec[StockRow] = TableSpec(
    what="stock file", columns=COLUMNS, required=REQUIRED_COLUMNS, optional_note="(bin is optional)",
    read_row=_read_row, key=lambda r: (r.location, r.sku),
    describe_key=lambda r: f"location {r.location}, SKU {r.sku}", unique_as="location and SKU")


def _whole_number(row: int, value: str, problems: _Problems) -> int | None:
    if not value:
        problems.add(row, "on_hand", "is empty; give the counted quantity (0 or more)")
        return None
    if re.fullmatch(r"-[0-9]+", value):
        problems.add(row, "on_hand", f"must not be negative (got {value})")
        return None
    if not re.fullmatch(r"[0-9]+", value):
        problems.add(row, "on_hand", f"'{value}' is not a whole number")
        return None
    number = int(value)
    if number > INT32_MAX:
        problems.add(row, "on_hand", f"{value} is more than {INT32_MAX}")
        return None
    return number


# --- changing stock -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int
    updated: int
    unchanged: int
    # Waiting orders the new stock can complete, asked to be allocated (oldest first).
    queued_orders: list[int] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class AdjustResult:
    level: StockLevel
    previous_on_hand: int
    queued_orders: list[int] = field(default_factory=list)


def _insert(session: Session) -> Any:
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _lock_levels(session: Session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], StockLevel]:
    """Lock and freshly load the stock rows for these (sku, location id) keys, in the one lock order."""
    wanted = sorted(set(keys))
    found: dict[tuple[str, int], StockLevel] = {}
    for chunk in _chunks(wanted, 400):
        skus = sorted({sku for sku, _ in chunk})
        locations = sorted({location_id for _, location_id in chunk})
        rows = session.execute(
            select(StockLevel)
            .where(StockLevel.sku.in_(skus), StockLevel.location_id.in_(locations))
            .order_by(StockLevel.sku, StockLevel.location_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
        keys_here = set(chunk)
        found.update({(r.sku, r.location_id): r for r in rows if (r.sku, r.location_id) in keys_here})
    return found


def _ensure_levels(session: Session, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
    """Create empty stock rows for keys that have none; returns the keys this transaction created.
    Sorted inserts that skip rows another transaction created meanwhile: never a unique-key error."""
    created: set[tuple[str, int]] = set()
    now = utcnow()
    for chunk in _chunks(sorted(set(keys)), 400):
        statement = (_insert(session)(StockLevel)
                     .values([{"location_id": location_id, "sku": sku, "on_hand": 0, "reserved": 0,
                               "updated_at": now} for sku, location_id in chunk])
                     .on_conflict_do_nothing(index_elements=["location_id", "sku"])
                     .returning(StockLevel.sku, StockLevel.location_id))
        created.update((sku, location_id) for sku, location_id in session.execute(statement).all())
    return created


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _locations_by_code(session: Session, codes: Iterable[str]) -> dict[str, Location]:
    codes = sorted(set(codes))
    if not codes:
        return {}
    return {loc.code: loc for loc in session.execute(select(Location).where(Location.code.in_(codes))).scalars()}


def import_stock(session: Session, source: str | bytes | Sequence[StockRow]) -> ImportResult:
    """Set counted stock from a CSV file (or parsed rows): insert or update one stock row per location and
    SKU. Checked whole before anything is written: any problem raises StockImportError naming every row and
    column at fault, and the caller's transaction is rolled back by the raise. Waiting orders the new stock
    completes are asked to be allocated."""
    rows, problems = _parse(source) if isinstance(source, (str, bytes)) else (list(source), _Problems())
    locations = _locations_by_code(session, (r.location for r in rows))
    unknown = [r for r in rows if r.location not in locations]
    if unknown:
        known = ", ".join(_all_codes(session)) or "none yet; add one with `orderline locations add`"
        for r in unknown:
            problems.add(r.row, "location", f"no location has the code '{r.location}' (locations: {known})")
    problems.items.sort(key=lambda p: p.row)
    problems.raise_if_any()
    if not rows:
        return ImportResult(0, 0, 0, 0)
    keys = [(r.sku, locations[r.location].id) for r in rows]
    # Existing rows first (locked), then the missing ones created and locked: one lock order throughout.
    levels = _lock_levels(session, keys)
    missing = [key for key in keys if key not in levels]
    created = _ensure_levels(session, missing) if missing else set()
    if missing:
        levels.update(_lock_levels(session, missing))
    for r, key in zip(rows, keys, strict=True):
        level = levels[key]
        if r.on_hand < level.reserved:
            problems.add(r.row, "on_hand", f"{r.on_hand} is fewer than the {level.reserved} unit(s) of {r.sku} "
                                           f"reserved for orders at {r.location}; ship or release those first")
    problems.raise_if_any()
    updated = unchanged = 0
    arrived: set[str] = set()
    for r, key in zip(rows, keys, strict=True):
        level = levels[key]
        before_available = level.on_hand - level.reserved
        changed = level.on_hand != r.on_hand or (r.bin is not None and level.bin != r.bin)
        if changed:
            level.on_hand = r.on_hand
            if r.bin is not None:
                level.bin = r.bin
            level.updated_at = utcnow()
        if key not in created:
            updated, unchanged = (updated + 1, unchanged) if changed else (updated, unchanged + 1)
        if level.on_hand - level.reserved > before_available and locations[r.location].active:
            arrived.add(r.sku)
    session.flush()
    queued = queue_waiting_orders(session, arrived)
    result = ImportResult(len(rows), len(created), updated, unchanged, queued)
    log.info("stock.imported", rows=result.rows, created=result.created, updated=result.updated,
             unchanged=result.unchanged, queued_orders=len(queued))
    return result


def _all_codes(session: Session) -> list[str]:
    return list(session.execute(select(Location.code).order_by(Location.code)).scalars())


def adjust_stock(session: Session, location_code: str, sku: str, *, delta: int | None = None,
                 on_hand: int | None = None, bin: str | None = None, reason: str | None = None,
                 actor: str | None = None) -> AdjustResult:
    """Change one stock row: by `delta` (a delivery, +; damage or loss, -) or to a counted `on_hand`, and/or
    its bin. Refuses to go below zero or below what orders have reserved."""
    if delta is not None and on_hand is not None:
        raise StockError("give either delta or on_hand, not both",
                         fields={"delta": ["cannot be combined with on_hand"]})
    if delta is None and on_hand is None and bin is None:
        raise StockError("give delta, on_hand or bin", fields={"delta": ["give delta, on_hand or bin"]})
    sku = (sku or "").strip()
    if not sku or len(sku) > MAX_SKU:
        raise StockError(f"a SKU has 1 to {MAX_SKU} characters", fields={"sku": [f"must be 1 to {MAX_SKU} characters"]})
    code = normalize_code(location_code or "")
    location = _locations_by_code(session, [code]).get(code)
    if location is None:
        known = ", ".join(_all_codes(session)) or "none yet"
        raise StockError(f"no location has the code '{code}' (locations: {known})",
                         fields={"location": [f"no location has the code '{code}'"]})
    key = (sku, location.id)
    level = _lock_levels(session, [key]).get(key)
    if level is None:
        if (delta is not None and delta < 0) or (delta is None and on_hand is None):
            raise StockError(f"{location.code} holds no {sku}",
                             fields={"delta" if delta is not None else "bin": [f"{location.code} holds no {sku}"]})
        _ensure_levels(session, [key])
        level = _lock_levels(session, [key])[key]
    level.location = location
    previous = level.on_hand
    target = previous + delta if delta is not None else (on_hand if on_hand is not None else previous)
    name = "delta" if delta is not None else "on_hand"
    if target < 0:
        raise StockError(f"{location.code} has {previous} × {sku}; removing {-(delta or 0)} would leave {target}",
                         fields={name: [f"would leave {target} on hand"]})
    if target > INT32_MAX:
        raise StockError(f"{target} × {sku} is more than {INT32_MAX}",
                         fields={name: [f"must total at most {INT32_MAX}"]})
    if target < level.reserved:
        raise StockError(f"{location.code} would have {target} × {sku} on hand, fewer than the {level.reserved} "
                         f"reserved for orders; ship or release those first",
                         fields={name: [f"would leave fewer than the {level.reserved} reserved"]})
    before_available = level.on_hand - level.reserved
    level.on_hand = target
    if bin is not None:
        level.bin = bin.strip() or None
    level.updated_at = utcnow()
    session.flush()
    queued: list[int] = []
    if level.on_hand - level.reserved > before_available and location.active:
        queued = queue_waiting_orders(session, [sku])
    log.info("stock.adjusted", location=location.code, sku=sku, previous=previous, on_hand=target,
             reason=reason, actor=actor, queued_orders=len(queued))
    return AdjustResult(level, previous, queued)


# --- allocating -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shortage:
    sku: str
    needed: int
    available: int

    @property
    def missing(self) -> int:
        return self.needed - self.available


@dataclass
class AllocationResult:
    """What `allocate` did: `outcome` is "allocated", "backordered" or "untracked" (no active location:
    Orderline is not keeping stock, so nothing was reserved and the order was left as it was)."""

    outcome: str
    strategy: Strategy
    allocations: list[Allocation] = field(default_factory=list)
    missing: list[Shortage] = field(default_factory=list)
    # Lines that ship but have no SKU: they cannot be stock-tracked and are left out.
    untracked_lines: list[str] = field(default_factory=list)

    @property
    def allocated(self) -> bool:
        return self.outcome == "allocated"


def strategy_for(order: Order) -> Strategy:
    wanted = (order.shop.settings or {}).get("allocation") if order.shop else None
    if wanted is None:
        return DEFAULT_STRATEGY
    try:
        return Strategy(wanted)
    except ValueError:
        log.warning("stock.unknown_strategy", shop_id=order.shop_id, allocation=wanted,
                    using=str(DEFAULT_STRATEGY))
        return DEFAULT_STRATEGY


def _held_by_line(session: Session, order_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """Units of each line still held (reserved or picked), and units shipped through allocations."""
    held: dict[int, int] = defaultdict(int)
    shipped: dict[int, int] = defaultdict(int)
    for line_id, status, quantity in session.execute(
            select(Allocation.line_item_id, Allocation.status, func.sum(Allocation.quantity))
            .where(Allocation.order_id == order_id, Allocation.line_item_id.is_not(None),
                   Allocation.status != AllocationStatus.RELEASED.value)
            .group_by(Allocation.line_item_id, Allocation.status)).all():
        if line_id is not None:
            (shipped if status == AllocationStatus.SHIPPED.value else held)[line_id] += int(quantity)
    return held, shipped


def _outstanding(line: LineItem, held: int, shipped: int) -> int:
    covered = max(line.fulfilled_quantity or 0, shipped) + held
    return max(0, line.quantity - (line.refunded_quantity or 0) - covered)


def needs_of(session: Session, order: Order) -> tuple[dict[int, tuple[str, int]], list[str]]:
    """What the order still needs reserved: {line id: (sku, units)}, and the titles of shipping lines
    without a SKU (which cannot be tracked)."""
    held, shipped = _held_by_line(session, order.id)
    needs: dict[int, tuple[str, int]] = {}
    untracked: list[str] = []
    for line in order.line_items:
        if not line.requires_shipping:
            continue
        sku = (line.sku or "").strip()
        units = _outstanding(line, held.get(line.id, 0), shipped.get(line.id, 0))
        if not units:
            continue
        if not sku:
            untracked.append(line.title)
            continue
        needs[line.id] = (sku, units)
    return needs, untracked


def _ship_country(order: Order) -> str | None:
    address = order.address("shipping")
    return address.country_code if address is not None and address.country_code else None


def _has_active_location(session: Session) -> bool:
    return once_per_transaction(session, "has_active_location", lambda: session.execute(
        select(Location.id).where(Location.active.is_(True)).limit(1)).first() is not None)


def allocate(session: Session, order: Order, *, strategy: Strategy | None = None) -> AllocationResult:
    """Reserve stock for everything the order still needs, or nothing. The caller holds the order row (see
    `actions.allocate`); this locks the stock rows it reads, so concurrent allocations cannot oversell."""
    strategy = strategy or strategy_for(order)
    if not _has_active_location(session):
        return AllocationResult("untracked", strategy)
    needs, untracked = needs_of(session, order)
    by_sku: dict[str, int] = defaultdict(int)
    for sku, units in needs.values():
        by_sku[sku] += units
    if not by_sku:
        return AllocationResult("allocated", strategy, untracked_lines=untracked)
    levels = session.execute(
        select(StockLevel)
        .join(StockLevel.location)
        .options(contains_eager(StockLevel.location))
        .where(StockLevel.sku.in_(sorted(by_sku)), Location.active.is_(True))
        .order_by(StockLevel.sku, StockLevel.location_id)
        .with_for_update(of=StockLevel)  # not the location rows: allocations must not queue on those
        .execution_options(populate_existing=True)
    ).scalars().all()
    totals: dict[str, int] = defaultdict(int)
    for level in levels:
        totals[level.sku] += max(level.on_hand - level.reserved, 0)
    missing = [Shortage(sku, units, totals.get(sku, 0)) for sku, units in sorted(by_sku.items())
               if totals.get(sku, 0) < units]
    if missing:
        return AllocationResult("backordered", strategy, missing=missing, untracked_lines=untracked)
    plan = plan_allocation(dict(by_sku), levels, strategy, _ship_country(order))
    level_by_key = {(level.location_id, level.sku): level for level in levels}
    allocations: list[Allocation] = []
    # Lines of one SKU take their units from the planned locations in plan order.
    sources: dict[str, list[list[int]]] = defaultdict(list)
    for (location_id, sku), units in plan.items():
        sources[sku].append([location_id, units])
    for line_id, (sku, units) in sorted(needs.items()):
        while units:
            location_id, left = sources[sku][0]
            take = min(units, left)
            allocations.append(Allocation(order_id=order.id, line_item_id=line_id, location_id=location_id,
                                          location=level_by_key[(location_id, sku)].location, sku=sku,
                                          quantity=take, status=AllocationStatus.RESERVED.value))
            units -= take
            if take == left:
                sources[sku].pop(0)
            else:
                sources[sku][0][1] = left - take
    for (location_id, sku), units in plan.items():
        level = level_by_key[(location_id, sku)]
        # Relative to the stored value, not the one read: with the lock they are the same; were the lock ever
        # lost, this could not silently overwrite another reservation, and the CHECK would refuse an oversell.
        level.reserved = StockLevel.reserved + units
        level.updated_at = utcnow()
    session.add_all(allocations)
    session.flush()
    return AllocationResult("allocated", strategy, allocations=allocations, untracked_lines=untracked)


def plan_allocation(needs: dict[str, int], levels: Sequence[StockLevel], strategy: Strategy,
                    country: str | None) -> dict[tuple[int, str], int]:
    """Where each SKU's units come from: {(location id, sku): units}, in shipping order. The caller has
    checked that the active locations hold enough in total."""
    available: dict[int, dict[str, int]] = defaultdict(dict)
    locations: dict[int, Location] = {}
    for level in levels:
        free = level.on_hand - level.reserved
        if free > 0:
            available[level.location_id][level.sku] = free
            locations[level.location_id] = level.location

    def by_priority(location_id: int) -> tuple[int, str]:
        return locations[location_id].priority, locations[location_id].code

    def nearest(location_id: int) -> tuple[bool, int, str]:
        return locations[location_id].country_code != country, *by_priority(location_id)

    if strategy is Strategy.NEAREST and country is None:
        strategy = Strategy.SINGLE_LOCATION_FIRST  # no destination to be near to
    ordered = sorted(locations, key=nearest if strategy is Strategy.NEAREST else by_priority)

    def covers_all(location_id: int) -> bool:
        return all(available[location_id].get(sku, 0) >= units for sku, units in needs.items())

    if strategy is not Strategy.SPLIT:
        single = [loc for loc in ordered
                  if strategy is Strategy.SINGLE_LOCATION_FIRST or locations[loc].country_code == country]
        for location_id in single:
            if covers_all(location_id):
                return {(location_id, sku): units for sku, units in sorted(needs.items())}
    remaining = dict(needs)
    plan: dict[tuple[int, str], int] = {}

    def take_from(location_id: int) -> None:
        for sku in sorted(remaining):
            units = min(remaining[sku], available[location_id].get(sku, 0))
            if units:
                plan[(location_id, sku)] = units
                remaining[sku] -= units
                if not remaining[sku]:
                    del remaining[sku]

    if strategy is Strategy.SINGLE_LOCATION_FIRST:
        # As few parcels as can be: each time, the location that covers the most of what is left.
        pool = list(ordered)
        while remaining and pool:
            best = max(pool, key=lambda loc: (sum(min(units, available[loc].get(sku, 0))
                                                  for sku, units in remaining.items()), -pool.index(loc)))
            pool.remove(best)
            take_from(best)
    else:
        for location_id in ordered:
            if not remaining:
                break
            take_from(location_id)
    if remaining:  # cannot happen after the caller's check; refuse rather than reserve part of an order
        raise StockError(f"not enough stock for {', '.join(sorted(remaining))}")
    return plan


def allocations_of(session: Session, order_id: int, *, statuses: Sequence[str] | None = None) -> list[Allocation]:
    query = (select(Allocation).join(Allocation.location).options(contains_eager(Allocation.location))
             .where(Allocation.order_id == order_id).order_by(Location.priority, Location.code, Allocation.id))
    if statuses is not None:
        query = query.where(Allocation.status.in_(list(statuses)))
    return list(session.execute(query).scalars())


# --- releasing and shipping -----------------------------------------------------------------------------


def _lock_order(session: Session, order_id: int) -> None:
    session.execute(select(Order.id).where(Order.id == order_id).with_for_update())


def release_order(session: Session, order: Order, *, restock: bool = True) -> list[Allocation]:
    """Give back the stock an order holds (reserved or picked, not shipped): its allocations become
    `released` and the units are free again. Returns what was released; waiting orders that the freed
    stock completes are asked to be allocated. `restock=False` (a cancelled order whose picked goods are
    damaged or gone): picked units are written off, leaving `on_hand` too; reserved ones are still on the
    shelf and are freed as usual."""
    _lock_order(session, order.id)  # the order first, then stock: the one lock order
    held = session.execute(
        select(Allocation).join(Allocation.location).options(contains_eager(Allocation.location))
        .where(Allocation.order_id == order.id, Allocation.status.in_(HOLDING))
        .order_by(Allocation.sku, Allocation.location_id, Allocation.id)
        .execution_options(populate_existing=True)
    ).scalars().all()
    if not held:
        return []
    levels = _lock_levels(session, [(a.sku, a.location_id) for a in held])
    units: dict[tuple[str, int], int] = defaultdict(int)
    written_off: dict[tuple[str, int], int] = defaultdict(int)
    freed: set[str] = set()
    for allocation in held:
        key = (allocation.sku, allocation.location_id)
        units[key] += allocation.quantity
        if not restock and allocation.status == AllocationStatus.PICKED.value:
            written_off[key] += allocation.quantity
        elif allocation.location.active:
            freed.add(allocation.sku)
        allocation.status = AllocationStatus.RELEASED.value
        allocation.updated_at = utcnow()
    for key, quantity in units.items():
        if key in levels:
            levels[key].reserved = StockLevel.reserved - quantity
            if written_off.get(key):
                levels[key].on_hand = StockLevel.on_hand - written_off[key]
            levels[key].updated_at = utcnow()
    session.flush()
    queue_waiting_orders(session, freed, exclude={order.id})
    return list(held)


# Allocations shipped in this transaction, whose units leave the stock rows just before it commits.
_SHIPPED_KEY = "orderline.shipped_allocations"


def ship_allocations(session: Session, allocations: Sequence[Allocation]) -> None:
    """The goods left the building: each allocation becomes `shipped`, and its units leave `on_hand` and
    `reserved` together when the transaction commits. For the pick/pack/ship step; the caller holds the
    order row."""
    live = [a for a in allocations if a.status in HOLDING]
    now = utcnow()
    for allocation in live:
        allocation.status = AllocationStatus.SHIPPED.value
        allocation.updated_at = now
    transaction_info(session).setdefault(_SHIPPED_KEY, []).extend(live)


# Shipping lowers `on_hand` and `reserved` by the same units, so what allocation may promise (on_hand −
# reserved) is the same before and after: the stock rows can wait for the commit. Updated as each parcel
# shipped, a popular SKU's row stayed locked through a whole batch of labels, and every allocation of that
# SKU waited for it: sampling pg_stat_activity during bench/fulfilment.py's burst found 0.65 workers waiting
# for a lock on average, 0.22 with this.
@event.listens_for(Session, "before_commit")
def _take_shipped_units_off_the_shelf(session: Session) -> None:
    if session.in_nested_transaction():
        return
    shipped: list[Allocation] = transaction_info(session).pop(_SHIPPED_KEY, [])
    units: dict[tuple[str, int], int] = defaultdict(int)
    # One shipped in a savepoint that was rolled back is expired, and reads its stored status again.
    for allocation in dict.fromkeys(shipped):
        if inspect(allocation).persistent and allocation.status == AllocationStatus.SHIPPED.value:
            units[(allocation.sku, allocation.location_id)] += allocation.quantity
    if not units:
        return
    levels = _lock_levels(session, units)
    now = utcnow()
    for key, quantity in units.items():
        levels[key].on_hand = StockLevel.on_hand - quantity
        levels[key].reserved = StockLevel.reserved - quantity
        levels[key].updated_at = now


# --- stock arriving: waiting orders get it, oldest first ------------------------------------------------


def _available_by_sku(session: Session, skus: Sequence[str]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for chunk in _chunks(sorted(set(skus)), 400):
        totals.update({sku: int(free or 0) for sku, free in session.execute(
            select(StockLevel.sku, func.sum(StockLevel.on_hand - StockLevel.reserved))
            .join(StockLevel.location)
            .where(StockLevel.sku.in_(chunk), Location.active.is_(True))
            .group_by(StockLevel.sku)).all()})
    return totals


def _pending_allocations(session: Session) -> set[int]:
    payloads = session.execute(select(OutboxEvent.payload).where(
        OutboxEvent.job == str(outbox.JobName.ALLOCATE_ORDER), OutboxEvent.status == "pending")).scalars()
    return {p["order_id"] for p in payloads if isinstance(p, dict) and isinstance(p.get("order_id"), int)}


def queue_waiting_orders(session: Session, skus: Iterable[str], *, exclude: Iterable[int] = ()) -> list[int]:
    """After stock of `skus` became free: ask for allocation of the waiting orders (backordered, or approved
    and never allocated) that the free stock now completes, oldest first. An order needing more than is
    free is passed over for a younger one it does not block; an order whose allocation is already queued
    counts against the stock but is not queued twice; an approved order never allocated is asked anyway.
    Returns the ids queued."""
    skus = sorted(set(skus))
    if not skus:
        return []
    skip = set(exclude)
    waiting = {oid: status for oid, status in session.execute(
        select(Order.id, Order.status)
        .where(Order.status.in_(WAITING),
               exists().where(LineItem.order_id == Order.id, LineItem.sku.in_(skus)))
        .order_by(Order.placed_at, Order.id)).all() if oid not in skip}
    candidates = list(waiting)
    if not candidates:
        return []
    wants: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for chunk in _chunks(candidates, 400):
        held: dict[int, int] = defaultdict(int)
        shipped: dict[int, int] = defaultdict(int)
        for line_id, status, units in session.execute(
                select(Allocation.line_item_id, Allocation.status, func.sum(Allocation.quantity))
                .where(Allocation.order_id.in_(chunk), Allocation.line_item_id.is_not(None),
                       Allocation.status != AllocationStatus.RELEASED.value)
                .group_by(Allocation.line_item_id, Allocation.status)).all():
            if line_id is not None:
                (shipped if status == AllocationStatus.SHIPPED.value else held)[line_id] += int(units)
        for line in session.execute(select(LineItem).where(
                LineItem.order_id.in_(chunk), LineItem.requires_shipping.is_(True),
                LineItem.sku.is_not(None))).scalars():
            units = _outstanding(line, held.get(line.id, 0), shipped.get(line.id, 0))
            if units and (line.sku or "").strip():
                wants[line.order_id][line.sku.strip()] += units  # type: ignore[union-attr]
    free = _available_by_sku(session, sorted({sku for need in wants.values() for sku in need}))
    pending = _pending_allocations(session)
    queued: list[int] = []
    for order_id in candidates:
        need = wants.get(order_id, {})
        if all(free.get(sku, 0) >= units for sku, units in need.items()):
            for sku, units in need.items():
                free[sku] -= units
        elif waiting[order_id] != OrderStatus.APPROVED:
            continue
        # else: approved but never allocated (no location back then, or its job failed): asked now, even if
        # short, so that it at least shows as backordered.
        if order_id not in pending:
            outbox.add_job(session, outbox.JobName.ALLOCATE_ORDER, order_id=order_id)
            queued.append(order_id)
    if queued:
        log.info("stock.waiting_orders_queued", count=len(queued), skus=skus[:20])
    return queued


# --- words for the timeline -----------------------------------------------------------------------------


def _units(items: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{units}× {sku}" for sku, units in items)


def by_location(allocations: Sequence[Allocation]) -> list[dict[str, Any]]:
    """Allocations grouped per location (in shipping order), each with its SKUs and quantities."""
    groups: dict[int, dict[str, Any]] = {}
    for a in allocations:
        group = groups.setdefault(a.location_id, {"location": a.location.code, "name": a.location.name,
                                                  "items": defaultdict(int)})
        group["items"][a.sku] += a.quantity
    return [{"location": g["location"], "name": g["name"],
             "items": [{"sku": sku, "quantity": units} for sku, units in g["items"].items()]}
            for g in groups.values()]


def describe_allocation(result: AllocationResult) -> tuple[str, dict[str, Any]]:
    groups = by_location(result.allocations)
    parts = [f"{_units((i['sku'], i['quantity']) for i in g['items'])} from {g['location']}" for g in groups]
    if not groups:
        message = "Allocated: nothing in this order needs stock"
    elif len(groups) == 1:
        message = f"Allocated {parts[0]}"
    else:
        message = f"Allocated from {len(groups)} locations (split): " + "; ".join(parts)
    if result.untracked_lines:
        message += f" ({len(result.untracked_lines)} line(s) without a SKU are not stock-tracked)"
    data = {"strategy": str(result.strategy), "split": len(groups) > 1, "locations": groups,
            "allocations": [{"id": a.id, "line_item_id": a.line_item_id, "location": a.location.code,
                             "sku": a.sku, "quantity": a.quantity} for a in result.allocations],
            "untracked_lines": result.untracked_lines}
    return message, data


def describe_backorder(result: AllocationResult) -> tuple[str, dict[str, Any]]:
    message = "Backordered: " + _units((s.sku, s.missing) for s in result.missing) + " missing"
    data = {"strategy": str(result.strategy), "skus": [s.sku for s in result.missing],
            "missing": [{"sku": s.sku, "quantity": s.missing, "needed": s.needed, "available": s.available}
                        for s in result.missing]}
    return message, data


def describe_release(released: Sequence[Allocation]) -> tuple[str, dict[str, Any]]:
    groups = by_location(sorted(released, key=lambda a: (a.location.priority, a.location.code, a.id)))
    message = "Released " + "; ".join(
        f"{_units((i['sku'], i['quantity']) for i in g['items'])} at {g['location']}" for g in groups)
    return message, {"locations": groups, "allocations": [a.id for a in released]}


# --- reading --------------------------------------------------------------------------------------------


def stock_query(*, sku: str | None = None, location: str | None = None) -> Any:
    query = (select(StockLevel).join(StockLevel.location).options(contains_eager(StockLevel.location))
             .order_by(StockLevel.sku, Location.code))
    if sku:
        query = query.where(StockLevel.sku == sku)
    if location:
        query = query.where(Location.code == normalize_code(location))
    return query


def encode_cursor(sku: str, code: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([sku, code]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        sku, code = json.loads(raw)
        if not isinstance(sku, str) or not isinstance(code, str) or _cell_problem(sku + code):
            raise ValueError(text)
    except (ValueError, TypeError, RecursionError):  # binascii.Error and JSON errors are ValueErrors
        raise StockError("the cursor is not one this API gave out; start again without one",
                         fields={"cursor": ["is not a cursor this API gave out"]}) from None
    return sku, code


def after_cursor(query: Any, cursor: tuple[str, str]) -> Any:
    sku, code = cursor
    return query.where(or_(StockLevel.sku > sku, and_(StockLevel.sku == sku, Location.code > code)))
