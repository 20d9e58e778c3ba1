"""A fake Shippo API on 127.0.0.1 for tests and the demo: the real wire protocol, in memory.

    fake = FakeShippo(api_token="shippo_test_fake").start()
    client = ShippoCarrier("shippo_test_fake", base_url=fake.url)
    fake.fail_next(429, retry_after=2)     # or 500; hang_next(seconds); hang_after_next(seconds, match="/transactions")
    fake.fail_next_purchase("The address is not deliverable.")  # a Transaction with status ERROR
    fake.purchases("order-1-parcel-1")     # labels bought with that reference (metadata)
    fake.advance_track("usps", number, "TRANSIT", "Arrived at USPS facility", substatus="package_arrived")
    fake.send_track_updated(receiver_url, "webhook-token", "usps", number)   # POST url?token=…
    fake.stop()

Served (trailing slash optional, `Authorization: ShippoToken <token>` checked, every request recorded):
POST /shipments/ (rates from `rate_table` priced by weight; 400 with field errors for a missing address or
parcel field), GET /shipments/{id}, GET /rates/{id}, POST /transactions/ (status SUCCESS, or ERROR when set
up; every purchase counted by `metadata` — a rate bought twice makes two labels), GET /transactions/
(newest first, `results` ≤ 100, `page`, `object_status`, with `next`/`previous`), GET /transactions/{id},
POST /refunds/ (QUEUED; the transaction becomes REFUNDPENDING; 400 when not refundable), GET
/tracks/{carrier}/{number} (bought labels, and Shippo's test numbers SHIPPO_PRE_TRANSIT, SHIPPO_TRANSIT,
SHIPPO_DELIVERED, SHIPPO_RETURNED, SHIPPO_FAILURE, SHIPPO_UNKNOWN with carrier "shippo"), POST /tracks/.
Errors use Shippo's shapes: {"detail": "..."} and {"field": ["problem"]}.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests

from integrations.carriers.fakes import Answer, FakeCarrierServer, Json
from integrations.fakeserver import header

TEST_TRACKING_NUMBERS = {"SHIPPO_PRE_TRANSIT": "PRE_TRANSIT", "SHIPPO_TRANSIT": "TRANSIT",
                         "SHIPPO_DELIVERED": "DELIVERED", "SHIPPO_RETURNED": "RETURNED",
                         "SHIPPO_FAILURE": "FAILURE", "SHIPPO_UNKNOWN": "UNKNOWN"}


@dataclass(frozen=True)
class FakeServiceLevel:
    provider: str
    carrier: str
    name: str
    token: str
    base: Decimal
    per_kg: Decimal
    estimated_days: int | None


DEFAULT_RATE_TABLE: tuple[FakeServiceLevel, ...] = (
    FakeServiceLevel("USPS", "usps", "Ground Advantage", "usps_ground_advantage", Decimal("5.40"),
                     Decimal("1.10"), 4),
    FakeServiceLevel("USPS", "usps", "Priority Mail", "usps_priority", Decimal("9.25"), Decimal("1.40"), 2),
    FakeServiceLevel("USPS", "usps", "Priority Mail Express", "usps_priority_express", Decimal("29.90"),
                     Decimal("2.60"), 1),
    FakeServiceLevel("UPS", "ups", "Ground", "ups_ground", Decimal("10.05"), Decimal("0.90"), 5),
    FakeServiceLevel("UPS", "ups", "Next Day Air®", "ups_next_day_air", Decimal("48.00"), Decimal("3.10"), 1),
)


def _oid() -> str:
    return secrets.token_hex(16)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _grams(parcel: Json) -> Decimal:
    weight = Decimal(str(parcel["weight"]))
    factor = {"g": Decimal(1), "kg": Decimal(1000), "oz": Decimal("28.349523125"), "lb": Decimal("453.59237")}
    return weight * factor[str(parcel.get("mass_unit", "g"))]


def build_track_updated(track: Json, *, test: bool = True) -> bytes:
    """The exact bytes Shippo POSTs for a track_updated webhook."""
    return json.dumps({"event": "track_updated", "test": test, "data": track}).encode()


class FakeShippo(FakeCarrierServer):
    """Shippo's shipment, rate, transaction, refund and track endpoints, in memory."""

    thread_name = "fake-shippo"

    def __init__(self, api_token: str = "shippo_test_fake", *,  # noqa: S107 - a fake's token
                 rate_table: Sequence[FakeServiceLevel] = DEFAULT_RATE_TABLE) -> None:
        super().__init__()
        self.api_token = api_token
        self.rate_table = tuple(rate_table)
        self.shipments: dict[str, Json] = {}
        self.rates: dict[str, Json] = {}
        self.transactions: dict[str, Json] = {}
        self.refunds: dict[str, Json] = {}
        self.tracks: dict[tuple[str, str], Json] = {}
        self._purchases: Counter[str] = Counter()
        self._purchase_errors: list[str] = []
        self._sequence = 0

    @property
    def url(self) -> str:
        """The API base URL (what SHIPPO_API_BASE_URL would be): http://127.0.0.1:<port>."""
        return self.root

    # --- what tests set up and look at --------------------------------------------------------------------

    def purchases(self, reference: str) -> int:
        """How many labels were bought with this reference as metadata (refunded ones included)."""
        with self._lock:
            return self._purchases[reference]

    def fail_next_purchase(self, text: str, times: int = 1) -> None:
        """Answer the next purchases with a Transaction of status ERROR carrying `text`."""
        with self._lock:
            self._purchase_errors.extend([text] * times)

    def track_of(self, carrier: str, number: str) -> Json:
        with self._lock:
            return copy.deepcopy(self._track(carrier, number))

    def advance_track(self, carrier: str, number: str, status: str, details: str, *,
                      substatus: str | None = None, city: str | None = None, state: str | None = None,
                      zip: str | None = None, country: str | None = "US", at: datetime | None = None) -> Json:
        """Record one tracking event as the number's current status; returns the Track."""
        moment = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = {"object_created": moment, "object_updated": moment, "object_id": _oid(), "status": status,
                 "status_details": details, "status_date": moment,
                 "substatus": ({"code": substatus, "text": details, "action_required": False}
                               if substatus else None),
                 "location": {"city": city, "state": state, "zip": zip, "country": country}}
        with self._lock:
            track = self._track(carrier, number)
            track["tracking_history"].append(entry)
            track["tracking_status"] = copy.deepcopy(entry)
            return copy.deepcopy(track)

    def send_track_updated(self, receiver_url: str, token: str, carrier: str, number: str, *,
                           timeout: float = 10) -> requests.Response:
        """POST a track_updated webhook for the number to `receiver_url?token=…`, as Shippo does."""
        body = build_track_updated(self.track_of(carrier, number))
        separator = "&" if "?" in receiver_url else "?"
        return requests.post(f"{receiver_url}{separator}{urlencode({'token': token})}", data=body,
                             headers={"Content-Type": "application/json"}, timeout=timeout)

    # --- the wire -----------------------------------------------------------------------------------------

    def authorized(self, headers: dict[str, str]) -> bool:
        return header(headers, "Authorization") == f"ShippoToken {self.api_token}"

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        segments = [s for s in path.split("/") if s]
        request = body if isinstance(body, dict) else {}
        with self._lock:
            if segments == ["shipments"] and method == "POST":
                return self._create_shipment(request)
            if segments == ["transactions"] and method == "POST":
                return self._create_transaction(request)
            if segments == ["transactions"] and method == "GET":
                return self._list_transactions(query)
            if segments == ["refunds"] and method == "POST":
                return self._create_refund(request)
            if segments == ["tracks"] and method == "POST":
                carrier, number = str(request.get("carrier") or ""), str(request.get("tracking_number") or "")
                if not carrier or not number:
                    return Answer(400, {"carrier": ["This field is required."]} if not carrier
                                  else {"tracking_number": ["This field is required."]})
                track = self._track(carrier, number)
                track["metadata"] = request.get("metadata")
                return Answer(201, copy.deepcopy(track))
            if len(segments) == 3 and segments[0] == "tracks" and method == "GET":
                return Answer(200, copy.deepcopy(self._track(segments[1], segments[2])))
            if len(segments) == 2 and method == "GET":
                store = {"shipments": self.shipments, "rates": self.rates,
                         "transactions": self.transactions, "refunds": self.refunds}.get(segments[0])
                found = store.get(segments[1]) if store is not None else None
                if found is not None:
                    return Answer(200, self._public(found))
        return self.error(404, "Not found.")

    @staticmethod
    def _public(thing: Json) -> Json:
        return {k: copy.deepcopy(v) for k, v in thing.items() if not k.startswith("_")}

    # --- shipments and rates ------------------------------------------------------------------------------

    def _create_shipment(self, request: Json) -> Answer:
        missing = {field: ["This field is required."] for field in ("address_from", "address_to", "parcels")
                   if not request.get(field)}
        if missing:
            return Answer(400, missing)
        for parcel in request["parcels"]:
            absent = [f for f in ("weight", "mass_unit", "length", "width", "height", "distance_unit")
                      if not parcel.get(f)]
            if absent:
                return Answer(400, {"parcels": [f"{f}: This field is required." for f in absent]})
        grams = sum((_grams(p) for p in request["parcels"]), Decimal(0))
        kilos = max(grams / 1000, Decimal("0.1"))
        shipment_id = _oid()
        now = _now()
        rates = []
        for level in self.rate_table:
            rate: Json = {
                "object_id": _oid(), "object_created": now, "object_owner": "fake@example.com",
                "shipment": shipment_id, "attributes": [], "amount": str((level.base + level.per_kg * kilos)
                                                                         .quantize(Decimal("0.01"))),
                "currency": "USD", "amount_local": None, "currency_local": "USD", "provider": level.provider,
                "provider_image_75": None, "provider_image_200": None,
                "servicelevel": {"name": level.name, "token": level.token, "terms": ""},
                "estimated_days": level.estimated_days, "arrives_by": None, "duration_terms": "",
                "messages": [], "carrier_account": f"ca_{level.carrier}", "test": True, "zone": "4",
                "_carrier": level.carrier,
            }
            rate["amount_local"] = rate["amount"]
            self.rates[rate["object_id"]] = rate
            rates.append(rate)
        shipment = {
            "object_id": shipment_id, "object_created": now, "object_updated": now, "object_owner":
            "fake@example.com", "status": "SUCCESS", "address_from": request["address_from"],
            "address_to": request["address_to"], "parcels": request["parcels"],
            "customs_declaration": request.get("customs_declaration"), "extra": request.get("extra") or {},
            "metadata": request.get("metadata") or "", "shipment_date": now, "messages": [], "test": True,
            "rates": [self._public(r) for r in rates],
        }
        self.shipments[shipment_id] = shipment
        return Answer(201, copy.deepcopy(shipment))

    # --- transactions and refunds -------------------------------------------------------------------------

    def _create_transaction(self, request: Json) -> Answer:
        rate = self.rates.get(str(request.get("rate") or ""))
        if rate is None:
            return Answer(400, {"rate": [f"Rate with object_id {request.get('rate')!r} does not exist."]})
        self._sequence += 1
        now = _now()
        transaction: Json = {
            "object_id": _oid(), "object_state": "VALID", "object_created": now, "object_updated": now,
            "object_owner": "fake@example.com", "test": True, "rate": rate["object_id"],
            "metadata": request.get("metadata") or "", "label_file_type": request.get("label_file_type", "PDF"),
            "tracking_number": None, "tracking_status": "UNKNOWN", "tracking_url_provider": None, "eta": None,
            "label_url": None, "commercial_invoice_url": None, "messages": [], "qr_code_url": None,
            "_order": self._sequence,
        }
        if self._purchase_errors:
            text = self._purchase_errors.pop(0)
            transaction.update(status="ERROR", object_state="INVALID",
                               messages=[{"source": rate["provider"], "code": "", "text": text}])
        else:
            if rate["_carrier"] == "ups":
                number = "1Z" + secrets.token_hex(8).upper()
                tracking_url = f"https://www.ups.com/track?tracknum={number}"
            else:
                number = "92" + str(secrets.randbelow(10**20)).zfill(20)
                tracking_url = f"https://tools.usps.com/go/TrackConfirmAction_input?origTrackNum={number}"
            transaction.update(
                status="SUCCESS", tracking_number=number, tracking_status="PRE_TRANSIT",
                tracking_url_provider=tracking_url,
                label_url=f"https://shippo-delivery.s3.amazonaws.com/{transaction['object_id']}.pdf")
            track = self._track(rate["_carrier"], number)
            self.advance_track(rate["_carrier"], number, "PRE_TRANSIT", "The label was created.",
                               substatus="information_received")
            track["transaction"] = transaction["object_id"]
            if transaction["metadata"]:
                self._purchases[transaction["metadata"]] += 1
        self.transactions[transaction["object_id"]] = transaction
        return Answer(201, self._public(transaction))

    def _list_transactions(self, query: dict[str, str]) -> Answer:
        found = sorted(self.transactions.values(), key=lambda t: t["_order"], reverse=True)
        if query.get("object_status"):
            found = [t for t in found if t["status"] == query["object_status"]]
        size = min(int(query.get("results", 5)), 100)
        page = max(int(query.get("page", 1)), 1)
        chunk = found[(page - 1) * size: page * size]

        def link(number: int) -> str:
            return f"{self.url}/transactions/?{urlencode({**query, 'page': number, 'results': size})}"

        return Answer(200, {"next": link(page + 1) if page * size < len(found) else None,
                            "previous": link(page - 1) if page > 1 else None,
                            "results": [self._public(t) for t in chunk]})

    def _create_refund(self, request: Json) -> Answer:
        transaction = self.transactions.get(str(request.get("transaction") or ""))
        if transaction is None:
            return Answer(400, {"transaction": ["Transaction does not exist."]})
        if transaction["status"] != "SUCCESS":
            return Answer(400, {"transaction": [f"A transaction with status {transaction['status']} "
                                                "cannot be refunded."]})
        now = _now()
        refund = {"object_id": _oid(), "object_created": now, "object_updated": now,
                  "object_owner": "fake@example.com", "status": "QUEUED", "transaction": transaction["object_id"],
                  "test": True}
        transaction.update(status="REFUNDPENDING", object_updated=now)
        self.refunds[refund["object_id"]] = refund
        return Answer(201, copy.deepcopy(refund))

    # --- tracks -------------------------------------------------------------------------------------------

    def _track(self, carrier: str, number: str) -> Json:
        key = (carrier, number)
        if key not in self.tracks:
            self.tracks[key] = {
                "carrier": carrier, "tracking_number": number, "address_from": None, "address_to": None,
                "eta": None, "original_eta": None, "servicelevel": {"name": None, "token": None},
                "metadata": None, "tracking_status": None, "tracking_history": [], "transaction": None,
                "messages": [], "test": True,
            }
            status = TEST_TRACKING_NUMBERS.get(number) if carrier == "shippo" else None
            if status is not None:
                self.advance_track(carrier, number, status, f"Test track: {status}")
        return self.tracks[key]
