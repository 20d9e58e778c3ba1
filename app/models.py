"""The unified order model: every channel's orders, in one shape."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.store import Base, JSONType, Money, UTCDateTime, utcnow


class Shop(Base):
    __tablename__ = "shops"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_shops_channel_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    # The channel's own name for the shop: a myshopify domain, a store URL, a store hash.
    external_id: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Fernet tokens; plaintext never touches the database or the API.
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reconciliation polls for orders the channel changed after this instant.
    reconciled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_order_number: Mapped[int] = mapped_column(Integer, default=1001)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    orders: Mapped[list[Order]] = relationship(back_populates="shop")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "external_id", name="uq_orders_shop_external_id"),
        Index("ix_orders_status", "status"),
        Index("ix_orders_placed_at", "placed_at"),
        Index("ix_orders_customer_email", "customer_email"),
        Index("ix_orders_number", "number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    # Where a hold came from, so that releasing it resumes there.
    status_before_hold: Mapped[str | None] = mapped_column(String(32))
    hold_reason: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    financial_status: Mapped[str] = mapped_column(String(32), default="pending")
    fulfillment_status: Mapped[str] = mapped_column(String(32), default="unfulfilled")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Money)
    shipping_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    tax_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    discount_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    total: Mapped[Decimal] = mapped_column(Money)
    refunded_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_phone: Mapped[str | None] = mapped_column(String(32))
    customer_locale: Mapped[str | None] = mapped_column(String(16))
    shipping_level: Mapped[str] = mapped_column(String(32), default="standard")
    # What the packer's scale said when it differed from the SKU data (set by the `pack` action).
    packed_weight_grams: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    risk_level: Mapped[str | None] = mapped_column(String(16))
    # Why triage sent the order to a person: [{"rule": ..., "message": ...}] (app.orders.rules).
    review_reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The channel's own last-modified time: an update older than this is never applied.
    channel_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    shop: Mapped[Shop] = relationship(back_populates="orders")
    line_items: Mapped[list[LineItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="LineItem.id"
    )
    addresses: Mapped[list[Address]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Address.id"
    )
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Shipment.id"
    )
    returns: Mapped[list[Return]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Return.id"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderEvent.id"
    )
    refunds: Mapped[list[OrderRefund]] = relationship(cascade="all, delete-orphan", order_by="OrderRefund.id")

    def address(self, kind: str) -> Address | None:
        return next((a for a in self.addresses if a.kind == kind), None)


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (UniqueConstraint("order_id", "kind", name="uq_addresses_order_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # shipping | billing
    name: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    line1: Mapped[str | None] = mapped_column(String(255))
    line2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(128))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    country_code: Mapped[str | None] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(32))

    order: Mapped[Order] = relationship(back_populates="addresses")


class LineItem(Base):
    __tablename__ = "line_items"
    __table_args__ = (Index("ix_line_items_sku", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    sku: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    variant_title: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    total_discount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    requires_shipping: Mapped[bool] = mapped_column(Boolean, default=True)
    fulfilled_quantity: Mapped[int] = mapped_column(Integer, default=0)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)

    order: Mapped[Order] = relationship(back_populates="line_items")


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    carrier: Mapped[str | None] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    label_url: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    cost_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- tracking (app/tracking.py) ---
    # The carrier's newest status as we apply it (never moved backwards by a late event).
    tracking_status: Mapped[str | None] = mapped_column(String(32))
    # When the carrier last scanned it, and when we last heard anything (webhook or poll).
    last_scan_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_tracking_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    expected_delivery: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # --- label purchase and channel push (shipping helper; app/shipping.py) ---
    # Our idempotency reference, claimed and committed before any carrier call (see integrations/carriers).
    reference: Mapped[str | None] = mapped_column(String(100), unique=True, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The carrier account the label is bought through (shop setting `carrier`: sandbox, easypost, shippo).
    provider: Mapped[str | None] = mapped_column(String(32))
    # Staff's pick from the quoted rates (`ship` action); empty: rate shopping decides.
    requested_carrier: Mapped[str | None] = mapped_column(String(64))
    requested_service: Mapped[str | None] = mapped_column(String(64))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", name="fk_shipments_location_id"))
    # line item id (as text: JSON keys) → units in this parcel
    items: Mapped[dict[str, int] | None] = mapped_column(JSONType, default=dict)
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    provider_shipment_id: Mapped[str | None] = mapped_column(String(128))
    provider_label_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    channel_fulfilment_id: Mapped[str | None] = mapped_column(String(255))
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- end shipping helper block ---

    order: Mapped[Order] = relationship(back_populates="shipments")


class Return(Base):
    __tablename__ = "returns"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    rma: Mapped[str] = mapped_column(String(64), unique=True)
    # requested → label_ready → in_transit → received → inspected → refunded (app/returns.py)
    status: Mapped[str] = mapped_column(String(32), default="requested")
    reason: Mapped[str | None] = mapped_column(Text)
    refund_amount: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # --- returns (app/returns.py) ---
    # [{"line_item_id", "sku", "quantity", "reason"}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    carrier: Mapped[str | None] = mapped_column(String(64))
    # Claimed and committed before the carrier is asked for a label, so a retry looks it up instead.
    label_reference: Mapped[str | None] = mapped_column(String(100))
    label_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    label_url: Mapped[str | None] = mapped_column(Text)
    tracking_status: Mapped[str | None] = mapped_column(String(32))
    # The label's own carrier ("USPS": Shippo tracks per carrier) and when to poll the parcel next.
    label_carrier: Mapped[str | None] = mapped_column(String(64))
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    inspected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    restocked: Mapped[bool | None] = mapped_column(Boolean)
    # The refund on the channel: claimed (key) and committed before the call, its id once made.
    refund_key: Mapped[str | None] = mapped_column(String(100))
    refund_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refund_external_id: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)

    order: Mapped[Order] = relationship(back_populates="returns")


class OrderRefund(Base):
    """A refund the channel made, kept so that the same refund reported twice is counted once."""

    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("order_id", "external_id", name="uq_order_refunds_order_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[Decimal] = mapped_column(Money)
    line_items: Mapped[dict[str, int] | None] = mapped_column(JSONType, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderEvent(Base):
    """The order's timeline: append-only, one row per thing that happened to it."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))  # system | staff | customer | channel
    actor_id: Mapped[str | None] = mapped_column(String(128))
    actor_name: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")


