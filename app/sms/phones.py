"""Phone numbers: E.164 with `phonenumbers` (the shipping country decides a national number), and their
redacted form for logs."""

from __future__ import annotations

import phonenumbers


def normalize(raw: str | None, country: str | None) -> str | None:
    """`raw` as E.164 (+46701234567), or None when it is not a valid number for any reading."""
    if not raw or not raw.strip():
        return None
    region = (country or "").upper() or None
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def redact(phone: str | None) -> str:
    """What a log may say about a number: its country code and last two digits (+46*******67)."""
    if not phone:
        return ""
    digits = phone.lstrip("+")
    try:
        code = str(phonenumbers.parse(phone, None).country_code)
    except phonenumbers.NumberParseException:
        code = digits[:2]
    return "+" + code + "*" * max(len(digits) - len(code) - 2, 0) + digits[-2:]
