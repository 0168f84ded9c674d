"""An attribute's leaders: its most frequent rows, kept incrementally (:class:`streamer.core.vocab.ItemTable`'s
attribute index reads them to find an upsert's neighbours and ``most_similar``'s attribute candidates).

>>> import numpy as np
>>> counts = np.array([5, 9, 1, 7])
>>> leaders = Leaders()
>>> for row in range(4):
...     leaders.offer(row, counts[row], counts)
>>> sorted(leaders.rows, key=lambda row: -counts[row])[:2]
[1, 3]
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEADERS", "Leaders"]

LEADERS = 32  # members kept per attribute, by count (upsert neighbours and most_similar's attribute candidates)


class Leaders:
    """The up to ``LEADERS`` rows of one attribute ranked first by (count, lower row first), counts read live.

    Counts only grow, so offering every row whose count changed keeps exactly the top rows whatever the history:
    a checkpoint reload (which offers every row once) finds the same leaders. A released leader leaves a hole
    that only the whole attribute can fill: the leaders are then ``stale`` and rebuilt from the members at the
    next read (O(attribute size), once per release, not per upsert). ``floor`` is the lowest leader's count, so
    most offers cost one comparison."""

    __slots__ = ("rows", "floor", "stale")

    def __init__(self):
        self.rows: list[int] = []
        self.floor = -1
        self.stale = False

    def offer(self, row: int, count: int, counts: np.ndarray) -> None:
        if len(self.rows) < LEADERS:
            if row not in self.rows:
                self.rows.append(row)
                self.floor = int(min(counts[self.rows]))
            return
        if count < self.floor or row in self.rows:
            return
        weakest = min(range(LEADERS), key=lambda index: (counts[self.rows[index]], -self.rows[index]))
        if (count, -row) > (counts[self.rows[weakest]], -self.rows[weakest]):
            self.rows[weakest] = row
        self.floor = int(min(counts[self.rows]))

    def discard(self, row: int) -> None:
        if row in self.rows:
            self.rows.remove(row)
            self.stale = True
