"""Marshmallow schemas for the REST API: what comes in is validated here, what goes out is shaped here.

Everything a request carries is checked here against what the database can hold, so a bad value is a 422
naming its field, never a database error: no NUL characters (PostgreSQL refuses them), no integer past
PostgreSQL's `integer`, no amount past `numeric(20, 6)`, no date that cannot be moved to UTC.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import available_timezones

import marshmallow as ma
import phonenumbers
import pycountry
from marshmallow import ValidationError, fields, post_dump, validate, validates, validates_schema

from app.money import amount_problem, is_currency, minor_units
from app.orders.rules import RISK_LEVELS, ApprovalRules
from app.orders.statuses import OrderStatus

SHIPPING_LEVELS = ("economy", "standard", "express", "overnight", "pickup")
FINANCIAL_STATUSES = ("pending", "authorized", "paid", "partially_paid", "partially_refunded", "refunded",
                      "voided")
CHANNELS = ("shopify", "woocommerce", "bigcommerce", "manual")
MAX_TEXT = 2000
INT32_MAX = 2**31 - 1  # ids and counts live in PostgreSQL `integer` columns
# numeric(20, 6) holds 14 integer digits; one amount stays well inside, and so does an order's sum of them.
MAX_AMOUNT = Decimal("1000000000")
MAX_ORDER_TOTAL = Decimal("10000000000000")
MAX_JSON_DEPTH = 20


class Strict(ma.Schema):
    """Unknown fields are refused, so a typo is an error instead of silently ignored data."""

    class Meta:
        unknown = ma.RAISE


# --- fields ---------------------------------------------------------------------------------------------


def _storable(text: str) -> str:
    if "\x00" in text:
        raise ValidationError("must not contain NUL (\\u0000) characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("must be valid Unicode (no unpaired surrogates)") from None
    return text


class Text(fields.String):
    """A string any database can store."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return _storable(super()._deserialize(value, attr, data, **kwargs))


class EmailText(Text, fields.Email):
    pass


class Money(fields.String):
    """An exact amount as a decimal string ("19.90"). A JSON number is refused: it may have been a float."""

    _SHAPE = re.compile(r"-?[0-9]+(\.[0-9]+)?")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "19.90",
                                   "description": "exact decimal string"}, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format(value, "f")  # "f": never exponent notation

    # A String in the document (hence the subclass), a Decimal in Python.
    def _deserialize(self, value: Any, attr: str | None, data: Any,  # type: ignore[override]
                     **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not self._SHAPE.fullmatch(value):
            raise ValidationError('must be a decimal string such as "19.90"')
        amount = Decimal(value)
        if amount < 0 or value.startswith("-"):  # "-0" too: a negative zero would print as "-0.00"
            raise ValidationError("must not be negative")
        if amount > MAX_AMOUNT:
            raise ValidationError(f"must be at most {MAX_AMOUNT}")
        return amount


class UtcDateTime(fields.AwareDateTime):
    """A moment with its UTC offset (or a bare date, meaning midnight UTC), converted to UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return datetime.combine(date.fromisoformat(value), time(), UTC)
            except ValueError:
                raise ValidationError("is not a valid date") from None
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
            raise ValidationError("is out of range") from None


def _plain_json(value: Any, depth: int = 0) -> Any:
    """JSON a JSON(B) column can hold: finite numbers, storable strings, not absurdly deep."""
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_storable(key): _plain_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item, depth + 1) for item in value]
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, Decimal):  # the body parser reads every JSON fraction as a Decimal
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError("numbers must be finite")
        return number
    return value


class JsonObject(fields.Dict):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        return _plain_json(super()._deserialize(value, attr, data, **kwargs))


class Cursor(Text):
    """An opaque page position: the (placed_at, id) of the last order on the previous page."""

    @staticmethod
    def encode(placed_at: datetime, order_id: int) -> str:
        raw = f"{placed_at.astimezone(UTC).isoformat()}|{order_id}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _deserialize(self, value: Any, attr: str | None, data: Any,  # type: ignore[override]
                     **kwargs: Any) -> tuple[datetime, int]:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            moment, _, order_id = raw.partition("|")
            placed_at = datetime.fromisoformat(moment)
            if placed_at.tzinfo is None or not order_id.isdigit() or not 0 < int(order_id) <= INT32_MAX:
                raise ValueError(text)
        except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
            raise ValidationError("is not a cursor this API gave out; start again without one") from None
        return placed_at, int(order_id)


class _Derived:
    """A field computed from the whole object, yet documented as its real type."""

    def __init__(self, *args: Any, getter: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.getter = getter

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = ma.missing) -> Any:
        return self.getter(obj)


class DerivedNested(_Derived, fields.Nested):
    pass


class DerivedBool(_Derived, fields.Boolean):
    pass


def _text(max_len: int = 255, **kwargs: Any) -> Text:
    kwargs.setdefault("validate", validate.Length(max=max_len))
    return Text(**kwargs)


def _id(*, strict: bool = True, **kwargs: Any) -> fields.Integer:
    # Strict in JSON bodies, where "1" is a type error; a query string only has strings.
    return fields.Integer(strict=strict, validate=validate.Range(min=1, max=INT32_MAX), **kwargs)


def normalize_phone(raw: str, country: str | None) -> str:
    """E.164, using the address country for numbers written without a country code."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException as err:
        raise ValidationError(f"'{raw}' is not a phone number") from err
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"'{raw}' is not a valid phone number" + (f" in {country}" if country else ""))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_currency(value: str) -> None:
    if not is_currency(value):
        raise ValidationError(f"'{value}' is not an ISO 4217 currency code (three capital letters, e.g. SEK)")


