"""Pure mappings on the real fixtures: exact money, addresses, lines, refunds, statuses, topic handlers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.orders.types import NewAddress, NewOrder, NewRefund
from integrations.base import (
    AppUninstalled,
    CustomerDataRequest,
    CustomerRedact,
    OrderRemoved,
    OrderSnapshot,
    PayloadError,
    RefundCreated,
    ShopRedact,
)
from integrations.shopify.fake import order_node
from integrations.shopify.mapping import (
    SHOPIFY_FINANCIAL_STATUS_MAP,
    map_order,
    map_refund,
    shipping_level,
)
from integrations.shopify.nodes import GRAPHQL_FINANCIAL_STATUS_MAP, map_order_node
from integrations.shopify.topics import TOPIC_HANDLERS
from tests.integrations.shopify.conftest import fixture_json


def total(order: NewOrder) -> Decimal:
    """Orderline's total for a NewOrder (the rule in app.orders.actions.create_order)."""
    subtotal = sum((i.unit_price * i.quantity - i.total_discount for i in order.line_items), Decimal("0"))
    return subtotal + order.shipping_total + order.tax_total - order.discount_total


def test_orders_cancelled__every_field() -> None:
    order = map_order(fixture_json("orders_cancelled.json"))
    assert (order.external_id, order.number, order.currency) == ("5324790137142", "#1009", "USD")
    assert (order.customer_name, order.customer_email, order.customer_phone, order.customer_locale) == (
        "Russell Winfield",
        "russel.winfield@example.com",
        "+16135550135",
        "en",
    )
    assert order.shipping_address == NewAddress(
        name="Russell Winfield",
        company="Company Name",
        line1="105 Victoria St",
        city="Toronto",
        postal_code="M5C1N7",
        country_code="CA",
    )
    assert order.billing_address == order.shipping_address
    powder, electric = order.line_items
    assert (powder.external_id, powder.title, powder.variant_title, powder.sku, powder.quantity) == (
        "13924936679734",
        "The Complete Snowboard",
        "Powder",
        None,
        1,
    )
    # unit_price stays the original; the line discount is every allocation (the line's own and the order's).
    assert (powder.unit_price, powder.total_discount) == (Decimal("699.95"), Decimal("113.50"))
    assert (electric.unit_price, electric.total_discount, electric.quantity) == (
        Decimal("699.95"),
        Decimal("209.97"),
        2,
    )
    assert (order.shipping_total, order.tax_total, order.discount_total) == (
        Decimal("30.00"),
        Decimal("0.00"),
        Decimal("0"),
    )
    assert total(order) == Decimal("1806.38")  # Shopify's total_price
    assert (order.financial_status, order.fulfillment_status) == ("refunded", "unfulfilled")
    assert (order.cancelled, order.cancel_reason) == (True, "other")
    assert order.tags == ["Line Item Discount", "Order Discount"]
    assert order.shipping_level == "standard"  # "International Shipping"
    assert order.placed_at == datetime(2023, 3, 24, 15, 28, 17, tzinfo=UTC)
    assert order.channel_updated_at == datetime(2023, 3, 24, 22, 8, 18, tzinfo=UTC)
    assert order.refunds == [
        NewRefund(
            external_id="945108681014",
            amount=Decimal("1806.38"),
            line_items={"13924936679734": 1, "13924936712502": 2},
            created_at=datetime(2023, 3, 24, 22, 8, 18, tzinfo=UTC),
        )
    ]


def test_orders_create__a_draft_order_without_customer_or_address() -> None:
    order = map_order(fixture_json("orders_create.json"))
    assert (order.external_id, order.number) == ("5324830114101", "#1010")
    assert (order.customer_name, order.customer_email, order.customer_phone) == (None, None, None)  # email ""
    assert order.shipping_address is None and order.billing_address is None
    [line] = order.line_items
    assert (line.sku, line.unit_price, line.total_discount, line.fulfilled_quantity) == (
        "sku-hosted-1",
        Decimal("2629.95"),
        Decimal("0"),
        0,
    )
    assert total(order) == Decimal("2629.95")
    assert (order.financial_status, order.cancelled, order.tags, order.refunds) == ("paid", False, [], [])


