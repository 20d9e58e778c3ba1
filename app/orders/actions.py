"""The only way an order changes.

Every function here checks the transition against `statuses.TRANSITIONS`, writes the timeline entry and the
outbox rows for the work it triggers, all in the caller's transaction: either everything lands or nothing.
Callers (API, Slack, jobs, ingest) open the transaction; these functions never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import uuid4

from sqlalchemy import event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, selectinload
from sqlalchemy.orm.exc import StaleDataError

from app import events, outbox, stock
from app.models import Address, LineItem, Location, Order, OrderEvent, OrderRefund, Shop
from app.money import amount_problem, is_currency, minor_units
from app.orders import rules
from app.orders.errors import Conflict, Forbidden, IllegalTransition, InvalidOrder, NotFound, VersionConflict
from app.orders.statuses import CANCELLABLE, OrderStatus, can_transition
from app.orders.types import Actor, ActorKind, NewAddress, NewOrder, NewRefund, Role
from app.requestctx import current_request_id
from app.store import all_or_nothing, once_per_transaction, transaction_info, utcnow


def record_event(
    session: Session, order: Order, actor: Actor, type: str, message: str, **data: Any
) -> OrderEvent:
    """Append one entry to the order's timeline."""
    event = OrderEvent(
        order=order,
        type=type,
        actor_kind=str(actor.kind),
        actor_id=actor.id,
        actor_name=actor.name,
        message=message,
        data=data,
        request_id=current_request_id(),
        created_at=utcnow(),
    )
    session.add(event)
    events.note(session, event)
    return event


def load_order(session: Session, order_id: int, *, expected_version: int | None = None) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    if expected_version is not None and order.version != expected_version:
        raise VersionConflict(order_id, expected=expected_version, current=order.version)
    return order


_LOCKED_ORDERS = "orderline.locked_orders"


def lock_order(session: Session, order_id: int) -> Order:
    """The order, its row locked until this transaction ends and its values read under that lock. Read
    once per transaction: the next step of a chain in the same transaction (allocation after triage) finds
    it locked and current already, as nobody else can have changed it."""
    # Kept here, not just in the session's identity map: that map holds objects weakly, and an order
    # nobody refers to between two steps would be read again, with its shop, lines and addresses.
    locked: dict[int, Order] = transaction_info(session).setdefault(_LOCKED_ORDERS, {})
    if order_id in locked:
        return locked[order_id]
    order = session.execute(select(Order).where(Order.id == order_id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    locked[order_id] = order
    return order


def lock_orders(session: Session, order_ids: Iterable[int]) -> None:
    """`lock_order` for many orders at once, in id order (the one lock order), with their lines, addresses
    and parcels: what a batch of steps is about to lock and read, in four statements instead of four for
    each order. Orders already locked in this transaction, or gone, are left out."""
    locked: dict[int, Order] = transaction_info(session).setdefault(_LOCKED_ORDERS, {})
    wanted = sorted(set(order_ids) - set(locked))
    if not wanted:
        return
    orders = session.execute(
        select(Order).where(Order.id.in_(wanted)).order_by(Order.id).with_for_update()
        .options(selectinload(Order.line_items), selectinload(Order.addresses), selectinload(Order.shipments))
        .execution_options(populate_existing=True)).scalars().all()
    locked.update((order.id, order) for order in orders)


# Forgotten with the transaction (store.transaction_info), and when a savepoint is rolled back: PostgreSQL
# gives up the locks taken in it. Kept when one is released: its locks pass to the transaction (a batch's
# triage and the allocation after it run in two savepoints).
@event.listens_for(Session, "after_soft_rollback")
def _forget_locked_orders_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        transaction_info(session).pop(_LOCKED_ORDERS, None)


def _flush(session: Session, order: Order) -> None:
    # The version column turns a concurrent writer's UPDATE into zero rows: that is the conflict.
    order_id = order.id  # read now: after a failed flush the session refuses attribute loads
    try:
        session.flush()
    except StaleDataError as err:
        raise VersionConflict(order_id, expected=None, current=None) from err


def _move(session: Session, order: Order, target: OrderStatus, actor: Actor, *, action: str) -> str:
    current = order.status
    if not can_transition(current, target):
        raise IllegalTransition(current, str(target), action=action)
    order.status = str(target)
    return current


# --- creating -------------------------------------------------------------------------------------------


def _check_new_order(data: NewOrder) -> None:
    problems: dict[str, Any] = {}
    if not is_currency(data.currency):
        problems["currency"] = [f"'{data.currency}' is not an ISO 4217 currency code"]
    if not data.line_items:
        problems["line_items"] = ["an order needs at least one line item"]
    for index, item in enumerate(data.line_items):
        item_problems: dict[str, list[str]] = {}
        if item.quantity <= 0:
            item_problems["quantity"] = ["must be at least 1"]
        if "currency" not in problems:
            for name in ("unit_price", "total_discount"):
                problem = amount_problem(getattr(item, name), data.currency)
                if problem:
                    item_problems[name] = [problem]
        if item_problems:
            problems.setdefault("line_items", {})[index] = item_problems
    if "currency" not in problems:
        for name in ("shipping_total", "tax_total", "discount_total"):
            problem = amount_problem(getattr(data, name), data.currency)
            if problem:
                problems[name] = [problem]
    if problems:
        raise InvalidOrder("the order is not valid", fields=problems)


def _address(kind: str, value: NewAddress) -> Address:
    return Address(kind=kind, **{k: getattr(value, k) for k in NewAddress.__dataclass_fields__})


def _next_number(session: Session, shop: Shop) -> str:
    # One atomic UPDATE … RETURNING per try, so two manual orders at once never share a number; numbers
    # a caller chose themselves (a till receipt) are skipped.
    while True:
        number = str(session.execute(
            update(Shop)
            .where(Shop.id == shop.id)
            .values(next_order_number=Shop.next_order_number + 1)
            .returning(Shop.next_order_number - 1)
        ).scalar_one())
        taken = session.execute(select(Order.id).where(Order.shop_id == shop.id, Order.number == number)).first()
        if taken is None:
            return number


def _exact(amount: Decimal, currency: str) -> Decimal:
    # Already checked to have no more places than the currency: this only pads ("49" -> "49.00").
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)))


