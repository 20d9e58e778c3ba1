"""WooCommerce order JSON → NewOrder, on the fixtures: exact money, addresses, lines, refunds, statuses."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.orders.types import NewAddress, NewOrder
from integrations.base import OrderRemoved, OrderSnapshot, PayloadError
from integrations.woocommerce.events import order_deleted, order_snapshot
from integrations.woocommerce.mapping import ORDER_STATUS_RULES, parse_order, shipping_level
from tests.integrations.woocommerce.conftest import fixture_json

ORDER_FIXTURES = ["order_created.json", "order_created__wp_json_encode.json",
                  "order_created__coupon_fees_express.json", "order_updated__completed.json",
                  "order_updated__partially_refunded.json", "order_updated__refunded.json",
                  "order_updated__cancelled.json", "order_restored.json"]


def orderline_total(order: NewOrder) -> Decimal:
    """The total Orderline will store (app.orders.actions.create_order's formula)."""
    lines = sum((i.unit_price * i.quantity - i.total_discount for i in order.line_items), Decimal("0"))
    return lines + order.shipping_total + order.tax_total - order.discount_total


def changed(**fields: Any) -> dict[str, Any]:
    order = copy.deepcopy(fixture_json("order_created.json"))
    order.update(fields)
    return dict(order)


def test_order_created__every_field_a_user_sees() -> None:
    order = parse_order(fixture_json("order_created.json"))
    assert (order.external_id, order.number, order.currency) == ("727", "727", "USD")
    assert order.customer_name == "John Doe"
    assert order.customer_email == "john.doe@example.com"
    assert order.customer_phone == "(555) 555-5555"
    assert order.customer_locale is None and order.note is None and order.tags == []
    assert order.billing_address == NewAddress(name="John Doe", line1="969 Market", city="San Francisco",
                                               region="CA", postal_code="94103", country_code="US",
                                               phone="(555) 555-5555")
    assert order.shipping_address == NewAddress(name="John Doe", line1="969 Market", city="San Francisco",
                                                region="CA", postal_code="94103", country_code="US")
    single, variable = order.line_items
    assert (single.external_id, single.sku, single.title) == ("315", None, "Woo Single #1")
    assert single.variant_title is None
    assert (single.quantity, single.unit_price, single.total_discount) == (2, Decimal("3.00"), Decimal("0"))
    assert variable.external_id == "316" and variable.sku == "Bar3"
    # The REST API hands out HTML entities in names; staff should read a dash.
    assert variable.title == "Ship Your Idea – Color: Black, Size: M Test"
    assert variable.variant_title == "black / M Test"
    assert (variable.quantity, variable.unit_price) == (1, Decimal("12.00"))
    assert all(item.requires_shipping and item.fulfilled_quantity == 0 for item in order.line_items)
    assert (order.shipping_total, order.tax_total) == (Decimal("10.00"), Decimal("1.35"))
    assert order.discount_total == Decimal("0")
    assert order.shipping_level == "standard"
    assert (order.financial_status, order.fulfillment_status) == ("paid", "unfulfilled")
    assert order.cancelled is False
    assert order.placed_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    assert order.channel_updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert order.refunds == []
    assert orderline_total(order) == Decimal("29.35")


@pytest.mark.parametrize("name", ORDER_FIXTURES)
def test_every_order_fixture_totals_exactly_what_woocommerce_says(name: str) -> None:
    payload = fixture_json(name)
    order = parse_order(payload)
    assert orderline_total(order) == Decimal(payload["total"])
    assert all(isinstance(i.unit_price, Decimal) for i in order.line_items)
    assert order.channel_updated_at is not None and order.channel_updated_at.tzinfo is UTC


def test_order_updated__completed_is_paid_and_fulfilled_line_by_line() -> None:
    order = parse_order(fixture_json("order_updated__completed.json"))
    assert (order.financial_status, order.fulfillment_status) == ("paid", "fulfilled")
    assert [i.fulfilled_quantity for i in order.line_items] == [2, 1]
    assert order.channel_updated_at == datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC)


