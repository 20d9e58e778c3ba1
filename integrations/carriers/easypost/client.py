"""EasyPost through the official SDK (`easypost.EasyPostClient`, v10; PROTOCOLS §6.1).

Credentials (`CarrierAccess.credentials`): `api_key` (a test key, EZTK…, or a production key, EZAK…).
Base URL: `CarrierAccess.api_base_url` (setting EASYPOST_API_BASE_URL, default https://api.easypost.com/v2;
the fake serves the same paths under http://127.0.0.1:<port>/v2). Settings read: `api_timeout_seconds`,
`find_lookback_days`, `find_max_pages`, `label_format` ("PDF", "PNG", "ZPL"; the account's default if unset).

Failures: 429 → TransientError with the Retry-After header as `retry_after`; 5xx, timeouts, connection
errors and unreadable answers → TransientError; other 4xx → PermanentError with EasyPost's message and field
errors. Note the SDK mounts `HTTPAdapter(max_retries=3)` on the base URL: urllib3 retries a refused connection,
and a *read* timeout of a GET (never of a POST, so never of a purchase), up to three times.

find_label: shipments carry our `reference`. EasyPost's shipment listing (GET /v2/shipments, newest first)
has no reference filter, so purchased shipments created since `since` (default: `find_lookback_days` ago) are
read page by page (100 a page, `before_id`) and matched on `reference`; voided ones (refund_status
submitted/refunded) are skipped. More than `find_max_pages` pages without an answer is a PermanentError: the
client cannot rule out an earlier purchase, and a person should look before a second label is bought.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from easypost.easypost_client import EasyPostClient
from easypost.errors.api.api_error import ApiError
from easypost.errors.api.json_error import JsonError
from easypost.errors.api.timeout_error import TimeoutError as EasyPostTimeout
from easypost.errors.general.easypost_error import EasyPostError

from app.failures import PermanentError, TransientError
from integrations.base import retry_after_seconds
from integrations.carriers.base import (
    CarrierAccess,
    Label,
    Rate,
    ShipmentRequest,
    TrackingUpdate,
    choose_rate,
)
from integrations.carriers.easypost import mapping

T = TypeVar("T")
Json = dict[str, Any]

DEFAULT_API_BASE = "https://api.easypost.com/v2"
# (connect, read) seconds. Rating asks every carrier account and can take tens of seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 45.0)
DEFAULT_FIND_LOOKBACK = timedelta(days=7)
DEFAULT_FIND_MAX_PAGES = 20
PAGE_SIZE = 100


def _as_dict(value: Any) -> Json:
    """The SDK's EasyPostObject (or a dict) as plain JSON values."""
    if isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    if to_dict is None:
        raise TransientError(f"EasyPost answered with {type(value).__name__}, not an object")
    result = to_dict()
    if not isinstance(result, dict):
        raise TransientError("EasyPost answered with something that is not an object")
    return result


def _message(error: ApiError) -> str:
    """EasyPost's code and message, then any field errors that add to the message."""
    text = f"{error.code}: {error.message}" if error.code else str(error.message or "")
    details = []
    for item in error.errors or []:
        field, message = (item.get("field"), item.get("message")) if isinstance(item, dict) else (None, item)
        if message and message != error.message:
            details.append(f"{field}: {message}" if field else str(message))
        elif field and message:
            details.append(str(field))
    if details:
        text += f" ({'; '.join(details)})"
    return text[:500]


