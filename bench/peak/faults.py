"""Faults on a schedule. Each step is a name, a moment (a fraction of the load phase) and a function that
returns what it did; steps that need a module other branches add are listed with that module and are
skipped, by name, until it imports (`importlib.util.find_spec`)."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.shopify.fake import FakeShopify


def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class Step:
    name: str
    at: float  # fraction of the load phase
    run: Callable[[], str]
    needs: str | None = None  # a module that must import, else the step is skipped
    result: str = ""
    started: float | None = None
    seconds: float | None = None

    @property
    def enabled(self) -> bool:
        return self.needs is None or module_present(self.needs)


@dataclass
class Drill:
    """What the steps act on: the running stack, private Redis and PostgreSQL, the fake shops."""

    stack: Any
    redis: Any
    postgres: Any
    shops: list[Any]
    extras: dict[str, Any] = field(default_factory=dict)


def channel_429_then_500(drill: Drill) -> str:
    """Each channel fake answers 429 (with its Retry-After flavour) for its next requests, then 500.

    BigCommerce is asked on every webhook (thin payloads), so its window is many requests spread over many
    deliveries; Shopify and WooCommerce are asked only by reconciliation polls, so theirs is a few requests,
    fewer than ORDERLINE_JOB_MAX_ATTEMPTS: a longer run of failures dead-letters the poll, by design."""
    done = []
    for shop in drill.shops:
        fake = shop.fake
        if isinstance(fake, FakeShopify):
            fake.fail_next(429, 2, retry_after=2)
            fake.fail_next(500, 2)
            done.append(f"{shop.name} 2+2")
        elif shop.channel == "bigcommerce":
            fake.fail_next(429, 12, reset_ms=2000)
            fake.fail_next(500, 8)
            done.append(f"{shop.name} 12+8")
        else:
            fake.fail_next(429, 2, retry_after=2)
            fake.fail_next(500, 2)
            done.append(f"{shop.name} 2+2")
    return "429 then 500 for the next requests: " + ", ".join(done)


def kill_worker(drill: Drill) -> str:
    return drill.stack.kill_worker_mid_job()


def redis_restart(drill: Drill, down: float) -> str:
    drill.redis.stop()
    time.sleep(down)
    drill.redis.start()
    return f"Redis stopped (everything it held lost), down {down:g} s, started again"


def postgres_restart(drill: Drill, down: float) -> str:
    drill.postgres.restart(down)
    return f"PostgreSQL stopped (fast: connections cut), down {down:g} s, started again"


# --- steps that switch on after the merge -----------------------------------------------------------------
# The integrator fills these in with the fakes' real fault calls; each names the fake it needs.


def carrier_429_then_500(drill: Drill) -> str:
    carrier = drill.extras.get("carrier_fake")
    if carrier is None:
        return "SKIP: no carrier fake wired into the drill (bench/peak/plugins.py start_carrier)"
    carrier.fail_next(429, 10)
    carrier.fail_next(500, 5)
    return "carrier fake: 429 x10 then 500 x5"


def slack_429(drill: Drill) -> str:
    slack = drill.extras.get("slack_fake")
    if slack is None:
        return "SKIP: no Slack fake wired into the drill (bench/peak/plugins.py start_slack)"
    from integrations.fakeserver import Fault, retry_after_header

    slack.fake.faults.add(Fault(status=429, headers=retry_after_header(1), match="chat.postMessage"), 5)
    return "Slack fake: 429 with Retry-After: 1 x5"


def twilio_timeout(drill: Drill) -> str:
    twilio = drill.extras.get("twilio_fake")
    if twilio is None:
        return "SKIP: no Twilio fake wired into the drill (bench/peak/plugins.py start_twilio)"
    for _ in range(3):  # the message is created, then the answer held past the client's timeout
        twilio.fake.hang_after_next(40)
    return "Twilio fake: next 3 sends created, answers held 40 s (client times out)"


def schedule(drill: Drill, *, soak: bool) -> list[Step]:
    if soak:
        return []
    return [
        Step("channel fakes answer 429 then 500", 0.22, lambda: channel_429_then_500(drill)),
        Step("worker SIGKILLed mid-job (during the spike)", 0.40, lambda: kill_worker(drill)),
        Step("Redis stopped and restarted", 0.55, lambda: redis_restart(drill, 5)),
        Step("PostgreSQL restarted", 0.70, lambda: postgres_restart(drill, 3)),
        Step("carrier answers 429 then 500", 0.30, lambda: carrier_429_then_500(drill), needs="app.shipping"),
        Step("Slack answers 429 with Retry-After", 0.50, lambda: slack_429(drill), needs="integrations.slack"),
        Step("Twilio times out", 0.60, lambda: twilio_timeout(drill), needs="integrations.twilio"),
    ]


def start(step: Step) -> threading.Thread:
    """Run a step on its own thread, so a slow fault (a restart) does not hold up the load."""

    def run() -> None:
        step.started = time.time()
        try:
            step.result = step.run()
        except Exception as error:  # a fault that cannot be injected is reported, not fatal
            step.result = f"ERROR: {error!r}"
        step.seconds = time.time() - step.started

    thread = threading.Thread(target=run, name=f"fault-{step.name}", daemon=True)
    thread.start()
    return thread
