"""Shippo JSON ↔ Orderline values: paired `*_request` / `parse_*_response` pure functions, and the status tables.

Shippo takes grams and centimetres as they are (`mass_unit: "g"`, `distance_unit: "cm"`), and money as strings.
Field names follow goshippo/shippo-python-sdk `src/shippo/models/components/` @47df6c4874c0 (Shipment, Rate,
Transaction, Refund, Track, TrackingStatus).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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

# TrackingStatusEnum (PROTOCOLS §6.2) → TrackingStatus.
STATUS_MAP: Mapping[str, TrackingStatus] = {
    "UNKNOWN": TrackingStatus.UNKNOWN,
    "PRE_TRANSIT": TrackingStatus.PRE_TRANSIT,
    "TRANSIT": TrackingStatus.IN_TRANSIT,
    "DELIVERED": TrackingStatus.DELIVERED,
    "RETURNED": TrackingStatus.RETURNED,
    "FAILURE": TrackingStatus.EXCEPTION,
}

# Shippo has no status for the last mile: a TRANSIT update's substatus code says so.
TRANSIT_SUBSTATUS_MAP: Mapping[str, TrackingStatus] = {
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    # Waiting at a counter or locker for the customer (as EasyPost's available_for_pickup).
    "pickup_available": TrackingStatus.OUT_FOR_DELIVERY,
}

# Transaction.status values.
LABEL_READY = "SUCCESS"
LABEL_PENDING = frozenset({"QUEUED", "WAITING"})
LABEL_FAILED = "ERROR"
LABEL_VOIDED = frozenset({"REFUNDED", "REFUNDPENDING"})


# --- requests ---------------------------------------------------------------------------------------------


def address_request(address: NewAddress, email: str | None = None) -> Json:
    fields = {
        "name": address.name, "company": address.company, "street1": address.line1, "street2": address.line2,
        "city": address.city, "state": address.region, "zip": address.postal_code,
        "country": address.country_code, "phone": address.phone, "email": email,
    }
    return {k: v for k, v in fields.items() if v}


def parcel_request(parcel: Parcel) -> Json:
    """One Shippo parcel.

    Raises:
        PermanentError: the parcel has no dimensions (Shippo needs them unless a carrier template is named).
    """
    if parcel.length_cm is None or parcel.width_cm is None or parcel.height_cm is None:
        raise PermanentError("Shippo needs the parcel's length, width and height")
    return {"length": str(parcel.length_cm), "width": str(parcel.width_cm), "height": str(parcel.height_cm),
            "distance_unit": "cm", "weight": str(parcel.weight_grams), "mass_unit": "g"}


def customs_item_request(item: CustomsItem) -> Json:
    body: Json = {"description": item.description, "quantity": item.quantity,
                  "net_weight": str(item.weight_grams), "mass_unit": "g", "value_amount": str(item.value),
                  "value_currency": item.currency, "origin_country": item.origin_country}
    if item.hs_code:
        body["hs_code"] = item.hs_code
    if item.sku:
        body["sku_code"] = item.sku
    return body


def customs_declaration_request(request: ShipmentRequest) -> Json:
    body: Json = {
        "certify": True,
        "certify_signer": request.from_address.name or request.from_address.company or "Shipping department",
        "contents_type": "MERCHANDISE",
        "non_delivery_option": "RETURN",
        "items": [customs_item_request(i) for i in request.customs_items],
    }
    if (request.from_address.country_code or "").upper() == "US":
        # US exports of goods under $2,500 per Schedule B number need no EEI filing (FTR 30.37(a)).
        body["eel_pfc"] = "NOEEI_30_37_a"
    return body


def shipment_request(request: ShipmentRequest, *, is_return: bool = False) -> Json:
    """The body of POST /shipments/: rated synchronously (`async: false`), our reference in `metadata`."""
    body: Json = {
        "address_from": address_request(request.from_address, request.email),
        "address_to": address_request(request.to_address),
        "parcels": [parcel_request(p) for p in request.parcels],
        "metadata": request.reference,
        "async": False,
    }
    if request.customs_items:
        body["customs_declaration"] = customs_declaration_request(request)
    if is_return:
        # Shippo swaps the addresses itself ("do not swap the addresses yourself", docs: Returns).
        body["extra"] = {"is_return": True}
    return body


def transaction_request(rate: Rate, reference: str, label_file_type: str = "PDF") -> Json:
    """The body of POST /transactions/: buy the rate now, our reference in `metadata` for find_label."""
    return {"rate": rate.provider_rate_id, "metadata": reference, "label_file_type": label_file_type,
            "async": False}


def refund_request(transaction_id: str) -> Json:
    return {"transaction": transaction_id, "async": False}


# --- responses --------------------------------------------------------------------------------------------


def messages_text(messages: Any) -> str:
    """Shippo's `messages` list ({source, code, text}) as one line."""
    parts = []
    for message in messages or []:
        if isinstance(message, dict):
            text = message.get("text") or message.get("message") or message.get("code") or ""
            source = message.get("source")
            parts.append(f"{source}: {text}" if source else str(text))
        else:
            parts.append(str(message))
    return "; ".join(p for p in parts if p)[:500]