def create_order(session: Session, shop: Shop, data: NewOrder, actor: Actor) -> Order:
    """Store a new order as `received` and ask for it to be triaged."""
    _check_new_order(data)
    cur = data.currency
    subtotal = _exact(sum((i.unit_price * i.quantity - i.total_discount for i in data.line_items), Decimal("0")), cur)
    total = _exact(subtotal + data.shipping_total + data.tax_total - data.discount_total, cur)
    if total < 0:
        raise InvalidOrder("the order total would be negative", fields={"discount_total": ["exceeds the order value"]})
    now = utcnow()
    order = Order(
        shop=shop,
        channel=shop.channel,
        external_id=data.external_id or uuid4().hex,
        number=data.number or _next_number(session, shop),
        status=str(OrderStatus.RECEIVED),
        financial_status=data.financial_status,
        fulfillment_status=data.fulfillment_status,
        currency=data.currency,
        subtotal=subtotal,
        shipping_total=_exact(data.shipping_total, cur),
        tax_total=_exact(data.tax_total, cur),
        discount_total=_exact(data.discount_total, cur),
        total=total,
        customer_name=data.customer_name,
        customer_email=data.customer_email,
        customer_phone=data.customer_phone,
        customer_locale=data.customer_locale,
        shipping_level=data.shipping_level,
        note=data.note,
        tags=list(data.tags),
        risk_level=data.risk_level,
        placed_at=data.placed_at or now,
        channel_updated_at=data.channel_updated_at,
        created_at=now,
        updated_at=now,
    )
    order.line_items = [
        LineItem(
            external_id=i.external_id, sku=i.sku, title=i.title, variant_title=i.variant_title,
            quantity=i.quantity, unit_price=_exact(i.unit_price, cur), total_discount=_exact(i.total_discount, cur),
            requires_shipping=i.requires_shipping, fulfilled_quantity=i.fulfilled_quantity,
        )
        for i in data.line_items
    ]
    if data.shipping_address:
        order.addresses.append(_address("shipping", data.shipping_address))
    if data.billing_address:
        order.addresses.append(_address("billing", data.billing_address))
    session.add(order)
    record_event(session, order, actor, "order.received",
                 f"Order {order.number} received from {shop.channel}",
                 total=str(total), currency=data.currency, items=sum(i.quantity for i in data.line_items))
    if all_or_nothing(session):
        # An ingest batch: the order gets its id, and its triage job, with the batch's one flush.
        session.info.setdefault(_UNFLUSHED, {})[(shop.id, order.external_id)] = order
        return order
    session.flush()
    outbox.add_job(session, outbox.JobName.TRIAGE_ORDER, order_id=order.id)
    return order


# session.info key: the orders an all-or-nothing batch created and has not flushed yet, by (shop, channel id).
_UNFLUSHED = "orderline.unflushed_orders"


def flush_new_orders(session: Session) -> None:
    """End of an all-or-nothing ingest batch: insert the orders it created (one statement per table, not a
    flush per order) and ask for their triage."""
    created = session.info.pop(_UNFLUSHED, {})
    if created:
        session.flush()
        for order in created.values():
            outbox.add_job(session, outbox.JobName.TRIAGE_ORDER, order_id=order.id)


# --- acting on an order ---------------------------------------------------------------------------------


