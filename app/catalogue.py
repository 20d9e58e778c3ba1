"""The product catalogue: per shop and SKU, what a parcel weighs and measures, and what customs declarations
say (HS code, country of origin). Imported from CSV with the same reader, rules and messages as stock files
(`app.stock.read_table`): all rows or none, each problem named by row and column."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Product, Shop
from app.orders.errors import NotFound
from app.stock import TableSpec, _Problems, read_table, sku_problem
from app.store import utcnow

COLUMNS = ("sku", "weight_grams", "length_cm", "width_cm", "height_cm", "hs_code", "origin_country", "tags")
MAX_WEIGHT_GRAMS = 1_000_000
MAX_CM = Decimal("1000")
# Harmonized System codes: 6 digits worldwide, up to 10 nationally; written with or without dots.
HS_CODE = re.compile(r"^[0-9]{6,10}$")
FIELDS = COLUMNS[1:]


@dataclass(frozen=True)
class ProductRow:
    """One line of a catalogue file; None leaves the stored value as it is (an empty cell)."""

    row: int
    sku: str
    values: dict[str, Any]


def _grams(row: int, value: str, problems: _Problems) -> int | None:
    if not re.fullmatch(r"[0-9]+", value) or not 0 < int(value) <= MAX_WEIGHT_GRAMS:
        problems.add(row, "weight_grams", f"'{value}' is not a whole number of grams from 1 to {MAX_WEIGHT_GRAMS}")
        return None
    return int(value)


def _centimetres(row: int, column: str, value: str, problems: _Problems) -> Decimal | None:
    try:
        number = Decimal(value.replace(",", "."))  # "12,5" as European spreadsheets write it
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or not 0 < number <= MAX_CM or number.as_tuple().exponent < -1:  # type: ignore[operator]
        problems.add(row, column, f"'{value}' is not a length in centimetres (above 0, at most {MAX_CM}, "
                                  f"one decimal)")
        return None
    return number


def _read_row(row: int, cells: dict[str, str], problems: _Problems) -> ProductRow | None:
    before = len(problems.items)
    sku = sku_problem(row, cells["sku"], problems)
    values: dict[str, Any] = {}
    for column in FIELDS:
        value = cells.get(column) or ""
        if not value:
            continue
        if column == "weight_grams":
            values[column] = _grams(row, value, problems)
        elif column.endswith("_cm"):
            values[column] = _centimetres(row, column, value, problems)
        elif column == "hs_code":
            digits = value.replace(".", "").replace(" ", "")
            if not HS_CODE.fullmatch(digits):
                problems.add(row, column, f"'{value}' is not an HS code (6 to 10 digits, dots allowed)")
            values[column] = digits
        elif column == "origin_country":
            if pycountry.countries.get(alpha_2=value.upper()) is None:
                problems.add(row, column, f"'{value}' is not an ISO 3166 two-letter country code")
            values[column] = value.upper()
        elif column == "tags":
            values[column] = sorted({t.strip().lower() for t in value.split("|") if t.strip()})
    if len(problems.items) > before or sku is None:
        return None
    return ProductRow(row, sku, values)


CATALOGUE_FILE: TableSpec[ProductRow] = TableSpec(
    what="catalogue file", columns=COLUMNS, required=("sku",),
    optional_note="(all but sku are optional; tags are separated by |)", read_row=_read_row,
    key=lambda r: (r.sku,), describe_key=lambda r: f"SKU {r.sku}", unique_as="SKU")


@dataclass(frozen=True)
class CatalogueImport:
    rows: int
    created: int
    updated: int
    unchanged: int


def import_products(session: Session, shop_id: int, data: str | bytes) -> CatalogueImport:
    """Create or update the shop's products from a catalogue CSV: all rows or none (StockImportError)."""
    if session.get(Shop, shop_id) is None:
        raise NotFound(f"shop {shop_id} does not exist")
    rows, problems = read_table(data, CATALOGUE_FILE)
    problems.raise_if_any()
    existing = {p.sku: p for p in products(session, shop_id, [r.sku for r in rows])}
    created = updated = 0
    for row in rows:
        product = existing.get(row.sku)
        if product is None:
            session.add(Product(shop_id=shop_id, sku=row.sku, updated_at=utcnow(), **{"tags": [], **row.values}))
            created += 1
            continue
        changed = {k: v for k, v in row.values.items() if getattr(product, k) != v}
        if changed:
            for name, value in changed.items():
                setattr(product, name, value)
            product.updated_at = utcnow()
            updated += 1
    session.flush()
    return CatalogueImport(len(rows), created, updated, len(rows) - created - updated)


def products(session: Session, shop_id: int, skus: Sequence[str | None] | None = None) -> list[Product]:
    """The shop's products (those of `skus` only, when given), by SKU."""
    query = select(Product).where(Product.shop_id == shop_id).order_by(Product.sku)
    if skus is None:
        return list(session.execute(query).scalars())
    wanted = sorted({sku for sku in skus if sku})
    found: list[Product] = []
    for start in range(0, len(wanted), 500):  # under every database's limit on bound parameters
        found.extend(session.execute(query.where(Product.sku.in_(wanted[start:start + 500]))).scalars())
    return found
