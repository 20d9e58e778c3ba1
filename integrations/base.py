"""What every sales channel provides, and the plain values its webhooks turn into.

A channel folder (`integrations/<slug>/`) exposes one `ChannelSpec`. Core code reaches it only through
`integrations.channel(slug)`. Everything here is pure: no database, no Flask, no network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from app.orders.types import NewOrder, NewRefund


class WebhookVerificationError(Exception):
    """The request is not from the channel: answered 401, nothing stored, the body never parsed."""


class PayloadError(Exception):
    """A verified payload that cannot be mapped: the inbox entry fails with this reason, replayable later."""


def hmac_sha256_base64(secret: bytes | str, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def matches_any(expected: str | None, candidates: Iterable[str]) -> bool:
    """Constant-time comparison against each candidate (several secrets during a rotation)."""
    if not expected:
        return False
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A provider's `Retry-After` in seconds (header name in any case), or None when absent or not a number."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


# --- what a webhook says ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """Read from the headers (and path) before verification: which shop, which topic, which delivery."""

    topic: str
    delivery_id: str
    # The channel's name for the shop (a myshopify domain, the path segment): how the shop is found.
    shop_ref: str
    triggered_at: datetime | None = None


@dataclass(frozen=True)
class OrderSnapshot:
    """The whole order as the channel has it now (external_id and channel_updated_at set)."""

    order: NewOrder


@dataclass(frozen=True)
class FetchOrder:
    """A thin payload: the ingest job fetches the order from the channel's API, then maps it."""

    external_id: str


@dataclass(frozen=True)
class RefundCreated:
    order_external_id: str
    refund: NewRefund


@dataclass(frozen=True)
class OrderRemoved:
    """Deleted, archived or trashed on the channel."""

    external_id: str
    reason: str = "deleted"


@dataclass(frozen=True)
class AppUninstalled:
    pass


@dataclass(frozen=True)
class CustomerDataRequest:
    customer_email: str | None
    customer_phone: str | None
    order_external_ids: list[str]
    request_id: str | None = None


@dataclass(frozen=True)
class CustomerRedact:
    customer_email: str | None
    customer_phone: str | None
    order_external_ids: list[str]


@dataclass(frozen=True)
class ShopRedact:
    pass


ChannelEvent = (OrderSnapshot | FetchOrder | RefundCreated | OrderRemoved | AppUninstalled
                | CustomerDataRequest | CustomerRedact | ShopRedact)

# topic → pure function of the parsed JSON body
TopicHandler = Callable[[Any], ChannelEvent]


@dataclass(frozen=True)
class ChangedOrders:
    """One page of a reconciliation poll."""

    orders: list[NewOrder]
    next_cursor: str | None


class ChannelClient(Protocol):
    """The channel's API, as ingest and reconciliation use it. Raises app.failures errors."""

    def fetch_order(self, external_id: str) -> NewOrder: ...

    def changed_orders(self, since: datetime, cursor: str | None = None) -> ChangedOrders: ...

    def register_webhooks(self, address: str, topics: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class ShopAccess:
    """What a client needs to reach one shop: decrypted credentials, base URL overrides from settings."""

    external_id: str
    credentials: Mapping[str, str]
    api_base_url: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelSpec:
    slug: str
    display_name: str
    # Reads topic, delivery id and shop from the request; None means a ping to answer 200 and forget.
    # Raises WebhookVerificationError when the headers a real delivery always has are missing.
    read_delivery: Callable[[Mapping[str, str], bytes, str | None], Delivery | None]
    # Checks the signature over the raw bytes against any of the secrets; raises WebhookVerificationError.
    verify: Callable[[Mapping[str, str], bytes, Sequence[str]], None]
    topics: Mapping[str, TopicHandler]
    ignored_topics: frozenset[str]
    make_client: Callable[[ShopAccess], ChannelClient]
    # True when the channel signs with one app-wide secret (Shopify): the signature is then checked
    # before the shop is looked up, so a forged request gets 401 even for a shop we do not know.
    signs_with_app_secret: bool = False

    @property
    def all_topics(self) -> frozenset[str]:
        return frozenset(self.topics) | self.ignored_topics


# --- pushing shipments back to the channel (shipping helper) ---------------------------------------------


@dataclass(frozen=True)
class FulfilmentLine:
    """Units of one of the channel's line items that left in one parcel."""

    external_id: str
    quantity: int
    sku: str | None = None


@dataclass(frozen=True)
class FulfilmentPush:
    """One parcel to report on the channel. `tracking_number` is what makes a repeated push findable."""

    order_external_id: str
    lines: tuple[FulfilmentLine, ...]
    tracking_company: str
    tracking_number: str
    tracking_url: str | None
    notify_customer: bool = False
    # True when this parcel completes the order (WooCommerce then marks the order `completed`).
    completes_order: bool = False


class FulfilmentPusher(Protocol):
    """A channel client that can report a shipment. Raises app.failures errors."""

    def push_fulfilment(self, push: FulfilmentPush) -> str:
        """Create the channel's fulfilment/shipment for `push`, or find the one already carrying its
        tracking number; returns the channel's id for it."""
        ...
# --- refunds pushed to the channel (returns: app/returns.py) ---------------------------------------------


@dataclass(frozen=True)
class RefundRequest:
    """A refund Orderline asks the channel to make. `key` is ours, stored with the refund on the channel (in
    its note or reason), so a retry after a lost answer finds the refund instead of making a second one."""

    key: str
    order_external_id: str
    amount: str  # an exact decimal string in the order's currency
    currency: str
    # line item external id → quantity
    line_items: Mapping[str, int]
    note: str
    restock: bool = False
    # Shopify's refund transaction names the payment gateway to refund through (shop setting refund_gateway).
    gateway: str = "manual"


@dataclass(frozen=True)
class PushedRefund:
    external_id: str
    amount: str


class RefundingClient(Protocol):
    """A channel client that can refund (Shopify refundCreate, WooCommerce and BigCommerce refunds)."""

    def find_refund(self, order_external_id: str, key: str) -> PushedRefund | None: ...

    def create_refund(self, request: RefundRequest) -> PushedRefund: ...