def parse_rate(rate: Json) -> Rate:
    level = rate.get("servicelevel") or {}
    days = rate.get("estimated_days")
    shipment = rate.get("shipment")
    return Rate(
        carrier=str(rate["provider"]),
        service=str(level.get("name") or level.get("token") or ""),
        amount=Decimal(str(rate["amount"])),
        currency=str(rate["currency"]),
        delivery_days=int(days) if days is not None else None,
        estimated_delivery=None,
        provider_rate_id=str(rate["object_id"]),
        provider_shipment_id=str(shipment) if shipment else None,
    )


def parse_rates_response(shipment: Json) -> list[Rate]:
    """The rates of a created Shipment, cheapest first."""
    rates = [parse_rate({"shipment": shipment.get("object_id"), **r}) for r in shipment.get("rates") or []]
    return sorted(rates, key=lambda r: (r.amount, r.carrier, r.service))


def parse_label_response(transaction: Json, rate: Rate, *, is_return: bool = False) -> Label:
    """The label of a successful Transaction, priced by the rate it bought.

    Raises:
        PermanentError: the transaction failed (Shippo's messages say why) or has no label.
    """
    status = transaction.get("status")
    if status == LABEL_FAILED:
        raise PermanentError(f"Shippo could not buy rate {rate.provider_rate_id}: "
                             f"{messages_text(transaction.get('messages')) or 'no reason given'}")
    if status != LABEL_READY or not transaction.get("label_url") or not transaction.get("tracking_number"):
        raise PermanentError(f"Shippo transaction {transaction.get('object_id')} has no label (status {status})")
    return Label(
        reference=transaction.get("metadata") or None,
        carrier=rate.carrier,
        service=rate.service,
        tracking_number=str(transaction["tracking_number"]),
        tracking_url=transaction.get("tracking_url_provider") or None,
        label_url=str(transaction["label_url"]),
        cost=rate.amount,
        currency=rate.currency,
        provider_shipment_id=rate.provider_shipment_id,
        provider_label_id=transaction.get("object_id"),
        provider_rate_id=rate.provider_rate_id,
        is_return=is_return,
    )


def _status(entry: Json) -> TrackingStatus:
    code = entry.get("status")
    status = map_status(STATUS_MAP, code)
    substatus = str((entry.get("substatus") or {}).get("code") or "")
    if status is TrackingStatus.IN_TRANSIT:
        return TRANSIT_SUBSTATUS_MAP.get(substatus, status)
    return status


def _update(number: str, entry: Json, estimate: Any) -> TrackingUpdate | None:
    occurred = parse_timestamp(entry.get("status_date") or entry.get("object_created"))
    if occurred is None:
        return None
    place = entry.get("location") or {}
    substatus = (entry.get("substatus") or {}).get("code")
    code = entry.get("status")
    return TrackingUpdate(
        tracking_number=number,
        status=_status(entry),
        detail=str(entry.get("status_details") or (entry.get("substatus") or {}).get("text") or code or ""),
        occurred_at=occurred,
        location=format_location(place.get("city"), place.get("state"), place.get("zip"), place.get("country")),
        estimated_delivery=parse_timestamp(estimate),
        raw_status=f"{code}/{substatus}" if substatus else code,
    )


def parse_track_response(track: Json) -> list[TrackingUpdate]:
    """Every entry of a Track's `tracking_history`, and its current `tracking_status`, oldest first."""
    number = str(track.get("tracking_number") or "")
    entries = [*(track.get("tracking_history") or []), *([track["tracking_status"]]
                                                          if track.get("tracking_status") else [])]
    updates = [_update(number, e, track.get("eta")) for e in entries if isinstance(e, dict)]
    return sort_updates(u for u in updates if u is not None)
