"""The sandbox carrier: deterministic rates, labels and tracking with no network, for development and the demo.

* Rates: two pretend carriers ("Sandbox Post", "Sandbox Express"), four services, priced from the parcels'
  weight (per started kilogram) and the distance zone (`zone`). Same request, same rates, same rate ids.
* Labels: the tracking number is a function of our reference (`tracking_number`), so buying twice with one
  reference gives the one label back and `find_label` needs nothing but the store. A voided reference
  cannot be bought again: use a new one.
* Tracking: label created → picked up → at the hub → out for delivery → delivered, spread over
  `minutes_to_deliver` from the purchase (`TIMELINE`). Voiding is refused once the parcel is picked up.

Purchases live in a `SandboxStore`: in memory (shared by the process) by default, or one JSON file per label in
a directory (setting `state_dir`), so web and worker processes see the same labels.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol

from app.failures import PermanentError
from app.orders.types import NewAddress
from integrations.carriers.base import (
    CarrierAccess,
    Label,
    Rate,
    ShipmentRequest,
    TrackingStatus,
    TrackingUpdate,
    choose_rate,
    format_location,
)

DEFAULT_PUBLIC_BASE = "https://sandbox.orderline.invalid"
DEFAULT_MINUTES_TO_DELIVER = 10.0
CENT = Decimal("0.01")


@dataclass(frozen=True)
class SandboxService:
    carrier: str
    service: str
    base: Decimal
    per_kg: Decimal
    # zone → transit days; a zone missing here is a service not offered there.
    days: Mapping[int, int]


SERVICES: tuple[SandboxService, ...] = (
    SandboxService("Sandbox Post", "Economy", Decimal("3.90"), Decimal("0.90"), {1: 4, 2: 6, 3: 12}),
    SandboxService("Sandbox Post", "Standard", Decimal("5.50"), Decimal("1.20"), {1: 2, 2: 4, 3: 8}),
    SandboxService("Sandbox Express", "Express", Decimal("12.00"), Decimal("2.50"), {1: 1, 2: 2, 3: 4}),
    SandboxService("Sandbox Express", "Overnight", Decimal("24.00"), Decimal("4.00"), {1: 1, 2: 1}),
)
# 1: same country and region; 2: same country; 3: another country.
ZONE_FACTORS: Mapping[int, Decimal] = {1: Decimal("1.00"), 2: Decimal("1.25"), 3: Decimal("2.50")}

# (share of minutes_to_deliver, status, detail, where: "origin" / "hub" / "destination")
TIMELINE: tuple[tuple[float, TrackingStatus, str, str], ...] = (
    (0.0, TrackingStatus.PRE_TRANSIT, "Label created; waiting for pickup", "origin"),
    (0.2, TrackingStatus.IN_TRANSIT, "Picked up", "origin"),
    (0.5, TrackingStatus.IN_TRANSIT, "Arrived at the sorting hub", "hub"),
    (0.8, TrackingStatus.OUT_FOR_DELIVERY, "Out for delivery", "destination"),
    (1.0, TrackingStatus.DELIVERED, "Delivered", "destination"),
)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def tracking_number(reference: str) -> str:
    """"SBX" and 16 digits, a function of the reference alone."""
    return "SBX" + str(int(_digest("tracking", reference), 16) % 10**16).zfill(16)


def zone(request: ShipmentRequest) -> int:
    origin, destination = request.from_address, request.to_address
    if request.is_international:
        return 3
    same_region = (origin.region or "").strip().lower() == (destination.region or "").strip().lower()
    return 1 if same_region and origin.region else 2


def rate_amount(service: SandboxService, weight_grams: int, zone_number: int) -> Decimal:
    kilos = max(math.ceil(weight_grams / 1000), 1)
    return ((service.base + service.per_kg * kilos) * ZONE_FACTORS[zone_number]).quantize(CENT, ROUND_HALF_UP)


def shipment_id(request: ShipmentRequest) -> str:
    return "sbx_shp_" + _digest("shipment", request.reference)[:20]


def quote_rates(request: ShipmentRequest, *, today: datetime, currency: str = "USD") -> list[Rate]:
    """Every sandbox rate for the request, cheapest first (pure: the same request gives the same rates)."""
    zone_number = zone(request)
    rates = []
    for service in SERVICES:
        days = service.days.get(zone_number)
        if days is None:
            continue
        rates.append(Rate(
            carrier=service.carrier, service=service.service,
            amount=rate_amount(service, request.total_weight_grams, zone_number), currency=currency,
            delivery_days=days, estimated_delivery=(today + timedelta(days=days)).date(),
            provider_rate_id="sbx_rate_" + _digest("rate", request.reference, service.service)[:20],
            provider_shipment_id=shipment_id(request)))
    return sorted(rates, key=lambda r: (r.amount, r.carrier, r.service))


def _place(address: NewAddress) -> str | None:
    return format_location(address.city, address.region, address.postal_code, address.country_code)


@dataclass(frozen=True)
class Purchase:
    """A bought sandbox label, as the store keeps it."""

    label: Label
    bought_at: datetime
    origin: str | None
    destination: str | None
    voided: bool = False

    def to_json(self) -> dict[str, Any]:
        label = {k: str(v) if k == "cost" else v for k, v in asdict(self.label).items()}
        return {"label": label, "bought_at": self.bought_at.isoformat(), "origin": self.origin,
                "destination": self.destination, "voided": self.voided}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Purchase:
        label = dict(data["label"])
        label["cost"] = Decimal(label["cost"])
        return cls(label=Label(**label), bought_at=datetime.fromisoformat(data["bought_at"]),
                   origin=data.get("origin"), destination=data.get("destination"), voided=bool(data["voided"]))


def progress(purchase: Purchase, now: datetime, minutes_to_deliver: float) -> list[TrackingUpdate]:
    """The updates a label has reached by `now`, oldest first (a voided label stops at its creation)."""
    span = timedelta(minutes=minutes_to_deliver)
    places = {"origin": purchase.origin, "hub": "Sandbox Hub", "destination": purchase.destination}
    updates = []
    for share, status, detail, where in TIMELINE:
        at = purchase.bought_at + span * share
        if at > now or (purchase.voided and share > 0):
            break
        updates.append(TrackingUpdate(
            tracking_number=purchase.label.tracking_number, status=status, detail=detail, occurred_at=at,
            location=places[where], estimated_delivery=purchase.bought_at + span, raw_status=status.value))
    return updates


# --- where purchases are kept -----------------------------------------------------------------------------


class SandboxStore(Protocol):
    def get(self, tracking_number: str) -> Purchase | None: ...

    def put(self, purchase: Purchase) -> None: ...


class MemoryStore:
    """Purchases in this process's memory."""

    def __init__(self) -> None:
        self._purchases: dict[str, Purchase] = {}
        self._lock = threading.Lock()

    def get(self, tracking_number: str) -> Purchase | None:
        with self._lock:
            return self._purchases.get(tracking_number)

    def put(self, purchase: Purchase) -> None:
        with self._lock:
            self._purchases[purchase.label.tracking_number] = purchase