def test_order_created__coupon_fees_express__discounts_fees_and_uneven_unit_prices() -> None:
    order = parse_order(fixture_json("order_created__coupon_fees_express.json"))
    single, variable, gift_wrap = order.line_items
    # 10.00 for 3 cannot be an exact unit price: 3.34 each, and the 0.02 over goes into the line's discount,
    # so the line still comes to WooCommerce's 9.00 after its 1.00 coupon share.
    assert (single.unit_price, single.quantity) == (Decimal("3.34"), 3)
    assert single.total_discount == Decimal("1.02")
    assert single.sku == "WOO-SINGLE-1"
    assert (variable.unit_price, variable.total_discount) == (Decimal("12.00"), Decimal("1.20"))
    assert (gift_wrap.external_id, gift_wrap.title) == ("320", "Gift wrap")
    assert gift_wrap.unit_price == Decimal("4.50")
    assert gift_wrap.requires_shipping is False
    # The 2.20 coupon is on the lines already; only the negative "Loyalty discount" fee is order-level.
    assert order.discount_total == Decimal("2.00")
    assert order.shipping_level == "express"
    assert (order.shipping_total, order.tax_total) == (Decimal("15.00"), Decimal("1.82"))
    assert orderline_total(order) == Decimal("39.12")


def test_order_updated__partially_refunded_lists_the_refund() -> None:
    order = parse_order(fixture_json("order_updated__partially_refunded.json"))
    assert order.financial_status == "partially_refunded"
    [refund] = order.refunds
    assert (refund.external_id, refund.amount) == ("730", Decimal("12.00"))
    assert refund.reason == "Damaged in transit"
    assert refund.line_items == {}  # the order JSON names no refunded quantities
    assert order.channel_updated_at == datetime(2017, 3, 22, 19, 38, 8, tzinfo=UTC)


def test_order_updated__refunded_in_full() -> None:
    order = parse_order(fixture_json("order_updated__refunded.json"))
    assert order.financial_status == "refunded"
    assert [(r.external_id, r.amount, r.reason) for r in order.refunds] == [("731", Decimal("29.35"), None)]


def test_order_updated__cancelled_unpaid_is_voided() -> None:
    order = parse_order(fixture_json("order_updated__cancelled.json"))
    assert (order.cancelled, order.cancel_reason, order.financial_status) == (True, None, "voided")


def test_order_created__wp_json_encode_reads_unicode_escapes() -> None:
    order = parse_order(fixture_json("order_created__wp_json_encode.json"))
    assert order.customer_name == "Zoë Doe"
    assert order.shipping_address is not None and order.shipping_address.name == "Zoë Doe"
    assert order.note == "Ring twice – side door"


@pytest.mark.parametrize(("status", "paid", "financial", "fulfillment", "cancelled"), [
    ("pending", False, "pending", "unfulfilled", False),
    ("checkout-draft", False, "pending", "unfulfilled", False),
    ("on-hold", False, "pending", "unfulfilled", False),
    ("processing", True, "paid", "unfulfilled", False),
    ("completed", True, "paid", "fulfilled", False),
    ("refunded", True, "refunded", "unfulfilled", False),
    ("failed", False, "voided", "unfulfilled", False),
    ("cancelled", False, "voided", "unfulfilled", True),
    ("cancelled", True, "paid", "unfulfilled", True),
    ("trash", True, "paid", "unfulfilled", True),
    # A plugin's status: judged by the payment date, never refused.
    ("shipped", True, "paid", "unfulfilled", False),
    ("awaiting-shipment", False, "pending", "unfulfilled", False),
])
def test_status_table(status: str, paid: bool, financial: str, fulfillment: str, cancelled: bool) -> None:
    paid_at = "2017-03-22T19:28:08" if paid else None
    order = parse_order(changed(status=status, date_paid_gmt=paid_at, date_paid=paid_at))
    assert (order.financial_status, order.fulfillment_status) == (financial, fulfillment)
    assert order.cancelled is cancelled