def triage(session: Session, order_id: int, actor: Actor | None = None) -> Order:
    """Decide whether a received order needs a person or can go straight on: automatic approval when the
    shop allows it and no approval rule flags the order (`app.orders.rules`); the flags are kept either way,
    so a reviewer sees why an order waits."""
    actor = actor or Actor.system()
    order = lock_order(session, order_id)  # locked now, as the status change would: allocation reuses it
    if order.status != OrderStatus.RECEIVED:
        return order  # already triaged: a repeated job changes nothing
    settings = order.shop.settings or {}
    try:
        flags = rules.review_reasons(order, rules.ApprovalRules.from_settings(settings),
                                     first_time_customer=_first_time_customer(session, order),
                                     home_country=_home_country(session))
    except ValueError as err:  # settings written before validation existed: a person decides
        flags = [rules.ReviewReason("settings", f"The shop's approval rules cannot be read ({err})")]
    order.review_reasons = [flag.as_dict() for flag in flags]
    auto = bool(settings.get("auto_approve", False)) and not flags
    target = OrderStatus.APPROVED if auto else OrderStatus.NEEDS_REVIEW
    _move(session, order, target, actor, action="triage")
    if auto:
        record_event(session, order, actor, "order.approved", "Approved automatically (no rule flagged it)")
    elif flags:
        record_event(session, order, actor, "order.needs_review",
                     "Waiting for review: " + "; ".join(flag.message for flag in flags),
                     reasons=order.review_reasons)
    else:
        record_event(session, order, actor, "order.needs_review", "Waiting for review", reasons=[])
    _flush(session, order)
    if auto:
        outbox.add_job(session, outbox.JobName.ALLOCATE_ORDER, order_id=order.id)
    return order


def _first_time_customer(session: Session, order: Order) -> bool:
    """No earlier order in this shop from the same email or phone (an order with neither is a first one)."""
    who = []
    if order.customer_email:
        who.append(func.lower(Order.customer_email) == order.customer_email.lower())
    if order.customer_phone:
        who.append(Order.customer_phone == order.customer_phone)
    if not who:
        return True
    earlier = session.execute(select(Order.id).where(
        Order.shop_id == order.shop_id, Order.id != order.id, or_(*who)).limit(1)).first()
    return earlier is None


def _home_country(session: Session) -> str | None:
    return once_per_transaction(session, "home_country", lambda: session.execute(
        select(Location.country_code).where(Location.active.is_(True))
        .order_by(Location.priority, Location.id).limit(1)).scalar())


def approve(session: Session, order_id: int, actor: Actor, *, expected_version: int | None = None,
            **_: Any) -> Order:
    order = load_order(session, order_id, expected_version=expected_version)
    _move(session, order, OrderStatus.APPROVED, actor, action="approve")
    record_event(session, order, actor, "order.approved", f"Approved by {actor.name or actor.kind}")
    _flush(session, order)
    outbox.add_job(session, outbox.JobName.ALLOCATE_ORDER, order_id=order.id)
    return order


def hold(session: Session, order_id: int, actor: Actor, *, reason: str,
         expected_version: int | None = None, **_: Any) -> Order:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidOrder("a hold needs a reason", fields={"reason": ["is required"]})
    order = load_order(session, order_id, expected_version=expected_version)
    previous = _move(session, order, OrderStatus.ON_HOLD, actor, action="hold")
    order.status_before_hold = previous
    order.hold_reason = reason
    record_event(session, order, actor, "order.held", f"Held by {actor.name or actor.kind}: {reason}",
                 reason=reason, held_from=previous)
    _flush(session, order)
    return order


def release(session: Session, order_id: int, actor: Actor, *, expected_version: int | None = None,
            **_: Any) -> Order:
    order = load_order(session, order_id, expected_version=expected_version)
    if order.status != OrderStatus.ON_HOLD:
        raise IllegalTransition(order.status, "released", action="release")
    resume_to = OrderStatus(order.status_before_hold or OrderStatus.NEEDS_REVIEW)
    _move(session, order, resume_to, actor, action="release")
    order.status_before_hold = None
    order.hold_reason = None
    record_event(session, order, actor, "order.released",
                 f"Released by {actor.name or actor.kind}; back to {resume_to}", resumed=str(resume_to))
    _flush(session, order)
    if resume_to in (OrderStatus.APPROVED, OrderStatus.BACKORDERED):
        # Held before its stock was reserved: allocation picks up where the hold stopped it.
        outbox.add_job(session, outbox.JobName.ALLOCATE_ORDER, order_id=order.id)
    return order