def test_orders_updated__shopifys_2017_test_notification() -> None:
    order = map_order(fixture_json("orders_updated.json"))
    # The order's own email wins over the customer record's; the phone comes from the shipping address.
    assert (order.customer_name, order.customer_email, order.customer_phone) == (
        "John Smith",
        "jon@doe.ca",
        "555-555-SHIP",
    )
    assert order.shipping_address == NewAddress(
        name="Steve Shipper",
        company="Shipping Company",
        line1="123 Shipping Street",
        city="Shippington",
        region="KY",
        postal_code="K2P0S0",
        country_code="US",
        phone="555-555-SHIP",
    )
    assert order.billing_address is not None and order.billing_address.name == "Bob Biller"
    # No discount_allocations in 2017: the line's total_discount is the discount.
    assert [line.total_discount for line in order.line_items] == [Decimal("0.00"), Decimal("5.00")]
    assert order.shipping_total == Decimal("10.00")  # from shipping_lines: no total_shipping_price_set then
    assert total(order) == Decimal("57.98")
    assert (order.financial_status, order.fulfillment_status) == ("voided", "unfulfilled")  # "pending" then
    assert (order.cancelled, order.cancel_reason, order.customer_locale) == (True, "customer", None)
    assert order.placed_at == datetime(2017, 7, 17, 17, 44, 9, tzinfo=UTC)  # processed_at null: created_at


def test_refunds_create__the_refund_resource() -> None:
    refund = map_refund(fixture_json("refunds_create.json"))
    assert refund.amount == Decimal("1806.38") and refund.line_items == {
        "13924936679734": 1,
        "13924936712502": 2,
    }


def test_a_refund_counts_only_successful_refund_transactions() -> None:
    body = fixture_json("refunds_create.json")
    failed = copy.deepcopy(body["transactions"][0])
    failed.update(id=1, status="failure", amount="99.00")
    body["transactions"].append(failed)
    assert map_refund(body).amount == Decimal("1806.38")


def test_fulfilled_quantities_come_from_the_fulfillments() -> None:
    order = map_order(fixture_json("orders_partially_fulfilled__snowboards.json"))
    assert order.fulfillment_status == "partial"
    assert [line.fulfilled_quantity for line in order.line_items] == [0, 1]
    assert (
        map_order(fixture_json("orders_fulfilled__after_create.json")).line_items[0].fulfilled_quantity == 1
    )


def test_taxes_included_prices_do_not_add_the_tax_again() -> None:
    body = fixture_json("orders_create.json")
    body.update(taxes_included=True, total_tax="525.99", total_tax_set=None)
    assert map_order(body).tax_total == 0 and total(map_order(body)) == Decimal("2629.95")
    body["taxes_included"] = False
    assert map_order(body).tax_total == Decimal("525.99")


@pytest.mark.parametrize(
    ("labels", "level"),
    [
        (["International Shipping"], "standard"),
        (["Standard", None], "standard"),
        (["Express Shipping"], "express"),
        (["UPS Next Day Air", "01"], "overnight"),
        (["Economy"], "economy"),
        (["Pickup in store", "Pickup"], "pickup"),
        ([], "standard"),
    ],
)
def test_shipping_level_from_shipping_line_titles_and_codes(labels: list[str | None], level: str) -> None:
    assert shipping_level(labels) == level


