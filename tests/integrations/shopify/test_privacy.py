"""Shopify's mandatory privacy webhooks: export, erase a customer, erase a shop; checked in the raw tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.models import InboundEvent, Order, PrivacyRequest
from app.store import Base
from tests.integrations.shopify.conftest import count, inbound_rows

EMAIL = "russel.winfield@example.com"
PHONE = "+16135550135"
SNOWBOARDS_ID = "5324790137142"


def _ingest_the_customers_orders(deliver: Any, run_jobs: Any) -> None:
    assert deliver("orders/cancelled", "orders_cancelled.json").status_code == 200
    assert deliver("orders/create", "orders_create.json").status_code == 200  # another customer's order
    run_jobs()


def _rows_mentioning(runtime: Any, needle: str) -> list[str]:
    """Every row of every table whose text contains `needle` (bodies are bytes: decoded too)."""
    found = []
    with runtime.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                text = " ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
                if needle in text:
                    found.append(table.name)
    return found


def test_data_request_stores_an_export_holding_the_customers_orders(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    _ingest_the_customers_orders(deliver, run_jobs)
    response = deliver("customers/data_request", "customers_data_request__test_shop.json")
    assert response.status_code == 200
    run_jobs()
    with runtime.db.session() as session:
        [request] = session.query(PrivacyRequest).all()
        kind, affected, result = request.kind, request.orders_affected, request.result
    assert kind == "customer_export" and affected == 1
    [order] = result["orders"]
    assert order["channel_id"] == SNOWBOARDS_ID and order["number"] == "#1009"
    assert order["customer"] == {"name": "Russell Winfield", "email": EMAIL, "phone": PHONE}
    assert {a["kind"] for a in order["addresses"]} == {"shipping", "billing"}
    assert inbound_rows(runtime)[-1].status == "processed"


def test_customer_redact_erases_the_customer_from_orders_and_stored_bodies(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    _ingest_the_customers_orders(deliver, run_jobs)
    assert _rows_mentioning(runtime, EMAIL)  # the order row and its webhook body, before
    response = deliver("customers/redact", "customers_redact__test_shop.json")
    assert response.status_code == 200
    run_jobs()
    assert _rows_mentioning(runtime, EMAIL) == []
    assert _rows_mentioning(runtime, "105 Victoria St") == []  # address lines
    assert _rows_mentioning(runtime, "Winfield") == []
    with runtime.db.engine.connect() as connection:
        row = connection.execute(sa.select(Order.__table__).where(Order.external_id == SNOWBOARDS_ID)).one()
        assert (row.customer_name, row.customer_email, row.customer_phone) == (None, None, None)
        bodies = connection.execute(
            sa.select(InboundEvent.__table__.c.topic, InboundEvent.__table__.c.body)
        ).all()
    redacted = {topic for topic, body in bodies if bytes(body) == b'{"redacted": true}'}
    assert redacted == {"orders/cancelled", "customers/redact"}
    # The other customer's order and its delivery are untouched.
    assert count(runtime, Order) == 2 and _rows_mentioning(runtime, "sku-hosted-1")


def test_shop_redact_deletes_the_shops_orders(
    client: Any, runtime: Any, shop_id: int, deliver: Any, run_jobs: Any
) -> None:
    _ingest_the_customers_orders(deliver, run_jobs)
    assert count(runtime, Order) == 2
    assert deliver("shop/redact", "shop_redact__test_shop.json").status_code == 200
    run_jobs()
    assert count(runtime, Order) == 0
    assert _rows_mentioning(runtime, EMAIL) == []
    [remaining] = inbound_rows(runtime)  # only the shop/redact delivery itself, emptied
    assert remaining.topic == "shop/redact" and remaining.status == "processed"