# --- in -------------------------------------------------------------------------------------------------


class AddressIn(Strict):
    name = _text(allow_none=True)
    company = _text(allow_none=True)
    line1 = _text(allow_none=True)
    line2 = _text(allow_none=True)
    city = _text(128, allow_none=True)
    region = _text(128, allow_none=True)
    postal_code = _text(32, allow_none=True)
    country_code = Text(required=True, metadata={"example": "SE"},
                        validate=validate.Regexp(r"^[A-Z]{2}$", error="must be two capital letters"))
    phone = _text(32, allow_none=True)

    @validates("country_code")
    def _country(self, value: str, **_: Any) -> None:
        if pycountry.countries.get(alpha_2=value) is None:
            raise ValidationError(f"'{value}' is not an ISO 3166 two-letter country code")


class CustomerIn(Strict):
    name = _text(allow_none=True)
    email = EmailText(allow_none=True, validate=validate.Length(max=320))
    phone = _text(32, allow_none=True, metadata={
        "example": "+46701234567", "description": "normalized to E.164 using the shipping address country"})
    locale = _text(16, allow_none=True, metadata={"example": "sv-SE"})


class LineItemIn(Strict):
    title = _text(500, required=True, validate=validate.Length(min=1, max=500))
    sku = _text(128, allow_none=True)
    variant_title = _text(allow_none=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000))
    unit_price = Money(required=True)
    total_discount = Money(load_default=Decimal("0"))
    requires_shipping = fields.Boolean(load_default=True)


