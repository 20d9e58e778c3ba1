"""Shipping: parcels from the catalogue, labels bought exactly once, and the shipment told to the channel.

The flow, each step a job that takes ids (jobs/shipping.py):

    order.allocated ─(shop auto_pick_pack)─► auto_pick_pack ─► order.packed
    order.packed ─(shop auto_label, default on) or staff `ship`─► claim: one Shipment per location,
        status `purchasing`, a fresh `reference` and `claimed_at`, committed with the change that asked
        ─► buy_label: find_label(reference) first, else rates → choose_rate → buy_label; record it
        ─► order partially_shipped / shipped ─► push_fulfilment (channel shops) ─► shipment.pushed_to_channel
    order.cancelled ─► void_label for every claimed or bought label.

Because the claim is committed before the job that calls the carrier even starts, a job killed after the
carrier sold the label and before its own commit finds that label by reference on its next attempt.
A PermanentError (the carrier or channel refusing) stops the step: the provider's message goes on the
timeline (`order.step_failed`) and into an alert, and `retry_order` resumes from where it stopped.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import alerts, carrier_accounts, catalogue, events, outbox, stock, tracking
from app.config import Settings
from app.failures import PermanentError
from app.models import Alert, Location, Order, Product, Shipment, Shop
from app.orders import actions
from app.orders.errors import IllegalTransition, InvalidOrder, NotFound
from app.orders.statuses import OrderStatus
from app.orders.types import Actor, NewAddress
from app.runtime import Runtime
from app.store import utcnow
from integrations.base import FulfilmentLine, FulfilmentPush, FulfilmentPusher
from integrations.carriers.base import (
    CarrierClient,
    CustomsItem,
    Label,
    Parcel,
    Rate,
    ShipmentRequest,
    choose_rate,
)

DEFAULT_PARCEL_GRAMS = 500
# find_label looks back this far before the claim: clocks of carriers and ours differ a little.
FIND_MARGIN = timedelta(minutes=10)
# A claim younger than this, on the job's first run, cannot have been tried yet.
MAYBE_BOUGHT_AFTER = timedelta(seconds=60)
# Channels with nobody to tell (phone and point-of-sale orders).
NO_PUSH_CHANNELS = frozenset({"manual"})


class ShipmentStatus:
    PURCHASING = "purchasing"
    PURCHASED = "purchased"
    VOIDED = "voided"


def setting(shop: Shop, name: str, default: Any) -> Any:
    value = (shop.settings or {}).get(name)
    return default if value is None else value


# --- the carrier account of a shop --------------------------------------------------------------------------


def carrier_client(runtime: Runtime, shop: Shop, slug: str | None = None) -> CarrierClient:
    """The client of the carrier account the shop ships with (shop setting `carrier`, default sandbox)."""
    return carrier_accounts.carrier_client(runtime.settings, slug, shop)


# --- what goes in a parcel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedShipment:
    location: Location | None
    items: dict[int, int]  # line item id → units


def plan_shipments(session: Session, order: Order) -> list[PlannedShipment]:
    """One parcel per location the order's stock was allocated from; untracked stock: one parcel of every
    shipping line."""
    held = stock.allocations_of(session, order.id, statuses=[stock.AllocationStatus.RESERVED.value,
                                                           stock.AllocationStatus.PICKED.value])
    if not held:
        items = {line.id: line.quantity - line.refunded_quantity for line in order.line_items
                 if line.requires_shipping and line.quantity - line.refunded_quantity > 0}
        return [PlannedShipment(None, items)] if items else []
    by_location: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for allocation in held:
        if allocation.line_item_id is not None:
            by_location[allocation.location_id][allocation.line_item_id] += allocation.quantity
    locations = {loc.id: loc for loc in session.execute(
        select(Location).where(Location.id.in_(list(by_location)))).scalars()}
    return [PlannedShipment(locations[loc_id], dict(items))
            for loc_id, items in sorted(by_location.items(), key=lambda kv: (locations[kv[0]].priority, kv[0]))]


def products_of(session: Session, shop_id: int, skus: Sequence[str | None]) -> dict[str, Product]:
    return {product.sku: product for product in catalogue.products(session, shop_id, skus)}


def parcel_for(session: Session, order: Order, shipment: Shipment, *, only_parcel: bool) -> Parcel:
    """The packer's weight when they weighed the whole order, else the SKUs' weights, else the shop default."""
    if order.packed_weight_grams and only_parcel:
        weight = order.packed_weight_grams
    else:
        lines = {line.id: line for line in order.line_items}
        items = [(lines[int(k)], q) for k, q in (shipment.items or {}).items() if int(k) in lines]
        products = products_of(session, order.shop_id, [line.sku for line, _ in items])
        weights = [products[line.sku].weight_grams if line.sku in products else None for line, _ in items]
        if items and all(w for w in weights):
            weight = sum(int(w or 0) * q for w, (_, q) in zip(weights, items, strict=True))
        else:
            weight = int(setting(order.shop, "default_parcel_grams", DEFAULT_PARCEL_GRAMS))
        if len(items) == 1 and items[0][0].sku in products:
            product = products[str(items[0][0].sku)]
            if items[0][1] == 1 and None not in (product.length_cm, product.width_cm, product.height_cm):
                return Parcel(weight, product.length_cm, product.width_cm, product.height_cm)
    return Parcel(max(int(weight), 1))


def customs_items(session: Session, order: Order, shipment: Shipment, origin: str) -> tuple[CustomsItem, ...]:
    """A declaration line per line item in the parcel: HS code and origin from the catalogue, value paid."""
    lines = {line.id: line for line in order.line_items}
    items = [(lines[int(k)], q) for k, q in (shipment.items or {}).items() if int(k) in lines]
    products = products_of(session, order.shop_id, [line.sku for line, _ in items])
    declared = []
    for line, quantity in items:
        product = products.get(line.sku or "")
        unit_value = line.unit_price - (line.total_discount / line.quantity if line.quantity else Decimal(0))
        declared.append(CustomsItem(
            description=line.title[:100], quantity=quantity, value=(unit_value * quantity).quantize(Decimal("0.01")),
            currency=order.currency, origin_country=(product.origin_country if product and product.origin_country
                                                     else origin),
            weight_grams=max((product.weight_grams or 0) * quantity if product else 0, 1),
            hs_code=product.hs_code if product else None, sku=line.sku))
    return tuple(declared)


def _from_address(order: Order, location: Location | None, to: NewAddress) -> NewAddress:
    if location is not None:
        return NewAddress(name=location.name, line1=location.line1, line2=location.line2, city=location.city,
                          region=location.region, postal_code=location.postal_code,
                          country_code=location.country_code)
    configured = setting(order.shop, "ship_from", None)
    if isinstance(configured, dict):
        known = set(NewAddress.__dataclass_fields__)
        return NewAddress(**{k: v for k, v in configured.items() if k in known})
    # No location and no ship_from: the shop ships domestically from where its customers are.
    return NewAddress(name=order.shop.name, country_code=to.country_code)


def shipment_request(session: Session, order: Order, shipment: Shipment, reference: str) -> ShipmentRequest:
    address = order.address("shipping")
    if address is None:
        raise PermanentError(f"order {order.number} has no shipping address")
    to = NewAddress(**{k: getattr(address, k) for k in NewAddress.__dataclass_fields__})
    location = session.get(Location, shipment.location_id) if shipment.location_id else None
    origin = _from_address(order, location, to)
    live = [s for s in order.shipments if s.status != ShipmentStatus.VOIDED]
    parcel = parcel_for(session, order, shipment, only_parcel=len(live) <= 1)
    level = order.shipping_level if order.shipping_level in ("overnight", "express", "standard", "economy") \
        else "standard"
    request = ShipmentRequest(reference=reference, from_address=origin, to_address=to, parcels=(parcel,),
                              service_level=level, email=order.customer_email)
    if request.is_international:
        from dataclasses import replace

        request = replace(request, customs_items=customs_items(session, order, shipment,
                                                               origin.country_code or ""))
    return request


# --- rates --------------------------------------------------------------------------------------------------


def pick_rate(rates: Sequence[Rate], shop: Shop, level: str, *, carrier: str | None = None,
              service: str | None = None) -> Rate | None:
    """Staff's choice when they made one (matched by carrier and service name), else rate shopping within
    the shop's `carrier_preferences` and `carrier_exclusions`."""
    if carrier or service:
        chosen = [r for r in rates
                  if (not carrier or r.carrier.lower() == carrier.lower() or r.carrier_slug == carrier.lower())
                  and (not service or r.service.lower() == service.lower())]
        return min(chosen, key=lambda r: r.amount) if chosen else None
    return choose_rate(rates, level, list(setting(shop, "carrier_preferences", [])),
                       list(setting(shop, "carrier_exclusions", [])))


