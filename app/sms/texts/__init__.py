"""Texts per language, and how the language of a text is chosen.

Adding a language: copy texts/en.py to texts/<code>.py (ISO 639-1), translate the values (keep the keys and
the {placeholders}), add it to LANGUAGES below, add its words to app/sms/intents.py, and map the countries
that speak it in COUNTRY_LANGUAGES. tests/sms/test_texts.py checks every language has every key and the same
placeholders.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from app.sms.texts import en, sv

DEFAULT_LANGUAGE = "en"
LANGUAGES: dict[str, Mapping[str, str]] = {"en": en.TEXTS, "sv": sv.TEXTS}
# A shipping address in one of these countries means its language, unless the customer's locale says otherwise.
COUNTRY_LANGUAGES: dict[str, str] = {"SE": "sv", "AX": "sv"}


def supported(code: str | None) -> str | None:
    """The supported language for a locale such as "sv", "sv-SE", "sv_FI", or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].strip().lower()
    return base if base in LANGUAGES else None


def choose(*, customer_locale: str | None, country: str | None, shop_locale: str | None) -> str:
    """The customer's own locale first, then their shipping country's language, then the shop's default."""
    return (supported(customer_locale) or COUNTRY_LANGUAGES.get((country or "").upper())
            or supported(shop_locale) or DEFAULT_LANGUAGE)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(language: str, key: str, **values: Any) -> str:
    """The text `key` in `language` (English when that language lacks it), with `values` filled in."""
    texts = LANGUAGES.get(language, LANGUAGES[DEFAULT_LANGUAGE])
    template = texts.get(key) or LANGUAGES[DEFAULT_LANGUAGE][key]
    # A value missing from the order renders empty rather than failing the send.
    return string.Formatter().vformat(template, (), _Blank(values)).strip()


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