def cancel(session: Session, order_id: int, actor: Actor, *, reason: str, restock: bool = True,
           expected_version: int | None = None, **_: Any) -> Order:
    """Cancel before the goods leave; reserved stock is freed. `restock=False` writes picked goods off
    (damaged, lost) instead of putting them back on the shelf."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidOrder("a cancellation needs a reason", fields={"reason": ["is required"]})
    order = load_order(session, order_id, expected_version=expected_version)
    if order.status not in CANCELLABLE:
        raise IllegalTransition(order.status, str(OrderStatus.CANCELLED), action="cancel")
    previous = _move(session, order, OrderStatus.CANCELLED, actor, action="cancel")
    order.cancel_reason = reason
    order.status_before_hold = None
    record_event(session, order, actor, "order.cancelled",
                 f"Cancelled by {actor.name or actor.kind}: {reason}", reason=reason, cancelled_from=previous,
                 restock=restock)
    _flush(session, order)
    release_stock(session, order, actor, restock=restock)  # after the flush, which holds the order row
    return order


def add_note(session: Session, order_id: int, actor: Actor, *, text: str,
             expected_version: int | None = None, **_: Any) -> Order:
    text = (text or "").strip()
    if not text:
        raise InvalidOrder("a note needs text", fields={"text": ["is required"]})
    order = load_order(session, order_id, expected_version=expected_version)
    record_event(session, order, actor, "order.note_added", text)
    # A note changes what staff see, so it bumps the version like any other change.
    order.updated_at = utcnow()
    _flush(session, order)
    return order


def pick(session: Session, order_id: int, actor: Actor, *, expected_version: int | None = None,
         **_: Any) -> Order:
    """The packer has the goods in hand: `allocated` → `picking`, and the reserved allocations become picked."""
    order = load_order(session, order_id, expected_version=expected_version)
    _move(session, order, OrderStatus.PICKING, actor, action="pick")
    allocations = stock.allocations_of(session, order.id, statuses=[stock.AllocationStatus.RESERVED.value])
    now = utcnow()
    for allocation in allocations:
        allocation.status = stock.AllocationStatus.PICKED.value
        allocation.updated_at = now
    record_event(session, order, actor, "order.picked", f"Picked by {actor.name or actor.kind}",
                 locations=stock.by_location(allocations))
    _flush(session, order)
    return order


MAX_WEIGHT_GRAMS = 1_000_000  # a tonne: past that it is a typing error, not a parcel


def pack(session: Session, order_id: int, actor: Actor, *, weight_grams: int | None = None,
         expected_version: int | None = None, **_: Any) -> Order:
    """Packed and ready for a label: `picking` → `packed`, with the scale's weight when the packer typed one."""
    if weight_grams is not None and (isinstance(weight_grams, bool) or not isinstance(weight_grams, int)
                                   or not 0 < weight_grams <= MAX_WEIGHT_GRAMS):
        raise InvalidOrder("the weight must be a whole number of grams above zero",
                           fields={"weight_grams": [f"must be between 1 and {MAX_WEIGHT_GRAMS}"]})
    order = load_order(session, order_id, expected_version=expected_version)
    _move(session, order, OrderStatus.PACKED, actor, action="pack")
    message = f"Packed by {actor.name or actor.kind}"
    if weight_grams is not None:
        order.packed_weight_grams = weight_grams
        message += f" ({weight_grams} g on the scale)"
    record_event(session, order, actor, "order.packed", message, weight_grams=weight_grams)
    _flush(session, order)
    return order


MAX_CUSTOMER_MESSAGE = 1600  # Twilio's own limit for one message body


def reply_to_customer(session: Session, order_id: int, actor: Actor, *, text: str,
                      expected_version: int | None = None, **_: Any) -> Order:
    """Staff answer the customer. This records the reply on the timeline as `order.customer_reply`; the SMS
    listener turns that entry into a text, so the reply is sent once the change commits and never if it fails."""
    text = (text or "").strip()
    if not text:
        raise InvalidOrder("a reply needs text", fields={"text": ["is required"]})
    if len(text) > MAX_CUSTOMER_MESSAGE:
        raise InvalidOrder("the reply is too long for a text message",
                           fields={"text": [f"at most {MAX_CUSTOMER_MESSAGE} characters"]})
    order = load_order(session, order_id, expected_version=expected_version)
    record_event(session, order, actor, "order.customer_reply", f"{actor.name or actor.kind} to the customer: {text}",
                 text=text)
    order.updated_at = utcnow()
    _flush(session, order)
    return order


@dataclass(frozen=True)
class ActionSpec:
    """A staff action: what it does and the least role that may do it."""

    run: Callable[..., Order]
    role: Role
    needs: tuple[str, ...] = ()


ACTIONS: dict[str, ActionSpec] = {
    "approve": ActionSpec(approve, Role.OPERATOR),
    "hold": ActionSpec(hold, Role.OPERATOR, needs=("reason",)),
    "release": ActionSpec(release, Role.OPERATOR),
    "cancel": ActionSpec(cancel, Role.MANAGER, needs=("reason",)),
    "note": ActionSpec(add_note, Role.VIEWER, needs=("text",)),
    "pick": ActionSpec(pick, Role.OPERATOR),
    "pack": ActionSpec(pack, Role.OPERATOR),
    "reply": ActionSpec(reply_to_customer, Role.OPERATOR, needs=("text",)),
    "ship": ActionSpec(lambda *a, **k: _shipping().ship(*a, **k), Role.OPERATOR),  # shipping helper
}


