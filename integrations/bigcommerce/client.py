"""The BigCommerce REST API (v2 orders, v3 refunds and hooks) for one store, over `requests`.

Credentials (`ShopAccess.credentials`, sealed in `Shop.credentials_encrypted`):

* `store_hash`: the store hash (`abc123` in `/stores/abc123/v2`); the shop's external_id when absent.
* `access_token`: the API account's token, sent as `X-Auth-Token`. Scope: Orders read-only, which covers
  orders, products, shipping addresses and v3 refunds, and (BigCommerce asks for read access to a hook's
  resource) creating the store/order/* hooks.
* `webhook_secret` (optional): sent back by BigCommerce in the `X-Orderline-Webhook-Secret` header of every
  callback of the hooks `register_webhooks` creates. It must equal the shop's stored webhook secret.

The base URL is `ShopAccess.api_base_url` (setting BIGCOMMERCE_API_BASE_URL, default
https://api.bigcommerce.com). Every call has a timeout; 429, 5xx, timeouts and connection errors raise
TransientError (429 with X-Rate-Limit-Time-Reset-Ms as retry_after), other 4xx PermanentError.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import requests

from app.failures import PermanentError, TransientError
from app.orders.types import NewOrder
from integrations.base import ChangedOrders, FulfilmentPush, PushedRefund, RefundRequest, ShopAccess
from integrations.bigcommerce import mapping
from integrations.bigcommerce.webhooks import SECRET_HEADER

DEFAULT_BASE_URL = "https://api.bigcommerce.com"
# (connect, read) seconds. BigCommerce answers order reads in well under a second; a stuck read should
# free the worker quickly and let the job retry.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 20.0)
CHANGED_PAGE_SIZE = 50
# v2 sub-resources (products, addresses) allow up to 250 per page.
SUBRESOURCE_PAGE_SIZE = 250


def _retry_after(response: requests.Response) -> float | None:
    reset_ms = response.headers.get("X-Rate-Limit-Time-Reset-Ms")
    if reset_ms:
        try:
            return max(float(reset_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return None
    return None


def _error_message(response: requests.Response) -> str:
    # v2 errors are [{"status", "message"}]; v3 errors are {"status", "title", "errors"}.
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason or ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return "; ".join(str(e.get("message") or e.get("title") or e) for e in body)[:500]
    if isinstance(body, dict):
        text = str(body.get("title") or body.get("message") or body)
        if body.get("errors"):
            text += f" {body['errors']}"
        return text[:500]
    return str(body)[:300]


class BigCommerceClient:
    """One store's API. Raises app.failures.TransientError / PermanentError."""

    def __init__(self, store_hash: str, access_token: str, *, base_url: str = DEFAULT_BASE_URL,
                 webhook_secret: str | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        if not store_hash or not access_token:
            raise PermanentError("BigCommerce credentials need 'store_hash' and 'access_token'")
        self.store_hash = store_hash
        self.webhook_secret = webhook_secret
        self.timeout = timeout
        root = base_url.rstrip("/") + f"/stores/{store_hash}"
        self.v2_url, self.v3_url = root + "/v2", root + "/v3"
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": access_token, "Accept": "application/json",
                                     "User-Agent": "Orderline (+bigcommerce integration)"})

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _call(self, method: str, url: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> Any:
        what = f"BigCommerce {method} {url.split('/stores/', 1)[-1]}"
        try:
            response = self.session.request(method, url, params=params, json=body, timeout=self.timeout)
        except requests.Timeout as error:
            raise TransientError(f"{what}: no answer within {self.timeout} s") from error
        except requests.RequestException as error:
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{what}: HTTP {response.status_code} {_error_message(response)}".strip(),
                                 retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise PermanentError(f"{what}: HTTP {response.status_code} {_error_message(response)}".strip())
        if response.status_code == 204 or not response.content:
            return None
        try:
            # Money stays exact: v3 sends amounts as JSON numbers.
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as error:
            raise TransientError(f"{what}: the answer is not JSON") from error

    def _v2_list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a v2 collection, page by page; an empty page or 204 ends it."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call("GET", self.v2_url + path, params={**params, "limit": SUBRESOURCE_PAGE_SIZE,
                                                                  "page": page})
            if not batch:
                return items
            if not isinstance(batch, list):
                raise PermanentError(f"BigCommerce GET {path}: expected a list, got {type(batch).__name__}")
            items.extend(batch)
            if len(batch) < SUBRESOURCE_PAGE_SIZE:
                return items
            page += 1

    # --- reading orders -----------------------------------------------------------------------------------

    def _refunds(self, order_id: str) -> list[dict[str, Any]]:
        answer = self._call("GET", f"{self.v3_url}/orders/{order_id}/payment_actions/refunds")
        data = answer.get("data") if isinstance(answer, dict) else None
        return list(data or [])

    def _complete(self, order: dict[str, Any]) -> NewOrder:
        order_id = str(order["id"])
        products = self._v2_list(f"/orders/{order_id}/products")
        addresses = self._v2_list(f"/orders/{order_id}/shipping_addresses")
        refunds = self._refunds(order_id) if mapping.has_refunds(order) else []
        return mapping.map_order(order, products, addresses, refunds)

    def fetch_order(self, external_id: str) -> NewOrder:
        """The order as BigCommerce has it now, with its products, shipping addresses and refunds.

        Raises:
            PermanentError: the order does not exist (404) or the token is refused (401/403).
            TransientError: rate limited, BigCommerce failing, or no answer in time.
            PayloadError: the order cannot be mapped (for example an Incomplete checkout).
        """
        order = self._call("GET", f"{self.v2_url}/orders/{external_id}")
        if not isinstance(order, dict):
            raise PermanentError(f"BigCommerce order {external_id}: no order in the answer")
        return self._complete(order)

    def changed_orders(self, since: datetime, cursor: str | None = None) -> ChangedOrders:
        """One page of orders modified at or after `since`, oldest first; the cursor is the next page."""
        page = int(cursor) if cursor else 1
        params = {"min_date_modified": format_datetime(since.astimezone(UTC)), "sort": "date_modified:asc",
                  "limit": CHANGED_PAGE_SIZE, "page": page}
        batch = self._call("GET", f"{self.v2_url}/orders", params=params) or []
        # Incomplete checkouts are not orders yet; their status change brings them in later.
        orders = [self._complete(o) for o in batch if o.get("status_id") != mapping.INCOMPLETE_STATUS_ID]
        next_cursor = str(page + 1) if len(batch) >= CHANGED_PAGE_SIZE else None
        return ChangedOrders(orders=orders, next_cursor=next_cursor)

    # --- webhooks -----------------------------------------------------------------------------------------

    def register_webhooks(self, address: str, topics: Sequence[str]) -> list[str]:
        """Create one v3 hook per scope pointing at `address`; returns the hook ids.

        When the credentials carry `webhook_secret` every hook sends it back in X-Orderline-Webhook-Secret.
        """
        created: list[str] = []
        for scope in topics:
            body: dict[str, Any] = {"scope": scope, "destination": address, "is_active": True}
            if self.webhook_secret:
                body["headers"] = {SECRET_HEADER: self.webhook_secret}
            answer = self._call("POST", f"{self.v3_url}/hooks", body=body)
            hook = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(hook, dict) or hook.get("id") is None:
                raise PermanentError(f"BigCommerce POST hooks ({scope}): no hook id in the answer")
            created.append(str(hook["id"]))
        return created

    # --- refunds (returns: app/returns.py) ---------------------------------------------------------------

    def find_refund(self, order_external_id: str, key: str) -> PushedRefund | None:
        """The refund made earlier with our `key` in its reason (the refunds API takes no idempotency key)."""
        for refund in self._refunds(order_external_id):
            items = refund.get("items") or []
            reasons = [str(refund.get("reason") or "")] + [str(i.get("reason") or "") for i in items]
            if any(key in reason for reason in reasons):
                return PushedRefund(str(refund.get("id")), str(refund.get("total_amount") or "0"))
        return None

    def create_refund(self, request: RefundRequest) -> PushedRefund:
        """POST v3 orders/<id>/payment_actions/refunds: the returned products, our key as each item's reason,
        one payment through the shop's refund provider (offline for "manual": the merchant pays it back)."""
        body = {
            "items": [{"item_type": "PRODUCT", "item_id": int(line_id), "quantity": quantity, "reason": request.note}
                      for line_id, quantity in request.line_items.items() if line_id.isdigit()],
            "payments": [{"provider_id": request.gateway, "amount": float(Decimal(request.amount)),
                          "offline": request.gateway == "manual"}],
        }
        answer = self._call("POST", f"{self.v3_url}/orders/{request.order_external_id}/payment_actions/refunds",
                            body=body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or data.get("id") is None:
            raise PermanentError(f"BigCommerce refund of order {request.order_external_id}: no refund in the answer")
        return PushedRefund(str(data["id"]), str(data.get("total_amount") or request.amount))


    # --- fulfilments (shipping helper) ------------------------------------------------------------------

    def push_fulfilment(self, push: FulfilmentPush) -> str:
        """POST /v2/orders/{id}/shipments with the parcel's items and tracking, to the order's first
        shipping address; a shipment already carrying the tracking number is reused. Returns its id."""
        order_id = push.order_external_id
        for shipment in self._v2_list(f"/orders/{order_id}/shipments"):
            if str(shipment.get("tracking_number")) == push.tracking_number:
                return str(shipment["id"])
        addresses = self._v2_list(f"/orders/{order_id}/shipping_addresses")
        if not addresses:
            raise PermanentError(f"BigCommerce order {order_id} has no shipping address to ship to")
        body = {"order_address_id": addresses[0]["id"], "tracking_number": push.tracking_number,
                "tracking_carrier": "", "shipping_provider": "", "comments": f"Shipped with {push.tracking_company}",
                "items": [{"order_product_id": int(line.external_id), "quantity": line.quantity}
                          for line in push.lines]}
        if push.tracking_url:
            body["tracking_link"] = push.tracking_url
        created = self._call("POST", f"{self.v2_url}/orders/{order_id}/shipments", body=body)
        if not isinstance(created, dict) or "id" not in created:
            raise TransientError(f"BigCommerce POST /orders/{order_id}/shipments: no shipment in the answer")
        return str(created["id"])


def make_client(access: ShopAccess) -> BigCommerceClient:
    """A client for the shop in `access` (credentials keys documented in this module)."""
    credentials = access.credentials
    timeout = access.settings.get("api_timeout_seconds")
    return BigCommerceClient(
        store_hash=str(credentials.get("store_hash") or access.external_id),
        access_token=str(credentials.get("access_token") or ""),
        base_url=access.api_base_url or DEFAULT_BASE_URL,
        webhook_secret=credentials.get("webhook_secret") or None,
        timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
    )