def quote_rates(session: Session, order_id: int) -> list[Rate]:
    """The rates the shop's carrier quotes for the order as one parcel (for "Ship with…"), cheapest first."""
    from app import runtime as runtime_module

    order = actions.load_order(session, order_id)
    plans = plan_shipments(session, order)
    if not plans:
        raise InvalidOrder(f"order {order.number} has nothing to ship")
    items: dict[str, int] = defaultdict(int)
    for plan in plans:
        for line_id, units in plan.items.items():
            items[str(line_id)] += units
    draft = Shipment(order_id=order.id, items=dict(items),
                     location_id=plans[0].location.id if plans[0].location else None)
    request = shipment_request(session, order, draft, f"quote-{order.id}-{secrets.token_hex(4)}")
    client = carrier_client(runtime_module.current(), order.shop)
    return sorted(client.rates(request), key=lambda r: (r.amount, r.carrier, r.service))


# --- claiming: the reference is in the database before any carrier hears of it ---------------------------


def claim_shipments(session: Session, order: Order, *, carrier: str | None = None,
                    service: str | None = None) -> list[Shipment]:
    """Shipments waiting for a label get a `buy_label` job (new ones are planned first, one per location).
    Returns the shipments queued; none when every parcel already has its label."""
    live = [s for s in order.shipments if s.status != ShipmentStatus.VOIDED]
    if not live:
        slug = carrier_accounts.shop_carrier(order.shop)
        for plan in plan_shipments(session, order):
            shipment = Shipment(order=order, status=ShipmentStatus.PURCHASING, provider=slug,
                                location_id=plan.location.id if plan.location else None,
                                items={str(k): v for k, v in plan.items.items()}, created_at=utcnow())
            session.add(shipment)
            live.append(shipment)
        session.flush()
    waiting = [s for s in live if s.status == ShipmentStatus.PURCHASING]
    for shipment in waiting:
        if shipment.reference is None:
            # Random as well as unique: a restored database never hands a carrier a reference it has seen.
            shipment.reference = f"ol-{order.id}-s{shipment.id}-{secrets.token_hex(4)}"
            shipment.claimed_at = utcnow()
        if carrier or service:
            shipment.requested_carrier, shipment.requested_service = carrier, service
        shipment.last_error = None
        outbox.add_job(session, outbox.JobName.BUY_LABEL, shipment_id=shipment.id)
    return waiting


