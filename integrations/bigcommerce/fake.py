"""A fake BigCommerce on 127.0.0.1 for tests, the demo and benchmarks: the real wire protocol, in memory.

    fake = FakeBigCommerce(store_hash="abc123", access_token="token").start()
    fake.add_order(order_json, products_json, shipping_addresses_json)
    client = BigCommerceClient("abc123", "token", base_url=fake.url)
    fake.fail_next(429, reset_ms=1500)          # or 500, or fake.hang_next(seconds)
    fake.deliver("store/order/created", 250, "http://127.0.0.1:5000/webhooks/bigcommerce/1", "secret")
    fake.stop()

Served (under /stores/<store_hash>, `X-Auth-Token` checked on every call, every request recorded):
GET v2/orders (min_date_modified, sort=date_modified:asc|desc, limit ≤ 250, page; Incomplete and archived
orders left out), GET v2/orders/<id>, GET v2/orders/<id>/products, GET v2/orders/<id>/shipping_addresses
(paged), GET v3/orders/<id>/payment_actions/refunds, POST and GET v3/hooks. An empty v2 list is a 204, as
BigCommerce answers. Errors use BigCommerce's shapes: v2 `[{"status", "message"}]`, v3 `{"status", "title"}`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import requests

from integrations.bigcommerce.webhooks import SECRET_HEADER, standard_signature
from integrations.fakeserver import Fault, Faults, LoopbackServer, RecordedRequest, Reply, header, split_target

Json = dict[str, Any]
MAX_PAGE_SIZE = 250
_ROUTE = re.compile(r"^/stores/(?P<store>[^/]+)/(?P<version>v2|v3)(?P<rest>/.*)$")


@dataclass
class _StoredOrder:
    order: Json
    products: list[Json] = field(default_factory=list)
    shipping_addresses: list[Json] = field(default_factory=list)
    refunds: list[Json] = field(default_factory=list)


def rfc2822(moment: datetime) -> str:
    """A datetime the way BigCommerce v2 writes dates: "Tue, 05 Mar 2019 21:40:11 +0000"."""
    return format_datetime(moment.astimezone(UTC))


def _parse_date(text: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def build_webhook(scope: str, order_id: int | str, secret: str, *, store_hash: str,
                  signing: str = "standard", hash: str | None = None, created_at: int | None = None,
                  webhook_id: str | None = None, data: Mapping[str, Any] | None = None,
                  now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers BigCommerce sends for one event.

    `signing="standard"` signs with Standard Webhooks headers; `"header"` sends the shared secret in the
    custom header set at registration. BigCommerce's `hash` identifies the event (it repeats when a hook
    fires twice): by default each call makes a fresh one; pass the same `hash`/`created_at` to repeat one.
    """
    sent_at = int(now if now is not None else time.time())
    event_data: Json = {"type": "order", "id": int(order_id), **(data or {})}
    payload = {
        "scope": scope,
        "store_id": "1025646",
        "data": event_data,
        "hash": hash or hashlib.sha1(f"{scope}{json.dumps(event_data)}{uuid.uuid4()}".encode(),
                                     usedforsecurity=False).hexdigest(),
        "created_at": created_at if created_at is not None else sent_at,
        "producer": f"stores/{store_hash}",
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "BigCommerce-Webhooks"}
    if signing == "standard":
        message_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        headers.update({"webhook-id": message_id, "webhook-timestamp": str(sent_at),
                        "webhook-signature": standard_signature(secret, message_id, sent_at, body)})
    elif signing == "header":
        headers[SECRET_HEADER] = secret
    else:
        raise ValueError(f"signing must be 'standard' or 'header', not {signing!r}")
    return body, headers


