"""Marshmallow schemas for the REST API: what comes in is validated here, what goes out is shaped here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
import phonenumbers
import pycountry
from marshmallow import ValidationError, fields, validate, validates, validates_schema

from app.money import is_currency
from app.orders.statuses import OrderStatus

SHIPPING_LEVELS = ("economy", "standard", "express", "overnight", "pickup")
FINANCIAL_STATUSES = ("pending", "authorized", "paid", "partially_paid", "partially_refunded", "refunded", "voided")
CHANNELS = ("shopify", "woocommerce", "bigcommerce", "manual")
MAX_TEXT = 2000


class Strict(ma.Schema):
    """Unknown fields are refused, so a typo is an error instead of silently ignored data."""

    class Meta:
        unknown = ma.RAISE


def _money(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, allow_nan=False, validate=validate.Range(min=Decimal("0")),
                          metadata={"example": "19.90", "description": "exact decimal, as a string"}, **kwargs)


def _text(max_len: int = 255, **kwargs: Any) -> fields.String:
    kwargs.setdefault("validate", validate.Length(max=max_len))
    return fields.String(**kwargs)


def normalize_phone(raw: str, country: str | None) -> str:
    """E.164, using the address country for numbers written without a country code."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException as err:
        raise ValidationError(f"'{raw}' is not a phone number") from err
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"'{raw}' is not a valid phone number" + (f" in {country}" if country else ""))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class AddressIn(Strict):
    name = _text(allow_none=True)
    company = _text(allow_none=True)
    line1 = _text(allow_none=True)
    line2 = _text(allow_none=True)
    city = _text(128, allow_none=True)
    region = _text(128, allow_none=True)
    postal_code = _text(32, allow_none=True)
    country_code = fields.String(required=True, metadata={"example": "SE"})
    phone = _text(32, allow_none=True)

    @validates("country_code")
    def _country(self, value: str, **_: Any) -> None:
        if pycountry.countries.get(alpha_2=value) is None or value != value.upper():
            raise ValidationError(f"'{value}' is not an ISO 3166 two-letter country code")


class CustomerIn(Strict):
    name = _text(allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    phone = _text(32, allow_none=True, metadata={"example": "+46701234567"})
    locale = _text(16, allow_none=True, metadata={"example": "sv-SE"})


class LineItemIn(Strict):
    title = _text(500, required=True, validate=validate.Length(min=1, max=500))
    sku = _text(128, allow_none=True)
    variant_title = _text(allow_none=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000))
    unit_price = _money(required=True)
    total_discount = _money(load_default=Decimal("0"))
    requires_shipping = fields.Boolean(load_default=True)


class OrderCreate(Strict):
    shop_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    number = _text(64, validate=validate.Length(min=1, max=64),
                   metadata={"description": "the shop's order number; generated when left out"})
    currency = fields.String(required=True, metadata={"example": "SEK"})
    customer = fields.Nested(CustomerIn, load_default=dict)
    shipping_address = fields.Nested(AddressIn, allow_none=True)
    billing_address = fields.Nested(AddressIn, allow_none=True)
    line_items = fields.List(fields.Nested(LineItemIn), required=True, validate=validate.Length(min=1, max=500))
    shipping_level = fields.String(load_default="standard", validate=validate.OneOf(SHIPPING_LEVELS))
    shipping_total = _money(load_default=Decimal("0"))
    tax_total = _money(load_default=Decimal("0"))
    discount_total = _money(load_default=Decimal("0"))
    financial_status = fields.String(load_default="pending", validate=validate.OneOf(FINANCIAL_STATUSES))
    note = _text(MAX_TEXT, allow_none=True)
    tags = fields.List(_text(64), load_default=list, validate=validate.Length(max=50))
    placed_at = fields.AwareDateTime(metadata={"description": "when the sale happened; now when left out"})

    @validates("currency")
    def _currency(self, value: str, **_: Any) -> None:
        if not is_currency(value):
            raise ValidationError(f"'{value}' is not an ISO 4217 currency code")

    @validates_schema
    def _phone(self, data: dict[str, Any], **_: Any) -> None:
        # The phone is normalized here (not in a post_load) so its error lands on the right field.
        customer = data.get("customer") or {}
        shipping = data.get("shipping_address") or {}
        country = shipping.get("country_code")
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


class ActionIn(Strict):
    reason = _text(MAX_TEXT, metadata={"description": "required by hold and cancel"})
    text = _text(MAX_TEXT, metadata={"description": "required by note"})
    expected_version = fields.Integer(strict=True, validate=validate.Range(min=1),
                                      metadata={"description": "refuse with 409 if the order has moved on"})


