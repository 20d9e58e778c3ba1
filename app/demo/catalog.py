"""What the demo shops sell and who buys: a Stockholm clothing brand, as in USERS.md.

Random choices come from one `random.Random`, so a seed reproduces a stream (the tests use one).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    variant: str | None
    price_sek: Decimal
    price_eur: Decimal
    grams: int


PRODUCTS: tuple[Product, ...] = (
    Product("TEE-BLK-M", "Organic T-shirt", "Black / M", Decimal("299.00"), Decimal("27.00"), 180),
    Product("TEE-WHT-L", "Organic T-shirt", "White / L", Decimal("299.00"), Decimal("27.00"), 190),
    Product("HOOD-GRY-M", "Hoodie", "Grey / M", Decimal("799.00"), Decimal("72.00"), 620),
    Product("JEANS-32", "Straight jeans", "32/32", Decimal("999.00"), Decimal("89.00"), 750),
    Product("SCARF-RED", "Wool scarf", "Red", Decimal("449.00"), Decimal("40.00"), 210),
    Product("CAP-01", "Cap", None, Decimal("249.00"), Decimal("22.00"), 120),
    Product("SOCK-3PK", "Socks, 3-pack", "39-42", Decimal("149.00"), Decimal("13.00"), 150),
    Product("COAT-WOOL-L", "Wool coat", "Navy / L", Decimal("3499.00"), Decimal("315.00"), 1900),
    Product("BAG-TOTE", "Canvas tote", None, Decimal("199.00"), Decimal("18.00"), 300),
    Product("BEANIE-NVY", "Beanie", "Navy", Decimal("229.00"), Decimal("20.00"), 90),
)
BY_SKU = {p.sku: p for p in PRODUCTS}
# How often each SKU is picked relative to the others (1.0 when not named).
POPULARITY: dict[str, float] = {"TEE-BLK-M": 3.0, "TEE-WHT-L": 2.0, "SOCK-3PK": 2.0, "COAT-WOOL-L": 0.0,
                                "BAG-TOTE": 0.3, "BEANIE-NVY": 0.6}

# Stock per location at the start (CSV rows for `app.stock.import_stock`): limited on purpose: the coat and
# the beanie run out within a Black Friday burst and the tote is out of stock from the start, so backorders
# and split shipments (Stockholm + New Jersey) happen.
STOCK_CSV = """location,sku,on_hand,bin
STHLM,TEE-BLK-M,400,A-01-1
STHLM,TEE-WHT-L,300,A-01-2
STHLM,HOOD-GRY-M,150,A-02-1
STHLM,JEANS-32,120,A-03-4
STHLM,SCARF-RED,90,B-01-1
STHLM,CAP-01,200,B-02-3
STHLM,SOCK-3PK,500,B-03-1
STHLM,COAT-WOOL-L,8,C-01-1
STHLM,BAG-TOTE,0,B-04-2
STHLM,BEANIE-NVY,12,B-05-1
NJ,TEE-BLK-M,150,1-A
NJ,HOOD-GRY-M,60,1-C
NJ,JEANS-32,40,2-A
NJ,CAP-01,80,2-C
NJ,SOCK-3PK,200,3-A
NJ,COAT-WOOL-L,4,4-A
"""


@dataclass(frozen=True)
class Customer:
    first: str
    last: str
    email: str
    phone: str
    locale: str
    address1: str
    city: str
    postcode: str
    country: str


CUSTOMERS: tuple[Customer, ...] = (
    Customer("Maria", "Lind", "maria.lind@example.se", "+46701234567", "sv", "Vasagatan 14", "Göteborg",
             "411 24", "SE"),
    Customer("Anna", "Berg", "anna.berg@example.se", "+46709876543", "sv", "Storgatan 12", "Stockholm",
             "114 55", "SE"),
    Customer("Erik", "Johansson", "erik.j@example.se", "+46731112233", "sv", "Kungsgatan 3", "Uppsala",
             "753 21", "SE"),
    Customer("Lukas", "Becker", "lukas.becker@example.de", "+4915112345678", "de", "Torstraße 101", "Berlin",
             "10119", "DE"),
    Customer("Aino", "Virtanen", "aino.v@example.fi", "+358401234567", "fi", "Mannerheimintie 5", "Helsinki",
             "00100", "FI"),
    Customer("Freja", "Nielsen", "freja.n@example.dk", "+4520123456", "da", "Nørregade 7", "København",
             "1165", "DK"),
    Customer("Sanne", "de Vries", "sanne@example.nl", "+31612345678", "nl", "Prinsengracht 263", "Amsterdam",
             "1016 GV", "NL"),
    Customer("Claire", "Martin", "claire.martin@example.fr", "+33612345678", "fr", "12 rue de Rivoli", "Paris",
             "75004", "FR"),
    Customer("Sam", "Carter", "sam.carter@example.com", "+12125550123", "en", "350 5th Ave", "New York",
             "10118", "US"),
    Customer("Jonas", "Holm", "jonas.holm@example.se", "+46705550101", "sv", "Drottninggatan", "Malmö",
             "211 11", "SE"),  # no house number: one for review
)

# (title as the checkout names it, share of orders); the channels' own keyword tables map the titles to levels.
SHIPPING_OPTIONS: tuple[tuple[str, float, Decimal], ...] = (
    ("Standard", 0.6, Decimal("49.00")),
    ("Express", 0.25, Decimal("129.00")),
    ("Economy", 0.15, Decimal("29.00")),
)


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int


@dataclass(frozen=True)
class DemoOrder:
    """One order as a shopper placed it, before either channel's JSON shape is put on it."""

    number: int
    customer: Customer
    lines: tuple[Line, ...]
    shipping_title: str
    shipping_price_sek: Decimal
    note: str | None
    first_time: bool


def random_order(rng: random.Random, number: int) -> DemoOrder:
    """A plausible order: mostly one to three items, now and then a big or odd one for review."""
    customer = rng.choice(CUSTOMERS)
    roll = rng.random()
    if roll < 0.07:  # high value: someone buys a rack of coats
        lines: tuple[Line, ...] = (Line(BY_SKU["COAT-WOOL-L"], rng.randint(3, 6)),)
    else:
        # Popular items more often; the coat only in the big orders above, the tote (out of stock) rarely.
        wanted = rng.choice((1, 1, 2, 2, 3))
        chosen: list[Product] = []
        while len(chosen) < wanted:
            product = rng.choices(PRODUCTS, weights=[POPULARITY.get(p.sku, 1.0) for p in PRODUCTS])[0]
            if product not in chosen:
                chosen.append(product)
        lines = tuple(Line(p, rng.choice((1, 1, 1, 2, 3))) for p in chosen)
    title, _share, price = rng.choices(SHIPPING_OPTIONS, weights=[s[1] for s in SHIPPING_OPTIONS])[0]
    note = rng.choice((None, None, None, "Gift wrap please", "Leave at the door"))
    return DemoOrder(number=number, customer=customer, lines=lines, shipping_title=title,
                     shipping_price_sek=price, note=note, first_time=rng.random() < 0.3)