class EasyPostCarrier:
    """One EasyPost account. Raises app.failures.TransientError / PermanentError."""

    def __init__(self, api_key: str, *, api_base: str = DEFAULT_API_BASE,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 find_lookback: timedelta = DEFAULT_FIND_LOOKBACK, find_max_pages: int = DEFAULT_FIND_MAX_PAGES,
                 label_format: str | None = None, clock: Callable[[], datetime] | None = None) -> None:
        if not api_key:
            raise PermanentError("EasyPost credentials need 'api_key'")
        self.sdk = EasyPostClient(api_key, api_base=api_base.rstrip("/"))
        # requests takes a float or a (connect, read) pair; the SDK's annotation says int.
        self.sdk.timeout = timeout  # type: ignore[assignment]
        self.timeout = timeout
        self.find_lookback = find_lookback
        self.find_max_pages = find_max_pages
        self.label_format = label_format
        self.clock = clock or (lambda: datetime.now(UTC))
        # The SDK's errors carry no headers; its response hook sees them (Retry-After), per thread.
        self._last = threading.local()
        self.sdk.subscribe_to_response_hook(self._remember_response)  # type: ignore[no-untyped-call]

    def _remember_response(self, **response: Any) -> None:
        self._last.status = response.get("http_status")
        self._last.headers = dict(response.get("headers") or {})

    # --- calling ------------------------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T], *, maybe_done: bool = False) -> T:
        self._last.status, self._last.headers = None, {}
        where = f"EasyPost {what}"
        caution = " (the label may have been bought: find_label before buying again)" if maybe_done else ""
        try:
            return call()
        except EasyPostTimeout as error:
            if error.http_status is None:
                raise TransientError(f"{where}: no answer within {self.timeout} s{caution}") from error
            raise TransientError(f"{where}: HTTP {error.http_status} {_message(error)}{caution}") from error
        except JsonError as error:
            status = error.http_status or self._last.status
            if status is not None and 400 <= status < 500 and status != 429:
                raise PermanentError(f"{where}: HTTP {status} with an unreadable answer") from error
            raise TransientError(f"{where}: HTTP {status} with an unreadable answer{caution}",
                                 retry_after=retry_after_seconds(self._last.headers)) from error
        except ApiError as error:
            status = error.http_status
            if status is None:  # HttpError: connection refused, reset, DNS…
                raise TransientError(f"{where}: {error.message}{caution}") from error
            if status == 429 or status >= 500:
                raise TransientError(f"{where}: HTTP {status} {_message(error)}{caution}",
                                     retry_after=retry_after_seconds(self._last.headers)) from error
            raise PermanentError(f"{where}: HTTP {status} {_message(error)}") from error
        except EasyPostError as error:
            raise PermanentError(f"{where}: {error.message}") from error

    # --- rating and buying --------------------------------------------------------------------------------

    def _create_shipment(self, request: ShipmentRequest, *, is_return: bool = False) -> Json:
        body = mapping.shipment_request(request, is_return=is_return, label_format=self.label_format)
        return _as_dict(self._call("create shipment", lambda: self.sdk.shipment.create(**body)))

    def rates(self, request: ShipmentRequest) -> list[Rate]:
        """Create a shipment stamped with the request's reference and return its rates, cheapest first."""
        return mapping.parse_rates_response(self._create_shipment(request))

    def _buy(self, shipment_id: str, rate: Rate, reference: str) -> Label:
        body = mapping.buy_request(rate)
        bought = self._call(f"buy shipment {shipment_id}", lambda: self.sdk.shipment.buy(shipment_id, **body),
                            maybe_done=True)
        return mapping.parse_label_response(_as_dict(bought), reference)

    def buy_label(self, request: ShipmentRequest, rate: Rate) -> Label:
        """Buy `rate` on the shipment `rates(request)` created.

        Raises:
            PermanentError: the rate has no shipment, or EasyPost refused the purchase (422: already bought,
                rate gone, address invalid, no funds…).
            TransientError: rate limited, EasyPost failing, or no answer: the label may have been bought.
        """
        if not rate.provider_shipment_id:
            raise PermanentError(f"EasyPost rate {rate.provider_rate_id} has no shipment id to buy it on")
        return self._buy(rate.provider_shipment_id, rate, request.reference)

    def return_label(self, request: ShipmentRequest) -> Label:
        """Create a return shipment (`is_return`: EasyPost swaps the addresses) and buy its cheapest rate."""
        shipment = self._create_shipment(request, is_return=True)
        rate = choose_rate(mapping.parse_rates_response(shipment), request.service_level)
        if rate is None:
            raise PermanentError(f"EasyPost has no {request.service_level} rate for return {request.reference}")
        return self._buy(str(shipment["id"]), rate, request.reference)

    # --- finding and voiding ------------------------------------------------------------------------------

    def find_label(self, reference: str, *, since: datetime | None = None) -> Label | None:
        """The live label bought with `reference` since `since` (see the module docstring for how)."""
        start = since or (self.clock() - self.find_lookback)
        params: Json = {"purchased": "true", "page_size": PAGE_SIZE,
                        "start_datetime": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        before_id: str | None = None
        for _ in range(self.find_max_pages):
            page_params = {**params, **({"before_id": before_id} if before_id else {})}
            page = _as_dict(self._call("list shipments", partial(self.sdk.shipment.all, **page_params)))
            shipments = page.get("shipments") or []
            for shipment in shipments:
                if shipment.get("reference") == reference and mapping.is_live_label(shipment):
                    return mapping.parse_label_response(shipment, reference)
            if not page.get("has_more") or not shipments:
                return None
            before_id = str(shipments[-1]["id"])
        raise PermanentError(f"EasyPost: {self.find_max_pages} pages of shipments since {start:%Y-%m-%d %H:%M} "
                             f"read without ruling out an earlier label for {reference}; check before buying")

    def void_label(self, label: Label) -> None:
        """Ask EasyPost to refund the label's shipment. A shipment already refunded (or submitted) is fine.

        Raises:
            PermanentError: EasyPost rejected the refund (a label already scanned, too old…).
        """
        shipment_id = label.provider_shipment_id
        if not shipment_id:
            raise PermanentError(f"label {label.tracking_number} has no EasyPost shipment id to void")
        try:
            answer = _as_dict(self._call(f"refund shipment {shipment_id}",
                                         lambda: self.sdk.shipment.refund(shipment_id)))
        except PermanentError:
            # A second refund is refused; the shipment then says whether the first one went through.
            current = _as_dict(self._call(f"retrieve shipment {shipment_id}",
                                          lambda: self.sdk.shipment.retrieve(shipment_id)))
            if current.get("refund_status") in mapping.VOIDED_REFUND_STATUSES:
                return
            raise
        if answer.get("refund_status") == "rejected":
            raise PermanentError(f"EasyPost rejected the refund of shipment {shipment_id}")

    # --- tracking -----------------------------------------------------------------------------------------

    def track(self, tracking_number: str, carrier: str | None = None) -> list[TrackingUpdate]:
        """The tracker for the number: an existing one (labels bought here have one), else a new one.

        Looking first avoids paying for a second tracker (EasyPost bills trackers not made by a purchase).
        """
        filters: Json = {"tracking_code": tracking_number, "page_size": 1}
        if carrier:
            filters["carrier"] = carrier
        listing = _as_dict(self._call("list trackers", lambda: self.sdk.tracker.all(**filters)))
        trackers = listing.get("trackers") or []
        if trackers:
            return mapping.parse_tracker_response(trackers[0])
        body: Json = {"tracking_code": tracking_number, **({"carrier": carrier} if carrier else {})}
        created = self._call("create tracker", lambda: self.sdk.tracker.create(**body))
        return mapping.parse_tracker_response(_as_dict(created))

    def retrieve_tracker(self, tracker_id: str) -> list[TrackingUpdate]:
        """The updates of a tracker by its id (`Label.provider_tracker_id`)."""
        tracker = self._call(f"retrieve tracker {tracker_id}", lambda: self.sdk.tracker.retrieve(tracker_id))
        return mapping.parse_tracker_response(_as_dict(tracker))


def make_client(access: CarrierAccess) -> EasyPostCarrier:
    """A client for the account in `access` (credentials and settings documented in this module)."""
    settings = access.settings
    timeout = settings.get("api_timeout_seconds")
    lookback = settings.get("find_lookback_days")
    return EasyPostCarrier(
        api_key=str(access.credentials.get("api_key") or ""),
        api_base=access.api_base_url or DEFAULT_API_BASE,
        timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
        find_lookback=timedelta(days=float(lookback)) if lookback else DEFAULT_FIND_LOOKBACK,
        find_max_pages=int(settings.get("find_max_pages") or DEFAULT_FIND_MAX_PAGES),
        label_format=settings.get("label_format") or None,
    )
