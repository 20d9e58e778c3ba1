"""Shippo webhooks: the URL token (good, wrong, missing) and track_updated → updates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from integrations.carriers import carrier
from integrations.carriers.base import (
    TrackingStatus,
    UnsupportedEventError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from integrations.carriers.shippo.fake import FakeShippo
from integrations.carriers.shippo.webhooks import parse_webhook, verify_webhook
from tests.integrations.carriers.shippo.conftest import WEBHOOK_TOKEN, load, raw

BODY = raw("track_updated.json")


def test_the_right_token_passes() -> None:
    verify_webhook({}, BODY, [WEBHOOK_TOKEN], {"token": WEBHOOK_TOKEN})
    carrier("shippo").verify_webhook({}, BODY, ["old-token", WEBHOOK_TOKEN], {"token": WEBHOOK_TOKEN})


@pytest.mark.parametrize(("query", "secrets", "message"), [
    ({"token": "guess"}, [WEBHOOK_TOKEN], "matches no webhook token"),
    ({"token": WEBHOOK_TOKEN[:-1]}, [WEBHOOK_TOKEN], "matches no webhook token"),
    ({"token": ""}, [WEBHOOK_TOKEN], "missing"),
    ({}, [WEBHOOK_TOKEN], "missing"),
    ({"token": WEBHOOK_TOKEN}, [], "no Shippo webhook token"),
    ({"token": ""}, [""], "no Shippo webhook token"),
], ids=["wrong", "truncated", "empty", "missing", "no-secret", "blank-secret"])
def test_a_wrong_or_missing_token_is_refused(query: dict[str, str], secrets: list[str], message: str) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook({}, BODY, secrets, query)


def test_a_token_in_a_header_is_not_the_url_token() -> None:
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({"token": WEBHOOK_TOKEN}, BODY, [WEBHOOK_TOKEN], {})


def test_track_updated_becomes_updates() -> None:
    (update,) = parse_webhook(json.loads(BODY))
    assert (update.tracking_number, update.status) == ("9205590164917312751089", TrackingStatus.DELIVERED)


@pytest.mark.parametrize("event", ["transaction_created", "transaction_updated", "batch_created",
                                   "batch_purchased"])
def test_label_and_batch_news_is_ignored(event: str) -> None:
    assert parse_webhook({"event": event, "test": True, "data": {}}) == []


def test_unknown_events_and_bodies_that_are_not_webhooks_are_refused() -> None:
    with pytest.raises(UnsupportedEventError, match="refund_updated"):
        parse_webhook({"event": "refund_updated", "data": {}})
    with pytest.raises(WebhookPayloadError, match="not a Track"):
        parse_webhook({"event": "track_updated", "data": {"carrier": "usps"}})
    for body in ([], {"data": load("track_updated.json")["data"]}, None):
        with pytest.raises(WebhookPayloadError, match="no 'event'"):
            parse_webhook(body)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        self.received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    server = HTTPServer(("127.0.0.1", 0), type("Handler", (_Receiver,), {"received": received}))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/carriers/shippo", received
    server.shutdown()
    server.server_close()


def test_the_fake_sends_track_updated_to_the_tokened_url(fake: FakeShippo,
                                                         receiver: tuple[str, list[tuple[str, bytes]]]) -> None:
    fake.advance_track("usps", "9205590164917312751089", "TRANSIT", "Out for delivery", substatus="out_for_delivery",
                       city="Las Vegas", state="NV", zip="89101")
    url, received = receiver
    assert fake.send_track_updated(url, WEBHOOK_TOKEN, "usps", "9205590164917312751089").status_code == 200
    ((path, body),) = received
    query = {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}
    verify_webhook({}, body, [WEBHOOK_TOKEN], query)
    (update,) = parse_webhook(json.loads(body))
    assert update.status is TrackingStatus.OUT_FOR_DELIVERY and update.location == "Las Vegas, NV 89101, US"