def sample_order(order_id: int, *, date_modified: datetime | None = None, status_id: int = 11,
                 lines: int = 2) -> tuple[Json, list[Json], list[Json]]:
    """A small, self-consistent order (order, products, shipping addresses) for demos and benchmarks."""
    modified = date_modified or datetime.now(UTC)
    products = [{
        "id": order_id * 100 + n, "order_id": order_id, "product_id": 77 + n,
        "order_address_id": order_id * 10,
        "name": f"Sample product {n}", "sku": f"SKU-{n}", "type": "physical", "quantity": n,
        "price_ex_tax": "10.0000", "price_inc_tax": "11.0000", "quantity_shipped": 0,
        "applied_discounts": [], "product_options": [],
    } for n in range(1, lines + 1)]
    subtotal = sum(10 * n for n in range(1, lines + 1))
    order = {
        "id": order_id, "status_id": status_id, "status": "Awaiting Fulfillment", "currency_code": "USD",
        "date_created": rfc2822(modified), "date_modified": rfc2822(modified),
        "subtotal_ex_tax": f"{subtotal}.0000", "shipping_cost_ex_tax": "5.0000",
        "handling_cost_ex_tax": "0.0000", "total_tax": f"{Decimal(subtotal) / 10:.4f}",
        "total_inc_tax": f"{Decimal(subtotal) * 11 / 10 + 5:.4f}",
        "discount_amount": "0.0000", "coupon_discount": "0.0000", "refunded_amount": "0.0000",
        "payment_status": "captured", "customer_locale": "en", "customer_message": "", "order_source": "www",
        "billing_address": {"first_name": "Jane", "last_name": "Doe", "street_1": "555 East Street",
                            "city": "Austin", "state": "Texas", "zip": "78108", "country_iso2": "US",
                            "phone": "1234567890", "email": f"customer{order_id}@example.com"},
    }
    addresses = [{"id": order_id * 10, "order_id": order_id, "first_name": "Jane", "last_name": "Doe",
                  "street_1": "555 East Street", "city": "Austin", "state": "Texas", "zip": "78108",
                  "country_iso2": "US", "shipping_method": "Flat Rate"}]
    return order, products, addresses


