"""JoinWatch: subscribed without a partition for longer than the timeout means a wedged group."""

from streamer.config import load_settings
from streamer.io.group_rescue import JoinWatch


def test_wedged_only_after_the_timeout_without_any_partition():
    now = [0.0]
    watch = JoinWatch(30.0, clock=lambda: now[0])
    assert watch.update(assigned=False) is None
    now[0] = 29.0
    assert watch.update(assigned=False) is None
    now[0] = 31.0
    assert watch.update(assigned=False) == 31.0
    now[0] = 50.0
    assert watch.update(assigned=False) is None, "the count starts again after a rescue"
    now[0] = 62.0
    assert watch.update(assigned=False) == 31.0


def test_an_assignment_resets_the_count():
    now = [0.0]
    watch = JoinWatch(10.0, clock=lambda: now[0])
    watch.update(assigned=False)
    now[0] = 9.0
    watch.update(assigned=True)
    now[0] = 15.0
    assert watch.update(assigned=False) is None
    now[0] = 24.0
    assert watch.update(assigned=False) is None
    watch.reset()
    now[0] = 26.0
    assert watch.update(assigned=False) is None


def test_join_timeout_defaults_to_three_session_timeouts():
    assert load_settings(flags={"session_timeout_ms": 6000}, environ={}).group_join_timeout == 18.0
    assert load_settings(flags={"join_timeout": 5.0}, environ={}).group_join_timeout == 5.0
