"""One poll batch of Kafka records → decoded, validated, learned; rejects become dead letters.

Pure of I/O itself: the engine, the dead-letter sink and the vector sink are passed in, so unit tests
use small fakes. A JSON array message is learned element by element; the valid ones are still learned,
in order, and a message with invalid elements is one dead letter listing them (indices and reasons),
whether the validation or the engine rejected them: never one dead letter per element.
"""

from __future__ import annotations

import math
import sys
import time
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any

from orjson import JSONDecodeError
from orjson import loads as orjson_loads

from streamer.events import InvalidRecord, decode_payload, is_plain_event, parse_catalog_update, parse_event

__all__ = ["BatchResult", "Ingestor", "Prepared"]


@dataclass
class BatchResult:
    events: int = 0
    catalog_updates: int = 0
    dead_letters: int = 0


@dataclass
class Prepared:
    """A decoded and validated batch, waiting for the engine."""

    records: list
    catalog: bool
    valid: list = field(default_factory=list)
    origins: list = field(default_factory=list)  # per valid record: its message's position in ``records``,
    # or (position, index in the message's JSON array)
    users: set = field(default_factory=set)
    result: BatchResult = field(default_factory=BatchResult)
    # per rejected message position: (index in its JSON array or None, reason) of each failure, and the
    # array's length (None: not an indexed array)
    failures: dict = field(default_factory=dict)
    elements: dict = field(default_factory=dict)


def _fast_event(value, max_bytes: int, latest: float) -> tuple | None:
    """``(user, item, ts)`` when ``value`` is one JSON object of exactly the common event shape (the same
    rules as :func:`parse_event`); None for everything else, which then takes the full path."""
    if value is None or len(value) > max_bytes or value[:1] != b"{":
        return None
    try:
        element = orjson_loads(value)
    except JSONDecodeError:
        return None
    return _plain_tuple(element, latest)


def _plain_tuple(element: Any, latest: float) -> tuple | None:
    """``(user, item, ts)`` for a 3-key dict that :func:`is_plain_event` accepts, the engine's fastest input."""
    if type(element) is not dict or len(element) != 3:
        return None
    user, item, ts = element.get("user"), element.get("item"), element.get("ts")
    return (user, item, ts) if is_plain_event(user, item, ts, latest) else None