class OrderListArgs(Strict):
    status = fields.List(fields.String(validate=validate.OneOf([s.value for s in OrderStatus])))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    shop_id = fields.Integer(validate=validate.Range(min=1))
    placed_from = fields.AwareDateTime()
    placed_to = fields.AwareDateTime()
    q = _text(200, metadata={"description": "search number, customer name, email, phone and SKU"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = _text(200)


# --- out ------------------------------------------------------------------------------------------------


class AddressOut(ma.Schema):
    name = fields.String()
    company = fields.String()
    line1 = fields.String()
    line2 = fields.String()
    city = fields.String()
    region = fields.String()
    postal_code = fields.String()
    country_code = fields.String()
    phone = fields.String()


class LineItemOut(ma.Schema):
    id = fields.Integer()
    sku = fields.String()
    title = fields.String()
    variant_title = fields.String()
    quantity = fields.Integer()
    unit_price = fields.Decimal(as_string=True)
    total_discount = fields.Decimal(as_string=True)
    requires_shipping = fields.Boolean()
    fulfilled_quantity = fields.Integer()
    refunded_quantity = fields.Integer()


class ShipmentOut(ma.Schema):
    id = fields.Integer()
    status = fields.String()
    carrier = fields.String()
    service = fields.String()
    tracking_number = fields.String()
    tracking_url = fields.String()
    cost = fields.Decimal(as_string=True)
    cost_currency = fields.String()
    created_at = fields.DateTime()
    shipped_at = fields.DateTime()
    delivered_at = fields.DateTime()


class ReturnOut(ma.Schema):
    id = fields.Integer()
    rma = fields.String()
    status = fields.String()
    reason = fields.String()
    refund_amount = fields.Decimal(as_string=True)
    created_at = fields.DateTime()


class EventOut(ma.Schema):
    id = fields.Integer()
    type = fields.String()
    message = fields.String()
    data = fields.Dict()
    created_at = fields.DateTime()
    actor = fields.Method("_actor", metadata={"description": "who: kind (system, staff, customer, channel), id, name"})

    def _actor(self, event: Any) -> dict[str, Any]:
        return {"kind": event.actor_kind, "id": event.actor_id, "name": event.actor_name}


class CustomerOut(ma.Schema):
    name = fields.String(attribute="customer_name")
    email = fields.String(attribute="customer_email")
    phone = fields.String(attribute="customer_phone")
    locale = fields.String(attribute="customer_locale")


class OrderSummary(ma.Schema):
    id = fields.Integer()
    shop_id = fields.Integer()
    channel = fields.String()
    number = fields.String()
    status = fields.String()
    version = fields.Integer()
    financial_status = fields.String()
    currency = fields.String()
    total = fields.Decimal(as_string=True)
    customer = fields.Function(lambda o: CustomerOut().dump(o))
    shipping_level = fields.String()
    placed_at = fields.DateTime()
    updated_at = fields.DateTime()


class OrderOut(OrderSummary):
    external_id = fields.String()
    fulfillment_status = fields.String()
    subtotal = fields.Decimal(as_string=True)
    shipping_total = fields.Decimal(as_string=True)
    tax_total = fields.Decimal(as_string=True)
    discount_total = fields.Decimal(as_string=True)
    refunded_total = fields.Decimal(as_string=True)
    hold_reason = fields.String()
    cancel_reason = fields.String()
    note = fields.String()
    tags = fields.List(fields.String())
    risk_level = fields.String()
    created_at = fields.DateTime()
    shipping_address = fields.Function(lambda o: AddressOut().dump(o.address("shipping")) if o.address("shipping")
                                       else None)
    billing_address = fields.Function(lambda o: AddressOut().dump(o.address("billing")) if o.address("billing")
                                      else None)
    line_items = fields.List(fields.Nested(LineItemOut))
    shipments = fields.List(fields.Nested(ShipmentOut))
    returns = fields.List(fields.Nested(ReturnOut))
    timeline = fields.List(fields.Nested(EventOut), attribute="events")


class OrderPage(ma.Schema):
    data = fields.List(fields.Nested(OrderSummary))
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as `cursor` for the next page"})


class ShopIn(Strict):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    name = _text(200, required=True, validate=validate.Length(min=1, max=200))
    external_id = _text(255, required=True, validate=validate.Length(min=1, max=255),
                        metadata={"description": "myshopify domain, store URL or store hash"})
    currency = fields.String(load_default="USD")
    timezone = _text(64, load_default="UTC")
    locale = _text(16, load_default="en")
    settings = fields.Dict(keys=fields.String(), load_default=dict)
    credentials = fields.Dict(keys=fields.String(), values=fields.String(), load_only=True,
                              metadata={"description": "write-only; stored encrypted"})
    webhook_secret = fields.String(load_only=True, validate=validate.Length(min=8, max=500),
                                   metadata={"description": "write-only; stored encrypted"})

    @validates("currency")
    def _currency(self, value: str, **_: Any) -> None:
        if not is_currency(value):
            raise ValidationError(f"'{value}' is not an ISO 4217 currency code")

    @validates("timezone")
    def _timezone(self, value: str, **_: Any) -> None:
        from zoneinfo import available_timezones

        if value not in available_timezones() and value != "UTC":
            raise ValidationError(f"'{value}' is not an IANA time zone")


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
    has_credentials = fields.Function(lambda s: s.credentials_encrypted is not None)
    has_webhook_secret = fields.Function(lambda s: s.webhook_secret_encrypted is not None)
    created_at = fields.DateTime()


class JobOut(ma.Schema):
    id = fields.Integer()
    job = fields.String()
    payload = fields.Dict()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String()
    request_id = fields.String()
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime()
    finished_at = fields.DateTime()


class JobListArgs(Strict):
    status = fields.String(load_default="failed", validate=validate.OneOf(["pending", "failed", "done"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
