"""OAuth 1.0a one-legged request signing, as WooCommerce checks it for REST calls over plain http.

WooCommerce (`WC_REST_Authentication::check_oauth_signature`) rebuilds the signed string from the request:
`METHOD & rawurlencode(URL without query) & rawurlencode("k=v") joined by %26`, where k and v are themselves
rawurlencoded and the parameters (every query parameter, oauth_signature left out) are sorted by key. The
key is `consumer_secret + "&"` (no token secret); HMAC-SHA256 and HMAC-SHA1 are accepted, timestamps must be
within 15 minutes and a nonce is accepted once.

woocommerce/wc-api-python (`oauth.py`) signs the same string, except that it leaves "/" unencoded in values
(`urllib.parse.quote`'s default); the server encodes it, so values with a "/" fail there. Here every value is
encoded the way the server does it (RFC 3986, PHP's rawurlencode).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from urllib.parse import quote

SIGNATURE_METHOD = "HMAC-SHA256"


def rfc3986(value: str) -> str:
    """PHP's rawurlencode: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded."""
    return quote(value, safe="~")


def signature_base(method: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """The string WooCommerce signs: method, URL without its query, and the sorted, encoded parameters."""
    ordered = sorted(params, key=lambda pair: pair[0])
    joined = "%26".join(rfc3986(f"{rfc3986(key)}={rfc3986(value)}") for key, value in ordered)
    return f"{method.upper()}&{rfc3986(url)}&{joined}"


def sign(consumer_secret: str, base: str, method: str = SIGNATURE_METHOD) -> str:
    digest = hashlib.sha256 if method == "HMAC-SHA256" else hashlib.sha1
    key = f"{consumer_secret}&".encode()
    return base64.b64encode(hmac.new(key, base.encode(), digest).digest()).decode()


def signed_params(method: str, url: str, params: Sequence[tuple[str, str]], consumer_key: str,
                  consumer_secret: str, *, timestamp: int | None = None,
                  nonce: str | None = None) -> list[tuple[str, str]]:
    """`params` plus the oauth_* parameters (signature last) for a request to `url` (no query in it)."""
    oauth = [
        ("oauth_consumer_key", consumer_key),
        ("oauth_timestamp", str(int(time.time()) if timestamp is None else timestamp)),
        ("oauth_nonce", nonce or secrets.token_hex(20)),
        ("oauth_signature_method", SIGNATURE_METHOD),
    ]
    everything = [*params, *oauth]
    return [*everything, ("oauth_signature", sign(consumer_secret, signature_base(method, url, everything)))]
