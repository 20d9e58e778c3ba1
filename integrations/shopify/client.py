"""The Shopify Admin GraphQL API for one shop, through the ShopifyAPI package (`import shopify`).

Credentials (`ShopAccess.credentials`): `{"access_token": "shpat_…"}`, the shop's offline Admin API token,
sent as `X-Shopify-Access-Token`. `ShopAccess.external_id` is the shop's myshopify domain;
`ShopAccess.api_base_url` (setting SHOPIFY_API_BASE_URL) replaces `https://<domain>` (tests, proxies);
`ShopAccess.settings["api_version"]` picks the API version, `settings["api_timeout_seconds"]` the timeout and
`settings["api_throttle_wait_seconds"]` the longest cost-throttle wait done in place (0: never wait).

Two quirks of ShopifyAPI 12.x shape this module: `shopify.GraphQL()` copies the *global* (class-level)
site and headers when it is built, and its `execute()` calls urlopen without a timeout and prints error
bodies to stdout. So the endpoint is built under a lock from a scoped session, and the request is sent by
`_TimedGraphQL.execute`, which sends what the package sends but with a timeout and without printing.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import shopify
from shopify.api_version import ApiVersion, InvalidVersionError, VersionNotFoundError

from app.failures import Busy, PermanentError, TransientError
from app.orders.types import NewOrder
from integrations.base import ChangedOrders, FulfilmentPush, PayloadError, PushedRefund, RefundRequest, ShopAccess
from integrations.shopify import queries
from integrations.shopify.nodes import map_order_node
from integrations.shopify.topics import COMPLIANCE_TOPICS

DEFAULT_API_VERSION = "2026-07"
DEFAULT_TIMEOUT_SECONDS = 10.0
# A throttle that clears within this is waited out in place (twice at most): an order with many lines
# takes several queries, and failing the whole fetch near its end would redo them all later.
DEFAULT_THROTTLE_WAIT_SECONDS = 5.0
THROTTLE_RETRIES = 2
# GraphQL error codes worth retrying; anything else in `errors` is a problem with the request itself.
TRANSIENT_ERROR_CODES = frozenset({"THROTTLED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})
# Shopify answers a re-registration with this user error: the subscription is already there.
ALREADY_SUBSCRIBED = "already been taken"

# ShopifyResource keeps its site and headers in class and thread-local state: one session at a time.
_SESSION_LOCK = threading.Lock()


class _Throttled(Busy):
    """Shopify's cost bucket is empty (THROTTLED, or HTTP 429): not a failure, the job's turn comes when the
    bucket has refilled, so a long throttled spell never uses up the job's attempts."""


