"""EasyPost JSON ↔ Orderline values, on EasyPost's own documented responses (exact Decimals)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.failures import PermanentError
from integrations.carriers.base import TrackingStatus
from integrations.carriers.easypost import mapping
from tests.integrations.carriers.conftest import ABROAD, LINEN_SHIRT, box, rate, shipment
from tests.integrations.carriers.easypost.conftest import load


def test_rates_of_the_documented_shipment_cheapest_first() -> None:
    rates = mapping.parse_rates_response(load("api_shipment_create_response.json"))
    assert [(r.carrier, r.service, r.amount, r.currency, r.delivery_days) for r in rates] == [
        ("USPS", "GroundAdvantage", Decimal("8.20"), "USD", 3),
        ("USPS", "Priority", Decimal("11.01"), "USD", 2),
        ("USPS", "Express", Decimal("51.20"), "USD", 2),
    ]
    assert rates[0].provider_rate_id == "rate_76e0cae29e294e6db279c76bbe2f27e9"
    assert {r.provider_shipment_id for r in rates} == {"shp_a9b97f431c00435cb16ec2d6a14ed109"}
    assert all(r.estimated_delivery is None for r in rates)  # delivery_date is null in the doc


def test_the_label_of_the_documented_purchase() -> None:
    label = mapping.parse_label_response(load("api_shipment_buy_response.json"), "ord-1001-p1")
    assert label.reference == "ord-1001-p1"  # the doc's shipment has reference null: ours is kept
    assert (label.carrier, label.service, label.cost, label.currency) == ("USPS", "GroundAdvantage",
                                                                         Decimal("8.20"), "USD")
    assert label.tracking_number == "9434600208303109842228"
    assert label.tracking_url == "https://track.easypost.com/djE6dHJrX2JlYmU3MzU3Y2M3ZTRlYmM5MjQ4YmRkNzE5MTA4NGFm"
    assert label.label_url == ("https://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/"
                               "20250509/e8bbb027b8222f4578ab4250487ed98fc6.png")
    assert (label.provider_shipment_id, label.provider_label_id, label.provider_rate_id,
            label.provider_tracker_id) == ("shp_40b6f049f00348b18de3804a26f7fd62",
                                           "pl_ee9667b7f7cf4ec480f0c4cf3c53f39c",
                                           "rate_5d76435160da498fb8976b64f9f69b06",
                                           "trk_bebe7357cc7e4ebc9248bdd7191084af")
    assert label.is_return is False
    assert mapping.is_live_label(load("api_shipment_buy_response.json"))


def test_a_shipment_not_bought_has_no_label() -> None:
    with pytest.raises(PermanentError, match="has no label"):
        mapping.parse_label_response(load("api_shipment_create_response.json"))
    assert not mapping.is_live_label(load("api_shipment_create_response.json"))


def test_a_refunded_shipment_is_not_a_live_label() -> None:
    for refund_status in ("submitted", "refunded"):
        assert not mapping.is_live_label({**load("api_shipment_buy_response.json"), "refund_status": refund_status})
    assert mapping.is_live_label({**load("api_shipment_buy_response.json"), "refund_status": "rejected"})


def test_the_documented_tracker_becomes_updates() -> None:
    updates = mapping.parse_tracker_response(load("api_tracker_create_response.json"))
    assert [(u.status, u.detail, u.occurred_at, u.location) for u in updates] == [
        (TrackingStatus.PRE_TRANSIT, "Pre-Shipment Info Sent to USPS", datetime(2025, 4, 9, 20, 40, 17, tzinfo=UTC),
         None),
        (TrackingStatus.PRE_TRANSIT, "Shipping Label Created", datetime(2025, 4, 10, 9, 17, 17, tzinfo=UTC),
         "HOUSTON, TX 77063"),
    ]
    assert {u.tracking_number for u in updates} == {"EZ1000000001"}
    assert {u.estimated_delivery for u in updates} == {datetime(2025, 5, 9, 20, 40, 17, tzinfo=UTC)}
    assert {u.raw_status for u in updates} == {"pre_transit"}


def test_a_new_tracker_without_details_reports_its_status() -> None:
    tracker = {**load("api_tracker_create_response.json"), "tracking_details": []}
    (update,) = mapping.parse_tracker_response(tracker)
    assert (update.status, update.detail, update.occurred_at) == (
        TrackingStatus.PRE_TRANSIT, "status_update", datetime(2025, 5, 9, 20, 40, 17, tzinfo=UTC))
    unknown = load("api_shipment_buy_response.json")["tracker"]  # status unknown, no details
    assert mapping.parse_tracker_response(unknown) == []


def test_every_documented_tracker_status_is_in_the_table() -> None:
    documented = ["unknown", "pre_transit", "in_transit", "out_for_delivery", "delivered", "available_for_pickup",
                  "return_to_sender", "failure", "cancelled", "error"]
    assert sorted(mapping.STATUS_MAP) == sorted(documented)
    assert mapping.STATUS_MAP["return_to_sender"] is TrackingStatus.RETURNED
    assert mapping.STATUS_MAP["failure"] is TrackingStatus.EXCEPTION
    tracker = load("api_tracker_create_response.json")
    tracker["tracking_details"][0]["status"] = "teleported"  # a code EasyPost adds tomorrow
    assert mapping.parse_tracker_response(tracker)[0].status is TrackingStatus.UNKNOWN


def test_the_shipment_request_has_the_documented_shape_in_ounces_and_inches() -> None:
    body = mapping.shipment_request(shipment("ord-1001-p1"))
    documented = load("api_shipment_create_request.json")["shipment"]
    assert set(body) - {"reference"} <= set(documented)
    assert set(body["to_address"]) <= set(documented["to_address"]) | {"company"}
    assert set(body["from_address"]) <= set(documented["from_address"]) | {"company"}
    assert body["reference"] == "ord-1001-p1"
    # 1000 g = 35.27 oz and 20 × 10.5 × 5 cm = 7.87 × 4.13 × 1.97 in, each rounded up to a tenth.
    assert body["parcel"] == {"weight": "35.3", "length": "7.9", "width": "4.2", "height": "2.0"}
    assert body["from_address"] == {"name": "Fog Linen Work", "company": "Fog Linen",
                                    "street1": "417 Montgomery Street", "street2": "5th Floor",
                                    "city": "San Francisco", "state": "CA", "zip": "94104", "country": "US",
                                    "phone": "4153334445", "email": "ship@foglinen.example"}
    assert body["to_address"]["street1"] == "179 N Harbor Dr" and "email" not in body["to_address"]
    assert "customs_info" not in body and "is_return" not in body and "options" not in body


def test_a_parcel_known_only_by_weight_sends_only_its_weight() -> None:
    from integrations.carriers.base import Parcel

    assert mapping.parcel_request(Parcel(weight_grams=28)) == {"weight": "1.0"}
    assert mapping.ounces(1) == Decimal("0.1")


def test_an_international_request_carries_customs_info() -> None:
    body = mapping.shipment_request(shipment(to=ABROAD, customs=(LINEN_SHIRT,)))
    assert body["customs_info"] == {
        "customs_certify": True, "customs_signer": "Fog Linen Work", "contents_type": "merchandise",
        "non_delivery_option": "return", "restriction_type": "none", "eel_pfc": "NOEEI 30.37(a)",
        "customs_items": [{"description": "Linen shirt", "quantity": 2, "value": "118.00", "currency": "USD",
                           "weight": "22.6", "origin_country": "US", "hs_tariff_number": "6205.90",
                           "code": "LS-01"}],
    }


def test_returns_and_label_formats_are_flags_on_the_shipment() -> None:
    body = mapping.shipment_request(shipment(), is_return=True, label_format="PDF")
    assert body["is_return"] is True and body["options"] == {"label_format": "PDF"}


def test_easypost_ships_one_parcel_per_label() -> None:
    with pytest.raises(PermanentError, match="one parcel per label"):
        mapping.shipment_request(shipment(parcels=(box(), box())))


def test_the_buy_request_names_the_rate_as_documented() -> None:
    documented = load("api_shipment_buy_request.json")
    body = mapping.buy_request(rate("USPS", "Priority", "11.01", 2, rate_id="rate_abc"))
    assert body == {"rate": {"id": "rate_abc"}} and set(body) <= set(documented)


def test_a_rate_with_a_delivery_date_and_only_estimated_days() -> None:
    parsed = mapping.parse_rate({"id": "rate_1", "carrier": "UPS", "service": "Ground", "rate": "9.10",
                                 "currency": "USD", "delivery_days": None, "est_delivery_days": 4,
                                 "delivery_date": "2026-12-01T00:00:00Z", "shipment_id": None}, "shp_1")
    assert (parsed.delivery_days, parsed.estimated_delivery, parsed.provider_shipment_id) == (
        4, date(2026, 12, 1), "shp_1")
