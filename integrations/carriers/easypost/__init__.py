"""EasyPost: rates, labels, refunds and trackers through the official SDK; tracker webhooks signed with HMAC.

Receiver: POST /webhooks/carriers/easypost. Authenticity: X-Hmac-Signature over the raw body with the
webhook secret (`webhooks.py`). Credentials and settings: see `client.py`.
"""

from __future__ import annotations

from integrations.carriers import register
from integrations.carriers.base import CarrierSpec
from integrations.carriers.easypost.client import make_client
from integrations.carriers.easypost.mapping import STATUS_MAP
from integrations.carriers.easypost.webhooks import (
    EVENT_HANDLERS,
    IGNORED_EVENT_FAMILIES,
    parse_webhook,
    verify_webhook,
)

SPEC = register(CarrierSpec(
    slug="easypost",
    display_name="EasyPost",
    make_client=make_client,
    verify_webhook=verify_webhook,
    parse_webhook=parse_webhook,
    status_map=STATUS_MAP,
    webhook_events=frozenset(EVENT_HANDLERS),
    ignored_events=frozenset(f"{family}*" for family in IGNORED_EVENT_FAMILIES),
    find_label_method="shipments carry our `reference`; purchased shipments since the attempt are listed "
                      "(GET /v2/shipments, newest first) and matched on it, voided ones skipped",
))
