"""Pick lists and packing slips: what the packer prints.

A pick list is per location: the reserved-or-picked allocations of orders that are `allocated` or `picking`,
one line per bin and SKU (sorted by bin, then SKU; goods with no bin last), with each bin's total and the
orders every line is for. A packing slip is per order and location: the ship-to address, what leaves from
that location, and, for a split order, what ships separately from elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import and_, select
from sqlalchemy.orm import Session, contains_eager

from app import stock
from app.models import Address, Allocation, LineItem, Location, Order, StockLevel
from app.orders.errors import NotFound
from app.orders.statuses import OrderStatus
from app.store import utcnow

PICKABLE_ORDERS = (OrderStatus.ALLOCATED.value, OrderStatus.PICKING.value)
PICKABLE_ALLOCATIONS = (stock.AllocationStatus.RESERVED.value, stock.AllocationStatus.PICKED.value)
# On a slip: everything the location sends for the order, even once it has shipped (a reprint).
SLIP_ALLOCATIONS = (*PICKABLE_ALLOCATIONS, stock.AllocationStatus.SHIPPED.value)

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


# --- pick lists -----------------------------------------------------------------------------------------


@dataclass
class PickOrder:
    """One order's share of a pick line."""

    order_id: int
    number: str
    quantity: int
    status: str  # the allocation's: reserved | picked


@dataclass
class PickLine:
    sku: str
    title: str | None
    quantity: int
    orders: list[PickOrder] = field(default_factory=list)


@dataclass
class BinGroup:
    bin: str | None
    lines: list[PickLine]

    @property
    def total(self) -> int:
        return sum(line.quantity for line in self.lines)


@dataclass
class Elsewhere:
    """What part of a split order ships from another location."""

    location: str
    sku: str
    quantity: int


@dataclass
class PickListOrder:
    order_id: int
    number: str
    status: str
    customer_name: str | None
    units: int
    split: bool
    elsewhere: list[Elsewhere]


@dataclass
class PickList:
    location: str
    location_name: str
    generated_at: datetime
    bins: list[BinGroup]
    orders: list[PickListOrder]

    @property
    def total(self) -> int:
        return sum(group.total for group in self.bins)


def _location(session: Session, code: str) -> Location:
    location = session.execute(
        select(Location).where(Location.code == stock.normalize_code(code))).scalar_one_or_none()
    if location is None:
        raise NotFound(f"there is no location '{code}'")
    return location


def _bin_key(bin: str | None) -> tuple[bool, str]:
    return (bin is None or bin == "", (bin or "").casefold())


def _elsewhere(session: Session, order_ids: Sequence[int], location_id: int) -> dict[int, list[Elsewhere]]:
    """Per order, what it holds at other locations (a split order's other parcels)."""
    result: dict[int, list[Elsewhere]] = defaultdict(list)
    if not order_ids:
        return result
    rows = session.execute(
        select(Allocation).join(Allocation.location).options(contains_eager(Allocation.location))
        .where(Allocation.order_id.in_(list(order_ids)), Allocation.location_id != location_id,
               Allocation.status.in_(SLIP_ALLOCATIONS))
        .order_by(Location.priority, Location.code, Allocation.sku, Allocation.id)).scalars()
    for allocation in rows:
        result[allocation.order_id].append(Elsewhere(allocation.location.code, allocation.sku, allocation.quantity))
    return result


