"""A fake Shopify Admin GraphQL API on loopback, for tests, the demo and benchmarks.

    fake = FakeShopify(access_token="shpat_test").start()
    fake.add_order(json.loads(Path("orders_create.json").read_text()))   # a REST Order, as webhooks carry it
    ... point SHOPIFY_API_BASE_URL at fake.url ...
    fake.stop()

It speaks the real wire protocol: `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`,
a `{query, variables, operationName}` body parsed with graphql-core, answers shaped like Shopify's
(`data` holding exactly the selected fields, `extensions.cost` with a leaky-bucket `throttleStatus`).
Root fields served: `order(id:)`, `orders(first, after, sortKey, reverse, query: "updated_at:>='…'")`,
`webhookSubscriptionCreate(topic:, webhookSubscription:)`. Orders are stored as REST JSON and converted to
GraphQL `Order` nodes on the way out, so the webhook fixtures fill it.

Failure modes: `fail_next(status, times, retry_after=)` answers the next requests with that HTTP status;
`hang_next(times)` holds requests without answering (until `hang_seconds` or `stop()`); the cost bucket
(`bucket_size`, `restore_rate`) answers THROTTLED with HTTP 200 or, with `throttle_status=429`, HTTP 429.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, parse, value_from_ast_untyped
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from integrations.fakeserver import Fault, Faults, LoopbackServer, header, retry_after_header

GRAPHQL_PATH = re.compile(r"^/admin/api/(?P<version>[\w-]+)/graphql\.json$")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105
MUTATION_COST = 10
JSON = dict[str, Any]
# (HTTP status, extra headers, JSON body); status 0 = hang up without answering.
Answer = tuple[int, dict[str, str], Any]


# --- the pieces of a GraphQL answer ---------------------------------------------------------------------


@dataclass
class Connection:
    """A paginated list; `first`/`after` from the query select the page, cursors are opaque sort keys."""

    items: list[tuple[Any, Any]]  # (sort key, node), in order

    @classmethod
    def of(cls, nodes: Iterable[Any]) -> Connection:
        return cls([(index, node) for index, node in enumerate(nodes)])

    def page(self, arguments: Mapping[str, Any]) -> JSON:
        reverse = bool(arguments.get("reverse"))
        items = self.items[::-1] if reverse else self.items
        after = arguments.get("after")
        if after:
            # Like Shopify's, a cursor is a position in the sort order: it survives changes to the list.
            key = _decode_cursor(after)
            items = [(k, node) for k, node in items if (k < key if reverse else k > key)]
        size = arguments.get("first")
        page = items[:size] if isinstance(size, int) else items
        return {
            "edges": [{"cursor": _encode_cursor(key), "node": node} for key, node in page],
            "nodes": [node for _, node in page],
            "pageInfo": {
                "hasNextPage": len(items) > len(page),
                "hasPreviousPage": bool(after),
                "startCursor": _encode_cursor(page[0][0]) if page else None,
                "endCursor": _encode_cursor(page[-1][0]) if page else None,
            },
        }


def _encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        return None


# --- REST Order JSON → GraphQL Order node ---------------------------------------------------------------


def _gid(kind: str, value: Any) -> str:
    return f"gid://shopify/{kind}/{value}"


def _utc(value: Any) -> str | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bag(amount: Any, currency: str) -> JSON:
    money = {"amount": str(amount if amount not in (None, "") else "0.0"), "currencyCode": currency}
    return {"shopMoney": money, "presentmentMoney": dict(money)}


def _rest_amount(data: Mapping[str, Any], name: str) -> str:
    money_set = data.get(f"{name}_set")
    if isinstance(money_set, Mapping):
        return str(money_set["shop_money"]["amount"])
    return str(data.get(name) or "0.00")


def _address(data: Mapping[str, Any] | None) -> JSON | None:
    if not data:
        return None
    return {
        "name": data.get("name"), "firstName": data.get("first_name"), "lastName": data.get("last_name"),
        "company": data.get("company"), "address1": data.get("address1"), "address2": data.get("address2"),
        "city": data.get("city"), "province": data.get("province"), "provinceCode": data.get("province_code"),
        "zip": data.get("zip"), "country": data.get("country"), "countryCodeV2": data.get("country_code"),
        "phone": data.get("phone"),
    }


def _customer(data: Mapping[str, Any] | None) -> JSON | None:
    if not data:
        return None
    email, phone = data.get("email"), data.get("phone")
    first, last = data.get("first_name"), data.get("last_name")
    return {
        "id": _gid("Customer", data.get("id")), "firstName": first, "lastName": last,
        "displayName": " ".join(p for p in (first, last) if p) or (email or ""),
        "email": email, "phone": phone,
        "defaultEmailAddress": {"emailAddress": email} if email else None,
        "defaultPhoneNumber": {"phoneNumber": phone} if phone else None,
    }


def _shipped(order: Mapping[str, Any]) -> dict[int, int]:
    shipped: dict[int, int] = {}
    for fulfillment in order.get("fulfillments") or []:
        if str(fulfillment.get("status") or "").lower() in {"cancelled", "error", "failure"}:
            continue
        for line in fulfillment.get("line_items") or []:
            shipped[line["id"]] = shipped.get(line["id"], 0) + int(line.get("quantity") or 0)
    return shipped


def _refunded(order: Mapping[str, Any]) -> dict[int, int]:
    refunded: dict[int, int] = {}
    for refund in order.get("refunds") or []:
        for line in refund.get("refund_line_items") or []:
            key = line["line_item_id"]
            refunded[key] = refunded.get(key, 0) + int(line.get("quantity") or 0)
    return refunded


def _line_item(line: Mapping[str, Any], currency: str, shipped: int, refunded: int) -> JSON:
    if "discount_allocations" in line:
        allocations = [{"allocatedAmountSet": _bag(_rest_amount(a, "amount"), currency)}
                       for a in line.get("discount_allocations") or []]
    else:
        discount = _rest_amount(line, "total_discount")
        allocations = [{"allocatedAmountSet": _bag(discount, currency)}] if Decimal(discount) else []
    if not shipped and line.get("fulfillment_status") == "fulfilled":
        shipped = int(line["quantity"])
    # REST's current_quantity (API 2024-01 on) when the order carries it: an edit removed units.
    current = int(line["current_quantity"]) if "current_quantity" in line else max(0, int(line["quantity"]) - refunded)
    return {
        "id": _gid("LineItem", line["id"]), "title": line.get("title"), "name": line.get("name"),
        "sku": line.get("sku"), "variantTitle": line.get("variant_title"), "quantity": line["quantity"],
        "currentQuantity": current, "unfulfilledQuantity": max(0, current - shipped),
        "requiresShipping": line.get("requires_shipping", True),
        "originalUnitPriceSet": _bag(_rest_amount(line, "price"), currency),
        "discountAllocations": allocations,
    }


def _refund(refund: Mapping[str, Any], currency: str) -> JSON:
    refunded = sum((Decimal(str(t.get("amount") or "0")) for t in refund.get("transactions") or []
                    if t.get("kind") == "refund" and t.get("status") == "success"), Decimal("0"))
    return {
        "id": _gid("Refund", refund["id"]), "legacyResourceId": str(refund["id"]),
        "createdAt": _utc(refund.get("created_at")), "processedAt": _utc(refund.get("processed_at")),
        "note": refund.get("note"), "totalRefundedSet": _bag(f"{refunded:.2f}", currency),
        "refundLineItems": Connection.of({"quantity": line.get("quantity"),
                                          "lineItem": {"id": _gid("LineItem", line["line_item_id"])}}
                                         for line in refund.get("refund_line_items") or []),
    }


_FULFILLMENT_DISPLAY = {None: "UNFULFILLED", "partial": "PARTIALLY_FULFILLED", "fulfilled": "FULFILLED",
                        "restocked": "RESTOCKED", "pending": "UNFULFILLED", "unfulfilled": "UNFULFILLED"}


def _shipping_total(order: Mapping[str, Any]) -> str:
    if isinstance(order.get("total_shipping_price_set"), Mapping):
        return _rest_amount(order, "total_shipping_price")
    lines = order.get("shipping_lines") or []
    return str(sum((Decimal(_rest_amount(line, "price")) for line in lines), Decimal("0")))


def order_node(order: Mapping[str, Any]) -> JSON:
    """The GraphQL `Order` Shopify would serve for this REST Order (what Orderline reads, and a bit more)."""
    currency = str(order.get("currency") or "USD")
    shipped, refunded = _shipped(order), _refunded(order)
    financial = order.get("financial_status")
    return {
        "id": _gid("Order", order["id"]), "legacyResourceId": str(order["id"]), "name": order.get("name"),
        "createdAt": _utc(order.get("created_at")), "updatedAt": _utc(order.get("updated_at")),
        "processedAt": _utc(order.get("processed_at") or order.get("created_at")),
        "cancelledAt": _utc(order.get("cancelled_at")),
        "cancelReason": str(order["cancel_reason"]).upper() if order.get("cancel_reason") else None,
        "currencyCode": currency, "email": order.get("email") or None, "phone": order.get("phone"),
        "customerLocale": order.get("customer_locale"), "note": order.get("note"),
        "tags": [t.strip() for t in str(order.get("tags") or "").split(",") if t.strip()],
        "taxesIncluded": bool(order.get("taxes_included")),
        "displayFinancialStatus": str(financial).upper() if financial else None,
        "displayFulfillmentStatus": _FULFILLMENT_DISPLAY.get(order.get("fulfillment_status"), "UNFULFILLED"),
        "customer": _customer(order.get("customer")),
        "shippingAddress": _address(order.get("shipping_address")),
        "billingAddress": _address(order.get("billing_address")),
        "totalShippingPriceSet": _bag(_shipping_total(order), currency),
        "totalTaxSet": _bag(_rest_amount(order, "total_tax"), currency),
        "totalDiscountsSet": _bag(_rest_amount(order, "total_discounts"), currency),
        "totalPriceSet": _bag(_rest_amount(order, "total_price"), currency),
        "shippingLines": Connection.of({"title": s.get("title"), "code": s.get("code")}
                                       for s in order.get("shipping_lines") or []),
        "refunds": [_refund(r, currency) for r in order.get("refunds") or []],
        "lineItems": Connection.of(
            _line_item(line, currency, shipped.get(line["id"], 0), refunded.get(line["id"], 0))
            for line in order.get("line_items") or []),
    }


# --- reading a GraphQL request --------------------------------------------------------------------------


def _fields(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
            ) -> Iterable[FieldNode]:
    """The fields of a selection, fragments spread in (type conditions are not checked: one type per spot)."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            yield from _fields(fragments[selection.name.value].selection_set, fragments)


