"""The WooCommerce REST API (wc/v3) of one store, over `requests` (PROTOCOLS.md §2.2).

Credentials (`ShopAccess.credentials`, sealed in `Shop.credentials_encrypted`), from WooCommerce → Settings →
Advanced → REST API:

* `consumer_key`: "ck_…". Read access is enough to fetch and poll orders; Read/Write to register webhooks.
* `consumer_secret`: "cs_…".
* `webhook_secret` (needed by `register_webhooks` only): the secret set on every webhook it creates or
  updates. It must equal the shop's webhook secret (`Shop.webhook_secret_encrypted`), which the receiver
  verifies X-WC-Webhook-Signature with. Use URL-safe characters: WooCommerce HTML-decodes the secret before
  signing.

Base URL: `ShopAccess.api_base_url` when set, else the shop's external_id, which is the store's URL
(`https://shop.example/`, or `https://example.com/shop/` for WordPress in a sub-folder); the API is under
`<store>/wp-json/wc/v3/`, which needs pretty permalinks (WordPress's "Plain" setting serves no /wp-json/).

Auth as WooCommerce's own python client decides it: HTTP Basic over https; over plain http OAuth 1.0a
one-legged query parameters (`oauth.py`), because WooCommerce ignores Basic auth on a non-TLS request. The
OAuth signature covers the URL, so the store's WordPress "home" URL must be the URL called here.

Every call has a timeout (setting `api_timeout_seconds` in the shop's settings, default 5 s connect / 20 s
read). 429, 5xx, timeouts and connection errors raise TransientError (retry_after from Retry-After); other
4xx raise PermanentError with WooCommerce's `code: message`.

Installing without the `woocommerce` package (wc-api-python) is deliberate: it is a thin wrapper over
`requests`, and its OAuth signer leaves "/" unencoded in query values, which WooCommerce then refuses.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests
import structlog

from app.failures import PermanentError, TransientError
from app.orders.types import NewOrder
from integrations.base import ChangedOrders, FulfilmentPush, PayloadError, PushedRefund, RefundRequest, ShopAccess
from integrations.woocommerce import oauth
from integrations.woocommerce.mapping import parse_order

log = structlog.get_logger("orderline.woocommerce")

API_PREFIX = "wp-json/wc/v3/"
# (connect, read) seconds. A WordPress under load answers a single order in a second or two; a stuck read
# should free the worker and let the job retry.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 20.0)
CHANGED_PAGE_SIZE = 50
WEBHOOK_PAGE_SIZE = 100
USER_AGENT = "Orderline (+woocommerce integration)"


def _retry_after(response: requests.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _error_message(response: requests.Response) -> str:
    # WordPress REST errors are {"code": "...", "message": "...", "data": {"status": N}}.
    try:
        body = response.json()
    except ValueError:
        return (response.text[:300] or response.reason or "").strip()
    if isinstance(body, dict) and body.get("message"):
        code = f"{body['code']}: " if body.get("code") else ""
        return f"{code}{html.unescape(str(body['message']))}"[:500]
    return str(body)[:300]


def _total_pages(response: requests.Response) -> int:
    try:
        return int(response.headers.get("X-WP-TotalPages") or 0)
    except ValueError:
        return 0


def modified_after(since: datetime) -> str:
    """WooCommerce's `modified_after` (with dates_are_gmt=true) for "modified at or after `since`".

    WooCommerce keeps whole seconds and its date query's `after` is exclusive: one second earlier includes an
    order modified exactly at `since`.
    """
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    moment = since.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class WooCommerceClient:
    """One store's REST API. Raises app.failures.TransientError / PermanentError."""

    def __init__(self, store_url: str, consumer_key: str, consumer_secret: str, *,
                 webhook_secret: str | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        if not consumer_key or not consumer_secret:
            raise PermanentError("WooCommerce credentials need 'consumer_key' and 'consumer_secret'")
        if not store_url.startswith(("https://", "http://")):
            raise PermanentError(f"a WooCommerce store URL starts with https:// or http://: {store_url!r}")
        self.api_url = store_url.rstrip("/") + "/" + API_PREFIX
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.webhook_secret = webhook_secret
        self.timeout = timeout
        self.uses_oauth = not store_url.startswith("https://")
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if not self.uses_oauth:
            self.session.auth = (consumer_key, consumer_secret)

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _url(self, endpoint: str, params: Sequence[tuple[str, str]], method: str) -> str:
        url = self.api_url + endpoint
        if self.uses_oauth:
            params = oauth.signed_params(method, url, params, self.consumer_key, self.consumer_secret)
        # Encoded here, once, exactly as signed: requests must not re-encode the query.
        return f"{url}?{urlencode(params, quote_via=quote, safe='~')}" if params else url

    def _send(self, method: str, endpoint: str, params: Sequence[tuple[str, str]] = (),
              body: dict[str, Any] | None = None) -> requests.Response:
        what = f"WooCommerce {method} {endpoint}"
        try:
            response = self.session.request(method, self._url(endpoint, params, method), json=body,
                                            timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as error:
            raise TransientError(f"{what}: no answer within {self.timeout} s") from error
        except requests.RequestException as error:
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"{what}: HTTP {status} {_error_message(response)}".strip(),
                                 retry_after=_retry_after(response))
        if status >= 400:
            raise PermanentError(f"{what}: HTTP {status} {_error_message(response)}".strip())
        if 300 <= status < 400:
            # Following it would drop Basic auth or break the OAuth signature: not the canonical URL.
            raise PermanentError(f"{what}: redirected to {response.headers.get('Location')!r}; "
                                 "set the shop's URL to the store's canonical address")
        return response

    def _json(self, response: requests.Response, endpoint: str) -> Any:
        try:
            # Money stays exact even where WooCommerce sends a number (line item `price`).
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as error:
            raise PermanentError(f"WooCommerce {endpoint}: the answer is not JSON; is the REST API reachable "
                                 f"at {self.api_url} (pretty permalinks enabled)?") from error

    # --- reading orders -----------------------------------------------------------------------------------

    def fetch_order(self, external_id: str) -> NewOrder:
        """The order as WooCommerce has it now.

        Raises:
            PermanentError: the order does not exist (404) or the keys are refused (401).
            TransientError: rate limited, WooCommerce failing, or no answer in time.
            PayloadError: the order cannot be mapped.
        """
        if not external_id.isdigit():
            raise PermanentError(f"{external_id!r} is not a WooCommerce order id")
        endpoint = f"orders/{external_id}"
        return parse_order(self._json(self._send("GET", endpoint), endpoint))

    def changed_orders(self, since: datetime, cursor: str | None = None) -> ChangedOrders:
        """One page of orders modified at or after `since`, oldest first; the cursor is the next page number.

        An order that cannot be mapped is left out with a warning: it must not stop the other orders from
        being reconciled (its own webhook delivery is kept as a failed, replayable inbox entry).
        """
        page = int(cursor) if cursor and cursor.isdigit() else 1
        params = [("modified_after", modified_after(since)), ("dates_are_gmt", "true"),
                  ("orderby", "modified"), ("order", "asc"), ("per_page", str(CHANGED_PAGE_SIZE)),
                  ("page", str(page))]
        response = self._send("GET", "orders", params)
        batch = self._json(response, "orders")
        if not isinstance(batch, list):
            raise PermanentError(f"WooCommerce GET orders: expected a list, got {type(batch).__name__}")
        orders: list[NewOrder] = []
        for raw in batch:
            try:
                orders.append(parse_order(raw))
            except PayloadError as error:
                order_id = raw.get("id") if isinstance(raw, dict) else None
                log.warning("woocommerce.order_unmappable", order_id=order_id, error=str(error))
        next_cursor = str(page + 1) if page < _total_pages(response) else None
        return ChangedOrders(orders=orders, next_cursor=next_cursor)

    # --- webhooks -----------------------------------------------------------------------------------------

    def _existing_webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params = [("per_page", str(WEBHOOK_PAGE_SIZE)), ("page", str(page))]
            response = self._send("GET", "webhooks", params)
            batch = self._json(response, "webhooks")
            found += [hook for hook in batch or [] if isinstance(hook, dict)]
            if page >= _total_pages(response):
                return found
            page += 1

    def register_webhooks(self, address: str, topics: Sequence[str]) -> list[str]:
        """Point one active webhook per topic at `address`, signed with the credentials' webhook_secret.

        A webhook that already delivers that topic to `address` is updated (secret refreshed, re-activated:
        WooCommerce disables a webhook after 5 failed deliveries) instead of duplicated. Returns their ids.

        Raises:
            PermanentError: no webhook_secret in the credentials (WooCommerce would pick a secret Orderline
                cannot read), or WooCommerce refuses a topic or the keys lack write access.
        """
        if not self.webhook_secret:
            raise PermanentError("the shop's credentials have no 'webhook_secret': WooCommerce would sign "
                                 "with a secret of its own choosing and every delivery would be refused")
        existing = {(h.get("topic"), h.get("delivery_url")): h for h in self._existing_webhooks()}
        ids: list[str] = []
        for topic in topics:
            body = {"name": f"Orderline {topic}", "topic": topic, "delivery_url": address,
                    "secret": self.webhook_secret, "status": "active"}
            known = existing.get((topic, address))
            if known is not None and str(known.get("id", "")).isdigit():
                endpoint, method = f"webhooks/{known['id']}", "PUT"
            else:
                endpoint, method = "webhooks", "POST"
            answer = self._json(self._send(method, endpoint, body=body), endpoint)
            if not isinstance(answer, dict) or answer.get("id") is None:
                raise PermanentError(f"WooCommerce {method} {endpoint} ({topic}): no webhook id in answer")
            ids.append(str(answer["id"]))
        return ids

    # --- refunds (returns: app/returns.py) ---------------------------------------------------------------

    def find_refund(self, order_external_id: str, key: str) -> PushedRefund | None:
        """The refund made earlier with our `key` in its reason (WooCommerce takes no idempotency key)."""
        endpoint = f"orders/{_order_id(order_external_id)}/refunds"
        refunds = self._json(self._send("GET", endpoint, [("per_page", "100")]), endpoint)
        for refund in refunds if isinstance(refunds, list) else []:
            if isinstance(refund, dict) and key in str(refund.get("reason") or ""):
                return PushedRefund(str(refund.get("id")), str(refund.get("amount") or "0"))
        return None

    def create_refund(self, request: RefundRequest) -> PushedRefund:
        """POST orders/<id>/refunds through the payment gateway (`api_refund`), naming the returned lines.
        WooCommerce's own stock is left alone (`restock_items` false): Orderline keeps the stock."""
        endpoint = f"orders/{_order_id(request.order_external_id)}/refunds"
        body = {"amount": request.amount, "reason": request.note, "api_refund": True, "restock_items": False,
                "line_items": [{"id": int(line_id), "quantity": quantity}
                               for line_id, quantity in request.line_items.items() if line_id.isdigit()]}
        answer = self._json(self._send("POST", endpoint, body=body), endpoint)
        if not isinstance(answer, dict) or answer.get("id") is None:
            raise PermanentError(f"WooCommerce POST {endpoint}: no refund id in the answer")
        return PushedRefund(str(answer["id"]), str(answer.get("amount") or request.amount))

    # --- fulfilments (shipping helper) ------------------------------------------------------------------

    def push_fulfilment(self, push: FulfilmentPush) -> str:
        """An order note with the tracking (a customer note when `notify_customer`: WooCommerce emails it),
        and the status `completed` once every parcel has shipped. A note already carrying the tracking
        number is reused, so a repeated push adds nothing. Returns "note-<id>"."""
        order_id = push.order_external_id
        if not order_id.isdigit():
            raise PermanentError(f"{order_id!r} is not a WooCommerce order id")
        endpoint = f"orders/{order_id}/notes"
        notes = self._json(self._send("GET", endpoint), endpoint)
        note = next((n for n in notes if isinstance(n, dict) and push.tracking_number in str(n.get("note", ""))),
                    None) if isinstance(notes, list) else None
        if note is None:
            items = ", ".join(f"{line.quantity}× {line.sku or line.external_id}" for line in push.lines)
            text = f"Shipped with {push.tracking_company}, tracking number {push.tracking_number}"
            text += (f" ({push.tracking_url})" if push.tracking_url else "") + (f": {items}" if items else "")
            note = self._json(self._send("POST", endpoint, body={"note": text,
                                                                 "customer_note": push.notify_customer}), endpoint)
        if push.completes_order:
            self._send("PUT", f"orders/{order_id}", body={"status": "completed"})
        return f"note-{note.get('id')}"


def _order_id(external_id: str) -> str:
    if not external_id.isdigit():
        raise PermanentError(f"{external_id!r} is not a WooCommerce order id")
    return external_id


def make_client(access: ShopAccess) -> WooCommerceClient:
    """A client for the shop in `access` (credential keys are documented in this module)."""
    credentials = access.credentials
    timeout = access.settings.get("api_timeout_seconds")
    return WooCommerceClient(
        access.api_base_url or access.external_id,
        str(credentials.get("consumer_key") or ""),
        str(credentials.get("consumer_secret") or ""),
        webhook_secret=credentials.get("webhook_secret") or None,
        timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
    )
