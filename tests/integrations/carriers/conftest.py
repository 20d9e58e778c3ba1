"""Carrier test helpers: addresses, shipment requests and rates built the same way in every carrier's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.orders.types import NewAddress
from integrations.carriers.base import CustomsItem, Parcel, Rate, ShipmentRequest

WAREHOUSE = NewAddress(name="Fog Linen Work", company="Fog Linen", line1="417 Montgomery Street",
                       line2="5th Floor", city="San Francisco", region="CA", postal_code="94104",
                       country_code="US", phone="4153334445")
CUSTOMER = NewAddress(name="Dr. Steve Brule", line1="179 N Harbor Dr", city="Redondo Beach", region="CA",
                      postal_code="90277", country_code="US", phone="8573875756")
OUT_OF_STATE = NewAddress(name="Jane Doe", line1="555 East Street", city="Austin", region="TX",
                          postal_code="78108", country_code="US")
ABROAD = NewAddress(name="Ada Lovelace", line1="10 Downing Street", city="London", postal_code="SW1A 2AA",
                    country_code="GB", phone="+442079460000")
LINEN_SHIRT = CustomsItem(description="Linen shirt", quantity=2, value=Decimal("118.00"), currency="USD",
                          origin_country="US", weight_grams=640, hs_code="6205.90", sku="LS-01")


def box(grams: int = 1000) -> Parcel:
    return Parcel(weight_grams=grams, length_cm=Decimal("20"), width_cm=Decimal("10.5"), height_cm=Decimal("5"))


def shipment(reference: str = "ord-1001-p1", *, to: NewAddress = CUSTOMER, grams: int = 1000,
             level: str = "standard", customs: tuple[CustomsItem, ...] = (),
             parcels: tuple[Parcel, ...] | None = None) -> ShipmentRequest:
    return ShipmentRequest(reference=reference, from_address=WAREHOUSE, to_address=to,
                           parcels=parcels if parcels is not None else (box(grams),), service_level=level,
                           customs_items=customs, email="ship@foglinen.example")


def rate(carrier: str, service: str, amount: str, days: int | None, *, currency: str = "USD",
         rate_id: str | None = None) -> Rate:
    return Rate(carrier=carrier, service=service, amount=Decimal(amount), currency=currency, delivery_days=days,
                estimated_delivery=None, provider_rate_id=rate_id or f"rate_{carrier}_{service}".lower(),
                provider_shipment_id="shp_test")


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