def _arguments(node: FieldNode, variables: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(variables)
    return {arg.name.value: value_from_ast_untyped(arg.value, values) for arg in node.arguments or ()}


def estimate_cost(selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode],
                  variables: Mapping[str, Any]) -> int:
    """Shopify's requested cost, by its published rules: scalars 0, objects 1, a connection or list with
    `first: N` costs 2 + N × its item. An estimate: unpaginated lists count as one item."""
    total = 0
    for node in _fields(selection_set, fragments):
        if node.selection_set is None:
            continue
        size = _arguments(node, variables).get("first")
        if not isinstance(size, int):
            total += 1 + estimate_cost(node.selection_set, fragments, variables)
            continue
        per_item, once = 0, 0
        children = list(_fields(node.selection_set, fragments))
        for child in children:
            cost = estimate_cost(child.selection_set, fragments, variables) if child.selection_set else 0
            if child.name.value in ("nodes", "edges"):
                per_item += cost + (1 if child.name.value == "nodes" else 0)
            elif child.selection_set is not None:
                once += 1 + cost
        if not any(child.name.value in ("nodes", "edges") for child in children):
            per_item = 1 + estimate_cost(node.selection_set, fragments, variables)
        total += 2 + size * per_item + once
    return total


def select(value: Any, selection_set: SelectionSetNode | None,
           fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]) -> Any:
    """Keep only what the query selected, as a GraphQL server does; pages connections on the way."""
    if selection_set is None or value is None:
        return value
    if isinstance(value, list):
        return [select(item, selection_set, fragments, variables) for item in value]
    if not isinstance(value, Mapping):
        return value
    result: JSON = {}
    for node in _fields(selection_set, fragments):
        name = node.name.value
        child = value.get(name)
        arguments = _arguments(node, variables)
        if isinstance(child, Connection):
            child = child.page(arguments)
        elif isinstance(child, list) and isinstance(arguments.get("first"), int):
            child = child[:arguments["first"]]
        key = node.alias.value if node.alias else name
        result[key] = select(child, node.selection_set, fragments, variables)
    return result