def pick_list(session: Session, code: str, *, order_ids: Sequence[int] | None = None) -> PickList:
    """The pick list of location `code`, optionally only for some orders. Raises NotFound for no such code."""
    location = _location(session, code)
    query = (
        select(Allocation, Order, StockLevel.bin, LineItem.title)
        .join(Order, Order.id == Allocation.order_id)
        .outerjoin(StockLevel, and_(StockLevel.location_id == Allocation.location_id,
                                    StockLevel.sku == Allocation.sku))
        .outerjoin(LineItem, LineItem.id == Allocation.line_item_id)
        .where(Allocation.location_id == location.id, Allocation.status.in_(PICKABLE_ALLOCATIONS),
               Order.status.in_(PICKABLE_ORDERS))
        .order_by(Order.placed_at, Order.id, Allocation.id)
    )
    if order_ids is not None:
        query = query.where(Allocation.order_id.in_(list(order_ids)))
    lines: dict[tuple[str | None, str], PickLine] = {}
    orders: dict[int, Order] = {}
    units: dict[int, int] = defaultdict(int)
    for allocation, order, bin, title in session.execute(query).all():
        key = (bin or None, allocation.sku)
        line = lines.setdefault(key, PickLine(sku=allocation.sku, title=title, quantity=0))
        line.quantity += allocation.quantity
        line.title = line.title or title
        share = next((o for o in line.orders if o.order_id == order.id and o.status == allocation.status), None)
        if share is None:
            line.orders.append(PickOrder(order.id, order.number, allocation.quantity, allocation.status))
        else:
            share.quantity += allocation.quantity
        orders[order.id] = order
        units[order.id] += allocation.quantity
    groups: dict[str | None, list[PickLine]] = defaultdict(list)
    for (bin, _sku), line in sorted(lines.items(), key=lambda item: (_bin_key(item[0][0]), item[0][1])):
        groups[bin].append(line)
    elsewhere = _elsewhere(session, list(orders), location.id)
    return PickList(
        location=location.code, location_name=location.name, generated_at=utcnow(),
        bins=[BinGroup(bin, group) for bin, group in groups.items()],
        orders=[PickListOrder(order.id, order.number, order.status, order.customer_name, units[order.id],
                              bool(elsewhere.get(order.id)), elsewhere.get(order.id, []))
                for order in orders.values()],
    )


# --- packing slips --------------------------------------------------------------------------------------


@dataclass
class SlipItem:
    sku: str | None
    title: str
    variant_title: str | None
    quantity: int


@dataclass
class PackingSlip:
    order_id: int
    number: str
    placed_at: datetime
    customer_name: str | None
    ship_to: Address | None
    location: str | None  # None when the order's stock is not tracked per location
    location_name: str | None
    items: list[SlipItem]
    elsewhere: list[Elsewhere]
    parcel: int  # 1-based: this slip's place among the order's parcels
    parcels: int

    @property
    def units(self) -> int:
        return sum(item.quantity for item in self.items)


def packing_slips(session: Session, order_id: int, *, location: str | None = None) -> list[PackingSlip]:
    """The order's packing slips, one per location it ships from (or only `location`'s)."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    allocations = stock.allocations_of(session, order.id, statuses=list(SLIP_ALLOCATIONS))
    lines = {item.id: item for item in order.line_items}
    ship_to = order.address("shipping")

    def slip(code: str | None, name: str | None, items: list[SlipItem], elsewhere: list[Elsewhere],
             parcel: int, parcels: int) -> PackingSlip:
        return PackingSlip(order.id, order.number, order.placed_at, order.customer_name, ship_to, code, name,
                           items, elsewhere, parcel, parcels)

    if not allocations:
        if location is not None:
            _location(session, location)  # an unknown code is a 404, a known one ships nothing here
            return []
        items = [SlipItem(i.sku, i.title, i.variant_title, i.quantity) for i in order.line_items
                 if i.requires_shipping and i.quantity > 0]
        return [slip(None, None, items, [], 1, 1)]
    by_location: dict[int, list[Allocation]] = {}
    for allocation in allocations:
        by_location.setdefault(allocation.location_id, []).append(allocation)
    slips = []
    groups = list(by_location.values())
    for index, group in enumerate(groups, start=1):
        items: dict[tuple[str, int | None], SlipItem] = {}
        for allocation in group:
            line = lines.get(allocation.line_item_id) if allocation.line_item_id else None
            key = (allocation.sku, allocation.line_item_id)
            item = items.setdefault(key, SlipItem(allocation.sku, line.title if line else allocation.sku,
                                                  line.variant_title if line else None, 0))
            item.quantity += allocation.quantity
        here = group[0].location
        elsewhere = [Elsewhere(a.location.code, a.sku, a.quantity) for a in allocations if a.location_id != here.id]
        slips.append(slip(here.code, here.name, list(items.values()), elsewhere, index, len(groups)))
    if location is not None:
        code = stock.normalize_code(location)
        chosen = [s for s in slips if s.location == code]
        if not chosen:
            _location(session, location)
        return chosen
    return slips


# --- rendering ------------------------------------------------------------------------------------------


def render_pick_list(pick: PickList) -> str:
    return _env.get_template("pick_list.html").render(pick=pick)


def render_packing_slips(slips: Sequence[PackingSlip], *, number: str) -> str:
    return _env.get_template("packing_slip.html").render(slips=slips, number=number)

