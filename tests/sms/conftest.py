"""SMS tests: the real twilio client against the fake Messages API on loopback, Twilio's webhooks signed with
Twilio's algorithm over the public URL (PUBLIC_BASE_URL differs from the test client's host, as behind a proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import Order, OrderEvent, Shipment, Shop, SmsMessage
from app.orders import actions
from app.orders.types import Actor
from app.store import utcnow
from integrations.twilio.fake import FakeTwilio, inbound_params, signed
from jobs import relay
from tests.conftest import order_payload
from tests.test_outbox import scheduler_tick

PUBLIC = "https://orders.example.com"
FROM_NUMBER = "+15017122661"
MARIA = "+46701234567"  # "070-123 45 67" in Sweden
SAM = "+14158675309"
# 19:00 in Stockholm, 13:00 in New York, 10:00 in San Francisco: outside quiet hours for all test customers.
DAYTIME_UTC = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_twilio: FakeTwilio) -> Settings:
    return settings.with_overrides(twilio_account_sid=fake_twilio.account_sid,
                                   twilio_auth_token=fake_twilio.auth_token, twilio_from_number=FROM_NUMBER,
                                   twilio_api_base_url=fake_twilio.url, public_base_url=PUBLIC,
                                   sms_pace_per_second=0)


@pytest.fixture(autouse=True)
def daytime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unless a test says otherwise, jobs see DAYTIME_UTC."""
    monkeypatch.setattr("jobs.sms.now", lambda: DAYTIME_UTC)


@pytest.fixture
def shop(runtime: Any) -> int:
    with runtime.db.session() as session:
        row = Shop(channel="manual", name="Nordic Tees", external_id="phone", currency="SEK",
                   timezone="Europe/Stockholm", locale="en", settings={})
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def drain(runtime: Any, run_jobs: Any) -> Any:
    """Run jobs until none is left that is due: RQ's scheduler moves due retries, the sweeper due outbox rows."""

    def run() -> None:
        for _ in range(10):
            scheduler_tick(runtime)
            relay.sweep(runtime)
            if not run_jobs():
                return

    return run


def new_order(client: Any, auth: Any, shop_id: int, *, phone: str = "070-123 45 67", country: str = "SE",
              locale: str | None = None) -> int:
    payload = order_payload(shop_id)
    payload["customer"] = {"name": "Maria", "email": "maria@example.se", "phone": phone}
    if locale:
        payload["customer"]["locale"] = locale
    payload["shipping_address"] = {**payload["shipping_address"], "country_code": country}
    response = client.post("/api/v1/orders", json=payload, headers=auth("operator"))
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def ship(runtime: Any, order_id: int, *, tracking: str = "00370712345678901234", event: str = "order.shipped",
         shipment_id: int | None = None) -> int:
    """Record what the shipping helper records when a parcel leaves (a Shipment row and its timeline entry)."""
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        if shipment_id is None:
            shipment = Shipment(order_id=order_id, status="purchased", provider="sandbox", carrier="PostNord",
                                service="MyPack", tracking_number=tracking, shipped_at=utcnow(),
                                tracking_url=f"https://tracking.postnord.com/se/?id={tracking}")
            session.add(shipment)
            session.flush()
            shipment_id = shipment.id
        order.status = "shipped"
        actions.record_event(session, order, Actor.system(), event, "Shipped", shipment_id=shipment_id)
    return shipment_id


def track(runtime: Any, order_id: int, shipment_id: int, status: str, description: str = "") -> None:
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        actions.record_event(session, order, Actor.system(), "shipment.tracking", f"Tracking: {status}",
                             shipment_id=shipment_id, status=status, description=description,
                             occurred_at=DAYTIME_UTC.isoformat())


def text_in(client: Any, fake: FakeTwilio, body: str, *, from_: str = MARIA, **extra: Any) -> Any:
    """A customer's text, POSTed to /sms/inbound exactly as Twilio signs it."""
    params = inbound_params(from_=from_, to=FROM_NUMBER, body=body, account_sid=fake.account_sid, **extra)
    return client.post("/sms/inbound", data=params,
                       headers=signed(fake.auth_token, PUBLIC + "/sms/inbound", params))


def messages(runtime: Any, **where: Any) -> list[SmsMessage]:
    with runtime.db.session() as session:
        query = select(SmsMessage).order_by(SmsMessage.id)
        for name, value in where.items():
            query = query.where(getattr(SmsMessage, name) == value)
        return list(session.execute(query).scalars())


def timeline(runtime: Any, order_id: int) -> list[OrderEvent]:
    with runtime.db.session() as session:
        return list(session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id)
                                    .order_by(OrderEvent.id)).scalars())
