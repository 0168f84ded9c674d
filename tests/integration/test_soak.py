"""The soak (``streamer soak``) in its short form: about a minute of seeded random faults — kill -9,
SIGTERM, Redis restarts, broker restarts with the topics recreated — with bad and oversized messages in
every round; then every produced event must be learned exactly once by the final state and every item
must be in Redis. ``streamer soak --seconds 600`` runs it longer."""

from __future__ import annotations

import pytest

from streamer.soak import FAULTS, SoakPlan, run_soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_soak_every_event_learned_once_and_every_item_published(tmp_path):
    result = run_soak(SoakPlan(seconds=55.0, seed=16, events_per_round=1200), tmp_path / "soak")
    print(result.report())
    assert result.ok, result.report() + f"\nlogs: {tmp_path / 'soak'}"
    assert set(result.faults) == set(FAULTS), "every fault kind was applied at least once"
    assert result.learned == result.produced > 0
    assert result.items_miscounted == 0 and result.items_missing_in_redis == 0
    assert result.bad_messages > 0