def test_every_shopify_financial_status_has_a_translation() -> None:
    rest = {
        "pending",
        "authorized",
        "partially_paid",
        "paid",
        "partially_refunded",
        "refunded",
        "voided",
        "expired",
    }
    assert rest <= set(SHOPIFY_FINANCIAL_STATUS_MAP)
    assert {s.upper() for s in rest} <= set(GRAPHQL_FINANCIAL_STATUS_MAP)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"updated_at": None}, "updated_at is missing"),
        ({"updated_at": "2023-03-24T12:37:27"}, "has no UTC offset"),
        ({"currency": None}, "has no currency"),
        ({"total_price": "n/a", "total_tax": "n/a", "total_tax_set": None}, "is not an amount"),
        ({"financial_status": "partially_voided"}, "unknown financial_status 'partially_voided'"),
        ({"id": "abc"}, "is not a Shopify id"),
        ({"line_items": "none"}, "line_items is not a list"),
    ],
)
def test_an_unmappable_order_raises_payload_error_with_the_reason(
    change: dict[str, Any], reason: str
) -> None:
    body = fixture_json("orders_create.json")
    body.update(change)
    with pytest.raises(PayloadError, match=reason):
        map_order(body)


def test_money_is_decimal_from_the_strings_never_float() -> None:
    order = map_order(fixture_json("orders_cancelled.json"))
    amounts = [
        order.shipping_total,
        order.tax_total,
        order.discount_total,
        order.refunds[0].amount,
        *(x for line in order.line_items for x in (line.unit_price, line.total_discount)),
    ]
    assert all(isinstance(amount, Decimal) for amount in amounts)
    assert str(order.line_items[0].unit_price) == "699.95"


# --- the GraphQL node mapping gives the same order as the webhook mapping ------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "orders_create.json",
        "orders_cancelled.json",
        "orders_updated.json",
        "orders_fulfilled__after_create.json",
        "orders_partially_fulfilled__snowboards.json",
    ],
)
def test_graphql_node_maps_to_the_same_new_order_as_the_webhook(name: str) -> None:
    rest = fixture_json(name)
    node = order_node(rest)
    for key in ("lineItems", "shippingLines"):
        node[key] = node[key].page({})
    for refund in node["refunds"]:
        refund["refundLineItems"] = refund["refundLineItems"].page({})
    assert map_order_node(node) == map_order(rest)


def test_graphql_node_reads_shop_money_sets_and_display_enums() -> None:
    node = {
        "legacyResourceId": "42",
        "name": "#1042",
        "currencyCode": "SEK",
        "updatedAt": "2026-11-27T09:00:00Z",
        "processedAt": "2026-11-27T08:59:00Z",
        "cancelledAt": None,
        "cancelReason": None,
        "tags": ["vip"],
        "displayFinancialStatus": "PARTIALLY_REFUNDED",
        "displayFulfillmentStatus": "IN_PROGRESS",
        "taxesIncluded": True,
        "totalTaxSet": {"shopMoney": {"amount": "39.80", "currencyCode": "SEK"}},
        "totalShippingPriceSet": {"shopMoney": {"amount": "49.0", "currencyCode": "SEK"}},
        "totalDiscountsSet": {"shopMoney": {"amount": "20.0", "currencyCode": "SEK"}},
        "customer": {
            "firstName": "Maria",
            "lastName": "Lind",
            "defaultEmailAddress": {"emailAddress": "m@x.se"},
            "defaultPhoneNumber": None,
        },
        "shippingAddress": {
            "firstName": "Maria",
            "lastName": "Lind",
            "address1": "Avenyn 1",
            "city": "Göteborg",
            "zip": "411 36",
            "countryCodeV2": "SE",
            "phone": "+46701234567",
        },
        "shippingLines": {"nodes": [{"title": "PostNord Express", "code": "EXP"}]},
        "lineItems": {
            "nodes": [
                {
                    "id": "gid://shopify/LineItem/7",
                    "title": "T-shirt",
                    "sku": "TEE-M",
                    "variantTitle": "M",
                    "quantity": 2,
                    "currentQuantity": 2,
                    "unfulfilledQuantity": 1,
                    "requiresShipping": True,
                    "originalUnitPriceSet": {"shopMoney": {"amount": "199.0", "currencyCode": "SEK"}},
                    "discountAllocations": [
                        {"allocatedAmountSet": {"shopMoney": {"amount": "20.0", "currencyCode": "SEK"}}}
                    ],
                }
            ]
        },
        "refunds": [],
    }
    order = map_order_node(node)
    assert (order.external_id, order.currency, order.financial_status, order.fulfillment_status) == (
        "42",
        "SEK",
        "partially_refunded",
        "unfulfilled",
    )
    assert (order.customer_name, order.customer_email, order.customer_phone) == (
        "Maria Lind",
        "m@x.se",
        "+46701234567",
    )
    assert order.shipping_address is not None and order.shipping_address.name == "Maria Lind"
    line = order.line_items[0]
    assert (line.external_id, line.unit_price, line.total_discount, line.fulfilled_quantity) == (
        "7",
        Decimal("199.0"),
        Decimal("20.0"),
        1,
    )
    assert (order.shipping_level, order.tax_total, order.discount_total) == ("express", 0, 0)
    assert total(order) == Decimal("427.0")


