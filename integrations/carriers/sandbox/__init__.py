"""The sandbox carrier: offline, deterministic rates, labels and tracking for development and the demo.

It sends no webhooks: tracking is read with `track`, which follows a fixed timeline from the purchase.
See `client.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from integrations.carriers import register
from integrations.carriers.base import (
    CarrierSpec,
    TrackingStatus,
    TrackingUpdate,
    WebhookPayloadError,
    WebhookVerificationError,
)
from integrations.carriers.sandbox.client import make_client

# The sandbox reports Orderline's own statuses.
STATUS_MAP: Mapping[str, TrackingStatus] = {status.value: status for status in TrackingStatus}


def verify_webhook(headers: Mapping[str, str], raw: bytes, secrets: Sequence[str],
                   query: Mapping[str, str] | None = None) -> None:
    """The sandbox sends no webhooks, so any request claiming to be one is refused.

    Raises:
        WebhookVerificationError: always.
    """
    raise WebhookVerificationError("the sandbox carrier sends no webhooks")


def parse_webhook(payload: Any) -> list[TrackingUpdate]:
    """Raises WebhookPayloadError: there are no sandbox webhooks to parse."""
    raise WebhookPayloadError("the sandbox carrier sends no webhooks")


SPEC = register(CarrierSpec(
    slug="sandbox",
    display_name="Sandbox carrier",
    make_client=make_client,
    verify_webhook=verify_webhook,
    parse_webhook=parse_webhook,
    status_map=STATUS_MAP,
    sends_webhooks=False,
    find_label_method="the tracking number is a function of the reference, and the store is keyed by it",
))
