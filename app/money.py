"""Currencies and exact amounts: ISO 4217 codes, and no more decimals than the currency has."""

from __future__ import annotations

from decimal import Decimal

import pycountry

# ISO 4217 minor units that differ from the usual two (the table pycountry does not carry).
_MINOR_UNITS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def is_currency(code: str) -> bool:
    return len(code) == 3 and code.isupper() and pycountry.currencies.get(alpha_3=code) is not None


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def amount_problem(amount: Decimal, currency: str) -> str | None:
    """Why `amount` is not a valid price in `currency`, or None when it is."""
    if not amount.is_finite():
        return "must be a finite number"
    if amount < 0:
        return "must not be negative"
    exponent = amount.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > minor_units(currency):
        return f"has {places} decimal places; {currency} allows {minor_units(currency)}"
    return None
