"""Getting texts out: quiet hours, Twilio's answers (21610, 429, 5xx, timeouts), status callbacks, pacing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from app.models import Alert, OutboxEvent, SmsConsent
from integrations.twilio.fake import signed
from jobs import sms as sms_jobs
from tests.sms.conftest import MARIA, PUBLIC, messages, new_order, ship, timeline, track


def test_a_text_due_at_23_local_time_is_sent_at_the_morning_hour(runtime, client, auth, shop, fake_twilio, drain,
                                                                   monkeypatch):
    monkeypatch.setattr(sms_jobs, "now", lambda: datetime(2026, 11, 26, 22, 0, tzinfo=UTC))  # 23:00 Stockholm
    order_id = new_order(client, auth, shop)
    shipment_id = ship(runtime, order_id)
    drain()
    assert fake_twilio.all_sent() == []
    (message,) = messages(runtime, kind="shipped")
    assert message.status == "scheduled"
    assert message.send_after == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
    with runtime.db.session() as session:
        waiting = session.execute(select(OutboxEvent).where(OutboxEvent.job == "send_sms",
                                                            OutboxEvent.status == "pending")).scalar_one()
        assert waiting.next_attempt_at == message.send_after

    # Out for delivery is time-critical: it goes out at once, even at night.
    track(runtime, order_id, shipment_id, "out_for_delivery")
    drain()
    assert ["levereras i dag" in m["body"] for m in fake_twilio.sent_to(MARIA)] == [True]

    # The morning comes: the sweeper finds the row due and the text goes out.
    monkeypatch.setattr(sms_jobs, "now", lambda: datetime(2026, 11, 27, 7, 0, 5, tzinfo=UTC))
    with runtime.db.session() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == waiting.id).values(
            next_attempt_at=datetime.now(UTC), enqueued_at=datetime(2026, 1, 1, tzinfo=UTC)))
    drain()
    assert len(fake_twilio.sent_to(MARIA)) == 2
    assert "skickats" in fake_twilio.sent_to(MARIA)[1]["body"]


def test_21610_marks_the_number_opted_out_and_nothing_more_is_tried(runtime, client, auth, shop, fake_twilio, drain):
    fake_twilio.opt_out(MARIA)  # the customer texted STOP to Twilio, and Orderline never heard
    order_id = new_order(client, auth, shop)
    shipment_id = ship(runtime, order_id)
    drain()
    (message,) = messages(runtime, kind="shipped")
    assert (message.status, message.error_code) == ("failed", "21610")
    with runtime.db.session() as session:
        (entry,) = session.execute(select(SmsConsent)).scalars()
        assert (entry.state, entry.source) == ("opted_out", "twilio_21610")
        assert session.execute(select(Alert)).first() is None  # an opt-out is not a fault
    posts = len([r for r in fake_twilio.requests if r.method == "POST"])
    track(runtime, order_id, shipment_id, "delivered")
    drain()
    assert len([r for r in fake_twilio.requests if r.method == "POST"]) == posts
    assert messages(runtime, kind="delivered")[0].status == "skipped"
    assert "sms.failed" in [e.type for e in timeline(runtime, order_id)]


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_server_errors_retry_and_send_once(runtime, client, auth, shop, fake_twilio, drain, status):
    fake_twilio.fail_next(status, retry_after=0 if status == 429 else None)
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    drain()
    time.sleep(1.2)  # the retry's backoff (job_backoff_base_seconds is 0.2 in tests; RQ schedules in whole seconds)
    drain()
    assert len(fake_twilio.sent_to(MARIA)) == 1
    (message,) = messages(runtime, kind="shipped")
    assert message.status == "queued"
    with runtime.db.session() as session:
        deliver = session.execute(select(OutboxEvent).where(OutboxEvent.job == "deliver_sms")).scalar_one()
        assert (deliver.status, deliver.attempts) == ("done", 2)


def test_a_send_whose_answer_was_lost_is_found_not_repeated(runtime, client, auth, shop, fake_twilio, drain,
                                                            monkeypatch):
    monkeypatch.setattr(sms_jobs, "TWILIO_TIMEOUT", 0.5)
    fake_twilio.hang_after_next(2.0)  # Twilio makes the message, the answer never comes back in time
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    drain()  # the call times out: the message stays claimed, the retry waits for its backoff
    time.sleep(1.2)
    drain()
    (sent,) = fake_twilio.sent_to(MARIA)
    (message,) = messages(runtime, kind="shipped")
    assert (message.status, message.provider_sid) == ("queued", sent["sid"])
    assert any(r.method == "GET" for r in fake_twilio.requests)  # looked before sending again


def test_status_callbacks_move_forward_only(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    drain()
    (sent,) = fake_twilio.sent_to(MARIA)
    delivered = fake_twilio.callback(sent["sid"], "delivered")
    late_sent = fake_twilio.callback(sent["sid"], "sent")
    for url, params, headers in (delivered, late_sent):
        assert url.startswith(PUBLIC + "/sms/status?m=")
        response = client.post(url[len(PUBLIC):], data=params, headers=headers)
        assert response.status_code == 204
    assert messages(runtime, kind="shipped")[0].status == "delivered"


def test_undelivered_is_recorded_and_repeated_failures_alert_staff(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    shipment_id = ship(runtime, order_id)
    track(runtime, order_id, shipment_id, "out_for_delivery")
    track(runtime, order_id, shipment_id, "delivered")
    drain()
    sent = fake_twilio.sent_to(MARIA)
    assert len(sent) == 3
    for index, message in enumerate(sent):
        url, params, headers = fake_twilio.callback(message["sid"], "undelivered", error_code=30003)
        client.post(url[len(PUBLIC):], data=params, headers=headers)
        with runtime.db.session() as session:
            alerts = [a.kind for a in session.execute(select(Alert)).scalars()]
        assert alerts == ([] if index < 2 else ["sms_undeliverable"])
    stored = messages(runtime, direction="outbound")
    assert {(m.status, m.error_code) for m in stored} == {("undelivered", "30003")}
    assert [e.type for e in timeline(runtime, order_id)].count("sms.failed") == 3
    with runtime.db.session() as session:
        alert = session.execute(select(Alert)).scalar_one()
    assert MARIA not in alert.message and "+46" in alert.message  # the number is redacted


def test_a_status_callback_for_an_unknown_message_changes_nothing(client, fake_twilio):
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered", "To": MARIA}
    url = PUBLIC + "/sms/status?m=99999999999"
    response = client.post("/sms/status?m=99999999999", data=params, headers=signed(fake_twilio.auth_token, url,
                                                                                      params))
    assert response.status_code == 204


def test_sends_are_paced_per_sending_number(runtime):
    waits = [sms_jobs.pace(runtime.redis, "+15550000001", 2.0) for _ in range(4)]
    assert waits[0] == pytest.approx(0.0, abs=0.05)
    assert waits[1:] == pytest.approx([0.5, 1.0, 1.5], abs=0.1)
    assert sms_jobs.pace(runtime.redis, "+15550000002", 2.0) == pytest.approx(0.0, abs=0.05)  # another number


def test_wrong_credentials_fail_the_job_not_the_text(runtime, client, auth, shop, fake_twilio, drain):
    fake_twilio.auth_token = "rotated-at-twilio"
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    drain()
    assert fake_twilio.all_sent() == []
    assert messages(runtime, kind="shipped")[0].status == "claimed"
    with runtime.db.session() as session:
        job = session.execute(select(OutboxEvent).where(OutboxEvent.job == "deliver_sms")).scalar_one()
        assert job.status == "failed" and "credentials" in job.last_error
