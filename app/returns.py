"""Returns: request → label → parcel tracked → received → inspected (restocked or not) → refund on the channel.

Each step writes its timeline entry (the SMS helper tells the customer from `return.requested`,
`return.label_ready`, `return.received` and `order.refunded`). The two provider side effects are made
exactly once the same way: a key is claimed and committed before the call (the label's with the request,
the refund's with the inspection, so no job needs a second transaction), and every attempt looks the effect
up with that key before making it (`find_label` at the carrier, `find_refund` on the channel).

    requested ──label job──▶ label_ready ──first scan──▶ in_transit ──staff──▶ received ──staff──▶ inspected
        ──refund job──▶ refunded
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import carrier_accounts, outbox, stock, tracking
from app.config import Settings
from app.models import Allocation, LineItem, Location, Order, Return
from app.money import minor_units
from app.orders import actions
from app.orders.errors import Conflict, InvalidOrder, NotFound, OrderError
from app.orders.statuses import OrderStatus
from app.orders.types import Actor, NewAddress, NewRefund
from app.store import utcnow
from integrations.carriers import all_carriers
from integrations.carriers.base import Label, Parcel, ShipmentRequest

log = structlog.get_logger("orderline.returns")

DEFAULT_WINDOW_DAYS = 30
DEFAULT_PARCEL_GRAMS = 1000
MAX_REASON = 500
RETURNABLE = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.RETURN_REQUESTED})
# Returns still holding units: a second request cannot ask for the same units again.
OPEN = frozenset({"requested", "label_ready", "in_transit", "received", "inspected"})
RECEIVABLE = frozenset({"requested", "label_ready", "in_transit"})


class NotReturnable(OrderError):
    """The order (or some of its items) cannot be returned: window closed, final sale, not shipped."""

    code = "not_returnable"
    http_status = 422


@dataclass(frozen=True)
class ItemIn:
    line_item_id: int
    quantity: int
    reason: str


# --- rules ------------------------------------------------------------------------------------------------


def _shop_setting(order: Order, name: str, default: Any) -> Any:
    return (order.shop.settings or {}).get(name, default)


def window_days(order: Order) -> int:
    value = _shop_setting(order, "return_window_days", DEFAULT_WINDOW_DAYS)
    return value if isinstance(value, int) and value >= 0 else DEFAULT_WINDOW_DAYS


def window_start(order: Order) -> datetime | None:
    """When the return window opened: the last delivery, else the last dispatch."""
    delivered = [s.delivered_at for s in order.shipments if s.delivered_at is not None]
    if delivered:
        return max(delivered)
    shipped = [s.shipped_at for s in order.shipments if s.shipped_at is not None]
    return max(shipped) if shipped else None


def _lower_set(value: Any) -> set[str]:
    return {str(v).strip().lower() for v in value or [] if str(v).strip()} if isinstance(value, list) else set()


def final_sale_tags(order: Order) -> set[str]:
    """The order's tags that make it final sale (shop setting `final_sale_tags`, case-insensitive)."""
    return _lower_set(_shop_setting(order, "final_sale_tags", [])) & {t.lower() for t in order.tags or []}


def is_final_sale_sku(order: Order, sku: str | None) -> bool:
    return bool(sku) and str(sku).lower() in _lower_set(_shop_setting(order, "final_sale_skus", []))


def unit_refund(line: LineItem, currency: str) -> Decimal:
    """What one unit of the line cost the customer, its discount spread over the units."""
    return (line.unit_price * line.quantity - line.total_discount) / line.quantity


