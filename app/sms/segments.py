"""How many SMS segments a text costs: GSM-7 when every character is in the GSM 03.38 alphabet (160 per single
message, 153 per part when split), otherwise UCS-2 (70, or 67 per part, counted in UTF-16 code units, so an
emoji takes two). Swedish å, ä, ö are GSM-7; one emoji makes the whole text UCS-2."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà")
# Sent as an escape plus the character: two septets each.
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
# Twilio's own ceiling for one message body.
MAX_CHARS = 1600


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int


def count(text: str) -> Segments:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    parts = 1 if units <= single else -(-units // part)
    return Segments(encoding, units, parts if text else 0)


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """The text cut to Twilio's limit (with an ellipsis), so an oversized reply is shortened, never refused."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
