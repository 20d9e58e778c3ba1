"""A WooCommerce store on 127.0.0.1 for tests, the demo and benchmarks.

It speaks the wire protocol Orderline meets in production (PROTOCOLS.md §2):

* REST wc/v3 under `/wp-json/wc/v3/`: `GET orders/<id>`, `GET orders` (modified_after, dates_are_gmt,
  orderby, order, per_page ≤ 100, page, status; X-WP-Total / X-WP-TotalPages / Link headers),
  `PUT orders/<id>`, `GET webhooks`, `POST webhooks`, `PUT webhooks/<id>`; errors in WordPress's
  `{code, message, data{status}}`.
* Auth as WooCommerce checks it: HTTP Basic or `consumer_key`/`consumer_secret` query parameters, or OAuth
  1.0a one-legged query parameters verified for real (signature as `WC_REST_Authentication` rebuilds it,
  15-minute timestamp window, nonces single-use). Every request records which one it used.
* Webhooks sent as WooCommerce sends them: `deliver()` posts `wp_json_encode` bytes (compact, `\\/`,
  `\\uXXXX`) with the seven X-WC-Webhook-* headers and a Hookshot User-Agent, without following redirects
  (over HTTP/1.1, where WordPress asks for 1.0); `ping()` sends the unsigned activation ping; `emit()`
  delivers to the webhooks registered through the API, with the secrets they were registered with.
* Trouble on demand: `fail_next(status, times, retry_after)` (429 with Retry-After, 500, …) and
  `hang_next(times, seconds)` (answers nothing until the client times out).

    with FakeWooCommerce() as store:
        store.add_order(json.load(open("order_created.json")))
        client = WooCommerceClient(store.url, store.consumer_key, store.consumer_secret)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from integrations.fakeserver import Fault, Faults, LoopbackServer, header, retry_after_header
from integrations.woocommerce import oauth
from integrations.woocommerce.webhooks import (
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    RESOURCE_HEADER,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    signature,
)

API_PREFIX = "/wp-json/wc/v3/"
WC_VERSION = "9.4.3"
WP_VERSION = "6.7.1"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"
OAUTH_WINDOW_SECONDS = 15 * 60
# `wc_get_webhook_topics()` in WooCommerce core; `action.<hook>` topics are accepted too.
WEBHOOK_TOPICS = frozenset({
    f"{resource}.{event}"
    for resource, events in {"coupon": ("created", "updated", "deleted", "restored"),
                             "customer": ("created", "updated", "deleted"),
                             "order": ("created", "updated", "deleted", "restored"),
                             "product": ("created", "updated", "deleted", "restored")}.items()
    for event in events
})
_WP_TIME = "%Y-%m-%dT%H:%M:%S"


# --- WooCommerce's bytes ----------------------------------------------------------------------------------


def wp_json_encode(value: Any) -> bytes:
    """JSON as PHP's json_encode writes it (WordPress's wp_json_encode): compact, `/` as `\\/`, non-ASCII as
    `\\uXXXX`. A "/" only ever occurs inside JSON strings, so replacing it everywhere is exact."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def wp_hash_delivery_id(webhook_id: int, now: float, salt: bytes = b"fake-wp-salt") -> str:
    """`wp_hash($webhook_id . strtotime('now'))`: the same for every delivery of one webhook in one second."""
    return hmac.new(salt, f"{webhook_id}{int(now)}".encode(), hashlib.md5).hexdigest()


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook POST as WooCommerce would send it: post `body` with `headers`, byte for byte."""

    headers: dict[str, str]
    body: bytes


def webhook_request(topic: str, payload: Any, secret: str, *, webhook_id: int = 1,
                    source: str = "https://shop.example/", now: float | None = None) -> WebhookRequest:
    """The headers and body of one delivery of `payload` (already the body's JSON value) for `topic`."""
    body = payload if isinstance(payload, bytes) else wp_json_encode(payload)
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SOURCE_HEADER: source,
        TOPIC_HEADER: topic,
        RESOURCE_HEADER: resource,
        EVENT_HEADER: event,
        SIGNATURE_HEADER: signature(secret, body),
        WEBHOOK_ID_HEADER: str(webhook_id),
        DELIVERY_ID_HEADER: wp_hash_delivery_id(webhook_id, time.time() if now is None else now),
    }
    return WebhookRequest(headers=headers, body=body)


