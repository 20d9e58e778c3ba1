"""X-Twilio-Signature (PROTOCOLS §5.1): base64 HMAC-SHA1 of the full URL Twilio requested followed by every POST
parameter, names sorted and each name's values sorted, as `name + value`. Verification is the SDK's own
`RequestValidator` (it also tries the URL with and without the default port); `sign` is the same algorithm, used
by the fake and the tests to sign requests exactly as Twilio does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _multi(params: Params) -> dict[str, list[str]]:
    items = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return grouped


class _MultiParams(dict[str, list[str]]):
    """What RequestValidator reads repeated parameters from (it calls `getlist` when present)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def sign(auth_token: str, url: str, params: Params) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST of `params` to `url`."""
    validator = RequestValidator(auth_token)
    return str(validator.compute_signature(url, _MultiParams(_multi(params))))


def verify(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """True when `signature` is Twilio's for this URL and these parameters (and the token is set)."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, _MultiParams(_multi(params)), signature))
