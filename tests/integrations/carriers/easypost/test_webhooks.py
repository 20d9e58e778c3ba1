"""EasyPost webhooks: the official signing vector, every way a signature fails, and Event → updates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from easypost.util import validate_webhook

from integrations.carriers import carrier
from integrations.carriers.base import (
    TrackingStatus,
    UnsupportedEventError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from integrations.carriers.easypost.fake import FakeEasyPost, build_event, signed_headers
from integrations.carriers.easypost.webhooks import parse_webhook, signature, verify_webhook
from tests.integrations.carriers.conftest import shipment
from tests.integrations.carriers.easypost.conftest import VECTOR_SECRET, VECTOR_SIGNATURE, load, raw

BODY = raw("tracker_updated.json")


def test_the_official_vector_signs_to_the_documented_value() -> None:
    assert signature(BODY, VECTOR_SECRET) == VECTOR_SIGNATURE


def test_our_signature_is_what_the_sdk_validates() -> None:
    event = validate_webhook(BODY, {"X-Hmac-Signature": signature(BODY, VECTOR_SECRET)}, VECTOR_SECRET)
    assert event["id"] == "evt_1"


def test_the_secret_is_nfkd_normalised_before_signing() -> None:
    decomposed = "se\u0301cret"  # the same "sécret" written as e + combining acute accent
    assert signature(BODY, decomposed) == VECTOR_SIGNATURE
    verify_webhook({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, [decomposed])


def test_a_good_signature_passes_whatever_the_header_case() -> None:
    verify_webhook({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, [VECTOR_SECRET])
    verify_webhook({"x-hmac-signature": VECTOR_SIGNATURE}, BODY, [VECTOR_SECRET])
    carrier("easypost").verify_webhook({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, [VECTOR_SECRET], {})


def test_any_secret_of_a_rotation_is_accepted() -> None:
    verify_webhook({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, ["the-new-secret", VECTOR_SECRET])


@pytest.mark.parametrize(("headers", "body", "secrets", "message"), [
    ({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, ["another secret"], "does not match"),
    ({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY.replace(b'"in_transit"', b'"delivered"', 1), [VECTOR_SECRET],
     "does not match"),
    ({"X-Hmac-Signature": VECTOR_SIGNATURE.removeprefix("hmac-sha256-hex=")}, BODY, [VECTOR_SECRET],
     "does not match"),
    ({"X-Hmac-Signature": ""}, BODY, [VECTOR_SECRET], "missing"),
    ({}, BODY, [VECTOR_SECRET], "missing"),
    ({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, [], "no EasyPost webhook secret"),
    ({"X-Hmac-Signature": VECTOR_SIGNATURE}, BODY, [""], "no EasyPost webhook secret"),
], ids=["wrong-secret", "body-changed", "no-prefix", "empty", "missing", "no-secret", "blank-secret"])
def test_bad_or_missing_signatures_are_refused(headers: dict[str, str], body: bytes, secrets: list[str],
                                              message: str) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(headers, body, secrets)


def test_tracker_updated_becomes_the_trackers_whole_history() -> None:
    updates = parse_webhook(json.loads(BODY))
    assert len(updates) == 7
    first, last = updates[0], updates[-1]
    assert (first.tracking_number, first.status, first.detail, first.occurred_at, first.location,
            first.raw_status) == ("1", TrackingStatus.PRE_TRANSIT, "Shipment information sent to FedEx",
                                  datetime(2024, 7, 31, 15, 0, tzinfo=UTC), "32837, US", "pre_transit")
    assert (last.status, last.detail, last.occurred_at, last.location) == (
        TrackingStatus.IN_TRANSIT, "Arrived at FedEx location", datetime(2024, 8, 2, 18, 50, tzinfo=UTC),
        "EDISON, NJ 08817, US")
    assert {u.estimated_delivery for u in updates} == {datetime(2024, 8, 5, tzinfo=UTC)}
    assert [u.occurred_at for u in updates] == sorted(u.occurred_at for u in updates)


def test_an_event_without_a_tracker_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match="not a Tracker"):
        parse_webhook(load("api_event_retrieve_response.json"))  # tracker.created, no `result`


@pytest.mark.parametrize("description", ["batch.updated", "refund.successful", "scan_form.created",
                                         "shipment.invoice.created", "insurance.purchased", "report.available"])
def test_account_news_is_ignored(description: str) -> None:
    assert parse_webhook({"object": "Event", "description": description, "result": {}}) == []


def test_an_unknown_event_or_a_body_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(UnsupportedEventError, match="tracker.teleported"):
        parse_webhook({"object": "Event", "description": "tracker.teleported"})
    for body in ([], {"description": "tracker.updated"}, "Event"):
        with pytest.raises(WebhookPayloadError, match="not an EasyPost Event"):
            parse_webhook(body)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/carriers/easypost", received
    server.shutdown()
    server.server_close()


def test_the_fake_sends_a_signed_tracker_updated_our_receiver_accepts(
        fake: FakeEasyPost, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    from integrations.carriers.easypost.client import EasyPostCarrier
    from tests.integrations.carriers.easypost.conftest import API_KEY

    client = EasyPostCarrier(API_KEY, api_base=fake.url)
    request = shipment("ord-2002-p1")
    label = client.buy_label(request, client.rates(request)[0])
    fake.advance_tracker(label.tracking_number, "in_transit", "Arrived at facility", city="ORLANDO", state="FL",
                         zip="32809")
    url, received = receiver
    assert fake.send_tracker_updated(url, "hook-secret", label.tracking_number,
                                     previous_status="pre_transit").status_code == 200
    ((headers, body),) = received
    verify_webhook(headers, body, ["hook-secret"])
    updates = parse_webhook(json.loads(body))
    assert [u.status for u in updates] == [TrackingStatus.PRE_TRANSIT, TrackingStatus.IN_TRANSIT]
    assert updates[-1].location == "ORLANDO, FL 32809, US"
    assert json.loads(body)["previous_attributes"] == {"status": "pre_transit"}


def test_build_event_and_signed_headers_match_the_sdk() -> None:
    body = build_event(load("api_tracker_create_response.json"))
    headers = signed_headers(body, "hook-secret")
    assert validate_webhook(body, headers, "hook-secret")["description"] == "tracker.updated"
