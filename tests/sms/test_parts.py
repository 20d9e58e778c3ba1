"""The pieces: texts per language, segment counting, E.164, quiet hours, Twilio's signature and wire shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from app.sms import intents, phones, quiet, segments, texts
from integrations.twilio.client import TwilioSms
from integrations.twilio.fake import FakeTwilio
from integrations.twilio.signature import sign, verify

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_language_has_every_text_with_the_same_placeholders():
    english = texts.LANGUAGES["en"]
    for code, table in texts.LANGUAGES.items():
        assert set(table) == set(english), code
        for key, template in table.items():
            assert texts.placeholders(template) == texts.placeholders(english[key]), (code, key)


def test_language_choice():
    assert texts.choose(customer_locale="sv-SE", country="US", shop_locale="en") == "sv"
    assert texts.choose(customer_locale=None, country="SE", shop_locale="en") == "sv"
    assert texts.choose(customer_locale="de-DE", country="US", shop_locale="en") == "en"
    assert texts.choose(customer_locale=None, country="DE", shop_locale="sv") == "sv"


@pytest.mark.parametrize("language", sorted(texts.LANGUAGES))
def test_milestones_fit_two_segments_with_a_long_tracking_link(language):
    values = {"shop": "Nordic Tees", "number": "100123", "carrier": "PostNord", "amount": "SEK 1249.00",
              "tracking_url": "https://tracking.postnord.com/se/?id=00370712345678901234",
              "label_url": "https://labels.example.com/returns/RMA-100123.pdf", "description": "address not found"}
    for key in ("confirmed", "backordered", "shipped", "out_for_delivery", "delivered", "exception", "return_label",
                "refunded"):
        counted = segments.count(texts.render(language, key, **values))
        assert counted.encoding == "GSM-7" and counted.count <= 2, (language, key, counted)


def test_segments_gsm7_and_ucs2():
    assert segments.count("a" * 160) == segments.Segments("GSM-7", 160, 1)
    assert segments.count("a" * 161).count == 2
    assert segments.count("a" * 306).count == 2 and segments.count("a" * 307).count == 3
    assert segments.count("Din beställning är på väg").encoding == "GSM-7"
    assert segments.count("€" * 80) == segments.Segments("GSM-7", 160, 1)  # two septets each
    assert segments.count("😀" * 35) == segments.Segments("UCS-2", 70, 1)  # two UTF-16 units each
    assert segments.count("😀" * 36).count == 2
    assert segments.count("").count == 0
    assert len(segments.fit("x" * 5000)) == 1600


def test_phone_numbers():
    assert phones.normalize("070-123 45 67", "SE") == "+46701234567"
    assert phones.normalize("+46 70 123 45 67", "US") == "+46701234567"
    assert phones.normalize("(415) 867-5309", "US") == "+14158675309"
    assert phones.normalize("12", "SE") is None and phones.normalize("", "SE") is None
    assert phones.normalize("call me", None) is None
    assert phones.redact("+46701234567") == "+46*******67"


def test_quiet_hours_in_the_customers_zone():
    window = quiet.parse_window("21:00-08:00")
    stockholm = quiet.zone_for(country="SE", phone=None, shop_timezone="America/New_York")
    assert stockholm == ZoneInfo("Europe/Stockholm")
    assert quiet.next_allowed(datetime(2026, 11, 26, 22, 0, tzinfo=UTC), stockholm, window) == \
        datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert quiet.next_allowed(datetime(2026, 11, 27, 5, 0, tzinfo=UTC), stockholm, window) == \
        datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert quiet.next_allowed(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), stockholm, window) is None
    # The night the clocks go back (25 Oct 2026): still 08:00 local, now UTC+1.
    assert quiet.next_allowed(datetime(2026, 10, 24, 21, 0, tzinfo=UTC), stockholm, window) == \
        datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    # Several zones: the phone's area code picks one inside the country.
    assert quiet.zone_for(country="US", phone="+14158675309", shop_timezone="Europe/Stockholm") == \
        ZoneInfo("America/Los_Angeles")


def test_intents():
    assert intents.understand("  stop. ").intent == "opt_out"
    assert intents.understand("Where is my order #1009?") == intents.Understood("status", "1009", "en")
    assert intents.understand("var är mitt paket?").language == "sv"
    assert intents.understand("Please cancel my order").intent == "cancel"
    assert intents.understand("cancel").intent == "opt_out"  # Twilio's opt-out word on its own
    assert intents.understand("", num_media=1).intent == "media"


def test_signature_matches_twilios_own_vector():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert verify("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert verify("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify("12345", url, {**params, "Digits": "1235"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify("", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_fake_speaks_twilios_shapes():
    fixture = json.loads((FIXTURES / "api_message_create_response_201.json").read_text())
    error = json.loads((FIXTURES / "api_error_21610_400.json").read_text())
    with FakeTwilio() as fake:
        client = TwilioSms(fake.account_sid, fake.auth_token, base_url=fake.url, timeout=5)
        client.send(to="+46701234567", body="Hello! 👍", status_callback="https://x.test/sms/status",
                    from_="+15017122661")
        created = fake.all_sent()[0]
        assert set(fixture) - {"tags"} <= set(created)  # `tags` is a newer, optional field
        fake.opt_out("+46709999999")
        post = fake.answer("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
                           {"Authorization": _basic(fake)},
                           b"To=%2B46709999999&From=%2B15017122661&Body=x")
        assert post[0] == 400 and post[2] == error


def _basic(fake: FakeTwilio) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()


@pytest.mark.parametrize("name", ["inbound_sms.txt", "inbound_sms_stop.txt"])
def test_twilios_inbound_fixtures_are_answered_with_twiml(client, fake_twilio, name):
    body = (FIXTURES / name).read_bytes()
    params = parse_qsl(body.decode(), keep_blank_values=True)
    headers = {"X-Twilio-Signature": sign(fake_twilio.auth_token, "https://orders.example.com/sms/inbound", params),
               "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/sms/inbound", data=body, headers=headers)
    assert response.status_code == 200 and response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


@pytest.mark.parametrize("name", ["status_callback_sent.txt", "status_callback_delivered.txt",
                                  "status_callback_undelivered_30003.txt"])
def test_twilios_status_fixtures_are_accepted(client, fake_twilio, name):
    body = (FIXTURES / name).read_bytes()
    params = parse_qsl(body.decode(), keep_blank_values=True)
    headers = {"X-Twilio-Signature": sign(fake_twilio.auth_token, "https://orders.example.com/sms/status", params),
               "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/sms/status", data=body, headers=headers).status_code == 204
