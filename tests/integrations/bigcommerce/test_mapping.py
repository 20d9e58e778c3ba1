"""Mapping BigCommerce's v2 order, products, shipping addresses and v3 refunds onto NewOrder (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.orders.types import NewAddress, NewLineItem, NewRefund
from integrations.base import PayloadError
from integrations.bigcommerce import mapping
from integrations.bigcommerce.fake import sample_order
from tests.integrations.bigcommerce.conftest import load, raw

ORDER = load("api_get_order_response.json")
PRODUCTS = load("api_get_order_products_response.json")
ADDRESSES = load("api_get_order_shipping_addresses_response.json")


def mapped(order: dict[str, Any] | None = None, products: Any = None, addresses: Any = None,
           refunds: Any = ()) -> Any:
    return mapping.map_order(order or ORDER, PRODUCTS if products is None else products,
                             ADDRESSES if addresses is None else addresses, refunds)


def test_order_identity_customer_and_dates() -> None:
    order = mapped()
    assert (order.external_id, order.number, order.currency) == ("218", "218", "USD")
    assert (order.customer_name, order.customer_email, order.customer_phone, order.customer_locale) == (
        "Jane Doe", "janedoe@example.com", "1234567890", "en")
    assert order.placed_at == datetime(2019, 3, 5, 21, 40, 11, tzinfo=UTC)
    assert order.channel_updated_at == datetime(2019, 3, 11, 15, 17, 25, tzinfo=UTC)
    assert order.note is None and order.tags == ["source:external"]


def test_totals_are_exact_decimals_from_the_strings() -> None:
    order = mapped()
    assert order.shipping_total == Decimal("11.09")  # shipping_cost_ex_tax + handling_cost_ex_tax (0)
    assert order.tax_total == Decimal("5.31")
    # discount_amount 5 + coupon_discount 5, less the 1.59 BigCommerce already spread onto product 65.
    assert order.discount_total == Decimal("8.41")
    for amount in (order.shipping_total, order.tax_total, order.discount_total):
        assert isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


def test_addresses_billing_inline_and_first_shipping_address() -> None:
    order = mapped()
    assert order.billing_address == NewAddress(name="Jane Doe", line1="555 East Street", city="Austin",
                                               region="Texas", postal_code="78108", country_code="US",
                                               phone="1234567890")
    assert order.shipping_address == NewAddress(name="Trishy Smith", company="Acme Pty Ltd",
                                                line1="666 Sussex St", city="San Antonio", region="Texas",
                                                postal_code="78251", country_code="US")


def test_line_items_keep_the_order_product_id_price_options_and_discount() -> None:
    towel, bundled = mapped().line_items
    assert towel == NewLineItem(
        external_id="65", sku="S-ORAN", title="Fog Linen Chambray Towel - Beige Stripe",
        variant_title="Size: S, Color: Orange, Add Letters: Text Field, Is this a gift?: Yes, "
                      "PickList: Able Brewing System",
        quantity=1, unit_price=Decimal("55.99"), total_discount=Decimal("1.59"), requires_shipping=True,
        fulfilled_quantity=0)
    # The bundled child ships in the same box, so it is a (zero-priced) line of its own.
    assert (bundled.external_id, bundled.sku, bundled.quantity) == ("66", "ABS", 1)
    assert bundled.unit_price == Decimal("0.00")


def test_awaiting_payment_with_an_authorized_payment_is_authorized_and_unfulfilled() -> None:
    order = mapped()
    assert (order.financial_status, order.fulfillment_status) == ("authorized", "unfulfilled")
    assert order.cancelled is False


def test_partial_refund_is_read_from_the_v3_refunds_with_its_line_quantities() -> None:
    refunds = json.loads(raw("api_get_order_refunds_response.json"), parse_float=Decimal)["data"]
    order = mapped(load("api_get_order_response__partially_refunded.json"), refunds=refunds)
    assert order.financial_status == "partially_refunded"
    assert order.refunds == [NewRefund(external_id="3", amount=Decimal("10.00"), line_items={"65": 1},
                                       reason="Damaged in transit",
                                       created_at=datetime(2019, 3, 12, 9, 30, tzinfo=UTC))]
    # Unit prices stay the original ones: the refund is recorded, not subtracted.
    assert order.line_items[0].unit_price == Decimal("55.99")


def test_refund_of_everything_is_refunded() -> None:
    order = mapped({**ORDER, "refunded_amount": "69.8400", "status_id": 4, "payment_status": "refunded"})
    assert order.financial_status == "refunded"


@pytest.mark.parametrize(("status_id", "financial", "fulfilment", "cancelled"), [
    (1, "pending", "unfulfilled", False),
    (2, "paid", "fulfilled", False),
    (3, "paid", "partial", False),
    (4, "refunded", "unfulfilled", False),
    (5, "voided", "unfulfilled", True),
    (6, "voided", "unfulfilled", True),
    (7, "pending", "unfulfilled", False),
    (8, "paid", "unfulfilled", False),
    (9, "paid", "unfulfilled", False),
    (10, "paid", "fulfilled", False),
    (11, "paid", "unfulfilled", False),
    (12, "pending", "unfulfilled", False),
    (13, "paid", "unfulfilled", False),
    (14, "partially_refunded", "unfulfilled", False),
])
def test_status_table(status_id: int, financial: str, fulfilment: str, cancelled: bool) -> None:
    order = mapped({**ORDER, "status_id": status_id, "payment_status": ""})
    assert (order.financial_status, order.fulfillment_status) == (financial, fulfilment)
    assert order.cancelled is cancelled
    assert order.cancel_reason == ("declined by the merchant" if status_id == 6 else None)


def test_payment_status_refines_the_status_and_shipped_quantities_give_partial_fulfilment() -> None:
    products = [{**PRODUCTS[0], "quantity": 3, "quantity_shipped": 1}, PRODUCTS[1]]
    order = mapped({**ORDER, "status_id": 11, "payment_status": "captured"}, products=products)
    assert (order.financial_status, order.fulfillment_status) == ("paid", "partial")
    assert order.line_items[0].fulfilled_quantity == 1


def test_incomplete_checkouts_and_unknown_statuses_are_refused_with_a_reason() -> None:
    with pytest.raises(PayloadError, match="Incomplete"):
        mapped({**ORDER, "status_id": 0, "status": "Incomplete"})
    with pytest.raises(PayloadError, match="unknown BigCommerce status_id 42"):
        mapped({**ORDER, "status_id": 42})


@pytest.mark.parametrize(("changes", "reason"), [
    ({"total_tax": "five"}, "total_tax is not an amount"),
    ({"date_modified": "last Tuesday"}, "date_modified is not an RFC-2822 date"),
    ({"currency_code": "", "default_currency_code": ""}, "no currency_code"),
])
def test_unmappable_orders_name_the_field(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        mapped({**ORDER, **changes})


def test_four_decimal_prices_round_half_up_to_the_currency() -> None:
    products = [{**PRODUCTS[0], "price_ex_tax": "54.1650"}]
    assert mapped(products=products).line_items[0].unit_price == Decimal("54.17")
    yen = mapped({**ORDER, "currency_code": "JPY", "total_tax": "530.5000"})
    assert yen.currency == "JPY" and yen.tax_total == Decimal("531")


def test_dates_without_a_known_zone_are_utc() -> None:
    order = mapped({**ORDER, "date_modified": "Mon, 11 Mar 2019 15:17:25 -0000",
                    "date_created": "Tue, 05 Mar 2019 23:40:11 +0200"})
    assert order.channel_updated_at == datetime(2019, 3, 11, 15, 17, 25, tzinfo=UTC)
    assert order.placed_at == datetime(2019, 3, 5, 21, 40, 11, tzinfo=UTC)


def test_order_without_shipping_address_or_products_maps_digital_lines() -> None:
    digital = [{**PRODUCTS[0], "type": "digital"}]
    order = mapped(products=digital, addresses=[])
    assert order.shipping_address is None and order.shipping_level == "standard"
    assert order.line_items[0].requires_shipping is False


@pytest.mark.parametrize(("method", "level"), [
    ("Free Shipping", "economy"), ("Flat Rate", "standard"), ("UPS Ground", "standard"),
    ("UPS Next Day Air", "overnight"), ("FedEx Express Saver", "express"), ("USPS Priority Mail", "express"),
    ("Pickup In Store", "pickup"), ("None", "standard"), ("", "standard"),
])
def test_shipping_level_from_the_shipping_method(method: str, level: str) -> None:
    assert mapped(addresses=[{**ADDRESSES[0], "shipping_method": method}]).shipping_level == level


def test_generated_sample_order_totals_add_up_like_bigcommerce() -> None:
    order, products, addresses = sample_order(300, lines=3)
    new = mapping.map_order(order, products, addresses)
    subtotal = sum((i.unit_price * i.quantity - i.total_discount for i in new.line_items), Decimal("0"))
    total = subtotal + new.shipping_total + new.tax_total - new.discount_total
    assert total == Decimal(order["total_inc_tax"])