def exact(amount: Decimal, currency: str) -> Decimal:
    """The amount in the currency's own places ("59.000000" as PostgreSQL returns it → "59.00")."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def refund_amount(order: Order, items: Sequence[dict[str, Any]]) -> Decimal:
    lines = {line.id: line for line in order.line_items}
    total = sum((unit_refund(lines[i["line_item_id"]], order.currency) * i["quantity"] for i in items
                 if i["line_item_id"] in lines), Decimal("0"))
    return exact(total, order.currency)


def _already_returning(order: Order) -> dict[int, int]:
    held: dict[int, int] = {}
    for existing in order.returns:
        if existing.status in OPEN:
            for item in existing.items or []:
                held[item["line_item_id"]] = held.get(item["line_item_id"], 0) + int(item["quantity"])
    return held


def everything_left(order: Order, reason: str) -> list[ItemIn]:
    """Every unit of the order not yet refunded or on its way back, final-sale SKUs left out: what a customer
    who asks to "return" without naming items (a text) sends back."""
    held = _already_returning(order)
    return [ItemIn(line.id, left, reason) for line in order.line_items
            if not is_final_sale_sku(order, line.sku)
            and (left := line.quantity - line.refunded_quantity - held.get(line.id, 0)) > 0]


def check_request(order: Order, items: Sequence[ItemIn], now: datetime) -> None:
    """Refuse a return the shop's rules do not allow, naming each problem (422)."""
    if order.status not in RETURNABLE:
        raise NotReturnable(f"order {order.number} is {order.status}; only shipped or delivered orders can be "
                            "returned")
    start = window_start(order)
    if start is None:
        raise NotReturnable(f"order {order.number} has no shipment that left the warehouse")
    days = window_days(order)
    closes = start + timedelta(days=days)
    if now > closes:
        raise NotReturnable(f"the {days}-day return window of order {order.number} closed on {closes:%Y-%m-%d}",
                            fields={"items": [f"the return window closed on {closes:%Y-%m-%d}"]})
    tags = final_sale_tags(order)
    if tags:
        raise NotReturnable(f"order {order.number} is final sale (tagged {', '.join(sorted(tags))})",
                            fields={"items": [f"final sale: tagged {', '.join(sorted(tags))}"]})
    if not items:
        raise InvalidOrder("a return needs at least one item", fields={"items": ["at least one item is required"]})
    lines = {line.id: line for line in order.line_items}
    held = _already_returning(order)
    problems: dict[int, dict[str, list[str]]] = {}
    final: list[str] = []
    asked: dict[int, int] = {}
    for index, item in enumerate(items):
        line = lines.get(item.line_item_id)
        if line is None:
            problems[index] = {"line_item_id": [f"order {order.number} has no line item {item.line_item_id}"]}
            continue
        if is_final_sale_sku(order, line.sku):
            problems[index] = {"line_item_id": [f"{line.sku} is final sale"]}
            final.append(str(line.sku))
            continue
        asked[line.id] = asked.get(line.id, 0) + item.quantity
        left = line.quantity - line.refunded_quantity - held.get(line.id, 0)
        if item.quantity < 1 or asked[line.id] > left:
            problems[index] = {"quantity": [f"between 1 and {max(left, 0)} of {line.sku or line.title} can be "
                                            "returned"]}
        elif not item.reason.strip():
            problems[index] = {"reason": ["is required"]}
    if problems:
        error = NotReturnable if final and len(final) == len(problems) else InvalidOrder
        message = (f"final sale, cannot be returned: {', '.join(final)}" if error is NotReturnable
                   else "some items cannot be returned as asked")
        raise error(message, fields={"items": problems})


# --- requesting -------------------------------------------------------------------------------------------


def _return_carrier(order: Order, asked: str | None) -> str:
    known = all_carriers()
    if asked:
        if asked not in known or not asked.strip():
            raise InvalidOrder(f"no carrier '{asked}'", fields={"carrier": [f"one of {', '.join(sorted(known))}"]})
        return asked
    configured = _shop_setting(order, "return_carrier", None)
    if isinstance(configured, str) and configured in known:
        return configured
    shipped = [s.provider for s in order.shipments if s.provider in known]
    return shipped[-1] if shipped else carrier_accounts.shop_carrier(order.shop)


def request_return(session: Session, order_id: int, items: Sequence[ItemIn], actor: Actor, *,
                   reason: str | None = None, carrier: str | None = None) -> Return:
    """Open a return for some of an order's units, and ask for its label."""
    order = actions.lock_order(session, order_id)
    check_request(order, items, utcnow())
    slug = _return_carrier(order, carrier)
    stored = [{"line_item_id": i.line_item_id, "quantity": i.quantity, "reason": i.reason.strip()[:MAX_REASON],
               "sku": next(line.sku for line in order.line_items if line.id == i.line_item_id)} for i in items]
    summary = (reason or "").strip()[:MAX_REASON] or "; ".join(dict.fromkeys(i["reason"] for i in stored))
    parcel = Return(order=order, rma=f"RMA-{order.id}-{len(order.returns) + 1}", status="requested", reason=summary,
                    items=stored, carrier=slug, refund_amount=refund_amount(order, stored), created_at=utcnow())
    session.add(parcel)
    actions.request_return(session, order, actor)
    session.flush()
    # The label's reference is claimed here, committed with the request, before any carrier is called.
    parcel.label_reference, parcel.label_claimed_at = label_reference(parcel), utcnow()
    units = ", ".join(f"{i['quantity']} × {i['sku'] or i['line_item_id']}" for i in stored)
    actions.record_event(session, order, actor, "return.requested", f"Return {parcel.rma} requested: {units}",
                         return_id=parcel.id, items=stored, reason=summary)
    outbox.add_job(session, outbox.JobName.RETURN_LABEL, return_id=parcel.id)
    return parcel