def _count_objects(value: Any) -> int:
    if isinstance(value, list):
        return sum(_count_objects(item) for item in value)
    if isinstance(value, Mapping):
        return 1 + sum(_count_objects(item) for item in value.values())
    return 0


_SEARCH_TERM = re.compile(r"(?P<field>updated_at|created_at):(?P<op>>=|<=|>|<)?'?(?P<value>[^' ]+)'?")
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
    "": lambda a, b: a == b,
}


def _matches(node: Mapping[str, Any], query: str | None) -> bool:
    """Shopify's order search, for the terms Orderline sends (`updated_at:>='ISO'`, created_at too)."""
    for term in _SEARCH_TERM.finditer(query or ""):
        key = "updatedAt" if term["field"] == "updated_at" else "createdAt"
        wanted = _utc(term["value"]) or ""
        if not _COMPARE[term["op"] or ""](str(node.get(key) or ""), wanted):
            return False
    return True


# --- the server -----------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    root_fields: list[str] = field(default_factory=list)
    status: int | None = None  # what the fake answered; 0 for a hang
    response: Any = None


class FakeShopify(LoopbackServer[RecordedRequest]):
    """A loopback Shopify Admin API. Thread-safe; see the module docstring for what it serves."""

    thread_name = "fake-shopify"
    content_type = "application/json; charset=utf-8"

    def __init__(self, *, access_token: str = "shpat_test_token", bucket_size: float = 1000.0,  # noqa: S107
                 restore_rate: float = 50.0, throttle_status: int = 200, hang_seconds: float = 30.0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.access_token = access_token
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self.throttle_status = throttle_status
        self.hang_seconds = hang_seconds
        self.webhook_subscriptions: list[JSON] = []
        self._orders: dict[str, JSON] = {}
        self._failures = Faults()
        self._hangs = Faults()
        self._available = bucket_size
        self._refilled_at = time.monotonic()
        self._bind()  # the URL is known before start()

    # --- control --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The shop's root URL (what SHOPIFY_API_BASE_URL takes); the API lives under /admin/api/<version>."""
        return self.root

    def add_order(self, order: Mapping[str, Any]) -> None:
        """Store (or replace) a REST Order, e.g. a webhook fixture."""
        with self._lock:
            self._orders[str(order["id"])] = json.loads(json.dumps(order))

    def remove_order(self, order_id: str | int) -> None:
        with self._lock:
            self._orders.pop(str(order_id), None)

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = None,
                  body: Any = None, after: int = 0) -> None:
        """Answer `times` requests with this HTTP status (and Retry-After, and `body` instead of Shopify's
        usual error body, if given), once `after` more requests have been answered normally."""
        self._failures.add(Fault(status, retry_after_header(retry_after), body, after=after), times)

    def hang_next(self, times: int = 1) -> None:
        """Hold the next `times` requests without answering, for `hang_seconds` or until stop()."""
        self._hangs.add(Fault(), times)

    def drain_bucket(self, to: float = 0.0) -> None:
        """Leave `to` points in the cost bucket, as after a burst of queries."""
        with self._lock:
            self._available, self._refilled_at = to, time.monotonic()

    def graphql_requests(self, root_field: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if root_field is None or root_field in r.root_fields]

    # --- answering ------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """(status, extra headers, JSON body) for one request; status 0 means hang up without answering."""
        recorded = RecordedRequest(method, path, dict(headers), None)
        answer = self._answer(recorded, raw)
        recorded.status, recorded.response = answer[0], answer[2]
        return answer

    def _answer(self, recorded: RecordedRequest, raw: bytes) -> Answer:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded.body = body
        method, path, headers = recorded.method, recorded.path, recorded.headers
        self.record(recorded)
        hang = self._hangs.take()
        failure = self._failures.take() if hang is None else None
        if hang is not None:
            self.hold(self.hang_seconds)
            return 0, {}, None
        if failure is not None:
            return self._failure(failure)
        route = GRAPHQL_PATH.match(path.split("?", 1)[0])
        if route is None or method != "POST":
            return 404, {}, {"errors": "Not Found"}
        if header(headers, "X-Shopify-Access-Token") != self.access_token:
            return 401, {}, {"errors": INVALID_TOKEN}
        if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
            return 400, {}, {"errors": {"query": "Required parameter missing or invalid"}}
        return self._graphql(recorded, body)

    @staticmethod
    def _failure(failure: Fault) -> Answer:
        status, headers = failure.status or 500, failure.headers
        if failure.body is not None:
            return status, headers, failure.body
        if status == 429:
            return 429, headers, {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
        if status == 401:
            return 401, headers, {"errors": INVALID_TOKEN}
        if status == 404:
            return 404, headers, {"errors": "Not Found"}
        message = "Internal Server Error" if status >= 500 else "Bad Request"
        return status, headers, {"errors": message}

    def _graphql(self, recorded: RecordedRequest, body: Mapping[str, Any]) -> Answer:
        try:
            document = parse(body["query"])
            operation = _operation(document, body.get("operationName"))
        except GraphQLError as error:
            return 200, {}, {"errors": [{"message": error.message, "extensions": {"code": "PARSE_ERROR"}}]}
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        variables = body.get("variables") or {}
        roots = list(_fields(operation.selection_set, fragments))
        recorded.root_fields = [node.name.value for node in roots]
        mutation = operation.operation == OperationType.MUTATION
        requested = estimate_cost(operation.selection_set, fragments, variables) + (
            MUTATION_COST * len(roots) if mutation else 0)
        with self._lock:
            available = self._refill()
            if requested > available:
                return self._throttled(requested, available)
            data, errors = self._resolve(roots, fragments, variables)
            actual = min(requested, _count_objects(data) + (MUTATION_COST * len(roots) if mutation else 0))
            self._available = available - actual
        answer: JSON = {"data": data, "extensions": {"cost": self._cost(requested, actual)}}
        if errors:
            answer["errors"] = errors
        return 200, {}, answer

    def _refill(self) -> float:
        now = time.monotonic()
        restored = (now - self._refilled_at) * self.restore_rate
        self._available = min(self.bucket_size, self._available + restored)
        self._refilled_at = now
        return self._available

    def _cost(self, requested: int, actual: int | None) -> JSON:
        status = {"maximumAvailable": self.bucket_size, "currentlyAvailable": int(self._available),
                  "restoreRate": self.restore_rate}
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}

    def _throttled(self, requested: int, available: float) -> Answer:
        body = {"errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": self._cost(requested, None)}}
        return self.throttle_status, {}, body

    def _resolve(self, roots: list[FieldNode], fragments: Mapping[str, FragmentDefinitionNode],
                 variables: Mapping[str, Any]) -> tuple[JSON, list[JSON]]:
        data: JSON = {}
        errors: list[JSON] = []
        for node in roots:
            resolver = self._root_resolvers().get(node.name.value)
            key = node.alias.value if node.alias else node.name.value
            if resolver is None:
                errors.append({"message": f"Field '{node.name.value}' doesn't exist on type 'QueryRoot'",
                               "extensions": {"code": "undefinedField"}})
                continue
            value = resolver(_arguments(node, variables))
            data[key] = select(value, node.selection_set, fragments, variables)
        return data, errors

    def _root_resolvers(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        return {"order": self._order, "orders": self._order_list,
                "webhookSubscriptionCreate": self._create_webhook,
                "fulfillmentCreate": self._create_fulfillment,
                "refundCreate": self._create_refund}  # refunds: see the block at the end of the class

    def _order(self, arguments: Mapping[str, Any]) -> Any:
        order = self._orders.get(str(arguments.get("id", "")).rsplit("/", 1)[-1])
        return {**order_node(order), **fulfilment_fields(order)} if order is not None else None

    def _order_list(self, arguments: Mapping[str, Any]) -> Any:
        nodes = [order_node(order) for order in self._orders.values()]
        nodes = [node for node in nodes if _matches(node, arguments.get("query"))]
        sort = "createdAt" if arguments.get("sortKey") == "CREATED_AT" else "updatedAt"
        if arguments.get("sortKey") in ("ID", None):
            sort = "legacyResourceId"
        # The id breaks ties, so the order is total and a cursor names one place in it.
        keyed = sorted(([str(node[sort]).zfill(24), int(node["legacyResourceId"])], node) for node in nodes)
        return Connection(keyed).page(arguments)

    def _create_webhook(self, arguments: Mapping[str, Any]) -> Any:
        topic = arguments.get("topic")
        subscription = dict(arguments.get("webhookSubscription") or {})
        uri = subscription.get("uri") or subscription.get("callbackUrl")
        if not uri:
            return {"webhookSubscription": None, "userErrors": [
                {"field": ["webhookSubscription", "uri"], "message": "Address can't be blank"}]}
        if any(s["topic"] == topic and s["uri"] == uri for s in self.webhook_subscriptions):
            return {"webhookSubscription": None, "userErrors": [
                {"field": ["webhookSubscription", "callbackUrl"],
                 "message": "Address for this topic has already been taken"}]}
        created = {"id": _gid("WebhookSubscription", 1000 + len(self.webhook_subscriptions)), "topic": topic,
                   "uri": uri, "callbackUrl": uri, "format": subscription.get("format", "JSON")}
        self.webhook_subscriptions.append(created)
        return {"webhookSubscription": created, "userErrors": []}

    # --- refunds (returns: app/returns.py) -------------------------------------------------------------
    # refundCreate stores a REST Refund on the order (so `order.refunds` and the order's line quantities
    # show it), refusing more units or money than the order has left. `@idempotent` is not honoured here:
    # Orderline's retry looks its refund up by the note, which is what the tests exercise.

    def refunds_of(self, order_id: str | int) -> list[JSON]:
        with self._lock:
            refunds: list[JSON] = json.loads(json.dumps(self._orders[str(order_id)].get("refunds") or []))
            return refunds

    def _create_refund(self, arguments: Mapping[str, Any]) -> Any:
        data = dict(arguments.get("input") or {})
        order = self._orders.get(str(data.get("orderId", "")).rsplit("/", 1)[-1])
        if order is None:
            return _user_error("refund", ["input", "orderId"], "Order does not exist")
        lines = {int(line["id"]): line for line in order.get("line_items") or []}
        refunded = _refunded(order)
        items: list[JSON] = []
        for entry in data.get("refundLineItems") or []:
            line_id = int(str(entry.get("lineItemId", "0")).rsplit("/", 1)[-1] or 0)
            quantity = int(entry.get("quantity") or 0)
            line = lines.get(line_id)
            if line is None:
                return _user_error("refund", ["input", "refundLineItems"], "Line item does not exist")
            if quantity < 1 or quantity + refunded.get(line_id, 0) > int(line["quantity"]):
                return _user_error("refund", ["input", "refundLineItems"],
                                   "Quantity cannot refund more items than were purchased")
            items.append({"line_item_id": line_id, "quantity": quantity,
                          "restock_type": str(entry.get("restockType") or "NO_RESTOCK").lower()})
        transactions = list(data.get("transactions") or [])
        amount = sum((Decimal(str(t.get("amount") or "0")) for t in transactions), Decimal("0"))
        before = sum((Decimal(str(t.get("amount") or "0")) for r in order.get("refunds") or []
                      for t in r.get("transactions") or [] if t.get("kind") == "refund"), Decimal("0"))
        if amount + before > Decimal(_rest_amount(order, "total_price")):
            return _user_error("refund", ["input", "transactions"], "Amount cannot exceed the refundable amount")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        refund = {"id": 900001 + sum(len(o.get("refunds") or []) for o in self._orders.values()),
                  "order_id": order["id"], "created_at": now, "processed_at": now, "note": data.get("note"),
                  "refund_line_items": items,
                  "transactions": [{"kind": "refund", "status": "success", "amount": f"{amount:.2f}",
                                    "gateway": t.get("gateway")} for t in transactions]}
        order.setdefault("refunds", []).append(refund)
        order["updated_at"] = now
        return {"refund": _refund(refund, str(order.get("currency") or "USD")), "userErrors": []}

    # --- fulfilments (shipping helper) -----------------------------------------------------------------

    def fulfillments(self, order_id: str | int) -> list[JSON]:
        """The order's fulfillments, as REST JSON (line_items with quantities, tracking, notify_customer)."""
        with self._lock:
            stored = (self._orders.get(str(order_id)) or {}).get("fulfillments") or []
            found: list[JSON] = json.loads(json.dumps(stored))
            return found

    def _create_fulfillment(self, arguments: Mapping[str, Any]) -> Any:
        """fulfillmentCreate: every fulfillment order line must be open with enough remaining quantity;
        the fulfillment is stored on the REST order (so `fulfillments`, the line items' unfulfilled
        quantities and the order's fulfillment status follow)."""
        data = dict(arguments.get("fulfillment") or {})
        groups = data.get("lineItemsByFulfillmentOrder") or []
        if not groups:
            return _user_error("fulfillment", ["fulfillment", "lineItemsByFulfillmentOrder"],
                               "Line items can't be blank")
        order_ids = {str(g.get("fulfillmentOrderId", "")).rsplit("/", 1)[-1] for g in groups}
        if len(order_ids) != 1 or next(iter(order_ids)) not in self._orders:
            return _user_error("fulfillment", ["fulfillment"], "Fulfillment order does not exist.")
        order = self._orders[next(iter(order_ids))]
        remaining = {int(str(item["id"]).rsplit("/", 1)[-1]): item["remainingQuantity"]
                     for item in _fulfillment_order_lines(order)}
        lines: list[JSON] = []
        for group in groups:
            for item in group.get("fulfillmentOrderLineItems") or []:
                line_id = int(str(item.get("id", "0")).rsplit("/", 1)[-1])
                quantity = int(item.get("quantity") or 0)
                if line_id not in remaining or quantity <= 0 or quantity > remaining[line_id]:
                    return _user_error("fulfillment", ["fulfillment", "lineItemsByFulfillmentOrder"],
                                       f"Invalid fulfillment order line item quantity requested for {line_id}.")
                remaining[line_id] -= quantity
                lines.append({"id": line_id, "quantity": quantity})
        tracking = dict(data.get("trackingInfo") or {})
        fulfillment_id = 5_000_000_000 + sum(len(o.get("fulfillments") or []) for o in self._orders.values()) + 1
        rest = {"id": fulfillment_id, "status": "success", "tracking_company": tracking.get("company"),
                "tracking_number": tracking.get("number"), "tracking_url": tracking.get("url"),
                "notify_customer": bool(data.get("notifyCustomer")), "line_items": lines,
                "created_at": datetime.now(UTC).isoformat()}
        order.setdefault("fulfillments", []).append(rest)
        left = sum(remaining.values())
        order["fulfillment_status"] = "fulfilled" if left == 0 else "partial"
        return {"fulfillment": _fulfillment_node(rest), "userErrors": []}


def _user_error(payload: str, field_path: list[str], message: str) -> JSON:
    """A mutation Shopify refuses: the payload's object is null and userErrors say why."""
    return {payload: None, "userErrors": [{"field": field_path, "message": message}]}


# Every order's lines are assigned to one location in the fake, as in a shop with a single location.
FAKE_LOCATION = _gid("Location", 1)


def _fulfillment_order_lines(order: Mapping[str, Any]) -> list[JSON]:
    shipped, refunded = _shipped(order), _refunded(order)
    return [{"id": _gid("FulfillmentOrderLineItem", line["id"]), "lineItem": {"id": _gid("LineItem", line["id"])},
             "remainingQuantity": max(0, int(line["quantity"]) - refunded.get(line["id"], 0)
                                      - shipped.get(line["id"], 0))}
            for line in order.get("line_items") or [] if line.get("requires_shipping", True)]


def _fulfillment_node(rest: Mapping[str, Any]) -> JSON:
    tracking = [{"company": rest.get("tracking_company"), "number": rest.get("tracking_number"),
                 "url": rest.get("tracking_url")}] if rest.get("tracking_number") else []
    return {"id": _gid("Fulfillment", rest["id"]), "status": str(rest.get("status") or "success").upper(),
            "trackingInfo": tracking,
            "fulfillmentLineItems": Connection.of({"quantity": line["quantity"],
                                                   "lineItem": {"id": _gid("LineItem", line["id"])}}
                                                  for line in rest.get("line_items") or [])}


def fulfilment_fields(order: Mapping[str, Any]) -> JSON:
    """The order's one fulfillment order (open while anything remains) and its fulfillments, as GraphQL."""
    lines = _fulfillment_order_lines(order)
    status = "OPEN" if any(line["remainingQuantity"] for line in lines) else "CLOSED"
    fulfillment_order = {"id": _gid("FulfillmentOrder", order["id"]), "status": status,
                         "assignedLocation": {"location": {"id": FAKE_LOCATION}}, "lineItems": Connection.of(lines)}
    return {"fulfillmentOrders": Connection.of([fulfillment_order]),
            "fulfillments": [_fulfillment_node(f) for f in order.get("fulfillments") or []]}


def _operation(document: DocumentNode, name: Any) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if name is None or (operation.name and operation.name.value == name):
            return operation
    raise GraphQLError(f"No operation named '{name}'" if name else "No operation in the document")