class _TimedGraphQL(shopify.GraphQL):  # type: ignore[misc]  # the package has no type hints
    """shopify.GraphQL whose request has a timeout and whose HTTP errors reach the caller unprinted."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        # The package keeps a reference to the live thread-local header dict: freeze this session's copy.
        self.headers: dict[str, str] = dict(self.headers)
        self.timeout = timeout

    def execute(self, query: str, variables: Mapping[str, Any] | None = None,
                operation_name: str | None = None) -> str:
        headers = self.merge_headers({"Accept": "application/json", "Content-Type": "application/json"},
                                     self.headers)
        body = json.dumps({"query": query, "variables": variables, "operationName": operation_name})
        # The endpoint is built from a Session (https) or from the operator's SHOPIFY_API_BASE_URL setting.
        request = urllib.request.Request(self.endpoint, body.encode("utf-8"), headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return str(response.read().decode("utf-8"))


@contextmanager
def _scoped_session(site: str, token: str) -> Iterator[None]:
    """Point ShopifyResource at one shop for the duration, then put back whatever was there."""
    with _SESSION_LOCK:
        resource = shopify.ShopifyResource
        previous_site = resource.get_site()
        previous_token = resource.get_headers().get("X-Shopify-Access-Token")
        resource.set_site(site)
        resource.get_headers()["X-Shopify-Access-Token"] = token
        try:
            yield
        finally:
            resource.set_site(previous_site)
            if previous_token is None:
                resource.get_headers().pop("X-Shopify-Access-Token", None)
            else:
                resource.get_headers()["X-Shopify-Access-Token"] = previous_token


def api_site(access: ShopAccess, version: str) -> str:
    """`<base>/admin/api/<version>`: the settings' base URL if given, else the shop's myshopify domain."""
    try:
        api_version = ApiVersion.coerce_to_version(version)
    except (InvalidVersionError, VersionNotFoundError):
        raise PermanentError(f"'{version}' is not a Shopify API version (like 2026-07)") from None
    if access.api_base_url:
        base = access.api_base_url.rstrip("/")
        return base if "/admin/api/" in base else str(api_version.api_path(base))
    session = shopify.Session(access.external_id, api_version.name)
    if session.url is None:
        raise PermanentError(f"'{access.external_id}' is not a Shopify shop domain")
    return str(session.site)


def retry_after_header(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the caller's backoff decides
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def throttle_wait(payload: Mapping[str, Any]) -> float | None:
    """Seconds until the bucket holds the query's cost: (requested − available) / restore rate."""
    cost = (payload.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return round(max(0.0, (requested - available) / rate), 3)


def _over_bucket(payload: Mapping[str, Any]) -> bool:
    """Whether the query could never run: it costs more than a full bucket (waiting would never end)."""
    cost = (payload.get("extensions") or {}).get("cost") or {}
    try:
        return float(cost["requestedQueryCost"]) > float(cost["throttleStatus"]["maximumAvailable"])
    except (KeyError, TypeError, ValueError):
        return False


def _error_messages(payload: Any) -> str:
    errors = payload.get("errors") if isinstance(payload, Mapping) else payload
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors)
    if isinstance(errors, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return str(payload)[:500]


def _error_codes(payload: Mapping[str, Any]) -> set[str]:
    errors = payload.get("errors")
    if not isinstance(errors, list):
        return set()
    return {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, Mapping)}


def _http_failure(error: urllib.error.HTTPError) -> Exception:
    try:
        raw = error.read().decode("utf-8", "replace") if error.fp is not None else ""
    except (OSError, http.client.HTTPException):
        raw = ""  # the status says enough; a body that times out must not hide it
    try:
        payload: Any = json.loads(raw) if raw else {}
    except ValueError:
        payload = {"errors": raw[:500]}
    message = f"Shopify answered HTTP {error.code}: {_error_messages(payload) or error.reason}"
    if error.code == 429 or error.code >= 500:
        retry_after = retry_after_header(error.headers.get("Retry-After") if error.headers else None)
        if retry_after is None and isinstance(payload, Mapping):
            retry_after = throttle_wait(payload)
        kind = _Throttled if error.code == 429 else TransientError
        return kind(message, retry_after=retry_after)
    return PermanentError(message)


