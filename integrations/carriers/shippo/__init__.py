"""Shippo: rates, labels (transactions), refunds and tracks over REST; track webhooks checked by URL token.

Receiver: POST /webhooks/carriers/shippo?token=<webhook token>. Authenticity: the URL token (`webhooks.py`).
Credentials and settings: see `client.py`.
"""

from __future__ import annotations

from integrations.carriers import register
from integrations.carriers.base import CarrierSpec
from integrations.carriers.shippo.client import make_client
from integrations.carriers.shippo.mapping import STATUS_MAP
from integrations.carriers.shippo.webhooks import EVENT_HANDLERS, IGNORED_EVENTS, parse_webhook, verify_webhook

SPEC = register(CarrierSpec(
    slug="shippo",
    display_name="Shippo",
    make_client=make_client,
    verify_webhook=verify_webhook,
    parse_webhook=parse_webhook,
    status_map=STATUS_MAP,
    webhook_events=frozenset(EVENT_HANDLERS),
    ignored_events=IGNORED_EVENTS,
    find_label_method="transactions carry our reference as `metadata`; the transaction listing is read page "
                      "by page and matched on it (a label still QUEUED raises TransientError)",
))