def perform(session: Session, order_id: int, name: str, actor: Actor, **arguments: Any) -> Order:
    """Run the staff action `name`, refusing it when the actor's role is too low."""
    spec = ACTIONS.get(name)
    if spec is None:
        raise NotFound(f"there is no action '{name}'; actions are: {', '.join(sorted(ACTIONS))}")
    if not actor.may(spec.role):
        raise Forbidden(f"'{name}' needs the {spec.role} role; {actor.name or 'you'} are a {actor.role}")
    missing = [arg for arg in spec.needs if not str(arguments.get(arg) or "").strip()]
    if missing:
        raise InvalidOrder(f"'{name}' needs a {missing[0]}", fields={arg: ["is required"] for arg in missing})
    if session.execute(select(Order.id).where(Order.id == order_id)).scalar() is None:
        raise NotFound(f"order {order_id} does not exist")
    return spec.run(session, order_id, actor, **arguments)


# --- what the channels say ------------------------------------------------------------------------------

CHANNEL_FIELDS = ("number", "currency", "customer_name", "customer_email", "customer_phone", "customer_locale",
                  "shipping_level", "shipping_total", "tax_total", "discount_total", "financial_status",
                  "fulfillment_status", "note", "tags", "risk_level", "placed_at")


def _channel_actor(shop: Shop) -> Actor:
    return Actor(ActorKind.CHANNEL, shop.external_id, shop.channel)


def apply_channel_order(session: Session, shop: Shop, data: NewOrder) -> tuple[Order, str]:
    """Create or update the order a channel describes. Returns the order and what happened:
    "created", "updated", "unchanged" or "stale" (older than what is stored: nothing applied)."""
    if not data.external_id:
        raise InvalidOrder("a channel order needs its channel id", fields={"external_id": ["is required"]})
    actor = _channel_actor(shop)
    # No autoflush: an order this session created is either flushed already (create_order does it, for its
    # id) or waiting for an ingest batch's one flush (found in _UNFLUSHED); what else is pending, timelines
    # and outbox rows, can go in with the next flush.
    order = session.info.get(_UNFLUSHED, {}).get((shop.id, data.external_id))
    if order is None:
        with session.no_autoflush:
            order = session.execute(
                select(Order).where(Order.shop_id == shop.id, Order.external_id == data.external_id)
                .with_for_update()
            ).scalar_one_or_none()
    if order is None:
        order = _create_from_channel(session, shop, data, actor)
        if order is not None:
            return order, "created"
        # Another worker created it between our read and our insert: update that one instead.
        order = session.execute(select(Order).where(
            Order.shop_id == shop.id, Order.external_id == data.external_id).with_for_update()).scalar_one()
    if (order.channel_updated_at and data.channel_updated_at
            and data.channel_updated_at <= order.channel_updated_at):
        return order, "stale" if data.channel_updated_at < order.channel_updated_at else "unchanged"
    changed = _update_from_channel(session, order, data, actor)
    _flush(session, order)
    return order, "updated" if changed else "unchanged"


def _create_from_channel(session: Session, shop: Shop, data: NewOrder, actor: Actor) -> Order | None:
    savepoint = None if all_or_nothing(session) else session.begin_nested()
    try:
        order = create_order(session, shop, data, actor)
        for refund in data.refunds:
            _apply_refund(session, order, refund, actor)
        if data.cancelled:
            order.status, order.cancel_reason = str(OrderStatus.CANCELLED), data.cancel_reason
            record_event(session, order, actor, "order.cancelled",
                         f"Cancelled on {shop.channel}" + (f": {data.cancel_reason}" if data.cancel_reason else ""))
        if savepoint is not None:
            savepoint.commit()
        return order
    except IntegrityError:
        if savepoint is None:
            raise  # the caller redoes the whole transaction, this time with a savepoint here
        savepoint.rollback()
        return None