def ship(session: Session, order_id: int, actor: Actor, *, carrier: str | None = None,
         service: str | None = None, expected_version: int | None = None, **_: Any) -> Order:
    """Staff action `ship`: buy the labels of a packed order, with the carrier and service they chose from
    `quote_rates` (or the shop's rate shopping when they chose none)."""
    order = actions.load_order(session, order_id, expected_version=expected_version)
    if order.status not in (OrderStatus.PACKED, OrderStatus.PARTIALLY_SHIPPED):
        raise IllegalTransition(order.status, str(OrderStatus.SHIPPED), action="ship")
    queued = claim_shipments(session, order, carrier=(carrier or "").strip() or None,
                             service=(service or "").strip() or None)
    if not queued:
        raise InvalidOrder(f"order {order.number} has no parcel waiting for a label",
                           fields={"order": ["every parcel already has its label"]})
    choice = " ".join(p for p in (carrier, service) if p) or "the cheapest rate that keeps the promise"
    actions.record_event(session, order, actor, "order.ship_requested",
                         f"{actor.name or actor.kind} asked for labels: {choice}",
                         carrier=carrier, service=service, shipments=[s.id for s in queued])
    order.updated_at = utcnow()  # bumps the version: a concurrent ship gets 409
    session.flush()
    return order


# --- buying (inside the buy_label job) --------------------------------------------------------------------