class Ingestor:
    """``process(records, catalog=...)`` for one partition's records, in offset order.

    Three steps: ``prepare`` (decode + validate, no engine) → ``learn`` (the engine alone) → ``finish``
    (dead-letter engine rejects, mark changes), so the engine step can be timed or moved on its own.
    """

    def __init__(self, engine, dead_letters, sink, max_message_bytes: int, max_future_seconds: float | None,
                 clock=time.time, observe=None, publish_rule: tuple[float, float] | None = None):
        self.engine = engine
        self.publish_rule = publish_rule  # (threshold, max_age) of Trainer.take_changed; None: every change
        self.holding = False  # a take under a threshold may have left moved rows waiting (take_waiting publishes them)
        self.followed_at = -math.inf  # self._clock() at the last take the neighbour index followed
        self._observe = observe  # called with each valid event batch as (user, item, ts) before it is learned
        self._dead_letters = dead_letters
        self._sink = sink
        self._max_bytes = max_message_bytes
        self._max_future = max_future_seconds or None
        self._clock = clock

    def process(self, records: list, catalog: bool = False, replay: bool = True) -> BatchResult:
        """Decode, validate, learn and mark one batch (all three steps below, in order)."""
        prepared = self.prepare(records, catalog)
        if self._observe is not None and not catalog and prepared.valid:
            self._observe([record if type(record) is tuple else (record.user, record.item, record.ts)
                           for record in prepared.valid])
        return self.finish(prepared, self.learn(prepared, replay))

    def prepare(self, records, catalog: bool = False) -> Prepared:
        """Decode and validate; rejects go to the dead letters. Does not touch the engine.

        ``records`` is a list of Kafka records or a columnar batch with a ``values`` list
        (:class:`streamer.io.process_source.RecordBatch`); a record object is only built for the slow path."""
        prepared = Prepared(records, catalog)
        latest = self._clock() + self._max_future if self._max_future else sys.float_info.max
        valid, origins, max_bytes = prepared.valid, prepared.origins, self._max_bytes
        values = getattr(records, "values", None)
        if values is None:
            values = [message.value for message in records]
        fast = 0
        for position, value in enumerate(values):
            if not catalog:  # fast path: one JSON object of the common event shape
                parsed = _fast_event(value, max_bytes, latest)
                if parsed is not None:
                    valid.append(parsed)
                    origins.append(position)
                    fast += 1
                    continue
            self._prepare_slowly(records[position], position, catalog, latest, prepared)
        if not catalog:
            prepared.users.update(map(itemgetter(0), valid) if fast == len(valid) else
                                  (record[0] if type(record) is tuple else record.user for record in valid))
        return prepared

    def _prepare_slowly(self, message, position: int, catalog: bool, latest: float, prepared: Prepared) -> None:
        """Any message: one object or a JSON array of them; invalid elements are noted for its dead letter."""
        try:
            elements = decode_payload(message.value, self._max_bytes)
        except InvalidRecord as error:
            prepared.failures[position] = [(None, error.reason)]
            return
        if not elements:
            prepared.failures[position] = [(None, "empty_array")]
            return
        value = message.value
        indexed = len(elements) > 1 or (value[:1] != b"{" and value.lstrip()[:1] == b"[")
        if indexed:
            prepared.elements[position] = len(elements)
        for index, element in enumerate(elements):
            try:
                parsed = self._parse(element, catalog, latest)
            except InvalidRecord as error:
                prepared.failures.setdefault(position, []).append((index if indexed else None, error.reason))
                continue
            prepared.valid.append(parsed)
            prepared.origins.append((position, index) if indexed else position)

    def learn(self, prepared: Prepared, replay: bool = True):
        """The engine step alone; returns the engine's report (None when nothing was valid). ``replay``:
        True = replay inline, False = owe it (the daemon's loop chooses per batch, see ``replay_mode``)."""
        if not prepared.valid:
            return None
        if prepared.catalog:
            return self.engine.catalog(prepared.valid)
        return self.engine.learn(prepared.valid, replay=replay)

    def finish(self, prepared: Prepared, report) -> BatchResult:
        """Dead-letter what validation or the engine rejected (one letter per message) and mark changed
        items, retires and users in the sink."""
        result = prepared.result
        if report is not None and report.rejected:
            position = {id(record): index for index, record in enumerate(prepared.valid)}
            for record, reason in report.rejected:
                origin = prepared.origins[position[id(record)]]
                message_position, index = (origin, None) if type(origin) is int else origin
                prepared.failures.setdefault(message_position, []).append((index, reason))
        self._dead_letter(prepared)
        if report is None:
            return result
        if prepared.catalog:
            result.catalog_updates += report.accepted
        else:
            result.events += report.accepted
        self._mark_changed(prepared.records, prepared.users, prepared.catalog)
        return result

    def _parse(self, element: Any, catalog: bool, latest: float) -> Any:
        """The record to learn. The common event shape is checked inline (the same rules as
        :func:`parse_event`) and passed on as a ``(user, item, ts)`` tuple; everything else goes through the parsers."""
        if catalog:
            return parse_catalog_update(element)
        plain = _plain_tuple(element, latest)
        return plain if plain is not None else parse_event(element, self._clock(), self._max_future)

    def take_changed(self, follow: bool = True) -> set[str]:
        """The engine's changed items under the publish rule ("changed means moved", or every change);
        ``follow=False``: the neighbour index does not follow them yet (:meth:`Trainer.take_changed`)."""
        now = self._clock()
        if follow:
            self.followed_at = now
        if self.publish_rule is None:
            return self.engine.take_changed(follow=follow)
        threshold, max_age = self.publish_rule
        self.holding = self.holding or threshold > 0
        return self.engine.take_changed(threshold, max_age, now, follow=follow)

    def followed_within(self, seconds: float) -> bool:
        """The neighbour index followed a take (this process's) less than ``seconds`` ago."""
        return self._clock() < self.followed_at + seconds

    def take_waiting(self) -> set[str]:
        """Every changed item, the ones the threshold held back included (a take with staleness bound 0): when
        the loop is idle, what is served becomes exactly the model, as with no threshold."""
        if not self.holding:
            return set()
        self.holding = False
        self.followed_at = self._clock()
        return self.engine.take_changed(self.publish_rule[0], 0.0, self.followed_at)

    def _mark_changed(self, records: list, users: set[str], catalog: bool = False) -> None:
        stamps = getattr(records, "timestamps", None)
        if stamps is None:
            stamps = [message.timestamp for message in records]
        produced = [stamp for stamp in stamps if stamp and stamp > 0]
        produced_at = min(produced) / 1000.0 if produced else self._clock()
        self._sink.add_items(self.take_changed(), produced_at, urgent=catalog)
        self._sink.add_retired(self.engine.take_retired())
        if users:
            self._sink.add_users(users)

    def _dead_letter(self, prepared: Prepared) -> None:
        """One dead letter per message with failures, in offset order; an array's lists its failing elements."""
        for position in sorted(prepared.failures):
            failures = prepared.failures[position]
            message = prepared.records[position]
            if position in prepared.elements:
                failures.sort(key=itemgetter(0))
                self._dead_letters.add(message, failures[0][1], failures=failures,
                                       elements=prepared.elements[position])
            else:
                self._dead_letters.add(message, failures[0][1], failures[0][0])
            prepared.result.dead_letters += 1
        prepared.failures.clear()