class InboundEvent(Base):
    """A verified request from outside, stored before it is acknowledged (the inbox)."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("provider", "delivery_id", name="uq_inbound_provider_delivery"),
        Index("ix_inbound_events_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    # No foreign key: the receiver checked the shop, and a key would make every concurrent insert lock the
    # same shop row (migration 0012).
    shop_id: Mapped[int | None] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(128))
    delivery_id: Mapped[str] = mapped_column(String(255))
    # The order it turned out to be about (set by ingest), so an erasure can find the bodies to scrub.
    order_external_id: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # received → processed | ignored | stale | failed
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Set when the channel asked us to wait (429, a refund before its order): not ingested before then.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxEvent(Base):
    """Work to do, committed with the change that asked for it; closed when its job finishes."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_status", "status", "next_attempt_at"),
                      Index("ix_outbox_events_coalesce_key", "coalesce_key", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # pending → done | failed (a failed row can be requeued, which makes it pending again)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Jobs that redo the whole of something (refresh an order's Slack card) share a key: a new request joins
    # the one still waiting instead of queueing another (outbox.add_coalesced).
    coalesce_key: Mapped[str | None] = mapped_column(String(128))
    # The RQ job id of the latest enqueue, so the sweeper can tell a live job from a vanished one.
    rq_job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough and lookups stay indexed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | manager
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PrivacyRequest(Base):
    """A customer data export or erasure a channel asked for (Shopify's compliance webhooks), and its result."""

    __tablename__ = "privacy_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # customer_export | customer_redact | shop_redact
    status: Mapped[str] = mapped_column(String(16), default="done")
    orders_affected: Mapped[int] = mapped_column(Integer, default=0)
    # The export itself (for customer_export); erasures keep only counts, never what was erased.
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconcileRun(Base):
    """One reconciliation poll of a shop: what the channel had that the webhooks did not bring."""

    __tablename__ = "reconcile_runs"
    __table_args__ = (Index("ix_reconcile_runs_shop", "shop_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="reconcile")  # reconcile | backfill
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    orders_seen: Mapped[int] = mapped_column(Integer, default=0)
    # Orders the webhooks never brought (created here by the poll) and updates they missed.
    missed_creates: Mapped[int] = mapped_column(Integer, default=0)
    missed_updates: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Alert(Base):
    """Something staff must hear about (a failed job, missed webhooks). The Slack ops channel posts these."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_created", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    # Repeats of one problem share a key and so one alert; the count says how often it recurred.
    dedupe_key: Mapped[str] = mapped_column(String(255), index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- stock and allocation -------------------------------------------------------------------------------


class Location(Base):
    """A place stock is kept and shipped from (a warehouse, a shop's back room)."""

    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Short and stable, as staff say it and CSV files name it ("STHLM", "NJ"); stored in capitals.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country_code: Mapped[str] = mapped_column(String(2))
    line1: Mapped[str | None] = mapped_column(String(255))
    line2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(128))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Inactive locations keep their stock figures but are never allocated from.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower ships first when several locations could.
    priority: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StockLevel(Base):
    """How many of one SKU a location holds, and how many of those are promised to orders."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("location_id", "sku", name="uq_stock_levels_location_sku"),
        # The last line of defence against overselling: the database refuses what the locking should prevent.
        CheckConstraint("on_hand >= 0", name="ck_stock_levels_on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="ck_stock_levels_reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="ck_stock_levels_reserved_within_on_hand"),
        Index("ix_stock_levels_sku", "sku"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    sku: Mapped[str] = mapped_column(String(128))
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    # Where it sits in the location ("A-03-2"): pick lists are sorted by it.
    bin: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    location: Mapped[Location] = relationship()

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Allocation(Base):
    """Units of one line item promised from one location: reserved → picked → shipped, or released."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_allocations_quantity_positive"),
        Index("ix_allocations_order", "order_id"),
        Index("ix_allocations_location_status", "location_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    # A line the channel later removes leaves its allocation (and the stock it holds) for staff to see.
    line_item_id: Mapped[int | None] = mapped_column(ForeignKey("line_items.id", ondelete="SET NULL"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    sku: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="reserved")  # reserved | picked | shipped | released
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship()
    location: Mapped[Location] = relationship()


# --- product catalogue (shipping helper): what parcels weigh and what customs declarations say ----------


class Product(Base):
    """One SKU of one shop: weight and size for parcels, HS code and origin for customs declarations."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("shop_id", "sku", name="uq_products_shop_sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(128))
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    # Centimetres, exact (Money is the shared exact-decimal column type).
    length_cm: Mapped[Decimal | None] = mapped_column(Money)
    width_cm: Mapped[Decimal | None] = mapped_column(Money)
    height_cm: Mapped[Decimal | None] = mapped_column(Money)
    hs_code: Mapped[str | None] = mapped_column(String(16))
    origin_country: Mapped[str | None] = mapped_column(String(2))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
# --- tracking and returns (app/tracking.py, app/returns.py) ---------------------------------------------


class TrackingEvent(Base):
    """One carrier scan, stored once however often the carrier (webhook or poll) reports it."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("carrier", "tracking_number", "fingerprint", name="uq_tracking_events_fingerprint"),
        Index("ix_tracking_events_number", "carrier", "tracking_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(128))
    # sha256 of (time, status, description, location): the same scan reported twice is one row.
    fingerprint: Mapped[str] = mapped_column(String(64))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32))
    raw_status: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))  # webhook | poll
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Webhooks and polls find the parcel by carrier and tracking number.
Index("ix_shipments_carrier_tracking", Shipment.carrier, Shipment.tracking_number)
Index("ix_returns_carrier_tracking", Return.carrier, Return.tracking_number)


# --- Slack (integrations/slack, jobs/slack.py) ----------------------------------------------------------


class SlackMessage(Base):
    """One message Orderline keeps in Slack: an order's card, an alert, a digest, a burst summary.

    `key` names it ("order:42", "alert:7", "digest:3:2026-11-26", "summary:C1:2026-11-26T10"), so a retried job
    finds the message instead of posting a second one. The row is claimed (`post_attempts`, `claimed_until`) and
    committed before `chat.postMessage`; `ts` is stored once Slack answers."""

    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("key", name="uq_slack_messages_key"),
        Index("ix_slack_messages_channel_ts", "channel", "ts"),
        Index("ix_slack_messages_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # card | alert | digest | summary
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str | None] = mapped_column(String(32))
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Another job is posting this message until then: wait, do not post a second one.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Cards: the last timeline entry already told in the card's thread.
    last_event_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SlackStaff(Base):
    """A Slack user (U…) or user group (S…) and the role it acts with. A group's members are cached here by
    `orderline slack staff add` (usergroups.users.list), so a button click needs no Slack call to find a role."""

    __tablename__ = "slack_staff"
    __table_args__ = (UniqueConstraint("slack_id", name="uq_slack_staff_slack_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slack_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # user | group
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | manager
    name: Mapped[str | None] = mapped_column(String(255))
    members: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- end Slack ------------------------------------------------------------------------------------------


# --- SMS (app/sms, integrations/twilio) ------------------------------------------------------------------


class SmsMessage(Base):
    """One text to or from a customer. Outbound rows are claimed (unique `dedupe_key`) before Twilio is called,
    so a milestone is never sent twice; `body` is erased after the retention period (app.sms.retention)."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_sms_messages_dedupe_key"),
        UniqueConstraint("provider_sid", name="uq_sms_messages_provider_sid"),
        Index("ix_sms_messages_order", "order_id", "id"),
        Index("ix_sms_messages_phone", "phone", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(8))  # outbound | inbound
    # outbound: a milestone (confirmed, shipped, …) or staff_reply; inbound: the intent understood.
    kind: Mapped[str] = mapped_column(String(32))
    # Outbound: once per milestone and shipment/order/refund; NULL for inbound rows.
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    # The customer's number in E.164 (NULL when it could not be used, or after erasure).
    phone: Mapped[str | None] = mapped_column(String(32))
    sender: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int | None] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(8))  # GSM-7 | UCS-2
    # pending → scheduled → sending → queued/accepted → sent → delivered | undelivered | failed; or skipped
    status: Mapped[str] = mapped_column(String(16), default="pending")
    time_critical: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    send_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmsConsent(Base):
    """The consent ledger: append-only, the latest row per number is its state. `phone_key` (a keyed hash of
    the number) outlives an erasure of `phone`, so an opt-out is honoured even after the number is forgotten."""

    __tablename__ = "sms_consents"
    __table_args__ = (Index("ix_sms_consents_phone_key", "phone_key", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_key: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # opted_in | opted_out
    # keyword (STOP/START by text), twilio_21610, channel, staff
    source: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsOrderPhone(Base):
    """Which E.164 number each order's customer has, so an inbound text finds its orders by one indexed lookup."""

    __tablename__ = "sms_order_phones"
    __table_args__ = (Index("ix_sms_order_phones_phone", "phone"),)

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    # The raw value it was derived from: a changed number on the order is noticed and re-indexed.
    source: Mapped[str | None] = mapped_column(String(64))
