"""EasyPost JSON ↔ Orderline values: paired `*_request` / `parse_*_response` pure functions, and the status table.

EasyPost speaks ounces and inches (docs.easypost.com "Parcel"); Orderline grams and centimetres. Weights and
lengths are converted and rounded *up* to a tenth, so a parcel is never declared lighter or smaller than it is.
Money comes as strings ("8.20") and stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from app.failures import PermanentError
from app.orders.types import NewAddress
from integrations.carriers.base import (
    CustomsItem,
    Label,
    Parcel,
    Rate,
    ShipmentRequest,
    TrackingStatus,
    TrackingUpdate,
    format_location,
    map_status,
    parse_timestamp,
    sort_updates,
)

Json = dict[str, Any]

GRAMS_PER_OUNCE = Decimal("28.349523125")
CM_PER_INCH = Decimal("2.54")
TENTH = Decimal("0.1")

# Tracker.status (docs.easypost.com/docs/trackers; PROTOCOLS §6.1) → TrackingStatus.
STATUS_MAP: Mapping[str, TrackingStatus] = {
    "unknown": TrackingStatus.UNKNOWN,
    "pre_transit": TrackingStatus.PRE_TRANSIT,
    "in_transit": TrackingStatus.IN_TRANSIT,
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    # Waiting at a counter or locker for the customer: the last step before delivery, as out for delivery is.
    "available_for_pickup": TrackingStatus.OUT_FOR_DELIVERY,
    "delivered": TrackingStatus.DELIVERED,
    "return_to_sender": TrackingStatus.RETURNED,
    "failure": TrackingStatus.EXCEPTION,
    "cancelled": TrackingStatus.EXCEPTION,
    # EasyPost could not read the carrier's tracking: it says nothing about where the parcel is.
    "error": TrackingStatus.UNKNOWN,
}

# Refund states of a shipment whose label no longer ships (voided, or being voided).
VOIDED_REFUND_STATUSES = frozenset({"submitted", "refunded"})


def ounces(grams: int) -> Decimal:
    return (Decimal(grams) / GRAMS_PER_OUNCE).quantize(TENTH, rounding=ROUND_CEILING)


def inches(cm: Decimal) -> Decimal:
    return (cm / CM_PER_INCH).quantize(TENTH, rounding=ROUND_CEILING)


# --- requests ---------------------------------------------------------------------------------------------


def address_request(address: NewAddress, email: str | None = None) -> Json:
    fields = {
        "name": address.name, "company": address.company, "street1": address.line1, "street2": address.line2,
        "city": address.city, "state": address.region, "zip": address.postal_code,
        "country": address.country_code, "phone": address.phone, "email": email,
    }
    return {k: v for k, v in fields.items() if v}


def parcel_request(parcel: Parcel) -> Json:
    body: Json = {"weight": str(ounces(parcel.weight_grams))}
    if parcel.length_cm is not None and parcel.width_cm is not None and parcel.height_cm is not None:
        body.update(length=str(inches(parcel.length_cm)), width=str(inches(parcel.width_cm)),
                    height=str(inches(parcel.height_cm)))
    return body


def customs_item_request(item: CustomsItem) -> Json:
    body: Json = {"description": item.description, "quantity": item.quantity, "value": str(item.value),
                  "currency": item.currency, "weight": str(ounces(item.weight_grams)),
                  "origin_country": item.origin_country}
    if item.hs_code:
        body["hs_tariff_number"] = item.hs_code
    if item.sku:
        body["code"] = item.sku
    return body


def customs_info_request(request: ShipmentRequest) -> Json:
    body: Json = {
        "customs_certify": True,
        "customs_signer": request.from_address.name or request.from_address.company or "Shipping department",
        "contents_type": "merchandise",
        "non_delivery_option": "return",
        "restriction_type": "none",
        "customs_items": [customs_item_request(i) for i in request.customs_items],
    }
    if (request.from_address.country_code or "").upper() == "US":
        # US exports of goods under $2,500 per Schedule B number need no EEI filing (FTR 30.37(a)).
        body["eel_pfc"] = "NOEEI 30.37(a)"
    return body


def shipment_request(request: ShipmentRequest, *, is_return: bool = False,
                     label_format: str | None = None) -> Json:
    """The `shipment` object for POST /v2/shipments (the SDK wraps it in {"shipment": …}).

    EasyPost rates and buys one parcel per shipment: a request with several parcels is split by the
    caller into one request (and one reference) per parcel.

    Raises:
        PermanentError: more than one parcel.
    """
    if len(request.parcels) != 1:
        raise PermanentError(f"EasyPost ships one parcel per label; {request.reference} has "
                             f"{len(request.parcels)}: split it into one request per parcel")
    body: Json = {
        "reference": request.reference,
        "to_address": address_request(request.to_address),
        "from_address": address_request(request.from_address, request.email),
        "parcel": parcel_request(request.parcels[0]),
    }
    if request.customs_items:
        body["customs_info"] = customs_info_request(request)
    if is_return:
        # EasyPost swaps to and from itself: the addresses stay those of the outbound shipment.
        body["is_return"] = True
    if label_format:
        body["options"] = {"label_format": label_format}
    return body


def buy_request(rate: Rate) -> Json:
    """The body of POST /v2/shipments/{id}/buy."""
    return {"rate": {"id": rate.provider_rate_id}}


# --- responses --------------------------------------------------------------------------------------------


def _date(value: Any) -> Any:
    moment = parse_timestamp(value)
    return moment.date() if moment else None


def parse_rate(rate: Json, shipment_id: str | None = None) -> Rate:
    days = rate.get("delivery_days")
    if days is None:
        days = rate.get("est_delivery_days")
    return Rate(
        carrier=str(rate["carrier"]),
        service=str(rate["service"]),
        amount=Decimal(str(rate["rate"])),
        currency=str(rate.get("currency") or "USD"),
        delivery_days=int(days) if days is not None else None,
        estimated_delivery=_date(rate.get("delivery_date")),
        provider_rate_id=str(rate["id"]),
        provider_shipment_id=rate.get("shipment_id") or shipment_id,
    )


def parse_rates_response(shipment: Json) -> list[Rate]:
    """The rates of a created Shipment, cheapest first."""
    rates = [parse_rate(r, shipment.get("id")) for r in shipment.get("rates") or []]
    return sorted(rates, key=lambda r: (r.amount, r.carrier, r.service))


def parse_label_response(shipment: Json, reference: str | None = None) -> Label:
    """The label of a bought Shipment (the answer to /buy, or a purchased shipment from a listing).

    Raises:
        PermanentError: the shipment has no label (it was never bought).
    """
    label, selected = shipment.get("postage_label"), shipment.get("selected_rate")
    if not label or not selected or not shipment.get("tracking_code"):
        raise PermanentError(f"EasyPost shipment {shipment.get('id')} has no label")
    tracker = shipment.get("tracker") or {}
    return Label(
        reference=shipment.get("reference") or reference,
        carrier=str(selected["carrier"]),
        service=str(selected["service"]),
        tracking_number=str(shipment["tracking_code"]),
        tracking_url=tracker.get("public_url"),
        label_url=str(label.get("label_pdf_url") or label.get("label_url")),
        cost=Decimal(str(selected["rate"])),
        currency=str(selected.get("currency") or "USD"),
        provider_shipment_id=shipment.get("id"),
        provider_label_id=label.get("id"),
        provider_rate_id=selected.get("id"),
        provider_tracker_id=tracker.get("id"),
        is_return=bool(shipment.get("is_return")),
    )


def is_live_label(shipment: Json) -> bool:
    """Bought and not voided."""
    return bool(shipment.get("postage_label")) and shipment.get("refund_status") not in VOIDED_REFUND_STATUSES


def _detail_location(detail: Json) -> str | None:
    place = detail.get("tracking_location") or {}
    return format_location(place.get("city"), place.get("state"), place.get("zip"), place.get("country"))


def parse_tracker_response(tracker: Json) -> list[TrackingUpdate]:
    """Every TrackingDetail of a Tracker as an update, oldest first.

    A tracker with no details yet but a known status (just created) gives one update from that status.
    """
    number = str(tracker.get("tracking_code") or "")
    estimate = parse_timestamp(tracker.get("est_delivery_date"))
    updates: list[TrackingUpdate] = []
    for detail in tracker.get("tracking_details") or []:
        occurred = parse_timestamp(detail.get("datetime"))
        if occurred is None:
            continue
        code = detail.get("status")
        updates.append(TrackingUpdate(
            tracking_number=number,
            status=map_status(STATUS_MAP, code),
            detail=str(detail.get("message") or detail.get("description") or detail.get("status_detail") or ""),
            occurred_at=occurred,
            location=_detail_location(detail),
            estimated_delivery=parse_timestamp(detail.get("est_delivery_date")) or estimate,
            raw_status=code,
        ))
    if not updates and tracker.get("status") not in (None, "unknown"):
        occurred_at: datetime | None = parse_timestamp(tracker.get("updated_at") or tracker.get("created_at"))
        if occurred_at is not None:
            code = tracker.get("status")
            updates.append(TrackingUpdate(
                tracking_number=number, status=map_status(STATUS_MAP, code),
                detail=str(tracker.get("status_detail") or code), occurred_at=occurred_at,
                estimated_delivery=estimate, raw_status=code))
    return sort_updates(updates)
