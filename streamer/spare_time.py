"""Spare-time replay: the loop pays the engine's replay debt when it has nothing else to do.

Under a backlog a batch is learned with its replay deferred (all but ``interleaved_passes``); the debt is paid
in slices of ``replay_slice`` seconds whenever the loop has spare time, and what the replay moved is handed to
the sink at most once per ``SPARE_TAKE_INTERVAL`` (docs/replay.md). A mixin of :class:`streamer.loop.ActiveLoop`.
"""

from __future__ import annotations

import time

__all__ = ["SpareTimeReplay", "REPLAY_CHUNK"]

REPLAY_CHUNK = 1000  # replayed pairs per compiled call in spare time (a few ms)
SPARE_TAKE_INTERVAL = 1.0  # seconds between takes of what spare-time replay moved
# While a debt is owed, the loop's other spare-time work is paced by its cost (docs/replay.md): after a burst every
# row is dirty again within a second of replay, so a take (94k items: 0.3-0.8 s) or a list refresh costs about the
# same whenever it comes, and each one less leaves that time to the replay.
OWING_TAKE_SHARE = 0.05  # takes: at most this share of the loop's time ...
OWING_LISTS_SHARE = 0.025  # ... list refreshes: at most this share, and at least OWING_LISTS_INTERVAL seconds apart
OWING_LISTS_INTERVAL = 1.0  # (the items the replay still moves are due again at the next take)
OWING_LONGEST = 10.0  # ... and neither waits longer than this (a take: nor than half --publish-max-age, if that is
#   longer): what moved is published within --publish-max-age, lists never starve. The index follows the takes at
#   most every --publish-max-age (Trainer.take_changed(follow)) while owing, and again once the debt is paid


class SpareTimeReplay:
    """When the loop has spare time, and paying the replay debt in it (needs ``settings``, ``source``, ``engine``,
    ``sink``, ``ingestor``, ``metrics`` and the ``replayed_*``/``*_take_*`` counters of the loop)."""

    def _keeping_up(self, polled: int) -> bool:
        """The loop keeps up with the stream: this poll is a short batch, no other fetched batch waits, and
        (almost) nothing is left at the broker. Such a batch is learned with its replay inline, as in
        process; under a backlog the replay is deferred (all but ``interleaved_passes``) and paid in spare
        time. Inline replay makes learning slower, so a stream that outgrows it turns into a backlog and
        the loop defers again. For a non-empty poll this is exactly :meth:`_spare_time`."""
        return polled > 0 and self._spare_time(polled)

    def _spare_time(self, polled: int) -> bool:
        """The loop has spare time: nothing was fetched for it (it would wait for the fetcher), or a short
        batch with (almost) no lag behind the broker. Fetched batches waiting for the loop never are:
        a backlog in hand goes first. Replay in the gaps of a backlog keeps a burst's replay close to
        the in-process (inline) one; it runs in slices of ``replay_slice`` seconds."""
        if polled >= self.settings.max_poll_records or self.source.has_waiting():
            return False
        lag = self.source.lag()
        return polled == 0 or (lag is not None and lag < self.settings.max_poll_records)

    def _replay_owed(self) -> None:
        """Pay the engine's replay debt in small chunks for at most ``replay_slice`` seconds, on ``replay_threads``
        cores (the loop has nothing else to do meanwhile)."""
        deadline = time.monotonic() + self.settings.replay_slice
        engine, trained = self.engine, 0
        self.replayed_untaken = True  # what moves is taken once per flush, not per slice (see _take_replayed); set
        #   first, so that a reader seeing the debt paid also sees the moves not yet taken
        while engine.replay_debt and time.monotonic() < deadline:
            trained += engine.replay(min(REPLAY_CHUNK, engine.replay_debt), threads=self.settings.replay_threads)
        self.replayed_pairs += trained
        self.metrics.replayed_pairs.inc(trained)

    def _take_replayed(self, spare: bool = False) -> None:
        """Hand what spare-time replay moved to the sink (no freshness sample: no new event), at most once per
        ``SPARE_TAKE_INTERVAL``: a row the replay touches many times is compared, re-indexed and published once.
        While a debt is left, no sooner than the last take's cost allows (``OWING_TAKE_SHARE``, at most
        ``OWING_LONGEST`` or half ``publish_max_age`` apart, the longer), and the neighbour index follows a take at most every ``publish_max_age`` (the
        re-indexing is two thirds of a take of a moving catalog; its lists are due again once the debt is paid).
        The debt paid, its last moves go at the next flush after ``SPARE_TAKE_INTERVAL``, the index following. In
        ``spare`` time with nothing owed, the rows a publish threshold held back go too
        (:meth:`Ingestor.take_waiting`): the threshold saves writes while the model moves, and an idle daemon
        serves the model as it is."""
        if spare and not self.engine.replay_debt and self.ingestor.holding:
            self.sink.add_items(self.ingestor.take_waiting(), None)
            self.replayed_untaken = False
            return
        now = time.monotonic()
        interval = SPARE_TAKE_INTERVAL
        if self.engine.replay_debt:
            longest = max(OWING_LONGEST, self.settings.publish_max_age / 2)
            interval = max(interval, min(self.spare_take_seconds / OWING_TAKE_SHARE, longest))
        if self.replayed_untaken and now >= self.last_spare_take + interval:
            self.last_spare_take = now
            follow = not self.engine.replay_debt or not self.ingestor.followed_within(self.settings.publish_max_age)
            self.sink.add_items(self.ingestor.take_changed(follow=follow), None)
            self.replayed_untaken = False  # after the hand-over: a reader seeing False finds the moves pending
            self.spare_take_seconds = time.monotonic() - now

    def _refresh_lists(self, now: float, paying: bool) -> float:
        """Refresh the due neighbour lists; returns when the next refresh is due: ``neighbours_interval`` on,
        and while spare time pays a debt (``paying``) no sooner than this refresh's cost allows
        (``OWING_LISTS_SHARE``), at least ``OWING_LISTS_INTERVAL`` and at most ``OWING_LONGEST`` apart (the urgent
        lists of catalog upserts do not wait for it: :meth:`ActiveLoop._ingest`)."""
        began = time.monotonic()
        self._refresh_neighbours()
        interval = self.settings.neighbours_interval
        if paying:
            cost = time.monotonic() - began
            interval = max(interval, OWING_LISTS_INTERVAL, min(cost / OWING_LISTS_SHARE, OWING_LONGEST))
        return now + interval