class OrderCreate(Strict):
    shop_id = _id(required=True, metadata={"description": "a shop on the manual channel"})
    number = _text(64, validate=validate.Length(min=1, max=64), metadata={
        "description": "the shop's order number, unique in the shop; generated when left out"})
    currency = Text(required=True, metadata={"example": "SEK"})
    customer = fields.Nested(CustomerIn, load_default=dict)
    shipping_address = fields.Nested(AddressIn, allow_none=True)
    billing_address = fields.Nested(AddressIn, allow_none=True)
    line_items = fields.List(fields.Nested(LineItemIn), required=True,
                             validate=validate.Length(min=1, max=500))
    shipping_level = Text(load_default="standard", validate=validate.OneOf(SHIPPING_LEVELS))
    shipping_total = Money(load_default=Decimal("0"))
    tax_total = Money(load_default=Decimal("0"))
    discount_total = Money(load_default=Decimal("0"))
    financial_status = Text(load_default="pending", validate=validate.OneOf(FINANCIAL_STATUSES))
    note = _text(MAX_TEXT, allow_none=True)
    tags = fields.List(_text(64), load_default=list, validate=validate.Length(max=50))
    risk_level = Text(validate=validate.OneOf(RISK_LEVELS), metadata={
        "description": "fraud risk as staff or the till judged it; approval rules may send it to review"})
    placed_at = UtcDateTime(metadata={"description": "when the sale happened; now when left out"})

    @validates("currency")
    def _currency(self, value: str, **_: Any) -> None:
        _check_currency(value)

    @validates_schema
    def _amounts(self, data: dict[str, Any], **_: Any) -> None:
        # Checked here as well as in actions.create_order so that the answer names the field.
        currency = data["currency"]
        errors: dict[str, Any] = {}
        for index, item in enumerate(data["line_items"]):
            for name in ("unit_price", "total_discount"):
                problem = amount_problem(item[name], currency)
                if problem:
                    errors.setdefault("line_items", {}).setdefault(index, {})[name] = [problem]
        for name in ("shipping_total", "tax_total", "discount_total"):
            problem = amount_problem(data[name], currency)
            if problem:
                errors[name] = [problem]
        gross = sum((i["unit_price"] * i["quantity"] for i in data["line_items"]), Decimal("0"))
        if not errors and gross + data["shipping_total"] + data["tax_total"] > MAX_ORDER_TOTAL:
            errors["line_items"] = [f"the order total must be at most {MAX_ORDER_TOTAL}"]
        if errors:
            raise ValidationError(errors)

    @validates_schema
    def _phone(self, data: dict[str, Any], **_: Any) -> None:
        # The phone is normalized here (not in a post_load) so its error lands on the right field.
        customer = data.get("customer") or {}
        country = (data.get("shipping_address") or data.get("billing_address") or {}).get("country_code")
        errors: dict[str, Any] = {}
        if customer.get("phone"):
            try:
                customer["phone"] = normalize_phone(customer["phone"], country)
            except ValidationError as err:
                errors["customer"] = {"phone": err.messages}
        for kind in ("shipping_address", "billing_address"):
            address = data.get(kind) or {}
            if address.get("phone"):
                try:
                    address["phone"] = normalize_phone(address["phone"], address.get("country_code"))
                except ValidationError as err:
                    errors[kind] = {"phone": err.messages}
        if errors:
            raise ValidationError(errors)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: 0, 1, "yes" are refused (returns: `restock`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ActionIn(Strict):
    reason = _text(MAX_TEXT, metadata={"description": "required by hold and cancel"})
    text = _text(MAX_TEXT, metadata={"description": "required by note and reply (reply: sent to the customer by SMS)"})
    weight_grams = fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000), metadata={
        "description": "pack: the parcel's weight on the scale, when it differs from the SKU data"})
    # shipping helper: `ship` with the staff's pick from the quoted rates
    carrier = _text(64, metadata={"description": "ship: the carrier of the chosen rate (e.g. 'Sandbox Post')"})
    service = _text(64, metadata={"description": "ship: the service of the chosen rate (e.g. 'Standard')"})
    expected_version = fields.Integer(strict=True, validate=validate.Range(min=1, max=INT32_MAX),
                                      metadata={"description": "refuse with 409 if the order has moved on"})
    # --- returns ---
    return_id = fields.Integer(strict=True, validate=validate.Range(min=1, max=INT32_MAX),
                               metadata={"description": "return_receive and return_inspect: which return"})
    restock = StrictBoolean(metadata={"description": "return_inspect: whether the goods go back to stock; cancel: "
                                                     "false writes picked goods off instead (default true)"})
    # --- edit: what staff may correct before the goods leave ---
    shipping_address = fields.Nested(AddressIn, metadata={"description": "edit: the corrected shipping address"})
    shipping_level = Text(validate=validate.OneOf(SHIPPING_LEVELS), metadata={"description": "edit"})
    note = _text(MAX_TEXT, allow_none=True, metadata={"description": "edit: the order's note (empty clears it)"})


