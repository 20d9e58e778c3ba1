"""A fake EasyPost API on 127.0.0.1 for tests and the demo: the real SDK is pointed at it.

    fake = FakeEasyPost(api_key="EZTKtest").start()
    client = EasyPostCarrier("EZTKtest", api_base=fake.url)          # fake.url ends in /v2
    fake.fail_next(429, retry_after=2)     # or 500; hang_next(seconds); hang_after_next(seconds, match="/buy")
    fake.purchases("order-1-parcel-1")     # labels bought with that reference: a test asserts exactly one
    fake.advance_tracker(label.tracking_number, "in_transit", "Arrived at facility")
    fake.send_tracker_updated(receiver_url, "webhook-secret", label.tracking_number)
    fake.stop()

Served under /v2, `Authorization: Bearer <api_key>` checked on every call, every request recorded:

* POST shipments: a Shipment with `reference`, rates from `rate_table` (priced by weight), 201;
  422 for a missing address or a parcel without weight.
* POST shipments/{id}/buy {"rate": {"id"}}: label, tracking code and tracker; 422 when already bought or the
  rate is not the shipment's; counted per reference.
* GET shipments (purchased, page_size ≤ 100, before_id, start_datetime; newest first, `has_more`);
  GET shipments/{id or reference}.
* POST shipments/{id}/refund: refund_status "submitted"; 422 when not bought or already refunded.
* POST trackers (one tracker per tracking code, as EasyPost keeps; EasyPost's test codes EZ1000000001 …
  EZ7000000007 give pre_transit … unknown); GET trackers (tracking_code, carrier); GET trackers/{id}.

Errors use EasyPost's shape: {"error": {"code", "message", "errors": [{"field", "message"}]}}.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests

from integrations.carriers.base import parse_timestamp
from integrations.carriers.easypost.webhooks import SIGNATURE_HEADER, signature
from integrations.carriers.fakes import Answer, FakeCarrierServer, Json
from integrations.fakeserver import header

PUBLIC_TRACKING = "https://track.easypost.com/"
LABEL_FILES = "https://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/"


@dataclass(frozen=True)
class FakeService:
    carrier: str
    service: str
    base: Decimal
    per_ounce: Decimal
    delivery_days: int | None


# Priced as base + per_ounce × weight: cheap ground, dearer express, so rate shopping has choices.
DEFAULT_RATE_TABLE: tuple[FakeService, ...] = (
    FakeService("USPS", "GroundAdvantage", Decimal("5.20"), Decimal("0.05"), 3),
    FakeService("USPS", "Priority", Decimal("8.90"), Decimal("0.04"), 2),
    FakeService("USPS", "Express", Decimal("28.50"), Decimal("0.10"), 1),
    FakeService("UPS", "Ground", Decimal("9.10"), Decimal("0.03"), 5),
    FakeService("FedEx", "FEDEX_2_DAY", Decimal("14.00"), Decimal("0.06"), 2),
)

# EasyPost test mode's tracking codes (docs.easypost.com/docs/trackers "test tracking codes").
TEST_TRACKING_CODES: Mapping[str, str] = {
    "EZ1000000001": "pre_transit", "EZ2000000002": "in_transit", "EZ3000000003": "out_for_delivery",
    "EZ4000000004": "delivered", "EZ5000000005": "return_to_sender", "EZ6000000006": "failure",
    "EZ7000000007": "unknown",
}


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(tracker: Mapping[str, Any], *, description: str = "tracker.updated",
                previous_status: str | None = None) -> bytes:
    """The exact bytes EasyPost POSTs for a tracker event (compact JSON, as the SDK's fixture)."""
    now = _stamp(datetime.now(UTC))
    event = {
        "description": description, "mode": "test",
        "previous_attributes": {"status": previous_status} if previous_status else {},
        "created_at": now, "pending_urls": [], "completed_urls": [], "updated_at": now,
        "id": _id("evt"), "user_id": "user_fake", "status": "pending", "object": "Event",
        "result": dict(tracker),
    }
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    """The headers of a delivery signed as EasyPost signs it."""
    return {"Content-Type": "application/json", "User-Agent": "EasyPost WebHook Agent 1.0",
            SIGNATURE_HEADER: signature(body, secret)}


class FakeEasyPost(FakeCarrierServer):
    """EasyPost's shipment, refund and tracker endpoints, in memory."""

    thread_name = "fake-easypost"

    def __init__(self, api_key: str = "EZTKfake", *,  # noqa: S107 - a fake's key
                 rate_table: Sequence[FakeService] = DEFAULT_RATE_TABLE) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_table = tuple(rate_table)
        self.shipments: dict[str, Json] = {}
        self.trackers: dict[str, Json] = {}
        self._purchases: Counter[str] = Counter()
        self._sequence = 0

    @property
    def url(self) -> str:
        """The SDK's api_base (what EASYPOST_API_BASE_URL would be): http://127.0.0.1:<port>/v2."""
        return self.root + "/v2"

    # --- what tests look at -------------------------------------------------------------------------------

    def purchases(self, reference: str) -> int:
        """How many labels were bought with this reference (refunded ones included)."""
        with self._lock:
            return self._purchases[reference]

    def shipment(self, shipment_id: str) -> Json:
        with self._lock:
            return copy.deepcopy(self.shipments[shipment_id])

    def tracker_for(self, tracking_code: str) -> Json:
        with self._lock:
            found = next(t for t in self.trackers.values() if t["tracking_code"] == tracking_code)
            return copy.deepcopy(found)

    # --- driving trackers and webhooks --------------------------------------------------------------------

    def advance_tracker(self, tracking_code: str, status: str, message: str, *, status_detail: str = "unknown",
                        city: str | None = None, state: str | None = None, zip: str | None = None,
                        country: str | None = "US", at: datetime | None = None) -> Json:
        """Append one TrackingDetail to the code's tracker and set its status; returns the tracker."""
        moment = _stamp(at or datetime.now(UTC))
        with self._lock:
            tracker = next(t for t in self.trackers.values() if t["tracking_code"] == tracking_code)
            tracker["tracking_details"].append({
                "object": "TrackingDetail", "message": message, "description": message, "status": status,
                "status_detail": status_detail, "datetime": moment, "source": tracker["carrier"],
                "carrier_code": None,
                "tracking_location": {"object": "TrackingLocation", "city": city, "state": state,
                                      "country": country, "zip": zip},
            })
            tracker.update(status=status, status_detail=status_detail, updated_at=moment)
            for shipment in self.shipments.values():
                if shipment.get("tracker") and shipment["tracker"]["id"] == tracker["id"]:
                    shipment["tracker"] = copy.deepcopy(tracker)
            return copy.deepcopy(tracker)

    def send_tracker_updated(self, receiver_url: str, secret: str, tracking_code: str, *,
                             previous_status: str | None = None, timeout: float = 10) -> requests.Response:
        """POST a signed tracker.updated Event for the code's tracker to `receiver_url`, as EasyPost does."""
        body = build_event(self.tracker_for(tracking_code), previous_status=previous_status)
        return requests.post(receiver_url, data=body, headers=signed_headers(body, secret), timeout=timeout)

    # --- the wire -----------------------------------------------------------------------------------------

    def authorized(self, headers: dict[str, str]) -> bool:
        return header(headers, "Authorization") == f"Bearer {self.api_key}"

    def error_body(self, status: int, message: str) -> Any:
        code = {401: "APIKEY.INACTIVE", 404: "NOT_FOUND", 429: "RATE_LIMITED"}.get(
            status, "INTERNAL_SERVER_ERROR" if status >= 500 else "PARAMETER.INVALID")
        return {"error": {"code": code, "message": message, "errors": []}}

    def invalid(self, code: str, message: str, field: str | None = None) -> Answer:
        errors = [{"field": field, "message": message}] if field else []
        return Answer(422, {"error": {"code": code, "message": message, "errors": errors}})

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        segments = [s for s in path.split("/") if s]
        if segments[:1] != ["v2"]:
            return self.error(404, "The requested resource could not be found.")
        segments = segments[1:]
        with self._lock:
            if segments == ["shipments"] and method == "POST":
                return self._create_shipment((body or {}).get("shipment") or {})
            if segments == ["shipments"] and method == "GET":
                return self._list_shipments(query)
            if len(segments) >= 2 and segments[0] == "shipments":
                shipment = self._find_shipment(segments[1])
                if shipment is None:
                    return self.error(404, "The requested resource could not be found.")
                if len(segments) == 2 and method == "GET":
                    return Answer(200, copy.deepcopy(shipment))
                if segments[2:] == ["buy"] and method == "POST":
                    return self._buy(shipment, body or {})
                if segments[2:] == ["refund"] and method == "POST":
                    return self._refund(shipment)
            if segments == ["trackers"] and method == "POST":
                return self._create_tracker((body or {}).get("tracker") or {})
            if segments == ["trackers"] and method == "GET":
                found = [t for t in self.trackers.values()
                         if t["tracking_code"] == query.get("tracking_code", t["tracking_code"])
                         and t["carrier"] == query.get("carrier", t["carrier"])]
                found.sort(key=lambda t: str(t["created_at"]), reverse=True)
                size = min(int(query.get("page_size", 20)), 100)
                return Answer(200, {"trackers": copy.deepcopy(found[:size]), "has_more": len(found) > size})
            if len(segments) == 2 and segments[0] == "trackers" and method == "GET":
                tracker = self.trackers.get(segments[1])
                if tracker is None:
                    return self.error(404, "The requested resource could not be found.")
                return Answer(200, copy.deepcopy(tracker))
        return self.error(404, "The requested resource could not be found.")

    # --- shipments ----------------------------------------------------------------------------------------

    def _find_shipment(self, key: str) -> Json | None:
        if key in self.shipments:
            return self.shipments[key]
        # EasyPost: "reference values … may be used in place of id values in many API endpoints".
        matching = [s for s in self.shipments.values() if s.get("reference") == key]
        return matching[-1] if matching else None

    def _create_shipment(self, request: Json) -> Answer:
        for side in ("to_address", "from_address"):
            if not request.get(side):
                return self.invalid("SHIPMENT.INVALID_PARAMS", f"{side} is required", side)
        parcel = dict(request.get("parcel") or {})
        try:
            weight = Decimal(str(parcel.get("weight")))
        except ArithmeticError:
            weight = Decimal(0)
        if not weight.is_finite() or weight <= 0:
            return self.invalid("PARCEL.WEIGHT.INVALID", "Parcel weight must be greater than zero.",
                                "parcel.weight")
        shipment_id = _id("shp")
        now = datetime.now(UTC)
        rates = [{
            "id": _id("rate"), "object": "Rate", "created_at": _stamp(now), "updated_at": _stamp(now),
            "mode": "test", "service": s.service, "carrier": s.carrier,
            "rate": str((s.base + s.per_ounce * weight).quantize(Decimal("0.01"))), "currency": "USD",
            "retail_rate": None, "retail_currency": None, "list_rate": None, "list_currency": None,
            "billing_type": "easypost", "delivery_days": s.delivery_days,
            "delivery_date": (_stamp(now + timedelta(days=s.delivery_days)) if s.delivery_days else None),
            "delivery_date_guaranteed": False, "est_delivery_days": s.delivery_days,
            "shipment_id": shipment_id, "carrier_account_id": "ca_fake",
        } for s in self.rate_table]
        # `_order` is strictly increasing, so "newest first" holds even within one second.
        self._sequence += 1
        shipment: Json = {
            "id": shipment_id, "object": "Shipment", "mode": "test", "created_at": _stamp(now),
            "updated_at": _stamp(now), "_order": self._sequence,
            "reference": request.get("reference"), "is_return": bool(request.get("is_return")),
            "status": "unknown", "tracking_code": None, "messages": [], "options": request.get("options") or {},
            "to_address": {"id": _id("adr"), "object": "Address", **request["to_address"]},
            "from_address": {"id": _id("adr"), "object": "Address", **request["from_address"]},
            "parcel": {"id": _id("prcl"), "object": "Parcel", **parcel},
            "customs_info": ({"id": _id("cstinfo"), "object": "CustomsInfo", **request["customs_info"]}
                             if request.get("customs_info") else None),
            "rates": rates, "selected_rate": None, "postage_label": None, "tracker": None,
            "refund_status": None, "insurance": None, "fees": [],
        }
        self.shipments[shipment_id] = shipment
        return Answer(201, self._public(shipment))

    @staticmethod
    def _public(shipment: Json) -> Json:
        return {k: copy.deepcopy(v) for k, v in shipment.items() if not k.startswith("_")}

    def _list_shipments(self, query: Mapping[str, str]) -> Answer:
        found = sorted(self.shipments.values(), key=lambda s: s["_order"], reverse=True)
        if query.get("purchased", "").lower() in ("true", "1"):
            found = [s for s in found if s.get("postage_label")]
        elif query.get("purchased", "").lower() in ("false", "0"):
            found = [s for s in found if not s.get("postage_label")]
        start = parse_timestamp(query.get("start_datetime"))
        if start is not None:
            found = [s for s in found if (parse_timestamp(s["created_at"]) or start) >= start]
        if query.get("before_id"):
            cut = self.shipments.get(query["before_id"])
            if cut is not None:
                found = [s for s in found if s["_order"] < cut["_order"]]
        size = min(int(query.get("page_size", 20)), 100)
        return Answer(200, {"shipments": [self._public(s) for s in found[:size]], "has_more": len(found) > size})

    def _buy(self, shipment: Json, request: Json) -> Answer:
        rate_id = (request.get("rate") or {}).get("id")
        if shipment.get("postage_label"):
            return self.invalid("SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment.")
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            return self.invalid("SHIPMENT.RATE.INVALID", "The rate is not one of this shipment's rates.", "rate")
        now = _stamp(datetime.now(UTC))
        tracking_code = "EZ" + str(secrets.randbelow(10**16)).zfill(16)
        tracker = self._new_tracker(tracking_code, rate["carrier"], shipment["id"], "pre_transit",
                                    "Shipping Label Created")
        shipment.update(
            selected_rate=copy.deepcopy(rate), tracking_code=tracking_code, updated_at=now,
            postage_label={"object": "PostageLabel", "id": _id("pl"), "created_at": now, "updated_at": now,
                           "label_date": now, "label_resolution": 300, "label_size": "4x6",
                           "label_type": "default", "label_file_type": "image/png",
                           "label_url": f"{LABEL_FILES}{tracking_code}.png", "label_pdf_url": None,
                           "label_zpl_url": None, "label_epl2_url": None, "label_file": None},
            tracker=copy.deepcopy(tracker),
        )
        if shipment.get("reference"):
            self._purchases[str(shipment["reference"])] += 1
        return Answer(200, self._public(shipment))

    def _refund(self, shipment: Json) -> Answer:
        if not shipment.get("postage_label"):
            return self.invalid("SHIPMENT.REFUND.INVALID", "Only purchased shipments can be refunded.")
        if shipment.get("refund_status") in ("submitted", "refunded"):
            return self.invalid("SHIPMENT.REFUND.EXISTS", "A refund has already been requested for this shipment.")
        shipment.update(refund_status="submitted", updated_at=_stamp(datetime.now(UTC)))
        return Answer(200, self._public(shipment))

    # --- trackers -----------------------------------------------------------------------------------------

    def _new_tracker(self, tracking_code: str, carrier: str, shipment_id: str | None, status: str,
                     message: str) -> Json:
        now = _stamp(datetime.now(UTC))
        tracker_id = _id("trk")
        details = [] if status == "unknown" else [{
            "object": "TrackingDetail", "message": message, "description": message, "status": status,
            "status_detail": "status_update", "datetime": now, "source": carrier, "carrier_code": None,
            "tracking_location": {"object": "TrackingLocation", "city": None, "state": None, "country": None,
                                  "zip": None},
        }]
        tracker: Json = {
            "id": tracker_id, "object": "Tracker", "mode": "test", "tracking_code": tracking_code,
            "status": status, "status_detail": "status_update", "created_at": now, "updated_at": now,
            "signed_by": None, "weight": None, "est_delivery_date": None, "shipment_id": shipment_id,
            "carrier": carrier, "tracking_details": details, "fees": [], "carrier_detail": None,
            "finalized": False, "is_return": False, "public_url": f"{PUBLIC_TRACKING}{tracker_id}",
        }
        self.trackers[tracker_id] = tracker
        return tracker

    def _create_tracker(self, request: Json) -> Answer:
        code = str(request.get("tracking_code") or "")
        if not code:
            return self.invalid("TRACKER.TRACKING_CODE.INVALID", "tracking_code is required", "tracking_code")
        carrier = request.get("carrier")
        # Without a carrier EasyPost detects it: any tracker for the code is the one.
        existing = next((t for t in self.trackers.values()
                         if t["tracking_code"] == code and (not carrier or t["carrier"] == carrier)), None)
        if existing is not None:
            return Answer(200, copy.deepcopy(existing))
        status = TEST_TRACKING_CODES.get(code, "unknown")
        tracker = self._new_tracker(code, str(carrier or "USPS"), None, status, f"Test tracker: {status}")
        return Answer(201, copy.deepcopy(tracker))
