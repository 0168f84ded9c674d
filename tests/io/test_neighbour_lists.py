"""Which due neighbour lists go first: catalog upserts, then lists waiting too long (nothing starves), then the most changed."""

from __future__ import annotations

from streamer.io.neighbour_lists import DueLists


def test_urgent_then_overdue_oldest_first_then_most_changed():
    due = DueLists()
    due.mark(["old-a", "old-b"], now=0.0)
    due.mark(["busy", "calm", "busy2"], now=50.0)
    due.mark(["busy"] * 4 + ["busy2"] * 2, now=55.0)  # 5 and 3 changes
    due.mark(["new-film"], now=59.0, urgent=True)
    assert due.choose(10, now=60.0, max_wait=30.0) == ["new-film", "old-a", "old-b", "busy", "busy2", "calm"]
    assert due.choose(3, now=60.0, max_wait=30.0) == ["new-film", "old-a", "old-b"]
    assert due.urgent() == ["new-film"]


def test_marking_again_keeps_the_first_due_time():
    due = DueLists()
    due.mark(["x"], now=1.0)
    due.mark(["x"], now=5.0)
    assert due.entries["x"] == [1.0, 2, False]
    assert due.pop("x") == [1.0, 2, False] and not due
