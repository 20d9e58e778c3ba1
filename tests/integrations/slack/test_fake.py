"""The fake Slack answers the real slack_sdk with the shapes Slack documents (fixtures/api_*.json)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.failures import PermanentError, TransientError
from integrations.fakeserver import Fault
from integrations.slack.client import call, make_client
from integrations.slack.fake import FakeSlack
from tests.integrations.slack.conftest import TOKEN, fixture


@pytest.fixture
def web(fake_slack: FakeSlack) -> WebClient:
    return make_client(TOKEN, fake_slack.api_url)


def _keys(name: str) -> set[str]:
    return set(fixture(name))


def test_answers_have_slacks_documented_shapes(web, fake_slack):
    assert _keys("api_auth_test_bot_response.json") <= set(web.auth_test().data)
    posted = web.chat_postMessage(channel="C1", text="hello", metadata={"event_type": "t", "event_payload": {}})
    assert _keys("api_chat_postMessage_ok.json") <= set(posted.data)
    updated = web.chat_update(channel="C1", ts=posted["ts"], text="edited")
    assert _keys("api_chat_update_ok.json") <= set(updated.data)
    assert fake_slack.messages("C1")[0]["text"] == "edited"
    opened = web.views_open(trigger_id="1.2.3", view={"type": "modal", "title": {"type": "plain_text", "text": "x"},
                                                      "blocks": []})
    assert _keys("api_views_open_ok.json") <= set(opened.data) and {"id", "hash"} <= set(opened["view"])
    again = web.views_update(view_id=opened["view"]["id"], view={"type": "modal", "blocks": [],
                                                                 "title": {"type": "plain_text", "text": "y"}})
    assert again["view"]["id"] == opened["view"]["id"] and again["view"]["title"]["text"] == "y"
    assert _keys("api_views_publish_ok.json") <= set(web.views_publish(user_id="U1", view={"type": "home",
                                                                                           "blocks": []}).data)
    assert web.chat_postEphemeral(channel="C1", user="U1", text="psst")["message_ts"]
    history = web.conversations_history(channel="C1", include_all_metadata=True)
    assert history["messages"][0]["metadata"] == {"event_type": "t", "event_payload": {}}
    # slack_sdk sends chat.postMessage as JSON and other methods as forms: the fake read both.
    kinds = {c.method: c.headers.get("Content-Type", "") for c in fake_slack.calls()}
    assert kinds["chat.postMessage"].startswith("application/json")


def test_errors_are_http_200_ok_false_and_429_carries_retry_after(web, fake_slack):
    with pytest.raises(SlackApiError) as refused:
        web.chat_update(channel="C1", ts="1.2", text="x")
    assert refused.value.response.status_code == 200 and refused.value.response["error"] == "message_not_found"
    bad_token = WebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    bad_token.proxy = None
    with pytest.raises(SlackApiError) as unauthorised:
        bad_token.auth_test()
    assert unauthorised.value.response["error"] == "invalid_auth"

    fake_slack.faults.add(Fault(status=429, headers={"Retry-After": "4"}, match="chat.postMessage"))
    with pytest.raises(SlackApiError) as limited:
        web.chat_postMessage(channel="C1", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] in ("4", ["4"])
    assert limited.value.response.data == fixture("api_ratelimited_429.json")


def test_failures_are_classified_for_the_job_runner(web, fake_slack):
    fake_slack.faults.add(Fault(status=429, headers={"Retry-After": "4"}, match="chat.postMessage"))
    with pytest.raises(TransientError) as limited:
        call(web, "chat.postMessage", channel="C1", text="x")
    assert limited.value.retry_after == 4.0
    with pytest.raises(PermanentError, match="channel_not_found"):
        call(web, "chat.postMessage", channel="", text="x")
    fake_slack.faults.add(Fault(status=500, match="chat.update"))
    with pytest.raises(TransientError):
        call(web, "chat.update", channel="C1", ts="1", text="x")


def test_proxy_variables_do_not_reroute_loopback(monkeypatch, fake_slack):
    # PROTOCOLS.md §4.5: WebClient picks up HTTPS_PROXY and ignores NO_PROXY.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert WebClient(token=TOKEN, base_url=fake_slack.api_url).proxy == "http://127.0.0.1:9"
    client = make_client(TOKEN, fake_slack.api_url)
    assert client.proxy is None
    assert client.auth_test()["ok"] is True
