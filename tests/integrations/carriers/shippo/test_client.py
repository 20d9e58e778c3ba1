"""The Shippo client (`requests`) against the fake Shippo on loopback: every call and every failure."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

import pytest

from app.failures import PermanentError, TransientError
from app.orders.types import NewAddress
from integrations.carriers import carrier
from integrations.carriers.base import CarrierAccess, TrackingStatus, choose_rate
from integrations.carriers.shippo import client as client_module
from integrations.carriers.shippo.client import ShippoCarrier
from integrations.carriers.shippo.fake import FakeShippo
from tests.integrations.carriers.conftest import ABROAD, LINEN_SHIRT, shipment
from tests.integrations.carriers.shippo.conftest import API_TOKEN


def test_rates_create_a_shipment_with_our_reference(fake: FakeShippo, client: ShippoCarrier) -> None:
    rates = client.rates(shipment("ord-1001-p1"))
    # The fake prices base + per kg × 1 kg.
    assert [(r.carrier, r.service, r.amount, r.delivery_days) for r in rates] == [
        ("USPS", "Ground Advantage", Decimal("6.50"), 4),
        ("USPS", "Priority Mail", Decimal("10.65"), 2),
        ("UPS", "Ground", Decimal("10.95"), 5),
        ("USPS", "Priority Mail Express", Decimal("32.50"), 1),
        ("UPS", "Next Day Air®", Decimal("51.10"), 1),
    ]
    (sent,) = fake.requests_to("/shipments", "POST")
    assert sent.headers["Authorization"] == f"ShippoToken {API_TOKEN}"
    assert sent.headers["Shippo-API-Version"] == "2018-02-08"
    assert sent.json()["metadata"] == "ord-1001-p1" and sent.json()["async"] is False
    assert {r.provider_shipment_id for r in rates} == set(fake.shipments)


def test_an_international_shipment_sends_its_customs_declaration(fake: FakeShippo, client: ShippoCarrier) -> None:
    client.rates(shipment(to=ABROAD, customs=(LINEN_SHIRT,)))
    sent = fake.requests_to("/shipments", "POST")[0].json()
    assert sent["customs_declaration"]["items"][0]["hs_code"] == "6205.90"


def test_buy_label_buys_the_chosen_rate_once(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1", level="express")
    chosen = choose_rate(client.rates(request), request.service_level)
    assert chosen is not None and chosen.service == "Priority Mail"
    label = client.buy_label(request, chosen)
    assert (label.reference, label.carrier, label.service, label.cost, label.currency) == (
        "ord-1001-p1", "USPS", "Priority Mail", Decimal("10.65"), "USD")
    assert label.tracking_number.startswith("92") and label.label_url.endswith(".pdf")
    assert label.tracking_url and label.tracking_number in label.tracking_url
    assert label.provider_label_id in fake.transactions
    (bought,) = fake.requests_to("/transactions", "POST")
    assert bought.json() == {"rate": chosen.provider_rate_id, "metadata": "ord-1001-p1", "label_file_type": "PDF",
                             "async": False}
    assert fake.purchases("ord-1001-p1") == 1


def test_a_buy_that_timed_out_is_found_by_reference_and_not_bought_again(fake: FakeShippo) -> None:
    client = ShippoCarrier(API_TOKEN, base_url=fake.url, timeout=0.3)
    request = shipment("ord-1001-p1")
    chosen = client.rates(request)[0]
    fake.hang_after_next(1.0, match="POST /transactions")  # Shippo buys, then the answer never arrives in time
    with pytest.raises(TransientError, match="may have been bought: find_label"):
        client.buy_label(request, chosen)
    found = client.find_label("ord-1001-p1")
    assert found is not None and found.reference == "ord-1001-p1"
    assert (found.cost, found.currency, found.service) == (chosen.amount, "USD", chosen.service)
    assert found.provider_label_id in fake.transactions
    assert fake.purchases("ord-1001-p1") == 1
    assert len(fake.requests_to("/transactions", "POST")) == 1
    listing = fake.requests_to("/transactions", "GET")[0]
    assert listing.query == {"results": "100", "page": "1"}
    assert fake.requests_to(f"/rates/{chosen.provider_rate_id}", "GET")  # the cost comes from the rate


def test_find_label_is_none_for_a_reference_never_bought(client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    client.buy_label(request, client.rates(request)[0])
    assert client.find_label("ord-4004-p1") is None


def test_find_label_skips_failed_and_refunded_labels(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    fake.fail_next_purchase("Carrier timeout")
    with pytest.raises(PermanentError, match="Carrier timeout"):
        client.buy_label(request, client.rates(request)[0])
    assert client.find_label("ord-1001-p1") is None
    label = client.buy_label(request, client.rates(request)[0])
    assert client.find_label("ord-1001-p1") == label
    client.void_label(label)
    assert client.find_label("ord-1001-p1") is None


def test_a_label_shippo_is_still_making_is_transient(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.transactions[str(label.provider_label_id)]["status"] = "QUEUED"
    with pytest.raises(TransientError, match="still making the label for ord-1001-p1"):
        client.find_label("ord-1001-p1")


def test_find_label_reads_past_the_first_page(fake: FakeShippo, client: ShippoCarrier,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 2)
    for n in range(5):
        request = shipment(f"ord-{n}-p1")
        client.buy_label(request, client.rates(request)[0])
    found = client.find_label("ord-0-p1")
    assert found is not None and found.reference == "ord-0-p1"
    assert [r.query["page"] for r in fake.requests_to("/transactions", "GET")] == ["1", "2", "3"]


def test_find_label_that_cannot_rule_out_a_purchase_says_so(fake: FakeShippo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 1)
    client = ShippoCarrier(API_TOKEN, base_url=fake.url, find_max_pages=2)
    for n in range(3):
        request = shipment(f"ord-{n}-p1")
        client.buy_label(request, client.rates(request)[0])
    with pytest.raises(PermanentError, match="without ruling out an earlier label for ord-9-p1"):
        client.find_label("ord-9-p1")


def test_void_refunds_the_transaction_and_a_second_void_is_fine(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    client.void_label(label)
    assert fake.requests_to("/refunds", "POST")[0].json() == {"transaction": label.provider_label_id, "async": False}
    assert fake.transactions[str(label.provider_label_id)]["status"] == "REFUNDPENDING"
    client.void_label(label)  # Shippo refuses a second refund; the transaction says the first one stands


def test_voiding_a_label_shippo_will_not_refund_is_permanent(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.fail_next(400, message="This label has already been used.", match="/refunds")
    with pytest.raises(PermanentError, match="HTTP 400 This label has already been used."):
        client.void_label(label)


def test_track_reads_the_carriers_track(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.advance_track("usps", label.tracking_number, "TRANSIT", "Arrived at USPS facility",
                       substatus="package_arrived", city="Oakland", state="CA")
    updates = client.track(label.tracking_number, label.carrier)
    assert [(u.status, u.detail) for u in updates] == [(TrackingStatus.PRE_TRANSIT, "The label was created."),
                                                       (TrackingStatus.IN_TRANSIT, "Arrived at USPS facility")]
    assert fake.requests_to("/tracks", "GET")[0].path == f"/tracks/usps/{label.tracking_number}"


def test_shippos_test_tracking_numbers(client: ShippoCarrier) -> None:
    expected = {"SHIPPO_PRE_TRANSIT": TrackingStatus.PRE_TRANSIT, "SHIPPO_TRANSIT": TrackingStatus.IN_TRANSIT,
                "SHIPPO_DELIVERED": TrackingStatus.DELIVERED, "SHIPPO_RETURNED": TrackingStatus.RETURNED,
                "SHIPPO_FAILURE": TrackingStatus.EXCEPTION, "SHIPPO_UNKNOWN": TrackingStatus.UNKNOWN}
    for number, status in expected.items():
        assert client.track(number, "shippo")[-1].status is status


def test_track_needs_the_carrier(fake: FakeShippo, client: ShippoCarrier) -> None:
    with pytest.raises(PermanentError, match="needs the carrier"):
        client.track("9205590164917312751089")
    assert fake.requests == []


def test_return_label_asks_shippo_to_swap_the_addresses(fake: FakeShippo, client: ShippoCarrier) -> None:
    label = client.return_label(shipment("rma-77", level="economy"))
    sent = fake.requests_to("/shipments", "POST")[0].json()
    assert sent["extra"] == {"is_return": True} and sent["address_from"]["street1"] == "417 Montgomery Street"
    assert label.is_return and label.reference == "rma-77" and label.service == "Ground Advantage"
    assert fake.purchases("rma-77") == 1


def test_a_refused_purchase_is_permanent_with_shippos_messages(fake: FakeShippo, client: ShippoCarrier) -> None:
    request = shipment()
    fake.fail_next_purchase("The address is not deliverable.")
    with pytest.raises(PermanentError, match="USPS: The address is not deliverable."):
        client.buy_label(request, client.rates(request)[0])


def test_429_is_transient_with_retry_after(fake: FakeShippo, client: ShippoCarrier) -> None:
    fake.fail_next(429, retry_after=3)
    with pytest.raises(TransientError, match="HTTP 429") as caught:
        client.rates(shipment())
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient(fake: FakeShippo, client: ShippoCarrier, status: int) -> None:
    fake.fail_next(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        client.rates(shipment())


def test_400_is_permanent_with_shippos_field_errors(fake: FakeShippo, client: ShippoCarrier) -> None:
    with pytest.raises(PermanentError, match="HTTP 400 address_to: This field is required."):
        client.rates(shipment(to=NewAddress()))
    gone = replace(client.rates(shipment())[0], provider_rate_id="nope")
    with pytest.raises(PermanentError, match="HTTP 400 rate: Rate with object_id 'nope' does not exist."):
        client.buy_label(shipment(), gone)


def test_a_refused_token_is_permanent(fake: FakeShippo) -> None:
    with pytest.raises(PermanentError, match="HTTP 401 The API key is missing or not valid."):
        ShippoCarrier("shippo_test_revoked", base_url=fake.url).rates(shipment())


def test_a_hang_becomes_transient_within_the_timeout(fake: FakeShippo) -> None:
    client = ShippoCarrier(API_TOKEN, base_url=fake.url, timeout=0.3)
    fake.hang_next(2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer within 0.3 s"):
        client.rates(shipment())
    assert time.monotonic() - started < 1.5


def test_an_html_error_page_from_a_proxy_is_transient(fake: FakeShippo, client: ShippoCarrier) -> None:
    fake.fail_next(502, html=True, message="Bad Gateway")
    with pytest.raises(TransientError, match="HTTP 502 <html>"):
        client.rates(shipment())


def test_an_unreachable_api_is_transient() -> None:
    client = ShippoCarrier(API_TOKEN, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(TransientError, match="ConnectionError"):
        client.rates(shipment())


def test_the_registry_builds_a_client_from_credentials_and_settings(fake: FakeShippo) -> None:
    access = CarrierAccess(credentials={"api_token": API_TOKEN}, api_base_url=fake.url,
                           settings={"api_timeout_seconds": 3, "label_file_type": "ZPLII"})
    client = carrier("shippo").make_client(access)
    assert isinstance(client, ShippoCarrier) and client.timeout == 3.0
    request = shipment()
    client.buy_label(request, client.rates(request)[0])
    assert fake.requests_to("/transactions", "POST")[0].json()["label_file_type"] == "ZPLII"
