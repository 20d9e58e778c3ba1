"""Rate shopping: the cheapest rate that keeps the promise the customer paid for, within preferences."""

from __future__ import annotations

import pytest

from integrations.carriers.base import SERVICE_LEVEL_MAX_DAYS, choose_rate, meets_service_level
from tests.integrations.carriers.conftest import rate

RATES = [
    rate("USPS", "GroundAdvantage", "8.20", 3),
    rate("USPS", "Priority", "11.01", 2),
    rate("USPS", "Express", "51.20", 1),
    rate("UPS", "Ground", "9.10", 5),
    rate("UPS", "SurePost", "6.10", 7),
    rate("FedEx", "FEDEX_2_DAY", "14.00", 2),
    rate("FedEx", "FEDEX_GROUND_ECONOMY", "5.90", None),
]


def chosen(*args: object, **kwargs: object) -> tuple[str, str] | None:
    found = choose_rate(RATES, *args, **kwargs)  # type: ignore[arg-type]
    return (found.carrier, found.service) if found else None


def test_the_service_levels_and_their_transit_days() -> None:
    assert SERVICE_LEVEL_MAX_DAYS == {"overnight": 1, "express": 2, "standard": 5, "economy": None}


@pytest.mark.parametrize(("level", "expected"), [
    ("economy", ("FedEx", "FEDEX_GROUND_ECONOMY")),  # any transit time, even one not given
    ("standard", ("USPS", "GroundAdvantage")),       # ≤ 5 days: the 7-day and the unknown are out
    ("express", ("USPS", "Priority")),               # ≤ 2 days
    ("overnight", ("USPS", "Express")),              # next day
])
def test_the_cheapest_rate_meeting_the_level_wins(level: str, expected: tuple[str, str]) -> None:
    assert chosen(level) == expected


def test_a_rate_without_transit_days_meets_only_economy() -> None:
    unknown = rate("FedEx", "FEDEX_GROUND_ECONOMY", "5.90", None)
    assert meets_service_level(unknown, "economy")
    assert not meets_service_level(unknown, "standard")


@pytest.mark.parametrize("level", ["pickup", "same_day", ""])
def test_an_unknown_service_level_is_a_callers_mistake(level: str) -> None:
    with pytest.raises(ValueError, match="has no carrier rate"):
        choose_rate(RATES, level)


def test_preferences_limit_the_carriers_considered() -> None:
    assert chosen("standard", preferences=["ups"]) == ("UPS", "Ground")
    assert chosen("express", preferences=["fedex", "ups"]) == ("FedEx", "FEDEX_2_DAY")
    assert chosen("overnight", preferences=["ups", "fedex"]) is None


def test_preferences_are_carrier_slugs_whatever_the_spelling() -> None:
    assert chosen("express", preferences=["FedEx"]) == ("FedEx", "FEDEX_2_DAY")


def test_exclusions_remove_carriers_or_single_services() -> None:
    assert chosen("standard", exclusions=["usps"]) == ("UPS", "Ground")
    assert chosen("standard", exclusions=["USPS:GroundAdvantage"]) == ("UPS", "Ground")
    assert chosen("express", exclusions=["usps:priority"]) == ("FedEx", "FEDEX_2_DAY")
    assert chosen("economy", exclusions=["fedex", "ups:surepost"]) == ("USPS", "GroundAdvantage")


def test_equal_prices_go_to_the_earlier_preference_then_the_faster_rate() -> None:
    tied = [rate("UPS", "Ground", "9.00", 4), rate("USPS", "Priority", "9.00", 2),
            rate("FedEx", "Home", "9.00", 3)]
    best = choose_rate(tied, "standard", preferences=["fedex", "ups", "usps"])
    assert best is not None and best.carrier == "FedEx"
    best = choose_rate(tied, "standard")
    assert best is not None and best.service == "Priority"  # no preferences: the fastest of the cheapest


def test_ties_in_everything_are_broken_the_same_way_every_time() -> None:
    twins = [rate("USPS", "B", "9.00", 2, rate_id="rate_b"), rate("USPS", "A", "9.00", 2, rate_id="rate_a")]
    assert choose_rate(twins, "express") == choose_rate(list(reversed(twins)), "express")
    assert choose_rate(twins, "express").service == "A"  # type: ignore[union-attr]


def test_nothing_available_is_none() -> None:
    assert choose_rate([], "standard") is None
    assert choose_rate([rate("UPS", "Ground", "9.10", 5)], "overnight") is None
    assert chosen("standard", exclusions=["usps", "ups", "fedex"]) is None


def test_rates_in_several_currencies_are_not_compared() -> None:
    mixed = [rate("USPS", "Priority", "11.01", 2), rate("Canada Post", "Xpresspost", "14.00", 2, currency="CAD")]
    with pytest.raises(ValueError, match="several currencies"):
        choose_rate(mixed, "express")
    best = choose_rate(mixed, "express", preferences=["canada_post"])
    assert best is not None and best.currency == "CAD"
