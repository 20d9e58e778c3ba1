"""The sandbox carrier: deterministic rates and labels, a natural find_label, and tracking that moves with time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.failures import PermanentError
from integrations.carriers import carrier
from integrations.carriers.base import CarrierAccess, TrackingStatus, WebhookVerificationError, choose_rate
from integrations.carriers.sandbox.client import (
    DirectoryStore,
    MemoryStore,
    SandboxCarrier,
    tracking_number,
    zone,
)
from tests.integrations.carriers.conftest import ABROAD, CUSTOMER, OUT_OF_STATE, Clock, shipment


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> SandboxCarrier:
    return SandboxCarrier(store=MemoryStore(), minutes_to_deliver=10, clock=clock)


def priced(sandbox: SandboxCarrier, **options: object) -> list[tuple[str, str, Decimal, int | None]]:
    return [(r.carrier, r.service, r.amount, r.delivery_days)
            for r in sandbox.rates(shipment(**options))]  # type: ignore[arg-type]


def test_zones_follow_distance() -> None:
    assert [zone(shipment(to=to)) for to in (CUSTOMER, OUT_OF_STATE, ABROAD)] == [1, 2, 3]


def test_rates_are_a_function_of_weight_and_zone(sandbox: SandboxCarrier) -> None:
    assert priced(sandbox, to=CUSTOMER) == [
        ("Sandbox Post", "Economy", Decimal("4.80"), 4), ("Sandbox Post", "Standard", Decimal("6.70"), 2),
        ("Sandbox Express", "Express", Decimal("14.50"), 1), ("Sandbox Express", "Overnight", Decimal("28.00"), 1)]
    assert priced(sandbox, to=OUT_OF_STATE) == [
        ("Sandbox Post", "Economy", Decimal("6.00"), 6), ("Sandbox Post", "Standard", Decimal("8.38"), 4),
        ("Sandbox Express", "Express", Decimal("18.13"), 2), ("Sandbox Express", "Overnight", Decimal("35.00"), 1)]
    # Abroad: two and a half times the price, and no overnight service.
    assert priced(sandbox, to=ABROAD) == [
        ("Sandbox Post", "Economy", Decimal("12.00"), 12), ("Sandbox Post", "Standard", Decimal("16.75"), 8),
        ("Sandbox Express", "Express", Decimal("36.25"), 4)]
    # Priced per started kilogram.
    assert priced(sandbox, grams=1001)[0][2] == Decimal("5.70")
    assert priced(sandbox, grams=1)[0][2] == Decimal("4.80")


def test_the_same_request_gives_the_same_rates_everywhere(clock: Clock) -> None:
    one = SandboxCarrier(store=MemoryStore(), clock=clock).rates(shipment("ord-1"))
    other = SandboxCarrier(store=MemoryStore(), clock=clock).rates(shipment("ord-1"))
    assert one == other
    assert one[0].estimated_delivery == (clock.now + timedelta(days=4)).date()
    another_order = SandboxCarrier(store=MemoryStore(), clock=clock).rates(shipment("ord-2"))
    assert {r.provider_rate_id for r in one}.isdisjoint(r.provider_rate_id for r in another_order)


def test_rate_shopping_over_sandbox_rates(sandbox: SandboxCarrier) -> None:
    def pick(level: str, **options: object) -> str:
        chosen = choose_rate(sandbox.rates(shipment(level=level, **options)), level)  # type: ignore[arg-type]
        assert chosen is not None
        return chosen.service

    assert pick("standard") == "Economy"  # 4 days keeps a 5-day promise nearby
    assert pick("standard", to=OUT_OF_STATE) == "Standard"
    assert pick("express") == "Standard"
    assert pick("overnight") == "Express"
    assert choose_rate(sandbox.rates(shipment(to=ABROAD)), "overnight") is None


def test_the_tracking_number_is_a_function_of_the_reference(sandbox: SandboxCarrier, clock: Clock) -> None:
    request = shipment("ord-1001-p1")
    label = sandbox.buy_label(request, sandbox.rates(request)[0])
    assert label.tracking_number == tracking_number("ord-1001-p1")
    assert label.tracking_number.startswith("SBX") and len(label.tracking_number) == 19
    elsewhere = SandboxCarrier(store=MemoryStore(), clock=clock)
    assert elsewhere.buy_label(request, elsewhere.rates(request)[0]).tracking_number == label.tracking_number
    assert tracking_number("ord-1001-p2") != label.tracking_number
    assert (label.reference, label.cost, label.currency, label.service) == ("ord-1001-p1", Decimal("4.80"), "USD",
                                                                           "Economy")
    assert label.label_url == f"https://sandbox.orderline.invalid/labels/{label.tracking_number}.pdf"


def test_buying_again_with_the_reference_returns_the_same_label(sandbox: SandboxCarrier) -> None:
    request = shipment("ord-1001-p1")
    first = sandbox.buy_label(request, sandbox.rates(request)[0])
    assert sandbox.find_label("ord-1001-p1") == first
    assert sandbox.buy_label(request, sandbox.rates(request)[-1]) == first
    assert sandbox.find_label("ord-9999-p1") is None


def test_find_label_respects_since(sandbox: SandboxCarrier, clock: Clock) -> None:
    request = shipment("ord-1001-p1")
    sandbox.buy_label(request, sandbox.rates(request)[0])
    assert sandbox.find_label("ord-1001-p1", since=clock.now) is not None
    assert sandbox.find_label("ord-1001-p1", since=clock.now + timedelta(seconds=1)) is None


def test_a_rate_not_quoted_for_the_request_is_refused(sandbox: SandboxCarrier) -> None:
    other = sandbox.rates(shipment("ord-2"))[0]
    with pytest.raises(PermanentError, match="was not quoted for ord-1"):
        sandbox.buy_label(shipment("ord-1"), other)


def test_tracking_moves_along_the_timeline(sandbox: SandboxCarrier, clock: Clock) -> None:
    request = shipment("ord-1001-p1")
    label = sandbox.buy_label(request, sandbox.rates(request)[0])
    bought = clock.now

    def statuses() -> list[TrackingStatus]:
        return [u.status for u in sandbox.track(label.tracking_number)]

    assert statuses() == [TrackingStatus.PRE_TRANSIT]
    clock.advance(minutes=1, seconds=59)
    assert statuses() == [TrackingStatus.PRE_TRANSIT]
    clock.advance(seconds=1)
    assert statuses()[-1] is TrackingStatus.IN_TRANSIT
    clock.advance(minutes=6)
    assert statuses()[-1] is TrackingStatus.OUT_FOR_DELIVERY
    clock.advance(minutes=2)
    updates = sandbox.track(label.tracking_number)
    assert [(u.status, u.detail, u.occurred_at - bought) for u in updates] == [
        (TrackingStatus.PRE_TRANSIT, "Label created; waiting for pickup", timedelta(0)),
        (TrackingStatus.IN_TRANSIT, "Picked up", timedelta(minutes=2)),
        (TrackingStatus.IN_TRANSIT, "Arrived at the sorting hub", timedelta(minutes=5)),
        (TrackingStatus.OUT_FOR_DELIVERY, "Out for delivery", timedelta(minutes=8)),
        (TrackingStatus.DELIVERED, "Delivered", timedelta(minutes=10)),
    ]
    assert updates[0].location == "San Francisco, CA 94104, US"
    assert updates[-1].location == "Redondo Beach, CA 90277, US"
    assert {u.estimated_delivery for u in updates} == {bought + timedelta(minutes=10)}
    clock.advance(days=3)
    assert len(sandbox.track(label.tracking_number)) == 5
    assert sandbox.track("SBX0000000000000000") == []


def test_void_before_pickup_and_not_after(sandbox: SandboxCarrier, clock: Clock) -> None:
    request = shipment("ord-1001-p1")
    label = sandbox.buy_label(request, sandbox.rates(request)[0])
    sandbox.void_label(label)
    sandbox.void_label(label)  # again: fine
    assert sandbox.find_label("ord-1001-p1") is None
    clock.advance(minutes=30)
    assert [u.status for u in sandbox.track(label.tracking_number)] == [TrackingStatus.PRE_TRANSIT]
    with pytest.raises(PermanentError, match="was voided; use a new reference"):
        sandbox.buy_label(request, sandbox.rates(request)[0])

    shipped = shipment("ord-1002-p1")
    moving = sandbox.buy_label(shipped, sandbox.rates(shipped)[0])
    clock.advance(minutes=3)
    with pytest.raises(PermanentError, match="already picked up"):
        sandbox.void_label(moving)


def test_a_return_label_goes_back_to_the_warehouse(sandbox: SandboxCarrier, clock: Clock) -> None:
    label = sandbox.return_label(shipment("rma-77", to=OUT_OF_STATE, level="express"))
    assert label.is_return and label.reference == "rma-77" and label.service == "Express"
    clock.advance(minutes=10)
    updates = sandbox.track(label.tracking_number)
    assert updates[0].location == "Austin, TX 78108, US" and updates[-1].location == "San Francisco, CA 94104, US"
    with pytest.raises(PermanentError, match="no overnight rate"):
        sandbox.return_label(shipment("rma-78", to=ABROAD, level="overnight"))


def test_processes_sharing_a_directory_see_the_same_labels(tmp_path: Path, clock: Clock) -> None:
    web = SandboxCarrier(store=DirectoryStore(tmp_path), clock=clock)
    worker = SandboxCarrier(store=DirectoryStore(tmp_path), clock=clock)
    request = shipment("ord-1001-p1")
    label = web.buy_label(request, web.rates(request)[0])
    assert worker.find_label("ord-1001-p1") == label
    worker.void_label(label)
    assert web.find_label("ord-1001-p1") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{label.tracking_number}.json"]


def test_the_registry_builds_the_sandbox_from_settings(tmp_path: Path) -> None:
    spec = carrier("sandbox")
    client = spec.make_client(CarrierAccess(credentials={}, settings={"state_dir": str(tmp_path / "labels"),
                                                                      "minutes_to_deliver": 2}))
    assert isinstance(client, SandboxCarrier) and client.minutes_to_deliver == 2.0
    request = shipment("ord-1001-p1")
    label = client.buy_label(request, client.rates(request)[0])
    assert (tmp_path / "labels" / f"{label.tracking_number}.json").exists()


def test_the_sandbox_sends_no_webhooks() -> None:
    spec = carrier("sandbox")
    assert not spec.sends_webhooks
    with pytest.raises(WebhookVerificationError, match="sends no webhooks"):
        spec.verify_webhook({}, b"{}", ["secret"], {})
