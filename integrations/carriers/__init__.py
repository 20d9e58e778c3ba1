"""Carriers, one folder each. Core code finds a carrier only through `carrier(slug)`."""

from __future__ import annotations

from integrations.carriers.base import CarrierSpec

CARRIERS: dict[str, CarrierSpec] = {}
_loaded = False


def register(spec: CarrierSpec) -> CarrierSpec:
    CARRIERS[spec.slug] = spec
    return spec


def carrier(slug: str) -> CarrierSpec:
    _load()
    try:
        return CARRIERS[slug]
    except KeyError:
        raise LookupError(f"no carrier '{slug}'; carriers are: {', '.join(sorted(CARRIERS))}") from None


def all_carriers() -> dict[str, CarrierSpec]:
    _load()
    return dict(CARRIERS)


def _load() -> None:
    # Importing a carrier's folder registers its spec: one line per carrier here.
    global _loaded
    if _loaded:
        return
    import integrations.carriers.easypost
    import integrations.carriers.sandbox
    import integrations.carriers.shippo  # noqa: F401

    _loaded = True