# --- topic handlers -------------------------------------------------------------------------------------


def test_order_topics_give_whole_snapshots() -> None:
    for topic in (
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    ):
        event = TOPIC_HANDLERS[topic](fixture_json("orders_cancelled.json"))
        assert isinstance(event, OrderSnapshot) and event.order.external_id == "5324790137142"


def test_other_topics_give_their_events() -> None:
    assert TOPIC_HANDLERS["orders/delete"]({"id": 5324830114101}) == OrderRemoved("5324830114101", "deleted")
    refund = TOPIC_HANDLERS["refunds/create"](fixture_json("refunds_create.json"))
    assert isinstance(refund, RefundCreated) and refund.order_external_id == "5324790137142"
    assert TOPIC_HANDLERS["app/uninstalled"](fixture_json("app_uninstalled.json")) == AppUninstalled()
    assert TOPIC_HANDLERS["customers/data_request"](fixture_json("customers_data_request.json")) == (
        CustomerDataRequest("john@example.com", "555-625-1199", ["299938", "280263", "220458"], "9999")
    )
    assert TOPIC_HANDLERS["customers/redact"](fixture_json("customers_redact.json")) == (
        CustomerRedact("john@example.com", "555-625-1199", ["299938", "280263", "220458"])
    )
    assert TOPIC_HANDLERS["shop/redact"](fixture_json("shop_redact.json")) == ShopRedact()


def test_handlers_refuse_bodies_that_are_not_objects() -> None:
    for topic in ("orders/create", "orders/delete", "refunds/create", "customers/redact"):
        with pytest.raises(PayloadError):
            TOPIC_HANDLERS[topic]([1, 2, 3])


def test_units_an_edit_removed_leave_the_order_and_refunded_units_stay_refunds() -> None:
    """Since API 2024-01 an order edit lowers a line's `current_quantity` and keeps `quantity` as first ordered
    (shopify.dev changelog "Addition of LineItem current_quantity on Admin REST API"); refunded units lower
    `current_quantity` too. Orderline keeps quantity − removed and counts refunds apart."""
    body = fixture_json("orders_create__snowboards.json")
    line = body["line_items"][1]
    assert line["quantity"] == 2
    line["current_quantity"] = 1  # the merchant edited one unit off the order
    assert map_order(body).line_items[1].quantity == 1

    refund = fixture_json("refunds_create.json")
    refund["refund_line_items"] = [{**refund["refund_line_items"][0], "line_item_id": line["id"], "quantity": 1}]
    body["refunds"], line["current_quantity"] = [refund], 0  # and then refunded the other one
    order = map_order(body)
    assert order.line_items[1].quantity == 1 and order.refunds[0].line_items == {str(line["id"]): 1}
    assert order.line_items[1].quantity - sum(r.line_items.get(str(line["id"]), 0) for r in order.refunds) == 0

    node = order_node(body)  # the poller reads the same order through GraphQL's currentQuantity
    for key in ("lineItems", "shippingLines"):
        node[key] = node[key].page({})
    for entry in node["refunds"]:
        entry["refundLineItems"] = entry["refundLineItems"].page({})
    assert map_order_node(node) == order