def test_status_table_covers_every_core_status() -> None:
    core = {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash"}
    assert core <= set(ORDER_STATUS_RULES)
    assert parse_order(changed(status="trash")).cancel_reason == "trashed on WooCommerce"


@pytest.mark.parametrize(("method_id", "title", "level"), [
    ("flat_rate", "Flat Rate", "standard"),
    ("free_shipping", "Free shipping", "standard"),
    ("local_pickup", "Local pickup", "pickup"),
    ("pickup_location", "Pick up in store", "pickup"),
    ("flat_rate", "Express delivery", "express"),
    ("ups", "UPS Next Day Air", "overnight"),
    ("flat_rate", "Economy (5-8 days)", "economy"),
    ("flat_rate", "Click & Collect", "pickup"),
])
def test_shipping_level(method_id: str, title: str, level: str) -> None:
    assert shipping_level([{"method_id": method_id, "method_title": title}]) == level


def test_an_order_without_shipping_lines_needs_no_shipping() -> None:
    order = parse_order(changed(shipping_lines=[], shipping={}, shipping_total="0.00", total="19.35"))
    assert order.shipping_address is None
    assert order.shipping_level == "standard"
    assert not any(i.requires_shipping for i in order.line_items)


def test_times_fall_back_to_site_time_and_respect_offsets() -> None:
    without_gmt = changed(date_modified_gmt=None, date_modified="2017-03-22T16:28:08")
    assert parse_order(without_gmt).channel_updated_at == datetime(2017, 3, 22, 16, 28, 8, tzinfo=UTC)
    with_offset = changed(date_modified_gmt="2017-03-22T21:28:08+02:00")
    assert parse_order(with_offset).channel_updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)


def test_amounts_round_to_the_currency_and_zero_decimal_currencies_work() -> None:
    three_places = changed(total_tax="1.345", cart_tax="1.345")
    assert parse_order(three_places).tax_total == Decimal("1.35")
    yen = changed(currency="jpy", shipping_total="500", total_tax="0", total="2300",
                  line_items=[{"id": 9, "name": "Tea", "quantity": 2, "subtotal": "1800", "total": "1800"}])
    order = parse_order(yen)
    assert order.currency == "JPY"
    assert (order.line_items[0].unit_price, order.shipping_total) == (Decimal("900"), Decimal("500"))


@pytest.mark.parametrize(("payload", "reason"), [
    ([1, 2], "JSON object"),
    ({"currency": "USD"}, "not a WooCommerce id"),
    (changed(currency=""), "no currency"),
    (changed(total_tax="1,35"), "total_tax is not an amount"),
    (changed(shipping_total=10.0), "not an amount string"),
    (changed(line_items=[{"id": 1, "name": "x", "quantity": 1.5, "subtotal": "1.00", "total": "1.00"}]),
     "quantity is not a positive whole number"),
    (changed(billing={"first_name": "A", "country": "United States"}), "billing.country"),
    (changed(date_modified_gmt="22/03/2017"), "date_modified_gmt is not an ISO 8601 time"),
    (changed(refunds=[{"reason": "no id", "total": "-1.00"}]), "refunds[].id"),
    (changed(line_items="none"), "line_items is not a list"),
])
def test_unmappable_payloads_say_why(payload: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_order(payload)


def test_topic_handlers() -> None:
    snapshot = order_snapshot(fixture_json("order_restored.json"))
    assert isinstance(snapshot, OrderSnapshot) and snapshot.order.external_id == "727"
    assert order_deleted(fixture_json("order_deleted.json")) == OrderRemoved("727", reason="deleted")
    with pytest.raises(PayloadError, match="order.deleted"):
        order_deleted({"order": 727})
