"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.store import Base


def test_migrated_schema_matches_the_models(runtime: Any) -> None:
    with runtime.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_money_and_time_round_trip_exactly(runtime: Any, manual_shop: int) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.models import Order

    placed = datetime(2026, 11, 27, 23, 59, 59, 123456, tzinfo=UTC)
    with runtime.db.session() as session:
        session.add(Order(shop_id=manual_shop, channel="manual", external_id="x", number="1", status="received",
                          currency="KWD", subtotal=Decimal("12345678901234.125"), total=Decimal("0.001"),
                          placed_at=placed))
    with runtime.db.session() as session:
        order = session.query(Order).one()
        assert order.subtotal == Decimal("12345678901234.125") and order.total == Decimal("0.001")
        assert order.placed_at == placed and order.placed_at.tzinfo is not None