# --- the label --------------------------------------------------------------------------------------------


def label_reference(parcel: Return) -> str:
    return f"ret-{parcel.order_id}-r{parcel.id}"


def needing_label(session: Session, return_id: int) -> Return | None:
    """The return (locked) when it still waits for its label; its reference was claimed with the request."""
    parcel = session.execute(select(Return).where(Return.id == return_id).with_for_update()).scalar_one_or_none()
    if parcel is None or parcel.status != "requested" or parcel.tracking_number:
        return None
    return parcel


def _warehouse(session: Session, order: Order) -> Location | None:
    shipped_from = session.execute(select(Location).join(Allocation, Allocation.location_id == Location.id)
                                   .where(Allocation.order_id == order.id).order_by(Allocation.id)).scalars().first()
    if shipped_from is not None:
        return shipped_from
    return session.execute(select(Location).where(Location.active.is_(True))
                           .order_by(Location.priority, Location.id)).scalars().first()


def outbound_request(session: Session, parcel: Return) -> ShipmentRequest:
    """The shipment as it went out (warehouse → customer): the carriers swap the addresses for the return."""
    order = parcel.order
    to = order.address("shipping")
    if to is None:
        raise InvalidOrder(f"order {order.number} has no shipping address to collect the return from")
    home = _warehouse(session, order)
    if home is None:
        raise InvalidOrder("no stock location is set up to receive the return (`orderline locations add`)")
    origin = NewAddress(name=order.shop.name, line1=home.line1, line2=home.line2, city=home.city,
                        region=home.region, postal_code=home.postal_code, country_code=home.country_code)
    destination = NewAddress(**{k: getattr(to, k) for k in NewAddress.__dataclass_fields__})
    grams = order.packed_weight_grams or DEFAULT_PARCEL_GRAMS
    assert parcel.label_reference is not None
    return ShipmentRequest(reference=parcel.label_reference, from_address=origin, to_address=destination,
                           parcels=(Parcel(weight_grams=grams),), service_level="economy",
                           email=order.customer_email)


def record_label(session: Session, settings: Settings, return_id: int, label: Label, actor: Actor) -> Return:
    parcel = session.execute(select(Return).where(Return.id == return_id).with_for_update()).scalar_one()
    if parcel.tracking_number:
        return parcel
    parcel.tracking_number, parcel.tracking_url, parcel.label_url = (label.tracking_number, label.tracking_url,
                                                                     label.label_url)
    parcel.status, parcel.error, parcel.label_carrier = "label_ready", None, label.carrier
    # Polled until it is received, in case the carrier's webhooks do not reach us.
    parcel.next_poll_at = tracking.next_return_poll_at(settings, parcel, utcnow())
    actions.record_event(session, parcel.order, actor, "return.label_ready",
                         f"Return label for {parcel.rma} ready: {label.carrier} {label.tracking_number}",
                         return_id=parcel.id, tracking_number=label.tracking_number, label_url=label.label_url)
    return parcel


# --- staff steps ------------------------------------------------------------------------------------------


def _return_of(session: Session, order_id: int, return_id: Any) -> Return:
    if isinstance(return_id, bool) or not isinstance(return_id, int):
        raise InvalidOrder("a return action needs the return's id", fields={"return_id": ["an integer is required"]})
    parcel = session.execute(select(Return).where(Return.id == return_id, Return.order_id == order_id)
                             .with_for_update()).scalar_one_or_none()
    if parcel is None:
        raise NotFound(f"order {order_id} has no return {return_id}")
    return parcel


def receive(session: Session, order_id: int, actor: Actor, *, return_id: Any = None, **_: Any) -> Order:
    """Staff opened the returned parcel at the warehouse."""
    order = actions.lock_order(session, order_id)
    parcel = _return_of(session, order_id, return_id)
    if parcel.status == "received":
        return order
    if parcel.status not in RECEIVABLE:
        raise Conflict(f"return {parcel.rma} is {parcel.status}; it cannot be received")
    parcel.status, parcel.received_at, parcel.next_poll_at = "received", utcnow(), None
    actions.record_event(session, order, actor, "return.received", f"Return {parcel.rma} received at the warehouse",
                         return_id=parcel.id)
    order.updated_at = utcnow()
    session.flush()
    return order


