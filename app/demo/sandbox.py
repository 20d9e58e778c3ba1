"""The demo's sandboxes: the fake Shopify and WooCommerce APIs the tests use, started here as the demo shops'
APIs, the shops registered against them, and two warehouses with limited stock.

HOOKS for the other sandboxes (Slack workspace, customer phone): register a `SandboxHook` with
`register_hook(...)` at import time of your module and import it from `app/demo/__init__.py`'s HOOK_MODULES.
`prepare(env)` runs before the app and the worker start and returns environment variables to add (point
SLACK_API_BASE_URL / TWILIO_API_BASE_URL at your fake there); `attach(app)` runs once the app exists and may
register blueprints and sandbox pages (`add_page(app, "Slack sandbox", "/sandbox/slack")`), which the
dashboard's navigation and the demo's start message list. `stop()` runs when the demo exits.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response
from sqlalchemy import select

from app import stock
from app.demo.catalog import STOCK_CSV
from app.models import Location, Shop
from app.runtime import Runtime
from integrations.shopify.fake import FakeShopify
from integrations.woocommerce.fake import FakeWooCommerce

SHOPIFY_DOMAIN = "orderline-demo.myshopify.com"
SHOPIFY_TOKEN = "shpat_orderline_demo"  # noqa: S105 - the fake's own token, valid nowhere else
# The demo shops use the offline sandbox carrier; a shop's promise per shipping level is in hours.
DEMO_SETTINGS: dict[str, Any] = {
    "carrier": "sandbox",
    "shipping_promise_hours": {"express": 24, "standard": 72, "economy": 120},
}
# SANDBOX PAGES (issue 7): ordinary orders approve, pick and pack by themselves, so a newcomer sees them ship;
# big ones and a first-time customer's express order wait for a person (the Slack sandbox's Approve button).
# Merged into the shops' settings on every run (a shop seeded by an older demo gets them too).
AUTOMATION: dict[str, dict[str, Any]] = {
    "shopify": {"auto_approve": True, "auto_pick_pack": True,
                "approval": {"max_order_value": "4000.00", "first_time_express": True}},
    "woocommerce": {"auto_approve": True, "auto_pick_pack": True,
                    "approval": {"max_order_value": "400.00", "first_time_express": True}},
}
LOCATIONS = (
    {"code": "STHLM", "name": "Stockholm warehouse", "country_code": "SE", "city": "Stockholm", "priority": 10,
     "timezone": "Europe/Stockholm"},
    {"code": "NJ", "name": "New Jersey warehouse", "country_code": "US", "city": "Newark", "priority": 20,
     "timezone": "America/New_York"},
)


@dataclass
class SandboxHook:
    name: str
    prepare: Callable[[dict[str, str]], dict[str, str]] | None = None
    attach: Callable[[Flask], None] | None = None
    stop: Callable[[], None] | None = None


_hooks: dict[str, SandboxHook] = {}


def register_hook(hook: SandboxHook) -> None:
    _hooks[hook.name] = hook


def hooks() -> list[SandboxHook]:
    return list(_hooks.values())


def page_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A blueprint for a sandbox page, answering with the dashboard's security headers (strict CSP, no framing)."""
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix)

    @blueprint.after_request
    def _security_headers(response: Response) -> Response:
        from app.dashboard.views import SECURITY_HEADERS

        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    return blueprint


def add_page(app: Flask, title: str, path: str) -> None:
    """List a sandbox page (the Slack channel, the phone) in the dashboard's navigation and the start message."""
    app.extensions.setdefault("orderline.demo.pages", []).append((title, path))


@dataclass
class Fakes:
    """The fake channel APIs, running in the demo's process on loopback ports."""

    shopify: FakeShopify
    woocommerce: FakeWooCommerce
    woocommerce_key: str
    woocommerce_secret: str

    @classmethod
    def start(cls) -> Fakes:
        key, secret = "ck_" + secrets.token_hex(16), "cs_" + secrets.token_hex(16)
        shopify = FakeShopify(access_token=SHOPIFY_TOKEN).start()
        woocommerce = FakeWooCommerce(consumer_key=key, consumer_secret=secret).start()
        return cls(shopify, woocommerce, key, secret)

    def stop(self) -> None:
        self.shopify.stop()
        self.woocommerce.stop()


@dataclass(frozen=True)
class DemoShops:
    shopify_id: int
    woocommerce_id: int
    woocommerce_webhook_secret: str


def seed(runtime: Runtime, fakes: Fakes) -> DemoShops:
    """Register (or, on a later run, re-point) the two demo shops, and add the warehouses and their stock once."""
    box = runtime.secrets
    assert box is not None
    webhook_secret = secrets.token_urlsafe(24)
    with runtime.db.session() as session:
        shopify = session.execute(select(Shop).where(Shop.channel == "shopify",
                                                     Shop.external_id == SHOPIFY_DOMAIN)).scalar_one_or_none()
        if shopify is None:
            shopify = Shop(channel="shopify", name="Stockholm (Shopify sandbox)", external_id=SHOPIFY_DOMAIN,
                           currency="SEK", timezone="Europe/Stockholm", locale="sv", settings=dict(DEMO_SETTINGS))
            session.add(shopify)
        shopify.credentials_encrypted = box.seal({"access_token": SHOPIFY_TOKEN})
        # The WooCommerce store's URL is its loopback address, new on every run: find the demo's by its setting.
        woo = next((s for s in session.execute(select(Shop).where(Shop.channel == "woocommerce")).scalars()
                    if (s.settings or {}).get("demo")), None)
        if woo is None:
            woo = Shop(channel="woocommerce", name="Wholesale (WooCommerce sandbox)", currency="EUR",
                       timezone="Europe/Stockholm", settings={**DEMO_SETTINGS, "demo": True})
            session.add(woo)
        woo.external_id = fakes.woocommerce.url
        woo.credentials_encrypted = box.seal({"consumer_key": fakes.woocommerce_key,
                                              "consumer_secret": fakes.woocommerce_secret,
                                              "webhook_secret": webhook_secret})
        woo.webhook_secret_encrypted = box.seal(webhook_secret)
        woo.active = shopify.active = True
        for shop in (shopify, woo):  # SANDBOX PAGES: see AUTOMATION
            shop.settings = {**(shop.settings or {}), **AUTOMATION[shop.channel]}
        if session.execute(select(Location.id)).first() is None:
            session.add_all(Location(**location) for location in LOCATIONS)
            session.flush()
            stock.import_stock(session, STOCK_CSV)
        session.flush()
        return DemoShops(shopify.id, woo.id, webhook_secret)
