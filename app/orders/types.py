"""Plain typed values that cross into the domain: who acts, and what an order looks like from outside.

Channel mappings (integrations) and the REST API both produce a `NewOrder`; only `actions` turns it into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class ActorKind(StrEnum):
    SYSTEM = "system"
    STAFF = "staff"
    CUSTOMER = "customer"
    CHANNEL = "channel"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    MANAGER = "manager"

    @property
    def rank(self) -> int:
        return [Role.VIEWER, Role.OPERATOR, Role.MANAGER].index(self)


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None
    name: str | None = None
    # Only staff carry a role; the system and channels act with full rights.
    role: Role | None = None

    @classmethod
    def system(cls, name: str = "Orderline") -> Actor:
        return cls(ActorKind.SYSTEM, None, name)

    @classmethod
    def staff(cls, id: str, name: str, role: Role) -> Actor:
        return cls(ActorKind.STAFF, id, name, role)

    def may(self, required: Role) -> bool:
        return self.role is None or self.role.rank >= required.rank


@dataclass(frozen=True)
class NewAddress:
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class NewLineItem:
    title: str
    quantity: int
    unit_price: Decimal
    sku: str | None = None
    variant_title: str | None = None
    external_id: str | None = None
    total_discount: Decimal = Decimal("0")
    requires_shipping: bool = True
    fulfilled_quantity: int = 0


@dataclass(frozen=True)
class NewRefund:
    """A refund as the channel reports it; applied once per `external_id`."""

    external_id: str
    amount: Decimal
    # line item external id → quantity refunded
    line_items: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewOrder:
    currency: str
    line_items: list[NewLineItem]
    external_id: str | None = None
    number: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    customer_locale: str | None = None
    shipping_address: NewAddress | None = None
    billing_address: NewAddress | None = None
    shipping_level: str = "standard"
    shipping_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    discount_total: Decimal = Decimal("0")
    financial_status: str = "pending"
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    risk_level: str | None = None
    placed_at: datetime | None = None
    channel_updated_at: datetime | None = None
    # What only a channel reports: its own fulfilment and cancellation state, and refunds so far.
    fulfillment_status: str = "unfulfilled"
    cancelled: bool = False
    cancel_reason: str | None = None
    refunds: list[NewRefund] = field(default_factory=list)
