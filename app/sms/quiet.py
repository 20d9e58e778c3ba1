"""Quiet hours in the customer's time zone, taken from the shipping address.

The zone: a country with one time zone (Sweden) has it; in a country with several (the US), the zone of the
customer's number when phonenumbers knows one inside that country, else the shop's zone when it is in that
country, else the country's first listed zone (zone.tab). No address: the shop's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones


@cache
def country_zones() -> dict[str, tuple[str, ...]]:
    try:
        text = (resources.files("tzdata") / "zoneinfo" / "zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        text = Path("/usr/share/zoneinfo/zone.tab").read_text()
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                zones.setdefault(parts[0], []).append(parts[2])
    return {country: tuple(names) for country, names in zones.items()}


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_for(*, country: str | None, phone: str | None, shop_timezone: str | None) -> ZoneInfo:
    shop_zone = _zone(shop_timezone) or ZoneInfo("UTC")
    candidates = country_zones().get((country or "").upper(), ())
    if not candidates:
        return shop_zone
    if len(candidates) == 1:
        return _zone(candidates[0]) or shop_zone
    if phone:
        try:
            for name in phone_timezones.time_zones_for_number(phonenumbers.parse(phone, None)):
                if name in candidates:
                    return _zone(name) or shop_zone
        except phonenumbers.NumberParseException:
            pass
    if shop_timezone in candidates:
        return shop_zone
    return _zone(candidates[0]) or shop_zone


def parse_window(text: str) -> tuple[time, time]:
    """"21:00-08:00" → (21:00, 08:00). The window may wrap midnight."""
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def next_allowed(now: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime | None:
    """None when a text may go out at `now`; otherwise the UTC instant the quiet window ends."""
    start, end = window
    if start == end:
        return None
    local = now.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    inside = (start <= at < end) if start < end else (at >= start or at < end)
    if not inside:
        return None
    day = local.date() if at < end else local.date() + timedelta(days=1)
    # Built in the zone, so the morning hour stays right across a daylight-saving change.
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)
