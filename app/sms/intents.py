"""What an inbound text asks for, in the supported languages.

Keywords (the whole text, as carriers and Twilio match them): opt-out, opt-in and help words. Everything else
is matched on words and phrases anywhere in the text. Adding a language: add its words to each table and its
telltale words to LANGUAGE_HINTS.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Twilio's default opt-out and opt-in words (PROTOCOLS §5.5); the Swedish ones are honoured too.
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "STOPP", "AVSLUTA"}
OPT_IN = {"START", "YES", "UNSTOP", "JA"}
HELP = {"HELP", "INFO", "HJÄLP", "HJALP"}

PHRASES: dict[str, tuple[str, ...]] = {
    "return": ("return", "send it back", "send back", "retur", "returnera", "skicka tillbaka", "ångra köp"),
    "cancel": ("cancel", "avbryt", "annullera", "ångra beställning", "makulera"),
    "wait": ("wait", "vänta", "jag väntar", "i'll wait", "i will wait"),
    "status": ("status", "where", "track", "tracking", "when will", "delivery", "parcel", "package", "shipped",
               "var är", "var e", "paket", "leverans", "spåra", "spårning", "när kommer", "skickad", "skickats"),
}
LANGUAGE_HINTS: dict[str, tuple[str, ...]] = {
    "sv": ("å", "ä", "ö", "var är", "mitt", "min ", "hej", "tack", "paket", "beställning", "retur", "avbryt",
           "vänta", "när", "jag", "inte", "och"),
    "en": (" where ", " my ", " the ", " is ", " please", " when ", " what ", " hello", " hi ", " thanks", " order",
           " cancel", " return", " i ", " can "),
}
_ORDER_NUMBER = re.compile(r"#?\b(\d{3,12})\b")


@dataclass(frozen=True)
class Understood:
    intent: str  # opt_out | opt_in | help | return | cancel | wait | status | order_number | empty | media | other
    order_number: str | None
    language: str | None  # a language the words gave away, or None


def _keyword(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip().strip(".!?").strip().upper()


def detect_language(text: str) -> str | None:
    lowered = " " + re.sub(r"[^\w]+", " ", text.casefold()) + " "
    for language, hints in LANGUAGE_HINTS.items():
        if any(hint in lowered for hint in hints):
            return language
    return None


def understand(body: str, *, num_media: int = 0) -> Understood:
    text = unicodedata.normalize("NFC", body or "")[:1600]
    if not text.strip():
        return Understood("media" if num_media else "empty", None, None)
    keyword = _keyword(text)
    language = detect_language(text)
    if keyword in OPT_OUT:
        return Understood("opt_out", None, "sv" if keyword in {"STOPP", "AVSLUTA"} else language)
    if keyword in OPT_IN:
        return Understood("opt_in", None, "sv" if keyword == "JA" else language)
    if keyword in HELP:
        return Understood("help", None, "sv" if keyword.startswith("HJ") else language)
    number_match = _ORDER_NUMBER.search(text)
    number = number_match.group(1) if number_match else None
    lowered = text.casefold()
    for intent in ("return", "cancel", "wait", "status"):
        if any(re.search(rf"(?<!\w){re.escape(phrase)}", lowered) for phrase in PHRASES[intent]):
            return Understood(intent, number, language)
    if number and len(_keyword(text).lstrip("#")) == len(number):
        return Understood("order_number", number, language)
    return Understood("other", number, language)
