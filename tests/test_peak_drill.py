"""The peak-day drill's short run, as part of the suite (and so of CI): Orderline as in production (private
PostgreSQL and Redis, gunicorn, two `orderline worker`s) against the channel, carrier, Slack and Twilio fakes,
a compressed Black Friday curve with duplicates, out-of-order and dropped deliveries, staff clicking in Slack,
customers texting, forged and oversized bursts, a worker SIGKILLed mid-job, Redis and PostgreSQL restarted,
channel, carrier and Slack 429/500, Twilio timing out — then every invariant must hold.

It takes about three minutes of wall time, in a subprocess (the drill owns its processes and cleans
them up). Skipped where no PostgreSQL server binaries exist, except under CI, where that fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.peak.cluster import postgres_available

ROOT = Path(__file__).resolve().parent.parent
CI_MINUTES = "1.0"
CI_SCALE = "0.75"


@pytest.mark.timeout(700)
def test_short_peak_drill_keeps_every_invariant(tmp_path: Path) -> None:
    problem = postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    report = tmp_path / "peak.md"
    log = tmp_path / "drill.log"
    with log.open("w") as out:
        drill = subprocess.Popen([sys.executable, "-m", "bench.peak", "--minutes", CI_MINUTES,
                                  "--scale", CI_SCALE, "--drain-timeout", "200", "--report", str(report)],
                                 cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            returncode = drill.wait(timeout=540)
        except subprocess.TimeoutExpired:
            drill.terminate()  # SIGTERM: the drill stops its processes and removes its cluster
            drill.wait(timeout=90)
            pytest.fail(f"the drill took over 9 minutes:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert report.exists(), f"the drill wrote no report:\n{output[-3000:]}"
    result = json.loads(report.with_suffix(".json").read_text())
    checks = {c["name"]: c for c in result["checks"]}
    failed = {name: c["detail"] for name, c in checks.items() if c["status"] == "FAIL"}
    assert not failed, f"invariants failed:\n{report.read_text()}"
    assert returncode == 0, output[-3000:]
    print(report.read_text())  # the figures, in the CI log with -rP

    # The drill really did what it claims: load, every fault injected, attacks refused.
    figures = result["figures"]
    assert figures["webhooks_acked"] >= 150
    assert figures["peak_webhooks_per_s_5s"] >= 2 * figures["sustained_webhooks_per_s"]  # the spike happened
    ran = {f["step"]: f["result"] for f in figures["faults"] if not f["result"].startswith("SKIP")}
    assert len(ran) >= 7 and not [r for r in ran.values() if r.startswith("ERROR")], ran
    assert "killed mid-job" in next(r for s, r in ran.items() if "SIGKILL" in s)
    assert "dropped" in checks["reconciliation found and reported every dropped order"]["detail"]
    assert checks["no forged or oversized request changed anything"]["status"] == "PASS"
    # The providers' parts ran and were checked: labels, fulfilments, Slack cards and clicks, texts.
    for name in ("one label per shipment, every shipped order labelled", "one fulfilment per shipment on the channel",
                 "no duplicate Slack card", "no SMS milestone twice, nothing after STOP"):
        assert checks[name]["status"] == "PASS", name
    staff = figures["staff_api_answers"]
    assert staff["customer texts"] > 0 and staff["slack actions"] > 0, staff
