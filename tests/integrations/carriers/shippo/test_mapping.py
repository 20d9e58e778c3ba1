"""Shippo JSON ↔ Orderline values: requests in grams and centimetres, the documented Track, the status tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.failures import PermanentError
from integrations.carriers.base import Parcel, TrackingStatus
from integrations.carriers.shippo import mapping
from tests.integrations.carriers.conftest import ABROAD, LINEN_SHIRT, rate, shipment
from tests.integrations.carriers.shippo.conftest import load


def test_the_documented_track_becomes_one_update() -> None:
    (update,) = mapping.parse_track_response(load("track_updated.json")["data"])
    # Its history entry and its current status are the same event: reported once.
    assert update.tracking_number == "9205590164917312751089"
    assert update.status is TrackingStatus.DELIVERED
    assert update.detail == "Your shipment has been delivered at the destination mailbox."
    assert update.occurred_at == datetime(2016, 7, 23, tzinfo=UTC)
    assert update.location == "Las Vegas, NV 89101, US"
    assert update.estimated_delivery == datetime(2019, 8, 24, 14, 15, 22, tzinfo=UTC)
    assert update.raw_status == "DELIVERED/information_received"


def test_every_tracking_status_enum_value_is_in_the_table() -> None:
    assert sorted(mapping.STATUS_MAP) == sorted(["UNKNOWN", "PRE_TRANSIT", "TRANSIT", "DELIVERED", "RETURNED",
                                                 "FAILURE"])
    assert mapping.STATUS_MAP["TRANSIT"] is TrackingStatus.IN_TRANSIT
    assert mapping.STATUS_MAP["FAILURE"] is TrackingStatus.EXCEPTION


@pytest.mark.parametrize(("status", "substatus", "expected"), [
    ("TRANSIT", "out_for_delivery", TrackingStatus.OUT_FOR_DELIVERY),
    ("TRANSIT", "pickup_available", TrackingStatus.OUT_FOR_DELIVERY),
    ("TRANSIT", "package_departed", TrackingStatus.IN_TRANSIT),
    ("DELIVERED", "out_for_delivery", TrackingStatus.DELIVERED),
    ("LOST_IN_SPACE", None, TrackingStatus.UNKNOWN),
])
def test_a_transit_substatus_refines_the_status(status: str, substatus: str | None,
                                                 expected: TrackingStatus) -> None:
    track = load("track_updated.json")["data"]
    entry = {**track["tracking_status"], "status": status,
             "substatus": {"code": substatus, "text": "x", "action_required": False} if substatus else None}
    (update,) = mapping.parse_track_response({**track, "tracking_history": [], "tracking_status": entry})
    assert update.status is expected


def test_history_and_current_status_merge_oldest_first() -> None:
    track = load("track_updated.json")["data"]
    older = {**track["tracking_history"][0], "status": "TRANSIT", "status_details": "In transit",
             "status_date": "2016-07-21T10:00:00Z", "substatus": None}
    updates = mapping.parse_track_response({**track, "tracking_history": [older, *track["tracking_history"]]})
    assert [u.status for u in updates] == [TrackingStatus.IN_TRANSIT, TrackingStatus.DELIVERED]
    assert mapping.parse_track_response({"tracking_number": "1", "tracking_status": None}) == []


def test_the_shipment_request_in_grams_and_centimetres_with_our_reference() -> None:
    body = mapping.shipment_request(shipment("ord-1001-p1"))
    assert body["metadata"] == "ord-1001-p1" and body["async"] is False
    assert body["parcels"] == [{"length": "20", "width": "10.5", "height": "5", "distance_unit": "cm",
                                "weight": "1000", "mass_unit": "g"}]
    assert body["address_from"] == {"name": "Fog Linen Work", "company": "Fog Linen",
                                    "street1": "417 Montgomery Street", "street2": "5th Floor",
                                    "city": "San Francisco", "state": "CA", "zip": "94104", "country": "US",
                                    "phone": "4153334445", "email": "ship@foglinen.example"}
    assert "customs_declaration" not in body and "extra" not in body


def test_an_international_request_carries_a_customs_declaration() -> None:
    body = mapping.shipment_request(shipment(to=ABROAD, customs=(LINEN_SHIRT,)))
    assert body["customs_declaration"] == {
        "certify": True, "certify_signer": "Fog Linen Work", "contents_type": "MERCHANDISE",
        "non_delivery_option": "RETURN", "eel_pfc": "NOEEI_30_37_a",
        "items": [{"description": "Linen shirt", "quantity": 2, "net_weight": "640", "mass_unit": "g",
                   "value_amount": "118.00", "value_currency": "USD", "origin_country": "US",
                   "hs_code": "6205.90", "sku_code": "LS-01"}],
    }


def test_a_return_is_flagged_in_extra_and_a_parcel_needs_dimensions() -> None:
    assert mapping.shipment_request(shipment(), is_return=True)["extra"] == {"is_return": True}
    with pytest.raises(PermanentError, match="length, width and height"):
        mapping.parcel_request(Parcel(weight_grams=500))


def test_the_transaction_request_buys_now_with_our_reference() -> None:
    body = mapping.transaction_request(rate("USPS", "Priority Mail", "10.65", 2, rate_id="abc"), "ord-1001-p1")
    assert body == {"rate": "abc", "metadata": "ord-1001-p1", "label_file_type": "PDF", "async": False}
    assert mapping.refund_request("tx1") == {"transaction": "tx1", "async": False}


def _rate_json() -> dict[str, object]:
    return {"object_id": "r1", "shipment": "s1", "provider": "USPS", "amount": "10.65", "currency": "USD",
            "estimated_days": 2, "servicelevel": {"name": "Priority Mail", "token": "usps_priority"}}


def test_a_rate_and_a_successful_transaction_make_a_label() -> None:
    parsed = mapping.parse_rate(_rate_json())
    assert (parsed.carrier, parsed.service, parsed.amount, parsed.delivery_days, parsed.provider_shipment_id) == (
        "USPS", "Priority Mail", Decimal("10.65"), 2, "s1")
    transaction = {"object_id": "t1", "status": "SUCCESS", "rate": "r1", "metadata": "ord-1001-p1",
                   "tracking_number": "9205590164917312751089", "label_url": "https://shippo.example/l.pdf",
                   "tracking_url_provider": "https://tools.usps.com/t?n=9205590164917312751089", "messages": []}
    label = mapping.parse_label_response(transaction, parsed)
    assert (label.reference, label.tracking_number, label.cost, label.currency, label.provider_label_id,
            label.provider_rate_id, label.provider_shipment_id) == (
        "ord-1001-p1", "9205590164917312751089", Decimal("10.65"), "USD", "t1", "r1", "s1")


def test_a_failed_transaction_is_permanent_with_shippos_messages() -> None:
    transaction = {"object_id": "t1", "status": "ERROR", "messages": [
        {"source": "USPS", "code": "", "text": "The address is not deliverable."}]}
    with pytest.raises(PermanentError, match="USPS: The address is not deliverable."):
        mapping.parse_label_response(transaction, mapping.parse_rate(_rate_json()))
    with pytest.raises(PermanentError, match="no label"):
        mapping.parse_label_response({"object_id": "t2", "status": "QUEUED"}, mapping.parse_rate(_rate_json()))