class FakeBigCommerce(LoopbackServer[RecordedRequest]):
    """A threaded HTTP server speaking BigCommerce's REST API for one store."""

    thread_name = "fake-bigcommerce"

    def __init__(self, store_hash: str = "abc123",
                 access_token: str = "fake-access-token") -> None:  # noqa: S107 - a fake's token
        super().__init__()
        self.store_hash = store_hash
        self.access_token = access_token
        self.hooks: list[Json] = []
        self.shipments: dict[str, list[Json]] = {}  # order id → shipments (shipping helper)
        self._orders: dict[str, _StoredOrder] = {}
        self._faults = Faults()

    @property
    def url(self) -> str:
        """The API base URL (what BIGCOMMERCE_API_BASE_URL would be): http://127.0.0.1:<port>."""
        return self.root

    # --- the store's data ---------------------------------------------------------------------------------

    def add_order(self, order: Mapping[str, Any], products: Iterable[Mapping[str, Any]] = (),
                  shipping_addresses: Iterable[Mapping[str, Any]] = (),
                  refunds: Iterable[Mapping[str, Any]] = ()) -> str:
        """Store (or replace) an order and its sub-resources; returns its id."""
        order_id = str(order["id"])
        with self._lock:
            self._orders[order_id] = _StoredOrder(
                order=copy.deepcopy(dict(order)),
                products=[{**copy.deepcopy(dict(p)), "order_id": order["id"]} for p in products],
                shipping_addresses=[{**copy.deepcopy(dict(a)), "order_id": order["id"]}
                                    for a in shipping_addresses],
                refunds=[{**copy.deepcopy(dict(r)), "order_id": order["id"]} for r in refunds])
        return order_id

    def update_order(self, order_id: int | str, **fields: Any) -> None:
        """Change order fields as a merchant would (set date_modified too, as BigCommerce does)."""
        with self._lock:
            self._orders[str(order_id)].order.update(copy.deepcopy(fields))

    def remove_order(self, order_id: int | str) -> None:
        with self._lock:
            self._orders.pop(str(order_id), None)

    def order(self, order_id: int | str) -> Json:
        with self._lock:
            return copy.deepcopy(self._orders[str(order_id)].order)

    # --- faults -------------------------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, *, reset_ms: int | None = None) -> None:
        """Answer the next `times` requests with `status` (429 carries X-Rate-Limit-Time-Reset-Ms)."""
        headers: dict[str, str] = {}
        if status == 429:
            headers = {"X-Rate-Limit-Time-Reset-Ms": str(reset_ms if reset_ms is not None else 1000),
                       "X-Rate-Limit-Time-Window-Ms": "30000", "X-Rate-Limit-Requests-Left": "0",
                       "X-Rate-Limit-Requests-Quota": "150"}
        self._faults.add(Fault(status, headers), times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests for `seconds` before answering them normally (client timeouts)."""
        self._faults.add(Fault(hang=seconds), times)

    def requests_to(self, path_suffix: str, method: str = "GET") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- sending webhooks ---------------------------------------------------------------------------------

    def deliver(self, scope: str, order_id: int | str, receiver_url: str, secret: str,
                signing: str = "standard", **options: Any) -> requests.Response:
        """POST one webhook to `receiver_url` exactly as BigCommerce would (see `build_webhook`)."""
        body, headers = build_webhook(scope, order_id, secret, store_hash=self.store_hash, signing=signing,
                                      **options)
        return requests.post(receiver_url, data=body, headers=headers, timeout=10)

    # --- answering (called from the handler threads) ------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path, query = split_target(path)
        self.record(RecordedRequest(method, path, query, dict(headers), body, time.time()))
        match = _ROUTE.match(path)
        version = match["version"] if match else "v2"
        fault = self._faults.take()
        if fault is not None:
            self.hold(fault.hang)
            if fault.status is not None:
                return self._fault(version, fault)
        if match is None or match["store"] != self.store_hash:
            return _error(version, 404, "The requested resource was not found.")
        if header(headers, "X-Auth-Token", "") != self.access_token:
            return _error(version, 401, "You are not authorized to access this resource (X-Auth-Token).")
        try:
            return self._route(method, version, match["rest"], query, body)
        except (ValueError, KeyError) as error:
            return _error(version, 400, f"Input is invalid: {error}")

    @staticmethod
    def _fault(version: str, fault: Fault) -> Reply:
        assert fault.status is not None
        if fault.status == 429:
            message = "Too many requests: the rate limit for this store is used up."
        elif fault.status >= 500:
            message = "Internal Server Error"
        else:
            message = "Request refused by the fake"
        return _error(version, fault.status, message, fault.headers)

    def _stored(self, order_id: str) -> _StoredOrder | None:
        with self._lock:
            stored = self._orders.get(order_id)
            return copy.deepcopy(stored) if stored is not None else None

    def _list_orders(self, query: Mapping[str, str]) -> list[Json]:
        with self._lock:
            orders = [copy.deepcopy(s.order) for s in self._orders.values()]
        if "status_id" in query:
            orders = [o for o in orders if str(o.get("status_id")) == query["status_id"]]
        else:
            orders = [o for o in orders if o.get("status_id") != 0]
        orders = [o for o in orders if not o.get("is_deleted")]
        if query.get("min_date_modified"):
            since = _parse_date(query["min_date_modified"])
            orders = [o for o in orders if _parse_date(o["date_modified"]) >= since]
        field_name, _, direction = query.get("sort", "id:asc").partition(":")
        if field_name == "date_modified":
            orders.sort(key=lambda o: (_parse_date(o["date_modified"]), int(o["id"])),
                        reverse=direction == "desc")
        else:
            orders.sort(key=lambda o: int(o["id"]), reverse=direction == "desc")
        return orders

    # --- routes -------------------------------------------------------------------------------------------

    def _route(self, method: str, version: str, rest: str, query: Mapping[str, str], body: bytes) -> Reply:
        segments = [s for s in rest.split("/") if s]
        if version == "v2" and segments[:1] == ["orders"] and segments[2:3] == ["shipments"]:
            return self._v2_shipments(method, segments[1], query, body)  # shipping helper
        if version == "v2" and method == "GET" and segments[:1] == ["orders"]:
            return self._v2_orders(segments[1:], query)
        if version == "v3" and segments[:1] == ["hooks"]:
            return self._v3_hooks(method, body)
        if (version == "v3" and method == "GET" and len(segments) == 4 and segments[0] == "orders"
                and segments[2:] == ["payment_actions", "refunds"]):
            stored = self._stored(segments[1])
            if stored is None:
                return _error(version, 404, f"Order {segments[1]} not found")
            return 200, {}, {"data": stored.refunds, "meta": {}}
        if (version == "v3" and method == "POST" and len(segments) == 4 and segments[0] == "orders"
                and segments[2:] == ["payment_actions", "refunds"]):
            return self._create_refund(segments[1], body)  # refunds: see the block below
        return _error(version, 404, "The requested resource was not found.")

    # --- refunds (returns: app/returns.py) -------------------------------------------------------------
    # POST v3 orders/<id>/payment_actions/refunds stores the refund (GET lists it), adds to the order's
    # `refunded_amount`, and refuses products or money beyond what the order has left (422).

    def refunds_of(self, order_id: int | str) -> list[Json]:
        with self._lock:
            return copy.deepcopy(self._orders[str(order_id)].refunds)

    def _create_refund(self, order_id: str, body: bytes) -> Reply:
        request = json.loads(body or b"{}")
        with self._lock:
            stored = self._orders.get(order_id)
            if stored is None:
                return _error("v3", 404, f"Order {order_id} not found")
            items = [i for i in request.get("items") or [] if i.get("item_type") == "PRODUCT"]
            ordered = {int(p["id"]): int(p.get("quantity") or 0) for p in stored.products}
            done: dict[int, int] = {}
            for refund in stored.refunds:
                for item in refund.get("items") or []:
                    done[int(item["item_id"])] = done.get(int(item["item_id"]), 0) + int(item.get("quantity") or 0)
            for item in items:
                item_id, quantity = int(item.get("item_id", 0)), int(item.get("quantity") or 0)
                if item_id not in ordered or quantity < 1 or quantity + done.get(item_id, 0) > ordered[item_id]:
                    return 422, {}, {"status": 422, "title": f"Item {item_id} cannot be refunded in that quantity",
                                     "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"}
            amount = sum((Decimal(str(p.get("amount") or 0)) for p in request.get("payments") or []), Decimal("0"))
            refunded = Decimal(str(stored.order.get("refunded_amount") or "0"))
            if amount <= 0 or amount + refunded > Decimal(str(stored.order.get("total_inc_tax") or "0")):
                return 422, {}, {"status": 422, "title": "The refund amount exceeds the refundable amount",
                                 "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"}
            refund = {"id": 500 + sum(len(o.refunds) for o in self._orders.values()) + 1,
                      "order_id": int(order_id), "user_id": 0,
                      "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                      "reason": "; ".join(dict.fromkeys(str(i.get("reason") or "") for i in items)),
                      "total_amount": float(amount), "total_tax": 0, "uses_merchant_override_values": False,
                      "payments": [{"id": 1, "provider_id": p.get("provider_id"), "amount": p.get("amount"),
                                    "offline": bool(p.get("offline")), "is_declined": False,
                                    "declined_message": ""} for p in request.get("payments") or []],
                      "items": [{"item_type": "PRODUCT", "item_id": int(i["item_id"]), "quantity": int(i["quantity"]),
                                 "requested_amount": None, "reason": i.get("reason")} for i in items]}
            stored.refunds.append(refund)
            stored.order["refunded_amount"] = f"{amount + refunded:.4f}"
            return 201, {}, {"data": copy.deepcopy(refund), "meta": {}}

    def _v2_orders(self, segments: list[str], query: Mapping[str, str]) -> Reply:
        if not segments:
            return _v2_list(self._list_orders(query), query)
        stored = self._stored(segments[0])
        if stored is None:
            return _error("v2", 404, "The requested resource was not found.")
        if len(segments) == 1:
            return 200, {}, stored.order
        if segments[1:] == ["products"]:
            return _v2_list(stored.products, query)
        if segments[1:] in (["shipping_addresses"], ["shippingaddresses"]):
            return _v2_list(stored.shipping_addresses, query)
        return _error("v2", 404, "The requested resource was not found.")

    def _v2_shipments(self, method: str, order_id: str, query: Mapping[str, str], body: bytes) -> Reply:
        """GET/POST /v2/orders/{id}/shipments (shipping helper): items checked against what is left to ship."""
        with self._lock:
            stored = self._orders.get(order_id)
            if stored is None:
                return _error("v2", 404, "The requested resource was not found.")
            shipments = self.shipments.setdefault(order_id, [])
            if method == "GET":
                return _v2_list(copy.deepcopy(shipments), query)
            if method != "POST":
                return _error("v2", 405, "Method not allowed")
            request = json.loads(body or b"{}")
            addresses = {a.get("id") for a in stored.shipping_addresses}
            if request.get("order_address_id") not in addresses:
                return _error("v2", 400, "The field 'order_address_id' is invalid.")
            shipped: dict[int, int] = {}
            for shipment in shipments:
                for item in shipment["items"]:
                    shipped[item["order_product_id"]] = shipped.get(item["order_product_id"], 0) + item["quantity"]
            ordered = {int(p["id"]): int(p.get("quantity") or 0) for p in stored.products}
            items = request.get("items") or []
            for item in items:
                product, quantity = int(item.get("order_product_id") or 0), int(item.get("quantity") or 0)
                if product not in ordered or quantity <= 0 or shipped.get(product, 0) + quantity > ordered[product]:
                    return _error("v2", 400, f"The quantity specified is greater than the quantity of the product "
                                              f"that is available to ship ({product}).")
            shipment = {"id": 1 + sum(len(s) for s in self.shipments.values()), "order_id": int(order_id),
                        "order_address_id": request["order_address_id"],
                        "date_created": rfc2822(datetime.now(UTC)),
                        "tracking_number": request.get("tracking_number", ""),
                        "tracking_carrier": request.get("tracking_carrier", ""),
                        "tracking_link": request.get("tracking_link", ""), "comments": request.get("comments", ""),
                        "items": [{"order_product_id": int(i["order_product_id"]), "product_id": 0,
                                   "quantity": int(i["quantity"])} for i in items]}
            shipments.append(shipment)
            return 201, {}, copy.deepcopy(shipment)

    def _v3_hooks(self, method: str, body: bytes) -> Reply:
        if method == "GET":
            with self._lock:
                hooks = copy.deepcopy(self.hooks)
            return 200, {}, {"data": hooks, "meta": {}}
        if method != "POST":
            return _error("v3", 405, "Method not allowed")
        request = json.loads(body or b"{}")
        missing = [k for k in ("scope", "destination") if not request.get(k)]
        if missing:
            return 422, {}, {"status": 422, "title": "JSON data is missing or invalid",
                             "errors": {k: "is required" for k in missing}}
        now = int(time.time())
        with self._lock:
            hook = {"id": 20172984 + len(self.hooks), "client_id": "fake-client", "store_hash": self.store_hash,
                    "scope": request["scope"], "destination": request["destination"],
                    "is_active": bool(request.get("is_active", True)), "headers": request.get("headers"),
                    "created_at": now, "updated_at": now}
            self.hooks.append(hook)
        return 200, {}, {"data": hook, "meta": {}}


def _error(version: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An error in the version's shape: v2 `[{"status", "message"}]`, v3 `{"status", "title", "type"}`."""
    if version == "v3":
        body: Any = {"status": status, "title": message,
                     "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"}
    else:
        body = [{"status": status, "message": message}]
    return status, headers or {}, body


def _page(items: list[Json], query: Mapping[str, str], default_limit: int = 50) -> list[Json]:
    limit = min(int(query.get("limit", default_limit)), MAX_PAGE_SIZE)
    page = max(int(query.get("page", 1)), 1)
    return items[(page - 1) * limit: page * limit]


def _v2_list(items: list[Json], query: Mapping[str, str], default_limit: int = 50) -> Reply:
    """A page of a v2 list; an empty page is a 204 with no body, as BigCommerce answers."""
    page = _page(items, query, default_limit)
    return (200, {}, page) if page else (204, {}, None)
