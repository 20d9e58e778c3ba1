"""Send slots shared through Redis (app/pacing.py): a Slack channel's posts, an SMS number's sends."""

from __future__ import annotations

import pytest

from app import pacing


def test_a_held_slot_is_kept_for_its_holder_while_others_queue_behind(runtime):
    assert pacing.reserve(runtime.redis, "slack:C1", 1.0, "post:order:1") == pytest.approx(0.0, abs=0.05)
    assert pacing.reserve(runtime.redis, "slack:C1", 1.0, "post:order:2") == pytest.approx(1.0, abs=0.05)
    # order 2 came back later: still its slot, not one behind everyone who asked meanwhile
    assert pacing.reserve(runtime.redis, "slack:C1", 1.0, "post:order:3") == pytest.approx(2.0, abs=0.05)
    assert pacing.reserve(runtime.redis, "slack:C1", 1.0, "post:order:2") == pytest.approx(1.0, abs=0.05)
    pacing.release(runtime.redis, "post:order:2")
    assert pacing.reserve(runtime.redis, "slack:C1", 1.0, "post:order:2") == pytest.approx(3.0, abs=0.05)