def ping_request(webhook_id: int = 1) -> WebhookRequest:
    """The unsigned activation ping (`WC_Webhook::deliver_ping`)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT}
    return WebhookRequest(headers=headers, body=f"webhook_id={webhook_id}".encode())


def webhook_payload(topic: str, resource: Mapping[str, Any]) -> Any:
    """What WooCommerce puts in the body: the resource, or only its id for `*.deleted`."""
    return {"id": resource["id"]} if topic.endswith(".deleted") else resource


# --- what the fake remembers ------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # "basic", "query" (consumer_key/consumer_secret parameters), "oauth1", or None when none was offered.
    auth: str | None = None
    status: int = 0


@dataclass
class DeliveryResult:
    """One webhook POST the fake sent, and what the receiver answered."""

    url: str
    topic: str
    request: WebhookRequest
    status: int
    body: bytes

    @property
    def succeeded(self) -> bool:
        # WooCommerce's own rule (`log_delivery`): 2xx, 301 and 302 count as delivered.
        return 200 <= self.status < 303


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


def _wp_error(status: int, code: str, message: str, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (point REQUESTS_CA_BUNDLE at it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Orderline fake WooCommerce")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-woocommerce.pem", directory / "fake-woocommerce.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# --- the store --------------------------------------------------------------------------------------------


class FakeWooCommerce(LoopbackServer[RecordedRequest]):
    """A WordPress + WooCommerce REST API on 127.0.0.1 (see the module docstring)."""

    thread_name = "fake-woocommerce"
    content_type = "application/json; charset=UTF-8"
    protocol_version = "HTTP/1.0"
    server_version = "Apache"

    def __init__(self, consumer_key: str = "ck_orderline_fake",
                 consumer_secret: str = "cs_orderline_fake", *, tls: bool = False) -> None:  # noqa: S107 - a fake
        super().__init__()
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.tls = tls
        self.orders: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}  # order id → notes (shipping helper)
        self.deliveries: list[DeliveryResult] = []
        self.ca_file: Path | None = None
        self._webhook_secrets: dict[int, str] = {}
        self._nonces: set[str] = set()
        self._hangs = Faults()
        self._failures = Faults()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-woocommerce-")
        cert, key = _self_signed_certificate(Path(self._tmp.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.ca_file = cert
        return context

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        self._tmp = None

    @property
    def url(self) -> str:
        """The store's URL (WordPress's home URL), with a trailing slash: what a shop's external_id holds."""
        return self.root + "/"

    # --- what tests arrange -------------------------------------------------------------------------------

    def add_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Store (or replace) an order, a REST v3 order dict such as a fixture."""
        stored = copy.deepcopy(dict(order))
        with self._lock:
            self.orders[int(stored["id"])] = stored
        return stored

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Change an order as wp-admin would: the fields given, and date_modified(_gmt) set to now."""
        stamp = datetime.now(UTC).strftime(_WP_TIME)
        with self._lock:
            order = self.orders[order_id]
            order.update(copy.deepcopy(changes))
            order["date_modified"] = order["date_modified_gmt"] = stamp
            return copy.deepcopy(order)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` API requests answer `status` (with Retry-After when given), before auth."""
        self._failures.add(Fault(status, retry_after_header(retry_after)), times)

    def hang_next(self, times: int = 1, seconds: float = 30.0) -> None:
        """The next `times` API requests get no answer for `seconds` (or until stop())."""
        self._hangs.add(Fault(hang=seconds), times)

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- sending webhooks ---------------------------------------------------------------------------------

    def deliver(self, topic: str, order: Mapping[str, Any], receiver_url: str, secret: str, *,
                webhook_id: int = 1, timeout: float = 60.0) -> DeliveryResult:
        """POST one signed delivery of `order` for `topic` to `receiver_url`, exactly as WooCommerce does."""
        request = webhook_request(topic, webhook_payload(topic, order), secret, webhook_id=webhook_id,
                                  source=self.url if self.running else "https://shop.example/")
        return self._post(receiver_url, topic, request, timeout)

    def ping(self, receiver_url: str, webhook_id: int = 1, timeout: float = 60.0) -> DeliveryResult:
        """The unsigned `webhook_id=<id>` ping WooCommerce sends when a webhook is activated."""
        return self._post(receiver_url, "ping", ping_request(webhook_id), timeout)

    def emit(self, topic: str, order_id: int) -> list[DeliveryResult]:
        """Deliver `topic` for a stored order to every active webhook registered for it through the API."""
        with self._lock:
            order = copy.deepcopy(self.orders[order_id])
            hooks = [(hook_id, dict(hook)) for hook_id, hook in self.webhooks.items()
                     if hook["topic"] == topic and hook["status"] == "active"]
        return [self.deliver(topic, order, hook["delivery_url"], self._webhook_secrets.get(hook_id, ""),
                             webhook_id=hook_id) for hook_id, hook in hooks]

    def _post(self, url: str, topic: str, request: WebhookRequest, timeout: float) -> DeliveryResult:
        parts = urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", path, body=request.body, headers=request.headers)
            response = connection.getresponse()
            result = DeliveryResult(url, topic, request, response.status, response.read())
        except OSError as error:
            # WooCommerce logs a WP_Error and counts a failure; the caller sees status 0.
            result = DeliveryResult(url, topic, request, 0, str(error).encode())
        finally:
            connection.close()
        with self._lock:
            self.deliveries.append(result)
        return result

    # --- serving the API ----------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        """Answer one request: (status, extra headers, JSON value). Runs on the server's threads."""
        parts = urlsplit(path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        record = RecordedRequest(method, parts.path, dict(pairs), dict(headers), body)
        self.record(record)
        hang = self._hangs.take()
        failure = self._failures.take() if hang is None else None
        if hang is not None:
            self.hold(hang.hang)
            record.status = 504
            return 504, {}, _wp_error(504, "fake_hang", "held by hang_next()")
        if failure is not None and failure.status is not None:
            record.status = failure.status
            return failure.status, failure.headers, _wp_error(failure.status, "fake_failure",
                                                              f"injected HTTP {failure.status}")
        try:
            record.auth = self._authenticate(method, parts.path, dict(pairs), headers)
            status, extra, value = self._route(method, parts.path, dict(pairs), body)
        except _ApiError as error:
            status, extra, value = error.status, {}, _wp_error(error.status, error.code, error.message,
                                                              **error.data)
        record.status = status
        return status, extra, value

    handle = answer  # the name this hook had before the shared server took it over

    def encode(self, body: Any) -> bytes:
        return wp_json_encode(body)

    # --- auth, as WC_REST_Authentication ------------------------------------------------------------------

    def _authenticate(self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str]) -> str:
        authorization = header(headers, "Authorization")
        if authorization.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            self._check_key(user, password)
            return "basic"
        if "consumer_key" in query:
            self._check_key(query.get("consumer_key", ""), query.get("consumer_secret", ""))
            return "query"
        if any(name.startswith("oauth_") for name in query):
            self._check_oauth(method, path, query)
            return "oauth1"
        raise _ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")

    def _check_key(self, key: str, secret: str) -> None:
        if not hmac.compare_digest(key.encode(), self.consumer_key.encode()):
            raise _ApiError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(secret.encode(), self.consumer_secret.encode()):
            raise _ApiError(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")

    def _check_oauth(self, method: str, path: str, query: dict[str, str]) -> None:
        required = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
                    "oauth_signature_method")
        refused = "woocommerce_rest_authentication_error"
        for name in required:
            if not query.get(name):
                raise _ApiError(401, refused, f"Missing OAuth parameter {name}")
        if not hmac.compare_digest(query["oauth_consumer_key"].encode(), self.consumer_key.encode()):
            raise _ApiError(401, refused, "Consumer key is invalid.")
        signature_method = query["oauth_signature_method"]
        if signature_method not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise _ApiError(401, refused, "Invalid signature - signature method is invalid.")
        signed = [(k, v) for k, v in query.items() if k != "oauth_signature"]
        base = oauth.signature_base(method, self.url.rstrip("/") + path, signed)
        expected = oauth.sign(self.consumer_secret, base, signature_method)
        # WooCommerce decodes once more, after turning spaces (a '+' PHP decoded) back into '+'.
        offered = unquote(query["oauth_signature"].replace(" ", "+"))
        if not hmac.compare_digest(expected.encode(), offered.encode()):
            raise _ApiError(401, refused, "Invalid signature - provided signature does not match.")
        timestamp = int(query["oauth_timestamp"]) if query["oauth_timestamp"].isdigit() else 0
        if abs(time.time() - timestamp) > OAUTH_WINDOW_SECONDS:
            raise _ApiError(401, refused, "Invalid timestamp.")
        with self._lock:
            if query["oauth_nonce"] in self._nonces:
                raise _ApiError(401, refused, "Invalid nonce - nonce has already been used.")
            self._nonces.add(query["oauth_nonce"])

    # --- routes -------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        if not path.startswith(API_PREFIX):
            raise _ApiError(404, "rest_no_route", "No route was found matching the URL and request method.")
        parts = path[len(API_PREFIX):].strip("/").split("/")
        if parts == ["orders"] and method == "GET":
            return self._list_orders(query)
        if len(parts) == 2 and parts[0] == "orders" and parts[1].isdigit() and method in ("GET", "PUT"):
            return self._one_order(method, int(parts[1]), body)
        if len(parts) == 3 and parts[0] == "orders" and parts[1].isdigit() and parts[2] == "notes":
            return self._notes(method, int(parts[1]), body)  # shipping helper
        if parts == ["webhooks"] and method == "GET":
            return self._list_webhooks(query)
        if parts == ["webhooks"] and method == "POST":
            return 201, {}, self._save_webhook(None, _json_body(body))
        if len(parts) == 2 and parts[0] == "webhooks" and parts[1].isdigit() and method == "PUT":
            return 200, {}, self._save_webhook(int(parts[1]), _json_body(body))
        if len(parts) == 3 and parts[0] == "orders" and parts[1].isdigit() and parts[2] == "refunds":
            return self._refunds(method, int(parts[1]), body)  # refunds: see the block below
        raise _ApiError(404, "rest_no_route", "No route was found matching the URL and request method.")

    def _notes(self, method: str, order_id: int, body: bytes) -> tuple[int, dict[str, str], Any]:
        """GET/POST /orders/<id>/notes (shipping helper): notes newest first, as WooCommerce lists them."""
        if order_id not in self.orders:
            raise _ApiError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        with self._lock:
            notes = self.notes.setdefault(order_id, [])
            if method == "GET":
                return 200, {}, copy.deepcopy(notes[::-1])
            if method != "POST":
                raise _ApiError(404, "rest_no_route", "No route was found matching the URL and request method.")
            data = _json_body(body)
            if not str(data.get("note") or "").strip():
                raise _ApiError(400, "woocommerce_rest_invalid_order_note", "Cannot create order note, please "
                                "provide a note.")
            note = {"id": 1000 + sum(len(n) for n in self.notes.values()), "author": "WooCommerce",
                    "date_created_gmt": datetime.now(UTC).strftime(_WP_TIME), "note": data["note"],
                    "customer_note": bool(data.get("customer_note"))}
            notes.append(note)
            return 201, {}, copy.deepcopy(note)

    def _one_order(self, method: str, order_id: int, body: bytes) -> tuple[int, dict[str, str], Any]:
        if order_id not in self.orders:
            raise _ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        if method == "PUT":
            return 200, {}, self.update_order(order_id, **_json_body(body))
        with self._lock:
            return 200, {}, copy.deepcopy(self.orders[order_id])

    def _list_orders(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page, page = _paging(query)
        use_gmt = query.get("dates_are_gmt", "").lower() in ("1", "true")
        column = "date_modified_gmt" if use_gmt else "date_modified"
        after, before = _wp_time(query, "modified_after"), _wp_time(query, "modified_before")
        statuses = query.get("status", "any").split(",")

        def wanted(order: Mapping[str, Any]) -> bool:
            # "any" is every status but the trash, as in WooCommerce.
            status = order.get("status")
            in_status = status != "trash" if statuses == ["any"] else status in statuses
            return (in_status and (after is None or _order_time(order, column) > after)
                    and (before is None or _order_time(order, column) < before))

        with self._lock:
            matching = [copy.deepcopy(o) for o in self.orders.values() if wanted(o)]
        created = "date_created_gmt" if use_gmt else "date_created"
        sort_key = {"modified": column, "date": created, "id": "id"}.get(query.get("orderby", "date"))
        if sort_key is None:
            raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): orderby",
                            params={"orderby": "orderby is not one of date, id, modified."})
        matching.sort(key=lambda o: (str(o.get(sort_key) or "") if sort_key != "id" else "", int(o["id"])),
                      reverse=query.get("order", "desc") == "desc")
        headers = _page_headers(self.url.rstrip("/") + API_PREFIX + "orders", len(matching), per_page, page)
        return 200, headers, matching[(page - 1) * per_page:page * per_page]

    def _list_webhooks(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page, page = _paging(query)
        with self._lock:
            hooks = [copy.deepcopy(h) for _id, h in sorted(self.webhooks.items(), reverse=True)]
        headers = _page_headers(self.url.rstrip("/") + API_PREFIX + "webhooks", len(hooks), per_page, page)
        return 200, headers, hooks[(page - 1) * per_page:page * per_page]

    def _save_webhook(self, webhook_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if webhook_id is not None and webhook_id not in self.webhooks:
                raise _ApiError(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
            hook = self.webhooks.get(webhook_id or 0) or {}
            topic = str(data.get("topic", hook.get("topic", "")))
            if topic not in WEBHOOK_TOPICS and not topic.startswith("action."):
                raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): topic",
                                params={"topic": "Webhook topic is invalid."})
            delivery_url = str(data.get("delivery_url", hook.get("delivery_url", "")))
            if not delivery_url.startswith(("http://", "https://")):
                raise _ApiError(400, "rest_missing_callback_param", "Missing parameter(s): delivery_url",
                                params=["delivery_url"])
            status = str(data.get("status", hook.get("status", "active")))
            if status not in ("active", "paused", "disabled"):
                raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): status",
                                params={"status": "status is not one of active, paused, and disabled."})
            new_id = webhook_id or max(self.webhooks, default=141) + 1
            stamp = datetime.now(UTC).strftime(_WP_TIME)
            resource, _, event = topic.partition(".")
            hook = {**hook, "id": new_id, "name": str(data.get("name", hook.get("name", ""))),
                    "status": status, "topic": topic, "resource": resource, "event": event, "hooks": [],
                    "delivery_url": delivery_url, "date_created": hook.get("date_created", stamp),
                    "date_created_gmt": hook.get("date_created_gmt", stamp), "date_modified": stamp,
                    "date_modified_gmt": stamp}
            self.webhooks[new_id] = hook
            if data.get("secret"):
                self._webhook_secrets[new_id] = str(data["secret"])  # write-only: never in an answer
            return copy.deepcopy(hook)

    # --- refunds (returns: app/returns.py) -------------------------------------------------------------
    # GET and POST orders/<id>/refunds (REST v3 `order-refunds`): a refund is stored in full under
    # `refund_records`, summarised in the order's own `refunds[]` ({id, reason, total: "-x"}) as WooCommerce
    # shows it, and the order becomes `refunded` once all of it is. More than the order's remaining total is
    # refused with WooCommerce's error.

    def refunds_of(self, order_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.orders[order_id].get("refund_records") or [])

    def _refunds(self, method: str, order_id: int, body: bytes) -> tuple[int, dict[str, str], Any]:
        if order_id not in self.orders:
            raise _ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        if method == "GET":
            return 200, {}, self.refunds_of(order_id)
        if method != "POST":
            raise _ApiError(404, "rest_no_route", "No route was found matching the URL and request method.")
        data = _json_body(body)
        try:
            amount = Decimal(str(data.get("amount") or "0"))
        except ArithmeticError:
            raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): amount") from None
        with self._lock:
            order = self.orders[order_id]
            already = sum((-Decimal(str(r.get("total") or "0")) for r in order.get("refunds") or []), Decimal("0"))
            if amount <= 0 or amount + already > Decimal(str(order.get("total") or "0")):
                raise _ApiError(400, "woocommerce_rest_cannot_create_order_refund",
                                "Invalid refund amount.")
            refund_id = 7000 + sum(len(o.get("refund_records") or []) for o in self.orders.values()) + 1
            now = datetime.now(UTC).strftime(_WP_TIME)
            record = {"id": refund_id, "date_created": now, "date_created_gmt": now, "amount": f"{amount:.2f}",
                      "reason": str(data.get("reason") or ""), "refunded_by": 1,
                      "refunded_payment": bool(data.get("api_refund", True)), "meta_data": [],
                      "line_items": [{"id": int(i.get("id", 0)), "quantity": -int(i.get("quantity") or 0)}
                                     for i in data.get("line_items") or []]}
            order.setdefault("refund_records", []).append(record)
            order.setdefault("refunds", []).append({"id": refund_id, "reason": record["reason"],
                                                    "total": f"-{amount:.2f}"})
            if amount + already == Decimal(str(order.get("total") or "0")):
                order["status"] = "refunded"
            order["date_modified"] = order["date_modified_gmt"] = now
            return 201, {}, copy.deepcopy(record)


# --- helpers for the routes -------------------------------------------------------------------------------


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise _ApiError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
    if not isinstance(value, dict):
        raise _ApiError(400, "rest_invalid_json", "Invalid JSON body passed.")
    return value


def _paging(query: dict[str, str]) -> tuple[int, int]:
    per_page, page = query.get("per_page", "10"), query.get("page", "1")
    if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
        raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): per_page",
                        params={"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"})
    if not page.isdigit() or int(page) < 1:
        raise _ApiError(400, "rest_invalid_param", "Invalid parameter(s): page",
                        params={"page": "page must be greater than or equal to 1"})
    return int(per_page), int(page)


def _wp_time(query: dict[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _ApiError(400, "rest_invalid_param", f"Invalid parameter(s): {name}",
                        params={name: "Invalid date."}) from None
    # Compared with WooCommerce's offset-less times, which are UTC under dates_are_gmt.
    return parsed if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)


def _order_time(order: Mapping[str, Any], column: str) -> datetime:
    value = order.get(column) or order.get(column.removesuffix("_gmt")) or "1970-01-01T00:00:00"
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def _page_headers(base_url: str, total: int, per_page: int, page: int) -> dict[str, str]:
    pages = math.ceil(total / per_page) if total else 0
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    links = []
    if page > 1:
        links.append(f'<{base_url}?page={page - 1}>; rel="prev"')
    if page < pages:
        links.append(f'<{base_url}?page={page + 1}>; rel="next"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers
