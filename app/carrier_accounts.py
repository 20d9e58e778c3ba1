"""Which carrier account a label, a poll or a return goes through, and its client: one place for every caller.

A shipment stores the integration it was bought through in `Shipment.provider` (easypost, shippo, sandbox) and
the carrier that moves it in `Shipment.carrier` (USPS, DHL Express…); a return stores the integration in
`Return.carrier` and the moving carrier in `Return.label_carrier`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config import Settings
from app.failures import PermanentError
from app.models import Shop
from integrations.carriers import carrier as carrier_spec
from integrations.carriers.base import CarrierAccess, CarrierClient

DEFAULT_CARRIER = "sandbox"


def shop_carrier(shop: Shop) -> str:
    """The integration a shop buys labels through (shop setting `carrier`, default the offline sandbox)."""
    return str((shop.settings or {}).get("carrier") or DEFAULT_CARRIER)


def sandbox_state_dir(settings: Settings) -> str:
    # Web and worker processes must share the sandbox's labels and tracking: one folder on disk.
    return settings.sandbox_carrier_state_dir or str(Path(settings.instance_dir) / "sandbox-carrier")


def carrier_access(settings: Settings, slug: str, shop: Shop | None = None) -> CarrierAccess:
    """Credentials and settings for `slug`, from Orderline's settings, tuned per shop (`carrier_settings`:
    timeouts, label format… as each carrier's make_client documents them)."""
    tuning: dict[str, Any] = dict((shop.settings or {}).get("carrier_settings") or {}) if shop else {}
    if slug == "easypost":
        return CarrierAccess({"api_key": settings.easypost_api_key}, settings.easypost_api_base_url or None, tuning)
    if slug == "shippo":
        return CarrierAccess({"api_token": settings.shippo_api_token}, settings.shippo_api_base_url or None, tuning)
    sandbox: dict[str, Any] = {"state_dir": sandbox_state_dir(settings),
                               "minutes_to_deliver": settings.sandbox_carrier_minutes_to_deliver}
    if shop is not None:
        sandbox["currency"] = shop.currency
    return CarrierAccess({}, None, {**sandbox, **tuning})


def carrier_client(settings: Settings, slug: str | None = None, shop: Shop | None = None) -> CarrierClient:
    """The client for `slug` (default: the shop's carrier). An unknown slug is a permanent failure of the step."""
    if slug is None:
        if shop is None:
            raise ValueError("carrier_client needs a slug or a shop")
        slug = shop_carrier(shop)
    try:
        spec = carrier_spec(slug)
    except LookupError as error:
        raise PermanentError(f"{'shop ' + str(shop.id) + ': ' if shop else ''}{error}") from None
    return spec.make_client(carrier_access(settings, slug, shop))
