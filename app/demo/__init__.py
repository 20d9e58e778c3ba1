"""`orderline demo`: Orderline with sandbox shops sending a realistic stream of orders, for a first look.

One process runs the web app, the fake Shopify and WooCommerce APIs (the same `integrations/*/fake.py` the
tests use) and the order stream (`stream.py`); a worker process runs the jobs. Everything lives in its own
instance folder (`./instance/demo` unless ORDERLINE_INSTANCE_DIR or DATABASE_URL say otherwise), so the demo
never mixes with `orderline serve`'s data. Refused in production.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from app.config import Settings
from app.demo.sandbox import SHOPIFY_DOMAIN, Fakes, hooks, seed
from app.demo.stream import OrderStream, ShopTarget

DEMO_SHOPIFY_SECRET = "orderline-demo-shopify-app-secret"  # noqa: S105 - signs sandbox webhooks only
# HOOK: modules that register the Slack and phone sandboxes (`sandbox.register_hook`); a missing one is skipped,
# so the demo runs on branches where they are not merged yet.
HOOK_MODULES = ("integrations.slack.sandbox", "integrations.twilio.sandbox")


@dataclass
class Demo:
    app: Flask
    fakes: Fakes
    stream: OrderStream
    env: dict[str, str]

    def stop(self) -> None:
        self.stream.stop()
        for hook in hooks():
            if hook.stop:
                hook.stop()
        self.fakes.stop()


def load_hooks() -> list[str]:
    loaded = []
    for name in HOOK_MODULES:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ModuleNotFoundError as error:
            if not error.name or not (name == error.name or name.startswith(error.name + ".")):
                raise  # the module exists but something it imports does not: a real error
    return loaded


def demo_environment(settings: Settings, fakes: Fakes, base_url: str = "") -> dict[str, str]:
    """The settings the web app and the worker need to talk to the sandboxes."""
    env = {
        "SHOPIFY_API_BASE_URL": fakes.shopify.url,
        "SHOPIFY_API_SECRET": settings.shopify_api_secret or DEMO_SHOPIFY_SECRET,
    }
    if base_url:  # SANDBOX PAGES: the app's address, which the phone sandbox signs Twilio webhooks over
        env["PUBLIC_BASE_URL"] = base_url
    if not settings.database_url and not os.environ.get("ORDERLINE_INSTANCE_DIR"):
        env["ORDERLINE_INSTANCE_DIR"] = str(Path(settings.instance_dir) / "demo")
    for hook in hooks():
        if hook.prepare:
            env.update(hook.prepare(dict(env)))
    return env


def start(settings: Settings, *, base_url: str, every: float = 4.0, seed_value: int | None = None,
          create_app: Any = None) -> Demo:
    """Start the fakes, build the app on the demo settings, seed shops and stock, start the order stream.
    The caller starts the worker (with `demo.env`) and serves `demo.app`."""
    from app import create_app as default_create_app
    from app.cli import _dev_bootstrap
    from app.config import load_settings

    load_hooks()
    fakes = Fakes.start()
    env = demo_environment(settings, fakes, base_url)
    os.environ.update(env)
    app = (create_app or default_create_app)(load_settings())
    _dev_bootstrap(app)
    runtime = app.extensions["orderline"]
    shops = seed(runtime, fakes)
    shopify_secret = runtime.settings.shopify_api_secret
    targets = [
        ShopTarget("shopify", f"{base_url}/webhooks/shopify", shopify=fakes.shopify,
                   shopify_domain=SHOPIFY_DOMAIN, shopify_secret=shopify_secret),
        ShopTarget("woocommerce", f"{base_url}/webhooks/woocommerce/{shops.woocommerce_id}",
                   woocommerce=fakes.woocommerce, woocommerce_secret=shops.woocommerce_webhook_secret),
    ]
    stream = OrderStream(targets, every=every, seed=seed_value)
    app.extensions["orderline.demo"] = stream  # the dashboard's Black Friday button calls stream.burst()
    for hook in hooks():
        if hook.attach:
            hook.attach(app)
    return Demo(app=app, fakes=fakes, stream=stream, env=env)