def _update_from_channel(session: Session, order: Order, data: NewOrder, actor: Actor) -> bool:
    changes: dict[str, Any] = {}
    for name in CHANNEL_FIELDS:
        new = getattr(data, name)
        if name == "number" and not new:
            continue
        if name == "placed_at" and new is None:
            continue
        if getattr(order, name) != new:
            changes[name] = new
            setattr(order, name, new)
    for kind, value in (("shipping", data.shipping_address), ("billing", data.billing_address)):
        current = order.address(kind)
        wanted = _address(kind, value) if value else None
        same = (current is None and wanted is None) or (
            current is not None and wanted is not None
            and all(getattr(current, k) == getattr(wanted, k) for k in NewAddress.__dataclass_fields__))
        if not same:
            if current is not None:
                order.addresses.remove(current)
                session.flush()
            if wanted is not None:
                order.addresses.append(wanted)
            changes[f"{kind}_address"] = "changed"
    items_changed = _sync_line_items(order, data)
    if items_changed:
        changes["line_items"] = items_changed
    for refund in data.refunds:
        if _apply_refund(session, order, refund, actor):
            changes.setdefault("refunds", []).append(refund.external_id)
    _recompute_totals(order)
    order.channel_updated_at = data.channel_updated_at
    if data.cancelled and order.status != OrderStatus.CANCELLED:
        if order.status in CANCELLABLE:
            previous = _move(session, order, OrderStatus.CANCELLED, actor, action="cancel")
            order.cancel_reason = data.cancel_reason
            record_event(session, order, actor, "order.cancelled",
                         f"Cancelled on {order.channel}" + (f": {data.cancel_reason}" if data.cancel_reason else ""),
                         cancelled_from=previous)
            release_stock(session, order, actor)
        else:
            # Already shipped here: the channel's cancellation needs a person (return, refund), not a silent flip.
            record_event(session, order, actor, "order.cancel_requested_by_channel",
                         f"Cancelled on {order.channel} after it was {order.status}; needs staff attention")
        changes["cancelled"] = True
    if changes:
        record_event(session, order, actor, "order.updated_by_channel",
                     f"Updated on {order.channel}: {', '.join(sorted(changes))}",
                     fields=sorted(changes))
    return bool(changes)


def _sync_line_items(order: Order, data: NewOrder) -> list[str]:
    """Make the stored items match the channel's: edits add, remove and change quantities."""
    described: list[str] = []
    current = {item.external_id: item for item in order.line_items if item.external_id}
    wanted_ids = set()
    for new in data.line_items:
        key = new.external_id
        wanted_ids.add(key)
        item = current.get(key) if key else None
        if item is None:
            order.line_items.append(LineItem(
                external_id=new.external_id, sku=new.sku, title=new.title, variant_title=new.variant_title,
                quantity=new.quantity, unit_price=new.unit_price, total_discount=new.total_discount,
                requires_shipping=new.requires_shipping, fulfilled_quantity=new.fulfilled_quantity))
            described.append(f"added {new.sku or new.title}")
            continue
        for name in ("quantity", "unit_price", "total_discount", "sku", "title", "variant_title",
                     "requires_shipping", "fulfilled_quantity"):
            if getattr(item, name) != getattr(new, name):
                if name == "quantity":
                    described.append(f"{item.sku or item.title} quantity {item.quantity}→{new.quantity}")
                setattr(item, name, getattr(new, name))
    for key, item in current.items():
        if key not in wanted_ids:
            order.line_items.remove(item)
            described.append(f"removed {item.sku or item.title}")
    return described


def _recompute_totals(order: Order) -> None:
    subtotal = sum((i.unit_price * i.quantity - i.total_discount for i in order.line_items), Decimal("0"))
    order.subtotal = _exact(subtotal, order.currency)
    order.total = _exact(subtotal + order.shipping_total + order.tax_total - order.discount_total, order.currency)
    order.refunded_total = _exact(sum((r.amount for r in order.refunds), Decimal("0")), order.currency)


def _apply_refund(session: Session, order: Order, refund: NewRefund, actor: Actor) -> bool:
    """Record a channel refund once; returns False when it was already known."""
    if any(r.external_id == refund.external_id for r in order.refunds):
        return False
    order.refunds.append(OrderRefund(external_id=refund.external_id, amount=refund.amount,
                                     line_items=dict(refund.line_items), reason=refund.reason,
                                     created_at=refund.created_at or utcnow()))
    by_id = {item.external_id: item for item in order.line_items}
    for line_id, quantity in refund.line_items.items():
        if line_id in by_id:
            by_id[line_id].refunded_quantity += quantity
    order.refunded_total = _exact(sum((r.amount for r in order.refunds), Decimal("0")), order.currency)
    record_event(session, order, actor, "order.refunded",
                 f"Refunded {order.currency} {refund.amount} on {order.channel}"
                 + (f": {refund.reason}" if refund.reason else ""),
                 refund_id=refund.external_id, amount=str(refund.amount), items=dict(refund.line_items))
    return True


def apply_channel_refund(session: Session, shop: Shop, order_external_id: str, refund: NewRefund) -> str:
    """A refund reported on its own (Shopify `refunds/create`). Returns "applied", "duplicate" or "unknown_order"."""
    order = session.execute(select(Order).where(
        Order.shop_id == shop.id, Order.external_id == order_external_id).with_for_update()).scalar_one_or_none()
    if order is None:
        return "unknown_order"
    applied = _apply_refund(session, order, refund, _channel_actor(shop))
    _flush(session, order)
    return "applied" if applied else "duplicate"


