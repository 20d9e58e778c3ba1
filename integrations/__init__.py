"""Outside systems, one folder each. Core code finds a channel only through `channel(slug)`."""

from __future__ import annotations

from integrations.base import ChannelSpec

CHANNELS: dict[str, ChannelSpec] = {}


def register(spec: ChannelSpec) -> ChannelSpec:
    CHANNELS[spec.slug] = spec
    return spec


def channel(slug: str) -> ChannelSpec:
    _load()
    try:
        return CHANNELS[slug]
    except KeyError:
        raise LookupError(f"no channel '{slug}'; channels are: {', '.join(sorted(CHANNELS))}") from None


def all_channels() -> dict[str, ChannelSpec]:
    _load()
    return dict(CHANNELS)


def _load() -> None:
    # One line per channel: importing the folder registers its spec.
    if CHANNELS:
        return
    import importlib

    for name in ("shopify", "woocommerce", "bigcommerce"):
        try:
            importlib.import_module(f"integrations.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"integrations.{name}":
                raise