class OrderListArgs(Strict):
    status = fields.List(Text(validate=validate.OneOf([s.value for s in OrderStatus])),
                         metadata={"description": "repeat to match any of several"})
    channel = Text(validate=validate.OneOf(CHANNELS))
    shop_id = _id(strict=False)
    placed_from = UtcDateTime(metadata={"description": "placed at or after (a date means midnight UTC)"})
    placed_to = UtcDateTime(metadata={"description": "placed before (a date means midnight UTC)"})
    q = _text(200, metadata={"description": "search number, customer name, email, phone and SKU"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor(validate=validate.Length(max=200),
                    metadata={"description": "the `next_cursor` of the previous page"})


# --- out ------------------------------------------------------------------------------------------------
# allow_none marks nullable columns, so the OpenAPI document says `nullable` where a null can come out.


def in_currency(amount: str | None, currency: str | None) -> str | None:
    """PostgreSQL returns numeric(20, 6) as "447.000000": show the currency's own decimals ("447.00")."""
    if amount is None or currency is None:
        return amount
    value = Decimal(amount)
    exact = value.quantize(Decimal(1).scaleb(-minor_units(currency)))
    return format(exact, "f") if exact == value else amount  # never round: an odd value is shown as stored


class AddressOut(ma.Schema):
    name = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    line1 = fields.String(allow_none=True)
    line2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    country_code = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class LineItemOut(ma.Schema):
    id = fields.Integer()
    sku = fields.String(allow_none=True)
    title = fields.String()
    variant_title = fields.String(allow_none=True)
    quantity = fields.Integer()
    unit_price = Money()
    total_discount = Money()
    requires_shipping = fields.Boolean()
    fulfilled_quantity = fields.Integer()
    refunded_quantity = fields.Integer()


class ShipmentOut(ma.Schema):
    id = fields.Integer()
    status = fields.String()
    carrier = fields.String(allow_none=True)
    service = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    tracking_url = fields.String(allow_none=True)
    cost = Money(allow_none=True)
    cost_currency = fields.String(allow_none=True)
    created_at = fields.DateTime()
    shipped_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    # --- tracking ---
    tracking_status = fields.String(allow_none=True)
    last_scan_at = fields.DateTime(allow_none=True)
    expected_delivery = fields.DateTime(allow_none=True)

    @post_dump
    def _in_currency(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["cost"] = in_currency(data.get("cost"), data.get("cost_currency"))
        return data


class ReturnOut(ma.Schema):
    id = fields.Integer()
    rma = fields.String()
    status = fields.String()
    reason = fields.String(allow_none=True)
    refund_amount = Money(allow_none=True)
    created_at = fields.DateTime()
    # --- returns ---
    items = fields.List(fields.Dict(), metadata={"description": "line_item_id, sku, quantity, reason"})
    carrier = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    tracking_url = fields.String(allow_none=True)
    label_url = fields.String(allow_none=True)
    tracking_status = fields.String(allow_none=True)
    received_at = fields.DateTime(allow_none=True)
    inspected_at = fields.DateTime(allow_none=True)
    restocked = fields.Boolean(allow_none=True)
    refund_external_id = fields.String(allow_none=True)
    refunded_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)


class ActorOut(ma.Schema):
    kind = fields.String(attribute="actor_kind",
                         metadata={"description": "system, staff, customer or channel"})
    id = fields.String(attribute="actor_id", allow_none=True)
    name = fields.String(attribute="actor_name", allow_none=True)


class EventOut(ma.Schema):
    id = fields.Integer()
    type = fields.String()
    message = fields.String()
    data = fields.Dict()
    created_at = fields.DateTime()
    actor = DerivedNested(ActorOut, getter=lambda event: event, metadata={"description": "who did it"})


class CustomerOut(ma.Schema):
    name = fields.String(attribute="customer_name", allow_none=True)
    email = fields.String(attribute="customer_email", allow_none=True)
    phone = fields.String(attribute="customer_phone", allow_none=True)
    locale = fields.String(attribute="customer_locale", allow_none=True)


_ORDER_AMOUNTS = ("total", "subtotal", "shipping_total", "tax_total", "discount_total", "refunded_total")


class OrderSummary(ma.Schema):
    id = fields.Integer()
    shop_id = fields.Integer()
    channel = fields.String()
    number = fields.String()
    status = fields.String()
    version = fields.Integer()
    financial_status = fields.String()
    currency = fields.String()
    total = Money()
    customer = DerivedNested(CustomerOut, getter=lambda order: order)
    shipping_level = fields.String()
    placed_at = fields.DateTime()
    updated_at = fields.DateTime()

    @post_dump(pass_original=True)
    def _in_currency(self, data: dict[str, Any], order: Any, **_: Any) -> dict[str, Any]:
        for key in _ORDER_AMOUNTS:
            if key in data:
                data[key] = in_currency(data[key], order.currency)
        for item in data.get("line_items", ()):
            item["unit_price"] = in_currency(item["unit_price"], order.currency)
            item["total_discount"] = in_currency(item["total_discount"], order.currency)
        for returned in data.get("returns", ()):
            returned["refund_amount"] = in_currency(returned["refund_amount"], order.currency)
        return data


class OrderOut(OrderSummary):
    external_id = fields.String()
    fulfillment_status = fields.String()
    subtotal = Money()
    shipping_total = Money()
    tax_total = Money()
    discount_total = Money()
    refunded_total = Money()
    hold_reason = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    risk_level = fields.String(allow_none=True)
    review_reasons = fields.List(fields.Dict(keys=fields.String(), values=fields.String()), metadata={
        "description": "why triage sent the order to a person: [{rule, message}], see the approval rules"})
    packed_weight_grams = fields.Integer(allow_none=True, metadata={
        "description": "the weight the packer typed at the pack step, when it differed"})
    created_at = fields.DateTime()
    shipping_address = DerivedNested(AddressOut, allow_none=True, getter=lambda o: o.address("shipping"))
    billing_address = DerivedNested(AddressOut, allow_none=True, getter=lambda o: o.address("billing"))
    line_items = fields.List(fields.Nested(LineItemOut))
    shipments = fields.List(fields.Nested(ShipmentOut))
    returns = fields.List(fields.Nested(ReturnOut))
    timeline = fields.List(fields.Nested(EventOut), attribute="events")


class OrderPage(ma.Schema):
    data = fields.List(fields.Nested(OrderSummary))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as `cursor` for the next page; null on the last page"})


class ShopIn(Strict):
    channel = Text(required=True, validate=validate.OneOf(CHANNELS))
    name = _text(200, required=True, validate=validate.Length(min=1, max=200))
    external_id = _text(255, required=True, validate=validate.Length(min=1, max=255),
                        metadata={"description": "myshopify domain, store URL or store hash"})
    currency = Text(load_default="USD")
    timezone = _text(64, load_default="UTC")
    locale = _text(16, load_default="en")
    settings = JsonObject(keys=fields.String(), load_default=dict)
    credentials = fields.Dict(keys=Text(), values=Text(), load_only=True,
                              metadata={"description": "write-only; stored encrypted"})
    webhook_secret = Text(load_only=True, validate=validate.Length(min=8, max=500),
                          metadata={"description": "write-only; stored encrypted"})

    @validates("currency")
    def _currency(self, value: str, **_: Any) -> None:
        _check_currency(value)

    @validates("timezone")
    def _timezone(self, value: str, **_: Any) -> None:
        if value not in _timezones():
            raise ValidationError(f"'{value}' is not an IANA time zone")

    @validates("settings")
    def _settings(self, value: dict[str, Any], **_: Any) -> None:
        try:
            ApprovalRules.from_settings(value)
        except ValueError as err:
            raise ValidationError(str(err)) from None


@functools.cache  # reading the tz database on every request would be slow for nothing
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


class ShopPatch(ShopIn):
    class Meta:
        unknown = ma.RAISE
        exclude = ("channel", "external_id")

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = False
        field_obj.load_default = ma.missing


class ShopOut(ma.Schema):
    id = fields.Integer()
    channel = fields.String()
    name = fields.String()
    external_id = fields.String()
    currency = fields.String()
    timezone = fields.String()
    locale = fields.String()
    settings = fields.Dict()
    active = fields.Boolean()
    has_credentials = DerivedBool(getter=lambda shop: shop.credentials_encrypted is not None)
    has_webhook_secret = DerivedBool(getter=lambda shop: shop.webhook_secret_encrypted is not None)
    created_at = fields.DateTime()


class JobOut(ma.Schema):
    id = fields.Integer()
    job = fields.String()
    payload = fields.Dict()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class JobListArgs(Strict):
    status = Text(load_default="failed", validate=validate.OneOf(["pending", "failed", "done"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