def remove_on_channel(session: Session, shop: Shop, external_id: str, *, reason: str) -> str:
    """The channel deleted or archived the order: cancel it here if it has not left the warehouse."""
    order = session.execute(select(Order).where(
        Order.shop_id == shop.id, Order.external_id == external_id).with_for_update()).scalar_one_or_none()
    if order is None:
        return "unknown_order"
    actor = _channel_actor(shop)
    if order.status in CANCELLABLE:
        previous = _move(session, order, OrderStatus.CANCELLED, actor, action="cancel")
        order.cancel_reason = reason
        record_event(session, order, actor, "order.cancelled", f"{reason.capitalize()} on {shop.channel}",
                     cancelled_from=previous)
        release_stock(session, order, actor)
    else:
        record_event(session, order, actor, "order.removed_on_channel",
                     f"{reason.capitalize()} on {shop.channel} while {order.status}; left as it is")
    _flush(session, order)
    return "applied"


# --- stock ----------------------------------------------------------------------------------------------


def allocate(session: Session, order_id: int, actor: Actor | None = None) -> Order:
    """Reserve stock for an approved or backordered order: `allocated` (the timeline names each location and
    what it ships) or `backordered` (naming what is missing). Idempotent: an order that has moved on, or is
    still short while backordered, is left as it is."""
    actor = actor or Actor.system()
    # The order row first, then the stock rows (stock.allocate): one lock order, and a second copy of this
    # job waits here and then finds the order already allocated.
    order = lock_order(session, order_id)
    if order.status not in (OrderStatus.APPROVED, OrderStatus.BACKORDERED):
        return order
    result = stock.allocate(session, order)
    if result.outcome == "untracked":
        if order.status == OrderStatus.APPROVED:
            record_event(session, order, actor, "order.allocation_skipped",
                         "Not allocated: no active stock location (add one with `orderline locations add` "
                         "and import stock; waiting orders are then allocated)")
    elif result.allocated:
        message, data = stock.describe_allocation(result)
        _move(session, order, OrderStatus.ALLOCATED, actor, action="allocate")
        record_event(session, order, actor, "order.allocated", message, **data)
    elif order.status == OrderStatus.APPROVED:
        message, data = stock.describe_backorder(result)
        _move(session, order, OrderStatus.BACKORDERED, actor, action="backorder")
        record_event(session, order, actor, "order.backordered", message, **data)
    # Backordered and still short: nothing new to say; stock arriving will ask again.
    _flush(session, order)
    return order


def release_stock(session: Session, order: Order, actor: Actor, *, restock: bool = True) -> None:
    """Give back the stock an order holds (on cancel), with a timeline entry naming what went back where."""
    picked = {a.id for a in stock.allocations_of(session, order.id,
                                                 statuses=[stock.AllocationStatus.PICKED.value])}
    released = stock.release_order(session, order, restock=restock)
    if released:
        message, data = stock.describe_release(released)
        if not restock and picked:
            message += " (picked goods written off, not restocked)"
            data["written_off"] = sorted(picked)
        record_event(session, order, actor, "order.stock_released", message, **data)


# --- shipping (shipping helper): app/shipping.py buys labels; the order's state changes here -------------


def _shipping() -> Any:
    from app import shipping  # app.shipping imports this module

    return shipping


def mark_shipped(session: Session, order_id: int, actor: Actor, *, shipment_id: int,
                 location_id: int | None) -> Order:
    """A parcel's label is bought: its stock leaves the location, and the order becomes `shipped` once every
    parcel has a label (`partially_shipped` before). A cancelled order is left alone (its labels are voided)."""
    order = lock_order(session, order_id)
    if order.status == OrderStatus.CANCELLED:
        return order
    held = stock.allocations_of(session, order.id, statuses=[stock.AllocationStatus.RESERVED.value,
                                                           stock.AllocationStatus.PICKED.value])
    stock.ship_allocations(session, [a for a in held if location_id is None or a.location_id == location_id])
    live = [s for s in order.shipments if s.status != "voided"]
    done = all(s.status not in ("pending", "purchasing") for s in live)
    target = OrderStatus.SHIPPED if done else OrderStatus.PARTIALLY_SHIPPED
    if order.status != target:
        _move(session, order, target, actor, action="ship")
        shipped = sum(1 for s in live if s.status not in ("pending", "purchasing"))
        record_event(session, order, actor, "order.shipped",
                     "Shipped" if done else f"Partially shipped ({shipped} of {len(live)} parcels)",
                     shipment_id=shipment_id)
    _flush(session, order)
    return order
# --- tracking and returns (app/tracking.py, app/returns.py) ---------------------------------------------


def mark_delivered(session: Session, order_id: int, actor: Actor) -> Order:
    """Every shipment of a shipped order has arrived: `shipped` → `delivered`. Idempotent."""
    order = load_order(session, order_id)
    if order.status != OrderStatus.SHIPPED:
        return order  # partially shipped, already delivered, or moved on (a return): nothing to say
    _move(session, order, OrderStatus.DELIVERED, actor, action="deliver")
    delivered = [s for s in order.shipments if s.delivered_at is not None]
    record_event(session, order, actor, "order.delivered", f"Order {order.number} delivered",
                 shipment_ids=[s.id for s in delivered],
                 delivered_at=max(s.delivered_at for s in delivered).isoformat() if delivered else None)
    _flush(session, order)
    return order


