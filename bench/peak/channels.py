"""The shops of the drill: the same loopback fakes the tests use (one Shopify, two WooCommerce stores, one
BigCommerce store), orders made from the same fixtures, and each channel's real webhook signature.

A shop here knows three things: how its order looks at a given version (channel JSON), how to put that
order into its fake store (what reconciliation polls, and what BigCommerce's thin webhooks fetch), and
how to sign one delivery of it (bytes and headers exactly as the channel sends them)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integrations.bigcommerce.fake import FakeBigCommerce, build_webhook, rfc2822, sample_order
from integrations.shopify.fake import FakeShopify
from integrations.woocommerce.fake import FakeWooCommerce, webhook_request, wp_json_encode

from .cluster import ROOT

FIXTURES = ROOT / "tests" / "integrations"
SHOPIFY_SECRET = "peak-shopify-app-secret"  # noqa: S105 - a drill value
SHOPIFY_TOKEN = "shpat_peak_drill"  # noqa: S105
BC_TOKEN = "peak-bc-token"  # noqa: S105
# SKUs every drill order uses, stocked at one location so orders can be allocated.
# Orders for REVIEWED_SKU wait for staff (the drill's approval rules): one WooCommerce order in REVIEW_EVERY.
REVIEWED_SKU = "PEAK-MUG-GIFT"
REVIEW_EVERY = 8
SKUS = ("PEAK-TEE", "PEAK-MUG", REVIEWED_SKU, "SKU-1", "SKU-2")


@dataclass
class Delivery:
    """One webhook POST: the same object is re-sent for a duplicate (same delivery id, same bytes)."""

    path: str
    headers: dict[str, str]
    body: bytes
    order_key: str | None  # None for forged and oversized requests: they must change nothing
    kind: str  # create | update | duplicate | forged | oversized
    status: int = 0
    attempts: int = 0
    latency_ms: float | None = None  # of the attempt that got the final answer
    acked_at: float | None = None  # wall clock (time.time()) of the 2xx


def customer_phone(n: int) -> str:
    """A mobile number texts can go to (the fixtures carry placeholders like (555) 555-5555), in the 555-01xx
    range North American numbering keeps for fiction: a hundred customers, each with a few orders."""
    return f"+1201555{100 + n % 100:04d}"


def _fixture(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return data


@dataclass
class Shop:
    """One registered shop and its fake store."""

    channel: str
    name: str
    external_id: str
    fake: Any
    secret: str
    shop_id: int = 0
    credentials: dict[str, str] = field(default_factory=dict)

    @property
    def webhook_path(self) -> str:
        return "/webhooks/shopify" if self.channel == "shopify" else f"/webhooks/{self.channel}/{self.shop_id}"

    # --- orders -------------------------------------------------------------------------------------------

    def order_json(self, order_id: int, version: int, updated: datetime, created: datetime) -> Any:
        """The channel's JSON for the order at `version` (the note carries the version, for humans)."""
        note = f"peak v{version}"
        phone = customer_phone(order_id)
        if self.channel == "shopify":
            order = copy.deepcopy(_SHOPIFY)
            order.update(id=order_id, order_number=order_id % 10_000_000, name=f"#P{order_id}",
                         admin_graphql_api_id=f"gid://shopify/Order/{order_id}", note=note,
                         email=f"buyer{order_id}@example.com", created_at=created.isoformat(),
                         processed_at=created.isoformat(), updated_at=updated.isoformat(),
                         shipping_address=copy.deepcopy(_SHOPIFY_ADDRESS), phone=phone)
            for n, line in enumerate(order["line_items"]):
                line["sku"], line["id"] = "PEAK-TEE", order_id * 10 + n
            return order
        if self.channel == "woocommerce":
            order = copy.deepcopy(_WOO)
            stamp_c, stamp_u = created.strftime("%Y-%m-%dT%H:%M:%S"), updated.strftime("%Y-%m-%dT%H:%M:%S")
            order.update(id=order_id, number=str(order_id), order_key=f"wc_order_{order_id}", customer_note=note,
                         date_created=stamp_c, date_created_gmt=stamp_c, date_modified=stamp_u,
                         date_modified_gmt=stamp_u)
            order["billing"] = {**order["billing"], "email": f"buyer{order_id}@example.com", "phone": phone}
            # As WooCommerce writes them: links to this store. Two stores send the same order id (and, within
            # one second, the same X-WC-Webhook-Delivery-ID for webhook 1 when their salts are equal, as in
            # the fake), so without these the two stores' bodies would be byte-identical.
            api = f"{self.external_id}wp-json/wc/v3/orders"
            order["_links"] = {"self": [{"href": f"{api}/{order_id}"}], "collection": [{"href": api}]}
            sku = REVIEWED_SKU if order_id % REVIEW_EVERY == 0 else "PEAK-MUG"
            for n, line in enumerate(order["line_items"]):
                line["sku"], line["id"] = sku, order_id * 10 + n
            return order
        order, products, addresses = sample_order(order_id, date_modified=updated)
        order["date_created"] = rfc2822(created)
        order["customer_message"] = note
        order["billing_address"] = {**order["billing_address"], "phone": phone}
        return order, products, addresses

    def put(self, payload: Any) -> None:
        """Store the order in the fake shop, as the shop itself would have it (newest version)."""
        if self.channel == "bigcommerce":
            order, products, addresses = payload
            self.fake.add_order(order, products, addresses)
        else:
            self.fake.add_order(payload)

    # --- deliveries ---------------------------------------------------------------------------------------

    def delivery(self, kind: str, order_id: int, payload: Any, order_key: str | None) -> Delivery:
        """A signed webhook for a create or update of `payload` (channel JSON), as the channel sends it."""
        if self.channel == "shopify":
            topic = "orders/create" if kind == "create" else "orders/updated"
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers = shopify_headers(topic, body, self.external_id, self.secret)
        elif self.channel == "woocommerce":
            topic = "order.created" if kind == "create" else "order.updated"
            request = webhook_request(topic, payload, self.secret, webhook_id=1, source=self.external_id)
            body, headers = request.body, dict(request.headers)
        else:
            scope = "store/order/created" if kind == "create" else "store/order/updated"
            body, headers = build_webhook(scope, order_id, self.secret, store_hash=self.external_id)
        return Delivery(self.webhook_path, headers, body, order_key, kind)

    def forged(self, order_id: int, payload: Any) -> Delivery:
        """A delivery signed with the wrong secret (an attacker who knows the format, not the key)."""
        wrong = Shop(self.channel, self.name, self.external_id, self.fake, "forged-" + self.secret, self.shop_id)
        forged = wrong.delivery("create", order_id, payload, None)
        forged.kind = "forged"
        return forged

    def oversized(self, size: int) -> Delivery:
        """A correctly signed body over the size limit: refused with 413 before anything is parsed."""
        filler = {"id": 1, "note": "x" * size}
        if self.channel == "shopify":
            body = json.dumps(filler).encode()
            headers = shopify_headers("orders/create", body, self.external_id, self.secret)
        elif self.channel == "woocommerce":
            request = webhook_request("order.created", wp_json_encode(filler), self.secret, source=self.external_id)
            body, headers = request.body, dict(request.headers)
        else:
            body, headers = build_webhook("store/order/created", 1, self.secret, store_hash=self.external_id,
                                          data={"pad": "x" * size})
        return Delivery(self.webhook_path, headers, body, None, "oversized")


