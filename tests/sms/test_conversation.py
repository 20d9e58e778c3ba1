"""Customers texting in: consent keywords, status in their language, return, cancel, a person, and bad input."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Alert, Location, Order, Shop, SmsConsent
from app.orders import actions
from app.orders.types import Actor, Role
from integrations.twilio.fake import inbound_params, signed
from tests.sms.conftest import FROM_NUMBER, MARIA, PUBLIC, SAM, messages, new_order, ship, text_in, timeline


def reply_of(response) -> str:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    return response.data.decode()


def test_stop_then_a_shipment_sends_nothing_and_start_sends_again(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    stop = reply_of(text_in(client, fake_twilio, "STOP"))
    assert "Du får inga fler sms" in stop or "You will get no more texts" in stop  # one confirmation
    ship(runtime, order_id)
    drain()
    assert fake_twilio.all_sent() == []
    assert [m.status for m in messages(runtime, kind="shipped")] == ["skipped"]
    assert "sms.opted_out" in [e.type for e in timeline(runtime, order_id)]
    # Texting anything else while opted out gets no answer either.
    assert "<Message>" not in reply_of(text_in(client, fake_twilio, "var är mitt paket?"))

    assert "<Message>" in reply_of(text_in(client, fake_twilio, "START"))
    ship(runtime, order_id, tracking="0037072")
    drain()
    assert len(fake_twilio.sent_to(MARIA)) == 1
    with runtime.db.session() as session:
        ledger = [(c.state, c.source) for c in session.execute(select(SmsConsent).order_by(SmsConsent.id)).scalars()]
    assert ledger == [("opted_out", "keyword"), ("opted_in", "keyword")]


def test_every_opt_out_word_opts_out(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    for word in ("stop", "Unsubscribe", "END", "quit", "STOPALL", "REVOKE", "OPTOUT", "cancel"):
        text_in(client, fake_twilio, "START")
        text_in(client, fake_twilio, word)
        with runtime.db.session() as session:
            last = session.execute(select(SmsConsent).order_by(SmsConsent.id.desc()).limit(1)).scalar_one()
        assert last.state == "opted_out", word


def test_with_advanced_opt_out_twilio_confirms_and_we_stay_silent(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    assert "<Message>" not in reply_of(text_in(client, fake_twilio, "STOP", opt_out_type="STOP"))


def test_swedish_question_answered_in_swedish_with_the_tracking_link(runtime, client, auth, shop, fake_twilio):
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id, tracking="00370712345678901234")
    with runtime.db.session() as session:
        number = session.get(Order, order_id).number
    reply = reply_of(text_in(client, fake_twilio, "var är mitt paket?"))
    assert f"Beställning {number}: skickad. Spåra den: https://tracking.postnord.com/se/?id=00370712345678901234" \
        in reply.replace("&amp;", "&")
    english = reply_of(text_in(client, fake_twilio, "Where is my order?"))
    assert f"Order {number}: shipped." in english
    assert "sms.answered" in [e.type for e in timeline(runtime, order_id)]


def test_help_gets_the_shops_help_text_in_the_customers_language(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    new_order(client, auth, shop, phone="+14158675309", country="US")
    assert "Nordic Tees: Skriv STATUS" in reply_of(text_in(client, fake_twilio, "hjälp"))
    assert "Nordic Tees: Text STATUS" in reply_of(text_in(client, fake_twilio, "HELP", from_=SAM))
    with runtime.db.session() as session:
        session.get(Shop, shop).settings = {"sms_help_text": "Nordic Tees support: call 08-123 456."}
    assert "call 08-123 456" in reply_of(text_in(client, fake_twilio, "INFO", from_=SAM))


def test_something_odd_goes_to_a_person_and_their_reply_is_texted(runtime, client, auth, shop, fake_twilio, drain):
    order_id = new_order(client, auth, shop)
    reply = reply_of(text_in(client, fake_twilio, "Can I get the cap in blue instead? 🧢"))
    assert "a person will answer" in reply
    entry = [e for e in timeline(runtime, order_id) if e.type == "order.customer_message"][-1]
    assert entry.data == {"text": "Can I get the cap in blue instead? 🧢", "needs_staff": True}
    with runtime.db.session() as session:
        actions.reply_to_customer(session, order_id, Actor.staff("ana", "Ana", Role.OPERATOR),
                                  text="Yes, swapped to blue!")
    drain()
    (sent,) = fake_twilio.sent_to(MARIA)
    assert sent["body"] == "Nordic Tees: Yes, swapped to blue!"


def test_return_by_text_starts_a_return_and_texts_its_label(runtime, client, auth, shop, fake_twilio, drain):
    with runtime.db.session() as session:  # where returns go back to
        session.add(Location(code="STHLM", name="Stockholm", country_code="SE", line1="Lagergatan 1",
                             city="Stockholm", postal_code="11122"))
    order_id = new_order(client, auth, shop)
    ship(runtime, order_id)
    reply = reply_of(text_in(client, fake_twilio, "retur"))
    assert "returbegäran" in reply
    drain()  # the return label is bought (sandbox carrier) and its milestone texted
    with runtime.db.session() as session:
        order = session.get(Order, order_id)
        (parcel,) = order.returns
        assert order.status == "return_requested" and parcel.status == "label_ready"
        assert sum(i["quantity"] for i in parcel.items) == sum(line.quantity for line in order.line_items)
    types = [e.type for e in timeline(runtime, order_id)]
    assert {"order.return_requested_by_customer", "return.requested", "return.label_ready"} <= set(types)
    assert any(parcel_label_url(runtime, order_id) in m["body"] for m in fake_twilio.sent_to(MARIA))


def test_return_by_text_that_the_rules_refuse_goes_to_staff(runtime, client, auth, shop, fake_twilio):
    order_id = new_order(client, auth, shop)  # not shipped yet: nothing to return
    reply = reply_of(text_in(client, fake_twilio, "I want to return this"))
    assert "kan inte returneras via sms" in reply  # the customer writes from Sweden
    with runtime.db.session() as session:
        assert session.get(Order, order_id).returns == []
        assert [a.kind for a in session.execute(select(Alert)).scalars()] == ["sms_return_request"]
    assert "order.return_requested_by_customer" in [e.type for e in timeline(runtime, order_id)]


def parcel_label_url(runtime, order_id) -> str:
    with runtime.db.session() as session:
        return str(session.get(Order, order_id).returns[0].label_url)


def test_cancel_before_shipping_is_a_request_to_staff_not_a_cancel(runtime, client, auth, shop, fake_twilio):
    order_id = new_order(client, auth, shop)
    reply = reply_of(text_in(client, fake_twilio, "Please cancel my order"))
    assert "asked our team to cancel" in reply
    with runtime.db.session() as session:
        assert session.get(Order, order_id).status != "cancelled"
        assert [a.kind for a in session.execute(select(Alert)).scalars()] == ["sms_cancel_request"]
    assert "order.cancel_requested_by_customer" in [e.type for e in timeline(runtime, order_id)]
    ship(runtime, order_id)
    assert "can no longer be cancelled" in reply_of(text_in(client, fake_twilio, "cancel my order please"))


def test_several_orders_and_order_numbers(runtime, client, auth, shop, fake_twilio):
    first = new_order(client, auth, shop)
    second = new_order(client, auth, shop)
    with runtime.db.session() as session:
        numbers = {i: session.get(Order, i).number for i in (first, second)}
    both = reply_of(text_in(client, fake_twilio, "where is my order?"))
    assert "You have 2 orders" in both and numbers[first] in both and numbers[second] in both
    only_first = reply_of(text_in(client, fake_twilio, f"#{numbers[first]}"))
    assert f"Beställning {numbers[first]}:" in only_first and "Du har" not in only_first
    assert "could not find order 999999" in reply_of(text_in(client, fake_twilio, "where is 999999?"))


def test_bad_input_gets_a_sensible_answer_or_none_never_a_500(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    assert reply_of(text_in(client, fake_twilio, "")).endswith("<Response />")
    assert "bara läsa text" in reply_of(text_in(client, fake_twilio, "", media_urls=("https://x.test/a.jpg",)))
    long_text = "Hej! " + "Jag undrar över min beställning. " * 200
    assert "en person svarar" in reply_of(text_in(client, fake_twilio, long_text))
    assert "en person svarar" in reply_of(text_in(client, fake_twilio, "👍👍👍"))
    assert "could not find an order" in reply_of(text_in(client, fake_twilio, "status", from_="+4915112345678"))
    assert reply_of(text_in(client, fake_twilio, "status", from_="not a number")).startswith("<?xml")
    params = inbound_params(from_=MARIA, to=FROM_NUMBER, body="status", account_sid=fake_twilio.account_sid)
    params["NumMedia"] = "lots"
    weird = client.post("/sms/inbound", data=params, headers=signed(fake_twilio.auth_token, PUBLIC + "/sms/inbound",
                                                                     params))
    assert weird.status_code == 200
    stored = messages(runtime, direction="inbound")
    assert max(len(m.body or "") for m in stored) <= 1600


def test_a_repeated_delivery_gets_the_same_reply_and_changes_nothing(runtime, client, auth, shop, fake_twilio):
    order_id = new_order(client, auth, shop)
    params = inbound_params(from_=MARIA, to=FROM_NUMBER, body="Is the cap washable?",
                            account_sid=fake_twilio.account_sid)
    headers = signed(fake_twilio.auth_token, PUBLIC + "/sms/inbound", params)
    first = client.post("/sms/inbound", data=params, headers=headers)
    again = client.post("/sms/inbound", data=params, headers=headers)
    assert first.data == again.data and b"a person will answer" in again.data
    assert len(messages(runtime, direction="inbound")) == 1
    assert [e.type for e in timeline(runtime, order_id)].count("order.customer_message") == 1


def test_forged_or_unsigned_requests_get_403_and_nothing_is_done(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    params = inbound_params(from_=MARIA, to=FROM_NUMBER, body="STOP", account_sid=fake_twilio.account_sid)
    forged = signed("not-the-token", PUBLIC + "/sms/inbound", params)
    other_host = signed(fake_twilio.auth_token, "https://evil.example.com/sms/inbound", params)
    tampered = dict(params, Body="START")
    for data, headers in ((params, {}), (params, forged), (params, other_host),
                          (tampered, signed(fake_twilio.auth_token, PUBLIC + "/sms/inbound", params))):
        assert client.post("/sms/inbound", data=data, headers=headers).status_code == 403
    status = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    assert client.post("/sms/status", data=status, headers=signed("x", PUBLIC + "/sms/status", status)).status_code \
        == 403
    assert messages(runtime) == []
    with runtime.db.session() as session:
        assert session.execute(select(SmsConsent)).first() is None


def test_answers_to_one_number_are_capped_so_two_bots_cannot_loop(runtime, client, auth, shop, fake_twilio):
    new_order(client, auth, shop)
    answered = ["<Message>" in reply_of(text_in(client, fake_twilio, "status?")) for _ in range(8)]
    assert answered == [True] * 6 + [False] * 2
    # A sender that is not a phone number (a short code, a sender name) is never answered.
    assert "<Message>" not in reply_of(text_in(client, fake_twilio, "status", from_="72975"))


def test_orders_placed_before_sms_was_set_up_are_found(runtime, client, auth, shop, fake_twilio):
    from sqlalchemy import delete

    from app.models import SmsOrderPhone

    order_id = new_order(client, auth, shop)
    with runtime.db.session() as session:
        session.execute(delete(SmsOrderPhone))  # as if the order came in before Twilio was configured
        number = session.get(Order, order_id).number
    assert f"Beställning {number}:" in reply_of(text_in(client, fake_twilio, "var är mitt paket?"))
