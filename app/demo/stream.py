"""The demo's order stream: orders placed in the sandbox shops, stored in their fake APIs and delivered to
Orderline as signed webhooks, exactly as Shopify and WooCommerce would send them.

Shopify: `orders/create` with the eight X-Shopify-* headers, signed with the app secret (base64 HMAC-SHA256 of
the raw body). WooCommerce: `order.created` sent by the fake store's own `deliver()` (wp_json_encode bytes and
the X-WC-Webhook-* headers, signed with the shop's webhook secret). Both orders are also added to the fake APIs,
so reconciliation and API fetches find them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests
import structlog

from app.demo.catalog import DemoOrder, random_order
from integrations.shopify.fake import FakeShopify
from integrations.woocommerce.fake import FakeWooCommerce

log = structlog.get_logger("orderline.demo")

SHOPIFY_API_VERSION = "2026-07"
EUR_PER_SEK = Decimal("0.09")


def _money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    money = {"amount": str(amount), "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def shopify_order(order: DemoOrder, order_id: int, now: datetime) -> dict[str, Any]:
    """A Shopify REST Order, as the `orders/create` webhook carries it (prices in SEK, tax included)."""
    c = order.customer
    stamp = now.isoformat(timespec="seconds")
    address = {"first_name": c.first, "last_name": c.last, "name": f"{c.first} {c.last}", "address1": c.address1,
               "address2": None, "city": c.city, "zip": c.postcode, "country_code": c.country, "phone": c.phone,
               "company": None, "province": None, "province_code": None}
    lines = [{"id": order_id * 10 + n, "admin_graphql_api_id": f"gid://shopify/LineItem/{order_id * 10 + n}",
              "title": line.product.title, "name": line.product.title, "sku": line.product.sku,
              "variant_title": line.product.variant, "quantity": line.quantity,
              "price": str(line.product.price_sek), "price_set": _money_set(line.product.price_sek, "SEK"),
              "total_discount": "0.00", "total_discount_set": _money_set(Decimal("0.00"), "SEK"),
              "discount_allocations": [], "requires_shipping": True, "fulfillment_status": None,
              "grams": line.product.grams}
             for n, line in enumerate(order.lines, start=1)]
    subtotal = sum((line.product.price_sek * line.quantity for line in order.lines), Decimal("0.00"))
    total = subtotal + order.shipping_price_sek
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order.number}", "order_number": order.number, "number": order.number - 1000,
        "email": c.email, "contact_email": c.email, "phone": c.phone, "customer_locale": c.locale,
        "currency": "SEK", "presentment_currency": "SEK", "created_at": stamp, "updated_at": stamp,
        "processed_at": stamp, "financial_status": "paid", "fulfillment_status": None, "cancelled_at": None,
        "cancel_reason": None, "taxes_included": True, "total_tax": "0.00", "total_tax_set": _money_set(
            Decimal("0.00"), "SEK"), "total_discounts": "0.00", "total_discounts_set": _money_set(
            Decimal("0.00"), "SEK"), "subtotal_price": str(subtotal), "total_price": str(total),
        "total_price_set": _money_set(total, "SEK"),
        "total_shipping_price_set": _money_set(order.shipping_price_sek, "SEK"),
        "note": order.note, "tags": "first-order" if order.first_time else "",
        "customer": {"id": zlib.crc32(c.email.encode()), "first_name": c.first, "last_name": c.last,
                     "email": c.email, "phone": c.phone},
        "shipping_address": address, "billing_address": dict(address), "line_items": lines,
        "shipping_lines": [{"id": order_id * 10, "title": order.shipping_title,
                            "code": order.shipping_title.lower(), "price": str(order.shipping_price_sek),
                            "price_set": _money_set(order.shipping_price_sek, "SEK")}],
        "fulfillments": [], "refunds": [],
    }


def _eur(amount_sek: Decimal) -> Decimal:
    return (amount_sek * EUR_PER_SEK).quantize(Decimal("1"))


def woocommerce_order(order: DemoOrder, order_id: int, now: datetime) -> dict[str, Any]:
    """A WooCommerce REST v3 order (the wholesale shop, in EUR), as `order.created` carries it."""
    c = order.customer
    wp_time = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    person = {"first_name": c.first, "last_name": c.last, "company": "", "address_1": c.address1,
              "address_2": "", "city": c.city, "state": "", "postcode": c.postcode, "country": c.country}
    items = []
    for n, line in enumerate(order.lines, start=1):
        price = line.product.price_eur
        items.append({"id": order_id * 10 + n, "name": line.product.title, "product_id": 100 + n, "variation_id": 0,
                      "quantity": line.quantity, "tax_class": "", "subtotal": f"{price * line.quantity:.2f}",
                      "subtotal_tax": "0.00", "total": f"{price * line.quantity:.2f}", "total_tax": "0.00",
                      "taxes": [], "meta_data": [], "sku": line.product.sku, "price": float(price)})
    shipping = _eur(order.shipping_price_sek)
    total = sum((Decimal(i["total"]) for i in items), Decimal("0")) + shipping
    return {
        "id": order_id, "parent_id": 0, "number": str(order_id), "status": "processing", "currency": "EUR",
        "version": "9.4.3", "prices_include_tax": False, "date_created": wp_time, "date_created_gmt": wp_time,
        "date_modified": wp_time, "date_modified_gmt": wp_time, "date_paid": wp_time, "date_paid_gmt": wp_time,
        "date_completed": None, "date_completed_gmt": None, "discount_total": "0.00", "discount_tax": "0.00",
        "shipping_total": f"{shipping:.2f}", "shipping_tax": "0.00", "cart_tax": "0.00", "total": f"{total:.2f}",
        "total_tax": "0.00", "customer_id": 0, "customer_note": order.note or "",
        "billing": {**person, "email": c.email, "phone": c.phone}, "shipping": {**person, "phone": c.phone},
        "payment_method": "bacs", "payment_method_title": "Invoice", "line_items": items, "tax_lines": [],
        "shipping_lines": [{"id": order_id * 10, "method_title": order.shipping_title, "method_id": "flat_rate",
                            "total": f"{shipping:.2f}", "total_tax": "0.00", "taxes": [], "meta_data": []}],
        "fee_lines": [], "coupon_lines": [], "refunds": [], "meta_data": [],
    }


@dataclass
class ShopTarget:
    """One sandbox shop the stream sends for: its fake API and where its webhooks go."""

    channel: str  # shopify | woocommerce
    receiver_url: str
    shopify: FakeShopify | None = None
    shopify_domain: str = ""
    shopify_secret: str = ""
    woocommerce: FakeWooCommerce | None = None
    woocommerce_secret: str = ""


@dataclass
class OrderStream:
    """Places orders in the sandbox shops: `every` seconds one order (in a thread), `burst(n)` n at once."""

    targets: list[ShopTarget]
    every: float = 4.0
    seed: int | None = None
    burst_size: int = 200
    sent: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _numbers: Any = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - demo data, not security
        self._numbers = itertools.count(1001 + self._rng.randrange(0, 1000) * 10)
        self._http = requests.Session()

    def _next(self) -> tuple[DemoOrder, ShopTarget]:
        with self._lock:  # the Random and the counter are shared by the timer and burst threads
            order = random_order(self._rng, next(self._numbers))
            # Shopify is the big retail shop; WooCommerce (wholesale) gets one order in four.
            target = self._rng.choices(self.targets, weights=[3 if t.channel == "shopify" else 1
                                                              for t in self.targets])[0]
        return order, target

    def send_one(self, at: datetime | None = None) -> bool:
        """Place one order (now, or `at` for a history) and deliver its webhook; True when Orderline answered 2xx."""
        order, target = self._next()
        now = at or datetime.now(UTC)
        order_id = 5_000_000_000 + order.number
        try:
            if target.channel == "shopify":
                ok = self._send_shopify(target, shopify_order(order, order_id, now))
            else:
                ok = self._send_woocommerce(target, woocommerce_order(order, order.number, now))
        except requests.RequestException as error:
            log.warning("demo.delivery_failed", channel=target.channel, error=type(error).__name__)
            ok = False
        with self._lock:
            self.sent += ok
            self.failed += not ok
        return ok

    def _send_shopify(self, target: ShopTarget, order: dict[str, Any]) -> bool:
        assert target.shopify is not None
        target.shopify.add_order(order)
        raw = json.dumps(order).encode()
        digest = hmac.new(target.shopify_secret.encode(), raw, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": target.shopify_domain,
            "X-Shopify-API-Version": SHOPIFY_API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Name": "orderline-demo",
        }
        response = self._http.post(target.receiver_url, data=raw, headers=headers, timeout=10)
        return response.ok

    def _send_woocommerce(self, target: ShopTarget, order: dict[str, Any]) -> bool:
        assert target.woocommerce is not None
        store = target.woocommerce
        store.add_order(order)
        result = store.deliver("order.created", order, target.receiver_url, target.woocommerce_secret, timeout=10)
        del store.deliveries[:-100]  # the fake keeps every delivery; a long demo needs only the last few
        return result.succeeded

    def burst(self, count: int | None = None, workers: int = 4) -> int:
        """Black Friday: `count` orders as fast as the receiver takes them, in the background. Returns count."""
        count = count or self.burst_size

        def run() -> None:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-burst") as pool:
                results = list(pool.map(lambda _: self.send_one(), range(count)))
            log.info("demo.burst_done", sent=sum(results), failed=len(results) - sum(results))

        threading.Thread(target=run, name="demo-burst", daemon=True).start()
        return count

    def start(self) -> OrderStream:
        def loop() -> None:
            while not self._stop.is_set():
                self.send_one()
                # Jittered, so the board fills like a shop's evening, not a metronome.
                self._stop.wait(self.every * self._rng.uniform(0.5, 1.5))

        self._thread = threading.Thread(target=loop, name="demo-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
