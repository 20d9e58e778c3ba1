"""The carrier registry and the plain values every carrier shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from integrations.carriers import all_carriers, carrier
from integrations.carriers.base import (
    CarrierAccess,
    Parcel,
    ShipmentRequest,
    TrackingStatus,
    TrackingUpdate,
    carrier_slug,
    format_location,
    parse_timestamp,
    sort_updates,
)
from tests.integrations.carriers.conftest import ABROAD, CUSTOMER, WAREHOUSE, box, shipment


def test_every_carrier_is_registered_under_its_folder_name() -> None:
    specs = all_carriers()
    assert sorted(specs) == ["easypost", "sandbox", "shippo"]
    assert all(spec.slug == slug for slug, spec in specs.items())
    assert [specs[s].display_name for s in ("easypost", "shippo")] == ["EasyPost", "Shippo"]


def test_an_unknown_carrier_names_the_known_ones() -> None:
    with pytest.raises(LookupError, match="carriers are: easypost, sandbox, shippo"):
        carrier("ups")


@pytest.mark.parametrize("slug", ["easypost", "shippo", "sandbox"])
def test_each_spec_maps_to_unified_statuses_and_documents_find_label(slug: str) -> None:
    spec = carrier(slug)
    assert spec.status_map and all(isinstance(s, TrackingStatus) for s in spec.status_map.values())
    assert spec.find_label_method
    assert spec.sends_webhooks == (slug != "sandbox")
    if spec.sends_webhooks:
        assert spec.webhook_events and not spec.webhook_events & spec.ignored_events


def test_every_carrier_reports_every_unified_status_it_can() -> None:
    reached = {s for spec in all_carriers().values() for s in spec.status_map.values()}
    assert reached == set(TrackingStatus)


def test_make_client_needs_the_credentials_it_documents() -> None:
    from app.failures import PermanentError

    for slug, key in (("easypost", "api_key"), ("shippo", "api_token")):
        with pytest.raises(PermanentError, match=key):
            carrier(slug).make_client(CarrierAccess(credentials={}))
    assert carrier("sandbox").make_client(CarrierAccess(credentials={})) is not None


def test_carrier_slugs_match_shippos_tokens() -> None:
    assert [carrier_slug(n) for n in ("USPS", "FedEx", "DHL Express", "Canada Post", " UPS® ")] == [
        "usps", "fedex", "dhl_express", "canada_post", "ups"]


def test_a_parcel_weighs_something_and_a_request_has_a_short_reference_and_parcels() -> None:
    with pytest.raises(ValueError, match="weight_grams"):
        Parcel(weight_grams=0)
    with pytest.raises(ValueError, match="reference"):
        shipment("x" * 101)
    with pytest.raises(ValueError, match="reference"):
        shipment("")
    with pytest.raises(ValueError, match="parcel"):
        ShipmentRequest(reference="r", from_address=WAREHOUSE, to_address=CUSTOMER, parcels=())
    assert box().has_dimensions and not Parcel(weight_grams=5).has_dimensions


def test_international_means_another_country() -> None:
    assert not shipment(to=CUSTOMER).is_international
    assert shipment(to=ABROAD).is_international
    assert shipment(parcels=(box(300), box(700))).total_weight_grams == 1000


def test_tracking_updates_are_in_utc() -> None:
    with pytest.raises(ValueError, match="UTC"):
        TrackingUpdate("1", TrackingStatus.DELIVERED, "x", datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="UTC"):
        TrackingUpdate("1", TrackingStatus.DELIVERED, "x", datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))))


def test_timestamps_parse_to_aware_utc() -> None:
    expected = datetime(2024, 8, 2, 19, 26, 52, tzinfo=UTC)
    for text in ("2024-08-02T19:26:52Z", "2024-08-02T19:26:52.000Z", "2024-08-02T21:26:52+02:00",
                 "2024-08-02T19:26:52"):
        assert parse_timestamp(text) == expected
    assert parse_timestamp(None) is None and parse_timestamp("") is None


def test_locations_are_written_from_whatever_parts_exist() -> None:
    assert format_location("ORLANDO", "FL", "32809", "US") == "ORLANDO, FL 32809, US"
    assert format_location(None, None, "32837", "US") == "32837, US"
    assert format_location() is None


def test_updates_sort_oldest_first_and_repeat_once() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    later = TrackingUpdate("1", TrackingStatus.DELIVERED, "Delivered", at + timedelta(hours=1))
    first = TrackingUpdate("1", TrackingStatus.IN_TRANSIT, "On its way", at)
    assert sort_updates([later, first, later]) == [first, later]