class DirectoryStore:
    """One JSON file per label (named by its tracking number), written atomically: shared by processes."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, tracking_number: str) -> Path:
        return self.directory / f"{tracking_number}.json"

    def get(self, tracking_number: str) -> Purchase | None:
        try:
            return Purchase.from_json(json.loads(self._path(tracking_number).read_text()))
        except FileNotFoundError:
            return None

    def put(self, purchase: Purchase) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(purchase.to_json(), file)
        os.replace(temporary, self._path(purchase.label.tracking_number))


# The store of clients made without a state directory: one per process, as a real carrier's account is one.
SHARED_STORE = MemoryStore()


class SandboxCarrier:
    """The offline carrier. Raises app.failures.PermanentError where a real carrier would refuse."""

    def __init__(self, *, store: SandboxStore | None = None,
                 minutes_to_deliver: float = DEFAULT_MINUTES_TO_DELIVER, currency: str = "USD",
                 public_base_url: str = DEFAULT_PUBLIC_BASE, clock: Callable[[], datetime] | None = None) -> None:
        self.store: SandboxStore = store if store is not None else SHARED_STORE
        self.minutes_to_deliver = minutes_to_deliver
        self.currency = currency
        self.public_base_url = public_base_url.rstrip("/")
        self.clock = clock or (lambda: datetime.now(UTC))

    def rates(self, request: ShipmentRequest) -> list[Rate]:
        return quote_rates(request, today=self.clock(), currency=self.currency)

    def _buy(self, request: ShipmentRequest, rate: Rate, *, is_return: bool) -> Label:
        number = tracking_number(request.reference)
        earlier = self.store.get(number)
        if earlier is not None and earlier.voided:
            raise PermanentError(f"sandbox: the label for {request.reference} was voided; use a new reference")
        if earlier is not None:
            return earlier.label  # the same reference is the same label: nothing is bought twice
        quoted = {r.provider_rate_id: r for r in self.rates(request)}
        if rate.provider_rate_id not in quoted:
            raise PermanentError(f"sandbox: rate {rate.provider_rate_id} was not quoted for {request.reference}")
        rate = quoted[rate.provider_rate_id]
        label = Label(
            reference=request.reference, carrier=rate.carrier, service=rate.service, tracking_number=number,
            tracking_url=f"{self.public_base_url}/track/{number}",
            label_url=f"{self.public_base_url}/labels/{number}.pdf", cost=rate.amount, currency=rate.currency,
            provider_shipment_id=rate.provider_shipment_id, provider_label_id="sbx_lbl_" + number[3:],
            provider_rate_id=rate.provider_rate_id, is_return=is_return)
        self.store.put(Purchase(label=label, bought_at=self.clock(), origin=_place(request.from_address),
                                destination=_place(request.to_address)))
        return label

    def buy_label(self, request: ShipmentRequest, rate: Rate) -> Label:
        """Buy a rate quoted for the request; the same reference returns the label bought before.

        Raises:
            PermanentError: the rate was not quoted for this request, or the reference's label was voided.
        """
        return self._buy(request, rate, is_return=False)

    def return_label(self, request: ShipmentRequest) -> Label:
        """A return label for the outbound request: addresses swapped, cheapest rate for its service level."""
        reverse = replace(request, from_address=request.to_address, to_address=request.from_address)
        rate = choose_rate(self.rates(reverse), request.service_level)
        if rate is None:
            raise PermanentError(f"sandbox: no {request.service_level} rate for return {request.reference}")
        return self._buy(reverse, rate, is_return=True)

    def find_label(self, reference: str, *, since: datetime | None = None) -> Label | None:
        purchase = self.store.get(tracking_number(reference))
        if purchase is None or purchase.voided or (since is not None and purchase.bought_at < since):
            return None
        return purchase.label

    def void_label(self, label: Label) -> None:
        """Void a label not yet picked up (a voided one again is fine).

        Raises:
            PermanentError: unknown label, or the parcel is already on its way.
        """
        purchase = self.store.get(label.tracking_number)
        if purchase is None:
            raise PermanentError(f"sandbox: no label {label.tracking_number}")
        if purchase.voided:
            return
        if any(u.status is not TrackingStatus.PRE_TRANSIT
               for u in progress(purchase, self.clock(), self.minutes_to_deliver)):
            raise PermanentError(f"sandbox: label {label.tracking_number} was already picked up")
        self.store.put(replace(purchase, voided=True))

    def track(self, tracking_number: str, carrier: str | None = None) -> list[TrackingUpdate]:
        purchase = self.store.get(tracking_number)
        if purchase is None:
            return []
        return progress(purchase, self.clock(), self.minutes_to_deliver)


def make_client(access: CarrierAccess) -> SandboxCarrier:
    """Settings read: `state_dir` (a DirectoryStore there; else the process's memory), `minutes_to_deliver`,
    `currency`, `public_base_url`. No credentials."""
    settings = access.settings
    state_dir = settings.get("state_dir")
    return SandboxCarrier(
        store=DirectoryStore(state_dir) if state_dir else None,
        minutes_to_deliver=float(settings.get("minutes_to_deliver") or DEFAULT_MINUTES_TO_DELIVER),
        currency=str(settings.get("currency") or "USD"),
        public_base_url=str(access.api_base_url or settings.get("public_base_url") or DEFAULT_PUBLIC_BASE),
    )
