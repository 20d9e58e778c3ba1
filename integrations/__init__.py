"""Outside systems, one folder each. Core code finds a channel only through `channel(slug)`."""

from __future__ import annotations

from integrations.base import ChannelSpec

CHANNELS: dict[str, ChannelSpec] = {}
_loaded = False


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
    # Importing a channel's folder registers its spec: one line per channel here.
    global _loaded
    if _loaded:
        return
    import integrations.bigcommerce
    import integrations.shopify
    import integrations.woocommerce  # noqa: F401

    _loaded = True