def _locked_shipment(session: Session, shipment_id: int) -> Shipment | None:
    return session.execute(select(Shipment).where(Shipment.id == shipment_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def label_of(shipment: Shipment) -> Label:
    return Label(reference=shipment.reference, carrier=shipment.carrier or "", service=shipment.service or "",
                 tracking_number=shipment.tracking_number or "", tracking_url=shipment.tracking_url,
                 label_url=shipment.label_url or "", cost=shipment.cost or Decimal(0),
                 currency=shipment.cost_currency or "", provider_shipment_id=shipment.provider_shipment_id,
                 provider_label_id=shipment.provider_label_id)


def buy_label(runtime: Runtime, session: Session, shipment_id: int, *, look_first: bool = True) -> str:
    """Find or buy the shipment's label and record it. Returns what happened (for the job's result).
    `look_first=False` (the job's first run, on a fresh claim) skips asking the carrier for a label bought
    earlier: listing shipments on every purchase would cost an index call per label, and EasyPost allows 5/s."""
    shipment = _locked_shipment(session, shipment_id)
    if shipment is None:
        return "no such shipment"
    if shipment.status != ShipmentStatus.PURCHASING or shipment.reference is None:
        return f"nothing to do: {shipment.status}"
    # Locked now, not at mark_shipped: locking reads the order afresh, and what was read of it before (its
    # lines, addresses and parcels for the request) would be read a second time.
    order = actions.lock_order(session, shipment.order_id)
    client = carrier_client(runtime, order.shop, shipment.provider)
    since = (shipment.claimed_at or utcnow()) - FIND_MARGIN
    # First: did an earlier attempt buy it before dying? Then never buy a second one. Any claim not fresh (a
    # retry action, a requeue) may have had an attempt, whatever this job's own history says; and a cancelled
    # order's label, however it came to be, must be found to be voided.
    fresh = shipment.claimed_at is not None and utcnow() - shipment.claimed_at < MAYBE_BOUGHT_AFTER
    must_look = look_first or not fresh or order.status == OrderStatus.CANCELLED
    label = client.find_label(shipment.reference, since=since) if must_look else None
    if order.status == OrderStatus.CANCELLED:
        if label is not None:
            client.void_label(label)
        shipment.status, shipment.voided_at = ShipmentStatus.VOIDED, utcnow()
        actions.record_event(session, order, Actor.system(), "shipment.label_voided",
                             "No label for a cancelled order" + (f" (voided {label.tracking_number})"
                                                                 if label else ""), shipment_id=shipment.id)
        return "voided: order cancelled"
    found = label is not None
    if label is None:
        request = shipment_request(session, order, shipment, shipment.reference)
        shipment.weight_grams = request.total_weight_grams
        rates = client.rates(request)
        rate = pick_rate(rates, order.shop, request.service_level, carrier=shipment.requested_carrier,
                         service=shipment.requested_service)
        if rate is None:
            wanted = " ".join(p for p in (shipment.requested_carrier, shipment.requested_service) if p)
            raise PermanentError(f"no rate for {wanted}" if wanted else
                                 f"no {request.service_level} rate within the shop's carrier preferences "
                                 f"({len(rates)} quoted)")
        label = client.buy_label(request, rate)
    record_label(session, runtime.settings, order, shipment, label)
    return "found earlier label" if found else "bought"


def record_label(session: Session, settings: Settings, order: Order, shipment: Shipment, label: Label) -> None:
    shipment.status = ShipmentStatus.PURCHASED
    shipment.carrier, shipment.service = label.carrier, label.service
    shipment.tracking_number, shipment.tracking_url = label.tracking_number, label.tracking_url
    shipment.label_url, shipment.cost, shipment.cost_currency = label.label_url, label.cost, label.currency
    shipment.provider_shipment_id, shipment.provider_label_id = label.provider_shipment_id, label.provider_label_id
    shipment.shipped_at, shipment.last_error = utcnow(), None
    # Tracking follows the parcel from now on (polls when the carrier's webhooks are quiet).
    shipment.next_poll_at = tracking.next_poll_at(settings, shipment, utcnow())
    system = Actor.system()
    actions.record_event(session, order, system, "shipment.label_purchased",
                         f"Label bought: {label.carrier} {label.service}, {label.tracking_number}",
                         shipment_id=shipment.id, carrier=label.carrier, service=label.service,
                         tracking_number=label.tracking_number, tracking_url=label.tracking_url)
    session.flush()
    actions.mark_shipped(session, order.id, system, shipment_id=shipment.id, location_id=shipment.location_id)
    if order.channel not in NO_PUSH_CHANNELS and order.status != OrderStatus.CANCELLED:
        outbox.add_job(session, outbox.JobName.PUSH_FULFILMENT, shipment_id=shipment.id)


def void_label(runtime: Runtime, session: Session, shipment_id: int) -> str:
    shipment = _locked_shipment(session, shipment_id)
    if shipment is None or shipment.status == ShipmentStatus.VOIDED:
        return "nothing to do"
    order = shipment.order
    client = carrier_client(runtime, order.shop, shipment.provider)
    if shipment.status == ShipmentStatus.PURCHASED:
        label: Label | None = label_of(shipment)
    elif shipment.reference:
        label = client.find_label(shipment.reference, since=(shipment.claimed_at or utcnow()) - FIND_MARGIN)
    else:
        label = None
    if label is not None:
        client.void_label(label)
    shipment.status, shipment.voided_at = ShipmentStatus.VOIDED, utcnow()
    actions.record_event(session, order, Actor.system(), "shipment.label_voided",
                         f"Label {label.tracking_number} voided" if label else "Label purchase called off",
                         shipment_id=shipment.id)
    return "voided"


# --- telling the channel ----------------------------------------------------------------------------------


def push_fulfilment(runtime: Runtime, session: Session, shipment_id: int) -> str:
    from jobs.ingest import client_for  # jobs depend on app, not the other way, except for this one helper

    order_id = session.execute(select(Shipment.order_id).where(Shipment.id == shipment_id)).scalar()
    if order_id is None:
        return "no such shipment"
    # The order row first: pushes of one order's parcels take turns, so the last one knows it completes it.
    order = actions.lock_order(session, order_id)
    siblings = session.execute(select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.id)
                               .execution_options(populate_existing=True)).scalars().all()
    shipment = _locked_shipment(session, shipment_id)
    if shipment is None or shipment.status != ShipmentStatus.PURCHASED or shipment.pushed_at is not None:
        return "nothing to do"
    if order.channel in NO_PUSH_CHANNELS:
        return "no channel to tell"
    lines = {line.id: line for line in order.line_items}
    push_lines = tuple(FulfilmentLine(str(lines[int(k)].external_id), int(q), lines[int(k)].sku)
                       for k, q in (shipment.items or {}).items()
                       if int(k) in lines and lines[int(k)].external_id)
    live = [s for s in siblings if s.status != ShipmentStatus.VOIDED]
    push = FulfilmentPush(
        order_external_id=order.external_id, lines=push_lines, tracking_company=shipment.carrier or "",
        tracking_number=shipment.tracking_number or "", tracking_url=shipment.tracking_url,
        notify_customer=bool(setting(order.shop, "notify_customer", True)),
        completes_order=all(s.status == ShipmentStatus.PURCHASED for s in live)
        and all(s.pushed_at is not None for s in live if s.id != shipment.id))
    client = client_for(runtime, order.shop)
    if not hasattr(client, "push_fulfilment"):
        raise PermanentError(f"{order.channel} cannot be told about shipments")
    channel_id = cast(FulfilmentPusher, client).push_fulfilment(push)
    shipment.channel_fulfilment_id, shipment.pushed_at = channel_id, utcnow()
    actions.record_event(session, order, Actor.system(), "shipment.pushed_to_channel",
                         f"Tracking {shipment.tracking_number} sent to {order.channel}",
                         shipment_id=shipment.id, channel_fulfilment_id=channel_id)
    return "pushed"


# --- failures and resuming ----------------------------------------------------------------------------------


def step_failed(session: Session, order_id: int, step: str, message: str, *,
                shipment_id: int | None = None) -> None:
    """The provider refused: say so on the timeline and to staff; `retry_order` resumes."""
    order = session.get(Order, order_id)
    if order is None:
        return
    if shipment_id is not None:
        shipment = session.get(Shipment, shipment_id)
        if shipment is not None:
            shipment.last_error = message[:2000]
    event = actions.record_event(session, order, Actor.system(), "order.step_failed", f"{step} failed: {message}",
                                 step=step, permanent=True, shipment_id=shipment_id)
    # `message` is record_event's own parameter, so the contract's data key is added afterwards.
    event.data = {**event.data, "message": message}
    alerts.raise_alert(session, "order_step_failed", f"{order.id}:{step}",
                       f"Order {order.number}: {step} failed: {message}", order_id=order.id, step=step)
    order.updated_at = utcnow()


def retry_order(session: Session, order_id: int, actor: Actor) -> list[str]:
    """Queue again whatever step of the order's pipeline stopped. Returns the steps queued."""
    order = actions.lock_order(session, order_id)
    steps: list[str] = []
    status = OrderStatus(order.status)
    if status == OrderStatus.RECEIVED:
        outbox.add_job(session, outbox.JobName.TRIAGE_ORDER, order_id=order.id)
        steps.append("triage")
    elif status in (OrderStatus.APPROVED, OrderStatus.BACKORDERED):
        outbox.add_job(session, outbox.JobName.ALLOCATE_ORDER, order_id=order.id)
        steps.append("allocate")
    elif status == OrderStatus.ALLOCATED and setting(order.shop, "auto_pick_pack", False):
        outbox.add_job(session, outbox.JobName.AUTO_PICK_PACK, order_id=order.id)
        steps.append("pick_pack")
    elif status in (OrderStatus.PACKED, OrderStatus.PARTIALLY_SHIPPED):
        if claim_shipments(session, order):
            steps.append("buy_label")
    if order.channel not in NO_PUSH_CHANNELS:
        for shipment in order.shipments:
            if shipment.status == ShipmentStatus.PURCHASED and shipment.pushed_at is None:
                outbox.add_job(session, outbox.JobName.PUSH_FULFILMENT, shipment_id=shipment.id)
                if "push_fulfilment" not in steps:
                    steps.append("push_fulfilment")
    if status == OrderStatus.CANCELLED:
        for shipment in order.shipments:
            if shipment.status in (ShipmentStatus.PURCHASING, ShipmentStatus.PURCHASED):
                outbox.add_job(session, outbox.JobName.VOID_LABEL, shipment_id=shipment.id)
                steps.append("void_label")
    if not steps:
        raise InvalidOrder(f"order {order.number} has no stopped step to retry ({order.status})",
                           fields={"order": ["nothing to retry"]})
    actions.record_event(session, order, actor, "order.step_retried",
                         f"{actor.name or actor.kind} retried: {', '.join(steps)}", steps=steps)
    order.updated_at = utcnow()
    session.flush()
    _resolve_alerts(session, order.id, steps)
    return steps


def _resolve_alerts(session: Session, order_id: int, steps: Sequence[str]) -> None:
    keys = [f"order_step_failed:{order_id}:{step}" for step in steps]
    session.execute(update(Alert).where(Alert.dedupe_key.in_(keys), Alert.resolved_at.is_(None))
                    .values(resolved_at=utcnow()))


# --- what the pipeline hears --------------------------------------------------------------------------------


def on_events(session: Session, happened: events.Happened) -> None:
    """Packed orders get their labels claimed (shop `auto_label`, default on), allocated orders of
    `auto_pick_pack` shops are picked and packed, cancelled orders' labels are voided."""
    for event in happened.order_events:
        if event.type not in ("order.allocated", "order.packed", "order.cancelled"):
            continue
        order = event.order
        if event.type == "order.allocated" and setting(order.shop, "auto_pick_pack", False):
            outbox.add_job(session, outbox.JobName.AUTO_PICK_PACK, order_id=order.id)
        elif event.type == "order.packed" and setting(order.shop, "auto_label", True):
            claim_shipments(session, order)
        elif event.type == "order.cancelled":
            for shipment in order.shipments:
                if shipment.status in (ShipmentStatus.PURCHASING, ShipmentStatus.PURCHASED):
                    outbox.add_job(session, outbox.JobName.VOID_LABEL, shipment_id=shipment.id)


def auto_pick_pack(session: Session, order_id: int) -> None:
    try:
        order = actions.lock_order(session, order_id)
    except NotFound:
        return  # erased since it was allocated (the shop's data was redacted)
    if order.status != OrderStatus.ALLOCATED:
        return
    system = Actor.system("Orderline (automatic pick and pack)")
    actions.pick(session, order_id, system)
    actions.pack(session, order_id, system)


events.listen("shipping", on_events)