def inspect(session: Session, order_id: int, actor: Actor, *, return_id: Any = None, restock: Any = None,
            **_: Any) -> Order:
    """Staff checked the goods: restock them (back to stock where they shipped from) or not; the order is
    `returned` and the refund is pushed to the channel by a job."""
    if not isinstance(restock, bool):
        raise InvalidOrder("say whether the goods go back to stock", fields={"restock": ["true or false is required"]})
    order = actions.lock_order(session, order_id)
    parcel = _return_of(session, order_id, return_id)
    if parcel.status in ("inspected", "refunded"):
        return order
    if parcel.status != "received":
        raise Conflict(f"return {parcel.rma} is {parcel.status}; receive it before inspecting it")
    parcel.status, parcel.inspected_at, parcel.restocked = "inspected", utcnow(), restock
    # The refund's key is claimed here, committed with the inspection, before the channel is called.
    parcel.refund_key, parcel.refund_claimed_at = refund_key(parcel), utcnow()
    restocked = _restock(session, order, parcel, actor) if restock else []
    actions.mark_returned(session, order, actor)
    actions.record_event(session, order, actor, "return.inspected",
                         f"Return {parcel.rma} inspected; " + (f"restocked {', '.join(restocked)}" if restock
                                                               else "not restocked"),
                         return_id=parcel.id, restock=restock, restocked=restocked)
    outbox.add_job(session, outbox.JobName.RETURN_REFUND, return_id=parcel.id)
    return order


def _restock(session: Session, order: Order, parcel: Return, actor: Actor) -> list[str]:
    home = _warehouse(session, order)
    if home is None:
        return []
    done: list[str] = []
    for item in parcel.items or []:
        if not item.get("sku"):
            continue
        stock.adjust_stock(session, home.code, item["sku"], delta=int(item["quantity"]),
                           reason=f"return {parcel.rma}", actor=actor.name)
        done.append(f"{item['quantity']} × {item['sku']} at {home.code}")
    return done


def retry(session: Session, order_id: int, actor: Actor, *, return_id: Any = None, **_: Any) -> Order:
    """Resume a return step that stopped on a provider's refusal (after the cause is fixed)."""
    order = actions.lock_order(session, order_id)
    parcel = _return_of(session, order_id, return_id)
    if parcel.status == "requested" and not parcel.tracking_number:
        job = outbox.JobName.RETURN_LABEL
    elif parcel.status == "inspected" and not parcel.refund_external_id:
        job = outbox.JobName.RETURN_REFUND
    else:
        raise Conflict(f"return {parcel.rma} is {parcel.status}; it has no step waiting to be retried")
    parcel.error = None
    actions.record_event(session, order, actor, "return.retried", f"Return {parcel.rma}: {job} retried",
                         return_id=parcel.id, job=str(job))
    outbox.add_job(session, job, return_id=parcel.id)
    return order


# --- the refund -------------------------------------------------------------------------------------------


def refund_key(parcel: Return) -> str:
    return f"orderline-{parcel.rma}"


def needing_refund(session: Session, return_id: int) -> Return | None:
    """The return (locked) when its refund is still due; its key was claimed with the inspection."""
    parcel = session.execute(select(Return).where(Return.id == return_id).with_for_update()).scalar_one_or_none()
    if parcel is None or parcel.status != "inspected" or parcel.refund_external_id or not parcel.refund_key:
        return None
    return parcel


def refund_lines(parcel: Return) -> dict[str, int]:
    """line item external id → quantity, as the channel knows its lines."""
    lines = {line.id: line for line in parcel.order.line_items}
    result: dict[str, int] = {}
    for item in parcel.items or []:
        line = lines.get(item["line_item_id"])
        if line is not None and line.external_id:
            result[line.external_id] = result.get(line.external_id, 0) + int(item["quantity"])
    return result


def record_refund(session: Session, return_id: int, external_id: str, amount: Decimal, actor: Actor) -> Return:
    parcel = session.execute(select(Return).where(Return.id == return_id).with_for_update()).scalar_one()
    if parcel.refund_external_id:
        return parcel
    order = actions.lock_order(session, parcel.order_id)
    parcel.refund_external_id, parcel.refunded_at, parcel.status, parcel.error = (external_id, utcnow(),
                                                                                   "refunded", None)
    actions.record_pushed_refund(session, order, actor, NewRefund(
        external_id=external_id, amount=exact(amount, order.currency), line_items=refund_lines(parcel),
        reason=f"Return {parcel.rma}", created_at=utcnow()))
    return parcel


