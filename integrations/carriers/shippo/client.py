"""Shippo's REST API over `requests` (`Authorization: ShippoToken <token>`).

Credentials (`CarrierAccess.credentials`): `api_token` (shippo_test_… or shippo_live_…).
Base URL: `CarrierAccess.api_base_url` (setting SHIPPO_API_BASE_URL, default https://api.goshippo.com).
Settings read: `api_timeout_seconds`, `api_version` (sent as Shippo-API-Version), `label_file_type`
(default PDF), `find_max_pages`.

Failures: 429 → TransientError with Retry-After as `retry_after`; 5xx, timeouts, connection errors and
unreadable answers → TransientError; other 4xx → PermanentError with Shippo's message (`detail`, or the
field errors). A Transaction answered with status ERROR is a PermanentError with its `messages`.

find_label: our reference is the Transaction's `metadata`. Shippo's transaction listing has no metadata
filter (ListTransactionsRequest: rate, object_status, tracking_status, page, results), so its pages
(100 a page) are read and matched on `metadata`: SUCCESS is the label, QUEUED/WAITING raises TransientError
(Shippo is still making it: try later, do not buy), ERROR and refunded ones are skipped. More than
`find_max_pages` pages without an answer is a PermanentError: a person should look before a second label.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from app.failures import PermanentError, TransientError
from integrations.base import retry_after_seconds
from integrations.carriers.base import (
    CarrierAccess,
    Label,
    Rate,
    ShipmentRequest,
    TrackingUpdate,
    carrier_slug,
    choose_rate,
    parse_timestamp,
)
from integrations.carriers.shippo import mapping

Json = dict[str, Any]

DEFAULT_BASE_URL = "https://api.goshippo.com"
DEFAULT_API_VERSION = "2018-02-08"
# (connect, read) seconds. Synchronous rating and buying wait on the carriers.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 45.0)
DEFAULT_FIND_MAX_PAGES = 10
PAGE_SIZE = 100


def _error_message(response: requests.Response) -> str:
    # Shippo answers {"detail": "..."} for auth and throttling, and {"field": ["problem", ...]} for input.
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason or ""
    if isinstance(body, dict):
        if body.get("detail"):
            return str(body["detail"])[:500]
        if body.get("messages"):
            return mapping.messages_text(body["messages"])
        parts = []
        for field, problems in body.items():
            text = "; ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
            parts.append(text if field in ("__all__", "non_field_errors") else f"{field}: {text}")
        return "; ".join(parts)[:500]
    if isinstance(body, list):
        return "; ".join(str(item) for item in body)[:500]
    return str(body)[:300]


class ShippoCarrier:
    """One Shippo account. Raises app.failures.TransientError / PermanentError."""

    def __init__(self, api_token: str, *, base_url: str = DEFAULT_BASE_URL,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, api_version: str = DEFAULT_API_VERSION,
                 label_file_type: str = "PDF", find_max_pages: int = DEFAULT_FIND_MAX_PAGES) -> None:
        if not api_token:
            raise PermanentError("Shippo credentials need 'api_token'")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.label_file_type = label_file_type
        self.find_max_pages = find_max_pages
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"ShippoToken {api_token}", "Accept": "application/json",
                                     "Shippo-API-Version": api_version,
                                     "User-Agent": "Orderline (+shippo integration)"})

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Json | None = None, body: Json | None = None,
              maybe_done: bool = False) -> Any:
        what = f"Shippo {method} {path}"
        caution = " (the label may have been bought: find_label before buying again)" if maybe_done else ""
        try:
            response = self.session.request(method, self.base_url + path, params=params, json=body,
                                            timeout=self.timeout)
        except requests.Timeout as error:
            raise TransientError(f"{what}: no answer within {self.timeout} s{caution}") from error
        except requests.RequestException as error:
            raise TransientError(f"{what}: {type(error).__name__}: {error}{caution}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{what}: HTTP {response.status_code} {_error_message(response)}{caution}",
                                 retry_after=retry_after_seconds(response.headers))
        if response.status_code >= 400:
            raise PermanentError(f"{what}: HTTP {response.status_code} {_error_message(response)}")
        try:
            # Money stays exact should Shippo ever send a number rather than a string.
            return json.loads(response.content, parse_float=Decimal) if response.content else None
        except ValueError as error:
            raise TransientError(f"{what}: the answer is not JSON{caution}") from error

    def _object(self, method: str, path: str, **options: Any) -> Json:
        answer = self._call(method, path, **options)
        if not isinstance(answer, dict):
            raise TransientError(f"Shippo {method} {path}: expected an object, got {type(answer).__name__}")
        return answer

    # --- rating and buying --------------------------------------------------------------------------------

    def _shipment(self, request: ShipmentRequest, *, is_return: bool = False) -> Json:
        shipment = self._object("POST", "/shipments/",
                                body=mapping.shipment_request(request, is_return=is_return))
        if shipment.get("status") == "ERROR":
            raise PermanentError(f"Shippo could not rate {request.reference}: "
                                 f"{mapping.messages_text(shipment.get('messages')) or 'no reason given'}")
        return shipment

    def rates(self, request: ShipmentRequest) -> list[Rate]:
        """Create a shipment (our reference in its metadata) and return its rates, cheapest first."""
        return mapping.parse_rates_response(self._shipment(request))

    def _buy(self, rate: Rate, reference: str, *, is_return: bool = False) -> Label:
        transaction = self._object("POST", "/transactions/", maybe_done=True,
                                   body=mapping.transaction_request(rate, reference, self.label_file_type))
        if transaction.get("status") in mapping.LABEL_PENDING:
            raise TransientError(f"Shippo is still making the label for {reference} "
                                 f"(transaction {transaction.get('object_id')}): find_label later")
        return mapping.parse_label_response(transaction, rate, is_return=is_return)

    def buy_label(self, request: ShipmentRequest, rate: Rate) -> Label:
        """Buy `rate` as a Transaction stamped with the request's reference.

        Raises:
            PermanentError: Shippo refused the purchase (the Transaction's messages say why).
            TransientError: rate limited, Shippo failing or still working, or no answer: the label may exist.
        """
        return self._buy(rate, request.reference)

    def return_label(self, request: ShipmentRequest) -> Label:
        """Create a return shipment (`extra.is_return`: Shippo swaps the addresses) and buy its cheapest rate."""
        rate = choose_rate(mapping.parse_rates_response(self._shipment(request, is_return=True)),
                           request.service_level)
        if rate is None:
            raise PermanentError(f"Shippo has no {request.service_level} rate for return {request.reference}")
        return self._buy(rate, request.reference, is_return=True)

    # --- finding and voiding ------------------------------------------------------------------------------

    def find_label(self, reference: str, *, since: datetime | None = None) -> Label | None:
        """The live label bought with `reference` (see the module docstring for how)."""
        for page in range(1, self.find_max_pages + 1):
            listing = self._object("GET", "/transactions/", params={"results": PAGE_SIZE, "page": page})
            for transaction in listing.get("results") or []:
                if transaction.get("metadata") != reference:
                    continue
                created = parse_timestamp(transaction.get("object_created"))
                if since is not None and created is not None and created < since:
                    continue
                status = transaction.get("status")
                if status in mapping.LABEL_PENDING:
                    raise TransientError(f"Shippo is still making the label for {reference} "
                                         f"(transaction {transaction.get('object_id')})")
                if status == mapping.LABEL_READY:
                    rate = mapping.parse_rate(self._object("GET", f"/rates/{quote(str(transaction['rate']))}"))
                    return mapping.parse_label_response(transaction, rate)
            if not listing.get("next"):
                return None
        raise PermanentError(f"Shippo: {self.find_max_pages} pages of transactions read without ruling out "
                             f"an earlier label for {reference}; check before buying")

    def void_label(self, label: Label) -> None:
        """Ask Shippo to refund the label's transaction. One already refunded (or pending) is fine.

        Raises:
            PermanentError: Shippo refused the refund (a label already used, too old…).
        """
        transaction_id = label.provider_label_id
        if not transaction_id:
            raise PermanentError(f"label {label.tracking_number} has no Shippo transaction id to refund")
        try:
            refund = self._object("POST", "/refunds/", body=mapping.refund_request(transaction_id))
        except PermanentError:
            # A second refund is refused; the transaction then says whether the first one went through.
            current = self._object("GET", f"/transactions/{quote(transaction_id)}")
            if current.get("status") in mapping.LABEL_VOIDED:
                return
            raise
        if refund.get("status") == "ERROR":
            raise PermanentError(f"Shippo refused the refund of transaction {transaction_id}")

    # --- tracking -----------------------------------------------------------------------------------------

    def track(self, tracking_number: str, carrier: str | None = None) -> list[TrackingUpdate]:
        """The Track for the number at `carrier` (Shippo's carrier token: "usps", "fedex", "shippo" in tests).

        Raises:
            PermanentError: no carrier given (Shippo cannot look a number up without one).
        """
        if not carrier:
            raise PermanentError(f"Shippo needs the carrier to track {tracking_number}")
        track = self._object("GET", f"/tracks/{quote(carrier_slug(carrier))}/{quote(tracking_number)}")
        return mapping.parse_track_response(track)


def make_client(access: CarrierAccess) -> ShippoCarrier:
    """A client for the account in `access` (credentials and settings documented in this module)."""
    settings = access.settings
    timeout = settings.get("api_timeout_seconds")
    return ShippoCarrier(
        api_token=str(access.credentials.get("api_token") or ""),
        base_url=access.api_base_url or DEFAULT_BASE_URL,
        timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
        api_version=str(settings.get("api_version") or DEFAULT_API_VERSION),
        label_file_type=str(settings.get("label_file_type") or "PDF"),
        find_max_pages=int(settings.get("find_max_pages") or DEFAULT_FIND_MAX_PAGES),
    )