class ShopifyClient:
    """fetch_order, changed_orders and register_webhooks over the Admin GraphQL API."""

    def __init__(self, access: ShopAccess, *, timeout: float | None = None) -> None:
        token = access.credentials.get("access_token")
        if not token:
            raise PermanentError(f"shop {access.external_id} has no access_token in its credentials")
        self.version = str(access.settings.get("api_version") or DEFAULT_API_VERSION)
        self.site = api_site(access, self.version)
        self.timeout = float(timeout or access.settings.get("api_timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
        wait = access.settings.get("api_throttle_wait_seconds")
        self.throttle_wait = float(DEFAULT_THROTTLE_WAIT_SECONDS if wait is None else wait)
        self._token = token
        self.shop = access.external_id

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GraphQL call; returns `data`. A short throttle is waited out first.

        Raises:
            TransientError: throttled beyond `throttle_wait`, 429, 5xx, timeout or connection failure.
            PermanentError: any other HTTP 4xx, or GraphQL errors that retrying cannot fix.
        """
        for _attempt in range(THROTTLE_RETRIES):
            try:
                return self._execute_once(query, variables)
            except _Throttled as throttled:
                if throttled.retry_after is None or throttled.retry_after > self.throttle_wait:
                    raise
                time.sleep(throttled.retry_after)
        return self._execute_once(query, variables)

    def _execute_once(self, query: str, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        with _scoped_session(self.site, self._token):
            graphql = _TimedGraphQL(self.timeout)
        try:
            raw = graphql.execute(query, dict(variables or {}))
        except urllib.error.HTTPError as error:
            raise _http_failure(error) from error
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise TransientError(f"Shopify {self.shop} unreachable: {reason}") from error
        try:
            payload = json.loads(raw)
        except ValueError as error:
            raise TransientError(f"Shopify {self.shop} answered with something that is not JSON") from error
        if not isinstance(payload, dict):
            raise TransientError(f"Shopify {self.shop} answered with unexpected JSON")
        if payload.get("errors"):
            self._raise_graphql_errors(payload)
        data = payload.get("data")
        return data if isinstance(data, dict) else {}

    def _raise_graphql_errors(self, payload: Mapping[str, Any]) -> None:
        codes = _error_codes(payload)
        message = f"Shopify GraphQL error: {_error_messages(payload)}"
        if "THROTTLED" in codes:
            if _over_bucket(payload):
                raise PermanentError(f"{message}: the query costs more than the shop's whole bucket holds")
            raise _Throttled(message, retry_after=throttle_wait(payload))
        if codes & TRANSIENT_ERROR_CODES:
            raise TransientError(message)
        raise PermanentError(message)

    # --- orders -----------------------------------------------------------------------------------------

    def fetch_order(self, external_id: str) -> NewOrder:
        """The order as Shopify has it now, every line item included.

        Raises:
            PermanentError: no such order (or the token may not read it).
        """
        order = self._fetch(external_id)
        if order is None:
            raise PermanentError(f"Shopify has no order {external_id} in {self.shop}")
        return order

    def _fetch(self, external_id: str) -> NewOrder | None:
        data = self.execute(queries.FETCH_ORDER, {"id": queries.order_gid(external_id)})
        node = data.get("order")
        if not isinstance(node, Mapping):
            return None
        extra = list(self._more_line_items(external_id, node))
        try:
            return map_order_node(node, extra)
        except PayloadError as error:
            raise PermanentError(f"Shopify order {external_id} cannot be mapped: {error}") from error

    def _more_line_items(self, external_id: str, node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        page = (node.get("lineItems") or {}).get("pageInfo") or {}
        while page.get("hasNextPage"):
            data = self.execute(queries.ORDER_LINE_ITEMS,
                                {"id": queries.order_gid(external_id), "after": page.get("endCursor")})
            connection = ((data.get("order") or {}).get("lineItems")) or {}
            yield from connection.get("nodes") or []
            page = connection.get("pageInfo") or {}

    def changed_orders(self, since: datetime, cursor: str | None = None) -> ChangedOrders:
        """Orders updated at or after `since`, oldest first, up to 50 a page, each fetched in full.

        When fetching one order of the page fails transiently after others succeeded, the page ends
        there (its cursor resumes right after the last order returned) rather than losing that work.
        """
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = self.execute(queries.CHANGED_ORDERS, {"first": queries.CHANGED_ORDERS_PAGE, "after": cursor,
                                                     "query": f"updated_at:>='{stamp}'"})
        connection = data.get("orders") or {}
        edges = connection.get("edges") or []
        orders: list[NewOrder] = []
        for index, edge in enumerate(edges):
            node = edge.get("node") or {}
            try:
                order = self._fetch(str(node.get("legacyResourceId")))
            except TransientError:
                if index == 0:
                    raise
                return ChangedOrders(orders, next_cursor=str(edges[index - 1]["cursor"]))
            if order is not None:  # deleted since it was listed: nothing left to reconcile
                orders.append(order)
        page = connection.get("pageInfo") or {}
        return ChangedOrders(orders, next_cursor=page.get("endCursor") if page.get("hasNextPage") else None)

    # --- webhooks ---------------------------------------------------------------------------------------

    def register_webhooks(self, address: str, topics: Sequence[str]) -> list[str]:
        """Subscribe `address` to each topic; returns the new subscription ids.

        The privacy topics are skipped: Shopify takes those from the app's configuration only.
        A topic already subscribed at this address is skipped too, so registering twice is harmless.

        Raises:
            PermanentError: Shopify refused a subscription (bad address, unknown topic).
        """
        created: list[str] = []
        for topic in topics:
            if topic in COMPLIANCE_TOPICS:
                continue
            data = self.execute(queries.CREATE_WEBHOOK, {
                "topic": queries.webhook_topic_enum(topic),
                "subscription": {"uri": address, "format": "JSON"},
            })
            result = data.get("webhookSubscriptionCreate") or {}
            errors = [e.get("message", "") for e in result.get("userErrors") or []]
            if errors and all(ALREADY_SUBSCRIBED in message for message in errors):
                continue
            if errors:
                raise PermanentError(f"Shopify refused the {topic} webhook: {'; '.join(errors)}")
            subscription = result.get("webhookSubscription") or {}
            created.append(str(subscription.get("id")))
        return created

    # --- fulfilments (shipping helper) ------------------------------------------------------------------

    def push_fulfilment(self, push: FulfilmentPush) -> str:
        """`fulfillmentCreate` on the order's open fulfillment orders for the parcel's lines and quantities,
        with its tracking; one fulfillment per Shopify location the lines are assigned to. Units already in a
        fulfillment carrying our tracking number are not sent again, so a repeated push creates nothing.
        Returns the fulfillment ids, comma-separated.

        Raises:
            PermanentError: no such order, lines Shopify has no open fulfillment order for, or Shopify's
                userErrors (with its message).
        """
        data = self.execute(queries.ORDER_FULFILMENTS, {"id": queries.order_gid(push.order_external_id)})
        order = data.get("order")
        if not isinstance(order, Mapping):
            raise PermanentError(f"Shopify has no order {push.order_external_id} in {self.shop}")
        wanted = {_line_gid(line.external_id): line.quantity for line in push.lines}
        ours = [f for f in order.get("fulfillments") or []
                if any(t.get("number") == push.tracking_number for t in f.get("trackingInfo") or [])
                and str(f.get("status") or "").upper() not in ("CANCELLED", "ERROR", "FAILURE")]
        for fulfillment in ours:
            for item in (fulfillment.get("fulfillmentLineItems") or {}).get("nodes") or []:
                key = str((item.get("lineItem") or {}).get("id"))
                if key in wanted:
                    wanted[key] = max(0, wanted[key] - int(item.get("quantity") or 0))
        ids = [str(f["id"]) for f in ours]
        by_location: dict[str, list[dict[str, Any]]] = {}
        for fulfillment_order in (order.get("fulfillmentOrders") or {}).get("nodes") or []:
            if str(fulfillment_order.get("status")) not in ("OPEN", "IN_PROGRESS"):
                continue
            location = str((((fulfillment_order.get("assignedLocation") or {}).get("location")) or {}).get("id"))
            items = []
            for item in (fulfillment_order.get("lineItems") or {}).get("nodes") or []:
                key = str((item.get("lineItem") or {}).get("id"))
                take = min(wanted.get(key, 0), int(item.get("remainingQuantity") or 0))
                if take > 0:
                    items.append({"id": item["id"], "quantity": take})
                    wanted[key] -= take
            if items:
                by_location.setdefault(location, []).append(
                    {"fulfillmentOrderId": fulfillment_order["id"], "fulfillmentOrderLineItems": items})
        missing = {k: v for k, v in wanted.items() if v > 0}
        if missing:
            raise PermanentError(f"Shopify order {push.order_external_id} has no open fulfillment order for "
                                 + ", ".join(f"{v}× {k.rsplit('/', 1)[-1]}" for k, v in sorted(missing.items())))
        for groups in by_location.values():
            ids.append(self._create_fulfilment(push, groups))
        return ",".join(ids)

    def _create_fulfilment(self, push: FulfilmentPush, groups: list[dict[str, Any]]) -> str:
        tracking = {"company": push.tracking_company, "number": push.tracking_number}
        if push.tracking_url:
            tracking["url"] = push.tracking_url
        data = self.execute(queries.CREATE_FULFILMENT, {"fulfillment": {
            "lineItemsByFulfillmentOrder": groups, "trackingInfo": tracking,
            "notifyCustomer": push.notify_customer}})
        result = data.get("fulfillmentCreate") or {}
        errors = [str(e.get("message", "")) for e in result.get("userErrors") or []]
        if errors:
            raise PermanentError(f"Shopify refused the fulfillment: {'; '.join(errors)}")
        fulfillment = result.get("fulfillment") or {}
        return str(fulfillment.get("id"))

    # --- refunds (returns: app/returns.py) ---------------------------------------------------------------

    def find_refund(self, order_external_id: str, key: str) -> PushedRefund | None:
        """The refund made earlier with our `key` in its note, or None. refundCreate is also sent with
        `@idempotent(key:)`, but Shopify keeps those keys for a limited time: the note is what lasts."""
        data = self.execute(queries.ORDER_REFUNDS, {"id": queries.order_gid(order_external_id)})
        order = data.get("order")
        if not isinstance(order, Mapping):
            raise PermanentError(f"Shopify has no order {order_external_id} in {self.shop}")
        for refund in order.get("refunds") or []:
            if key in str(refund.get("note") or ""):
                return _pushed(refund)
        return None

    def create_refund(self, request: RefundRequest) -> PushedRefund:
        """refundCreate: the returned lines (not restocked on Shopify: Orderline keeps the stock) and one
        refund transaction for the amount.

        Raises:
            PermanentError: Shopify's userErrors (more than was paid, a line already refunded).
        """
        order_id = queries.order_gid(request.order_external_id)
        data = self.execute(queries.REFUND_CREATE, {"input": {
            "orderId": order_id, "note": request.note, "notify": True,
            "refundLineItems": [{"lineItemId": f"gid://shopify/LineItem/{line_id}", "quantity": quantity,
                                 "restockType": "NO_RESTOCK"} for line_id, quantity in request.line_items.items()],
            "transactions": [{"orderId": order_id, "kind": "REFUND", "gateway": request.gateway,
                              "amount": request.amount}],
        }, "idempotencyKey": request.key})
        result = data.get("refundCreate") or {}
        errors = [str(e.get("message", "")) for e in result.get("userErrors") or []]
        if errors or not isinstance(result.get("refund"), Mapping):
            raise PermanentError(f"Shopify refused the refund of order {request.order_external_id}: "
                                 f"{'; '.join(errors) or 'no refund in the answer'}")
        return _pushed(result["refund"])


def _line_gid(external_id: str) -> str:
    return external_id if external_id.startswith("gid://") else f"gid://shopify/LineItem/{external_id}"


def _pushed(refund: Mapping[str, Any]) -> PushedRefund:
    money = ((refund.get("totalRefundedSet") or {}).get("shopMoney")) or {}
    return PushedRefund(external_id=str(refund.get("legacyResourceId") or refund.get("id")),
                        amount=str(money.get("amount") or "0"))


def make_client(access: ShopAccess) -> ShopifyClient:
    return ShopifyClient(access)