def shopify_headers(topic: str, body: bytes, domain: str, secret: str) -> dict[str, str]:
    """The X-Shopify-* headers of one real delivery (tests/integrations/shopify/conftest.py does the same)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Name": "orderline",
    }


_SHOPIFY = _fixture("shopify/fixtures/orders_create.json")
# That capture is a draft order with no address; a parcel needs one, so the drill's orders take the address of
# the orders/cancelled capture (a real order from the same source).
_SHOPIFY_ADDRESS = _fixture("shopify/fixtures/orders_cancelled.json")["shipping_address"]
_WOO = _fixture("woocommerce/fixtures/order_created.json")


def make_shops() -> list[Shop]:
    """Four shops on three channels, fakes started. Shopify's and BigCommerce's API base URLs are one
    setting each, so there is one shop of each; WooCommerce's is the store URL, so there are two."""
    shopify = FakeShopify(access_token=SHOPIFY_TOKEN, restore_rate=200.0).start()
    woo = [FakeWooCommerce(consumer_key=f"ck_peak_{n}", consumer_secret=f"cs_peak_{n}").start() for n in (1, 2)]
    bigcommerce = FakeBigCommerce(store_hash="peakbc1", access_token=BC_TOKEN).start()
    shops = [Shop("shopify", "Peak Shopify", "peak-drill.myshopify.com", shopify, SHOPIFY_SECRET,
                  credentials={"access_token": SHOPIFY_TOKEN})]
    for n, fake in enumerate(woo, start=1):
        shops.append(Shop("woocommerce", f"Peak Woo {n}", fake.url, fake, f"peak-woo-secret-{n}",
                          credentials={"consumer_key": fake.consumer_key, "consumer_secret": fake.consumer_secret}))
    shops.append(Shop("bigcommerce", "Peak BigCommerce", "peakbc1", bigcommerce, "peak-bc-webhook-secret",
                      credentials={"store_hash": "peakbc1", "access_token": BC_TOKEN}))
    return shops


def stop_shops(shops: list[Shop]) -> None:
    for shop in shops:
        if shop.fake.running:
            shop.fake.stop()


def stock_csv(path: Path) -> Path:
    path.write_text("location,sku,on_hand\n" + "".join(f"PEAK,{sku},1000000\n" for sku in SKUS))
    return path
