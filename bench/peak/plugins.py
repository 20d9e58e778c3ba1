"""Where the parts other branches add plug into the drill. Each `start_*` returns None until its module
imports; after the merge the integrator makes it start that branch's fake, returning (fake, env) where env
points Orderline's settings at the fake. The fault steps (faults.py) and checks (invariants.py) read the
fakes from `extras` under the names used here.

    start_carrier -> extras["carrier_fake"]: fail_next(status, times), a list `purchases` (one per label)
    start_slack   -> extras["slack_fake"]:   fail_next(429, times, retry_after=), card_keys() -> list[str]
    start_twilio  -> extras["twilio_fake"]:  hang_next(times), milestone_keys() -> list[str],
                                             sent_after_stop() -> list
"""

from __future__ import annotations

from typing import Any

from .faults import module_present

Started = tuple[Any, dict[str, str]] | None


def start_carrier() -> Started:
    if not module_present("app.shipping"):
        return None
    # After the merge: start the sandbox/EasyPost fake, e.g.
    #   fake = FakeEasyPost().start(); return fake, {"EASYPOST_API_BASE_URL": fake.url, ...}
    # and give the shops settings {"auto_approve": true, "auto_pick_pack": true, "carrier": "easypost"}
    # (drill.SHOP_SETTINGS_AFTER_MERGE).
    return None


def start_slack() -> Started:
    if not module_present("integrations.slack"):
        return None
    # After the merge: fake = FakeSlack().start(); return fake, {"SLACK_API_BASE_URL": fake.url + "/api/", ...}
    return None


def start_twilio() -> Started:
    if not module_present("integrations.twilio"):
        return None
    # After the merge: fake = FakeTwilio().start(); return fake, {"TWILIO_API_BASE_URL": fake.url, ...}
    return None


def staff_via_slack(extras: dict[str, Any], base_url: str, order_ids: list[int]) -> int:
    """Staff approve through Slack (signed POST /slack/events interactivity) instead of the API: after the
    merge, sign with SLACK_SIGNING_SECRET and post block_actions; returns how many were sent."""
    return 0


def customers_text_in(extras: dict[str, Any], base_url: str) -> int:
    """Customers text in (signed POST /sms/inbound, including STOP): after the merge; returns how many."""
    return 0


def all_started() -> dict[str, Started]:
    return {"carrier_fake": start_carrier(), "slack_fake": start_slack(), "twilio_fake": start_twilio()}
