"""The EasyPost client (the real SDK) against the fake EasyPost on loopback: every call and every failure."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.failures import PermanentError, TransientError
from app.orders.types import NewAddress
from integrations.carriers import carrier
from integrations.carriers.base import CarrierAccess, TrackingStatus, choose_rate
from integrations.carriers.easypost import client as client_module
from integrations.carriers.easypost.client import EasyPostCarrier
from integrations.carriers.easypost.fake import FakeEasyPost
from tests.integrations.carriers.conftest import ABROAD, LINEN_SHIRT, box, shipment
from tests.integrations.carriers.easypost.conftest import API_KEY


def test_rates_create_a_shipment_stamped_with_our_reference(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    rates = client.rates(shipment("ord-1001-p1"))
    # The fake prices base + per ounce × 35.3 oz (1000 g).
    assert [(r.carrier, r.service, r.amount, r.delivery_days) for r in rates] == [
        ("USPS", "GroundAdvantage", Decimal("6.96"), 3),
        ("UPS", "Ground", Decimal("10.16"), 5),
        ("USPS", "Priority", Decimal("10.31"), 2),
        ("FedEx", "FEDEX_2_DAY", Decimal("16.12"), 2),
        ("USPS", "Express", Decimal("32.03"), 1),
    ]
    (sent,) = fake.requests_to("/v2/shipments", "POST")
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.json()["shipment"]["reference"] == "ord-1001-p1"
    assert sent.json()["shipment"]["parcel"] == {"weight": "35.3", "length": "7.9", "width": "4.2", "height": "2.0"}
    assert {r.provider_shipment_id for r in rates} == set(fake.shipments)


def test_an_international_shipment_sends_its_customs_declaration(fake: FakeEasyPost,
                                                                 client: EasyPostCarrier) -> None:
    client.rates(shipment(to=ABROAD, customs=(LINEN_SHIRT,)))
    sent = fake.requests_to("/v2/shipments", "POST")[0].json()["shipment"]
    assert sent["customs_info"]["customs_items"][0]["hs_tariff_number"] == "6205.90"


def test_buy_label_buys_the_chosen_rate_once(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1", level="express")
    chosen = choose_rate(client.rates(request), request.service_level)
    assert chosen is not None and (chosen.carrier, chosen.service) == ("USPS", "Priority")
    label = client.buy_label(request, chosen)
    assert (label.reference, label.carrier, label.service, label.cost, label.currency) == (
        "ord-1001-p1", "USPS", "Priority", Decimal("10.31"), "USD")
    assert label.tracking_number.startswith("EZ") and label.label_url.endswith(".png")
    assert label.provider_shipment_id == chosen.provider_shipment_id
    assert label.tracking_url and label.provider_tracker_id and label.tracking_url.endswith(label.provider_tracker_id)
    (bought,) = fake.requests_to("/buy", "POST")
    assert bought.path == f"/v2/shipments/{chosen.provider_shipment_id}/buy"
    assert bought.json() == {"rate": {"id": chosen.provider_rate_id}}
    assert fake.purchases("ord-1001-p1") == 1


def test_buying_a_shipment_twice_is_refused_with_easyposts_message(client: EasyPostCarrier) -> None:
    request = shipment()
    first = client.rates(request)[0]
    client.buy_label(request, first)
    with pytest.raises(PermanentError, match=r"HTTP 422 SHIPMENT.POSTAGE.EXISTS: Postage already exists"):
        client.buy_label(request, first)


def test_a_buy_that_timed_out_is_found_by_reference_and_not_bought_again(fake: FakeEasyPost) -> None:
    client = EasyPostCarrier(API_KEY, api_base=fake.url, timeout=0.3)
    request = shipment("ord-1001-p1")
    chosen = client.rates(request)[0]
    fake.hang_after_next(1.0, match="/buy")  # EasyPost buys, then the answer never arrives in time
    with pytest.raises(TransientError, match="may have been bought: find_label"):
        client.buy_label(request, chosen)
    # The retried job looks before it buys.
    found = client.find_label("ord-1001-p1")
    assert found is not None and found.reference == "ord-1001-p1"
    assert found.tracking_number == fake.shipment(str(chosen.provider_shipment_id))["tracking_code"]
    assert (found.cost, found.provider_rate_id) == (chosen.amount, chosen.provider_rate_id)
    assert fake.purchases("ord-1001-p1") == 1
    assert len(fake.requests_to("/buy", "POST")) == 1  # the SDK never resends a POST that timed out
    listing = fake.requests_to("/v2/shipments", "GET")[0]
    assert listing.query["purchased"] == "true" and listing.query["page_size"] == "100"
    assert listing.query["start_datetime"].endswith("Z")


def test_find_label_is_none_for_a_reference_never_bought(client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1")
    client.buy_label(request, client.rates(request)[0])
    client.rates(shipment("ord-3003-p1"))  # rated, never bought
    assert client.find_label("ord-3003-p1") is None
    assert client.find_label("ord-4004-p1") is None


def test_find_label_reads_past_the_first_page(fake: FakeEasyPost, client: EasyPostCarrier,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 2)
    for n in range(5):
        request = shipment(f"ord-{n}-p1")
        client.buy_label(request, client.rates(request)[0])
    found = client.find_label("ord-0-p1")  # the oldest: on the third page, newest first
    assert found is not None and found.reference == "ord-0-p1"
    pages = fake.requests_to("/v2/shipments", "GET")
    assert len(pages) == 3 and "before_id" not in pages[0].query and pages[2].query["before_id"].startswith("shp_")


def test_find_label_that_cannot_rule_out_a_purchase_says_so(fake: FakeEasyPost,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 1)
    client = EasyPostCarrier(API_KEY, api_base=fake.url, find_max_pages=2)
    for n in range(3):
        request = shipment(f"ord-{n}-p1")
        client.buy_label(request, client.rates(request)[0])
    with pytest.raises(PermanentError, match="without ruling out an earlier label for ord-9-p1"):
        client.find_label("ord-9-p1")


def test_find_label_only_looks_since_the_reference_was_used(client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1")
    client.buy_label(request, client.rates(request)[0])
    assert client.find_label("ord-1001-p1", since=datetime.now(UTC) - timedelta(minutes=5)) is not None
    assert client.find_label("ord-1001-p1", since=datetime.now(UTC) + timedelta(minutes=5)) is None


def test_void_refunds_the_shipment_and_the_label_is_no_longer_found(fake: FakeEasyPost,
                                                                     client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    client.void_label(label)
    assert fake.requests_to("/refund", "POST")[0].path == f"/v2/shipments/{label.provider_shipment_id}/refund"
    assert fake.shipment(str(label.provider_shipment_id))["refund_status"] == "submitted"
    assert client.find_label("ord-1001-p1") is None
    client.void_label(label)  # a retried void: EasyPost refuses a second refund, the shipment says it is done
    assert len(fake.requests_to("/refund", "POST")) == 2


def test_voiding_a_label_easypost_cannot_refund_is_permanent(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.fail_next(422, message="The label has been scanned and cannot be refunded.", match="/refund")
    with pytest.raises(PermanentError, match="cannot be refunded"):
        client.void_label(label)


def test_track_reads_the_labels_tracker_without_creating_another(fake: FakeEasyPost,
                                                                  client: EasyPostCarrier) -> None:
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.advance_tracker(label.tracking_number, "in_transit", "Departed facility", city="SAN FRANCISCO", state="CA")
    updates = client.track(label.tracking_number)
    assert [(u.status, u.detail) for u in updates] == [(TrackingStatus.PRE_TRANSIT, "Shipping Label Created"),
                                                       (TrackingStatus.IN_TRANSIT, "Departed facility")]
    assert updates[-1].location == "SAN FRANCISCO, CA, US"
    assert fake.requests_to("/v2/trackers", "POST") == []
    assert fake.requests_to("/v2/trackers", "GET")[0].query == {"tracking_code": label.tracking_number,
                                                                "page_size": "1"}
    assert client.retrieve_tracker(str(label.provider_tracker_id))[-1].status is TrackingStatus.IN_TRANSIT
    assert fake.requests_to(f"/v2/trackers/{label.provider_tracker_id}", "GET")


def test_track_creates_a_tracker_for_a_number_bought_elsewhere(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    (update,) = client.track("EZ4000000004", carrier="USPS")
    assert update.status is TrackingStatus.DELIVERED and update.tracking_number == "EZ4000000004"
    assert fake.requests_to("/v2/trackers", "POST")[0].json() == {
        "tracker": {"tracking_code": "EZ4000000004", "carrier": "USPS"}}
    client.track("EZ4000000004", carrier="USPS")
    assert len(fake.requests_to("/v2/trackers", "POST")) == 1


def test_return_label_asks_easypost_to_swap_the_addresses(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    label = client.return_label(shipment("rma-77", level="economy"))
    sent = fake.requests_to("/v2/shipments", "POST")[0].json()["shipment"]
    assert sent["is_return"] is True and sent["from_address"]["street1"] == "417 Montgomery Street"
    assert label.is_return and label.reference == "rma-77" and label.service == "GroundAdvantage"
    assert fake.purchases("rma-77") == 1


def test_429_is_transient_with_retry_after(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    fake.fail_next(429, retry_after=2)
    with pytest.raises(TransientError, match="HTTP 429") as caught:
        client.rates(shipment())
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient(fake: FakeEasyPost, client: EasyPostCarrier, status: int) -> None:
    fake.fail_next(status)
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        client.rates(shipment())


def test_a_5xx_on_buy_warns_that_the_label_may_exist(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    request = shipment()
    chosen = client.rates(request)[0]
    fake.fail_next(500, match="/buy")
    with pytest.raises(TransientError, match="may have been bought"):
        client.buy_label(request, chosen)


def test_422_and_400_are_permanent_with_easyposts_message(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 422 SHIPMENT.INVALID_PARAMS: to_address is required"):
        client.rates(shipment(to=NewAddress()))
    fake.fail_next(400, message="Invalid parcel dimensions.")
    with pytest.raises(PermanentError, match="HTTP 400 PARAMETER.INVALID: Invalid parcel dimensions."):
        client.rates(shipment())


def test_a_refused_key_is_permanent(fake: FakeEasyPost) -> None:
    with pytest.raises(PermanentError, match="HTTP 401"):
        EasyPostCarrier("EZTKrevoked", api_base=fake.url).rates(shipment())


def test_a_hang_becomes_transient_within_the_timeout(fake: FakeEasyPost) -> None:
    client = EasyPostCarrier(API_KEY, api_base=fake.url, timeout=0.3)
    fake.hang_next(2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="no answer within 0.3 s"):
        client.rates(shipment())
    assert time.monotonic() - started < 1.5


def test_an_html_error_page_from_a_proxy_is_transient_with_its_status(fake: FakeEasyPost,
                                                                       client: EasyPostCarrier) -> None:
    fake.fail_next(502, html=True)
    with pytest.raises(TransientError, match="HTTP 502 with an unreadable answer"):
        client.rates(shipment())
    fake.fail_next(429, html=True, retry_after=4)
    with pytest.raises(TransientError) as caught:
        client.rates(shipment())
    assert caught.value.retry_after == 4.0


def test_a_get_that_hangs_once_is_retried_by_the_sdk_itself(fake: FakeEasyPost) -> None:
    # The SDK mounts HTTPAdapter(max_retries=3): urllib3 retries a read timeout of an idempotent GET.
    client = EasyPostCarrier(API_KEY, api_base=fake.url, timeout=0.3)
    fake.hang_next(1.0, match="GET /v2/trackers")
    assert client.track("EZ2000000002")[-1].status is TrackingStatus.IN_TRANSIT
    assert len(fake.requests_to("/v2/trackers", "GET")) == 2


def test_an_unreachable_api_is_transient() -> None:
    client = EasyPostCarrier(API_KEY, api_base="http://127.0.0.1:9/v2", timeout=1)
    with pytest.raises(TransientError, match="EasyPost create shipment"):
        client.rates(shipment())


def test_several_parcels_are_refused_before_any_call(fake: FakeEasyPost, client: EasyPostCarrier) -> None:
    with pytest.raises(PermanentError, match="one parcel per label"):
        client.rates(shipment(parcels=(box(), box())))
    assert fake.requests == []


def test_the_registry_builds_a_client_from_credentials_and_settings(fake: FakeEasyPost) -> None:
    access = CarrierAccess(credentials={"api_key": API_KEY}, api_base_url=fake.url,
                           settings={"api_timeout_seconds": 3, "label_format": "PDF", "find_lookback_days": 2})
    client = carrier("easypost").make_client(access)
    assert isinstance(client, EasyPostCarrier)
    assert client.timeout == 3.0 and client.find_lookback == timedelta(days=2)
    client.rates(shipment())
    assert fake.requests[-1].json()["shipment"]["options"] == {"label_format": "PDF"}
    with pytest.raises(PermanentError, match="api_key"):
        carrier("easypost").make_client(CarrierAccess(credentials={}, api_base_url=fake.url))