def request_return(session: Session, order: Order, actor: Actor) -> None:
    """A return was asked for: a shipped or delivered order becomes `return_requested` (already so: stays)."""
    if order.status != OrderStatus.RETURN_REQUESTED:
        _move(session, order, OrderStatus.RETURN_REQUESTED, actor, action="request a return")
    order.updated_at = utcnow()
    _flush(session, order)


def mark_returned(session: Session, order: Order, actor: Actor) -> None:
    """The returned goods are inspected: `return_requested` → `returned`."""
    if order.status != OrderStatus.RETURNED:
        _move(session, order, OrderStatus.RETURNED, actor, action="return")
    _flush(session, order)


def record_pushed_refund(session: Session, order: Order, actor: Actor, refund: NewRefund) -> None:
    """A refund Orderline made on the channel: recorded as the channel's own refunds are (`order.refunded`, so
    the channel's echo of it is a duplicate), and the order becomes `refunded`."""
    _apply_refund(session, order, refund, actor)
    if order.status == OrderStatus.RETURNED:
        _move(session, order, OrderStatus.REFUNDED, actor, action="refund")
    _flush(session, order)


def _receive_return(session: Session, order_id: int, actor: Actor, **arguments: Any) -> Order:
    from app import returns  # returns builds on this module

    return returns.receive(session, order_id, actor, **arguments)


def _inspect_return(session: Session, order_id: int, actor: Actor, **arguments: Any) -> Order:
    from app import returns

    return returns.inspect(session, order_id, actor, **arguments)


def _retry_return(session: Session, order_id: int, actor: Actor, **arguments: Any) -> Order:
    from app import returns

    return returns.retry(session, order_id, actor, **arguments)


# Staff steps of a return (API `actions/<name>` and Slack): return_id names the return; inspect needs restock;
# retry resumes a label or refund step a provider refused, once the cause is fixed.
ACTIONS.update({
    "return_receive": ActionSpec(_receive_return, Role.OPERATOR, needs=("return_id",)),
    "return_inspect": ActionSpec(_inspect_return, Role.OPERATOR, needs=("return_id",)),
    "return_retry": ActionSpec(_retry_return, Role.OPERATOR, needs=("return_id",)),
})
# --- Slack's Edit modal: staff correct the address, shipping level or note (added with the Slack app) -------

EDITABLE_SHIPPING_LEVELS = ("economy", "standard", "express", "overnight", "pickup")


def edit_order(session: Session, order_id: int, actor: Actor, *, shipping_address: dict[str, Any] | None = None,
               shipping_level: str | None = None, note: str | None = None,
               expected_version: int | None = None, **_: Any) -> Order:
    """Change what staff may correct before the goods leave: the shipping address, the shipping level, the note.
    Records `order.edited` naming the fields changed; an edit that changes nothing records nothing."""
    order = load_order(session, order_id, expected_version=expected_version)
    if order.status not in CANCELLABLE:
        raise Conflict(f"order {order.number} is {order.status}: it can no longer be edited")
    if shipping_level is not None and shipping_level not in EDITABLE_SHIPPING_LEVELS:
        raise InvalidOrder("unknown shipping level",
                           fields={"shipping_level": [f"one of {', '.join(EDITABLE_SHIPPING_LEVELS)}"]})
    changed: list[str] = []
    if shipping_address is not None:
        unknown = set(shipping_address) - set(NewAddress.__dataclass_fields__)
        code = shipping_address.get("country_code")
        if unknown or (code is not None and not (isinstance(code, str) and len(code) == 2 and code.isalpha())):
            raise InvalidOrder("the address is not valid", fields={"address": ["country_code must be two letters"]
                                                                   if not unknown else [f"unknown {sorted(unknown)}"]})
        wanted = _address("shipping", NewAddress(**shipping_address))
        current = order.address("shipping")
        if current is None or any(getattr(current, k) != getattr(wanted, k) for k in NewAddress.__dataclass_fields__):
            if current is not None:
                order.addresses.remove(current)
                session.flush()
            order.addresses.append(wanted)
            changed.append("shipping address")
    if shipping_level is not None and shipping_level != order.shipping_level:
        order.shipping_level = shipping_level
        changed.append("shipping level")
    if note is not None and (note.strip() or None) != order.note:
        order.note = note.strip() or None
        changed.append("note")
    if not changed:
        return order
    record_event(session, order, actor, "order.edited", f"Edited by {actor.name or actor.kind}: {', '.join(changed)}",
                 fields=changed)
    order.updated_at = utcnow()
    _flush(session, order)
    return order


ACTIONS["edit"] = ActionSpec(edit_order, Role.OPERATOR)
