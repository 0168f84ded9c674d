"""Adapters that put the engine (:class:`streamer.Trainer`) under the protocol.

- "streamer": the ranking the engine serves, ``Trainer.most_similar(item, k)`` (its batched form
  ``most_similar_many`` when the engine has it);
- "streamer-cosine": plain cosine ranking (:func:`rank_by_cosine`) on ``Trainer.vectors()``;
- "streamer-exact": "streamer" by brute force (``exact=True``: every item scored, no neighbour index), the
  reference the index's served quality is measured against (docs/neighbours.md).

Both learn with ``Trainer.learn(events)``, the same call the daemon makes, and take the catalog protocol's
upserts with ``Trainer.catalog(updates)`` (the daemon's catalog-topic call). The Trainer is imported
when an adapter is built, so the baselines run without compiling the engine; the learn time reported
excludes the one-off compilation (see ``_new_trainer``).
"""

from __future__ import annotations

from typing import Any

from streamer.evaluation.protocol import Event, rank_by_cosine

__all__ = ["StreamerCosineModel", "StreamerExactModel", "StreamerModel"]


_WARMED: set[tuple] = set()


def _new_trainer(seed: int, settings: dict[str, Any]):
    """A Trainer; the first one per settings in a process first trains a throwaway copy on a few events so
    the one-off compilation of the engine's hot loop is not counted as learning time."""
    from streamer import Trainer

    signature = tuple(sorted((name, repr(value)) for name, value in settings.items()))
    if signature not in _WARMED:
        Trainer(seed=seed, **settings).learn([("warm", "a", 0.0), ("warm", "b", 1.0), ("warm", "c", 2.0)])
        _WARMED.add(signature)
    return Trainer(seed=seed, **settings)


class StreamerModel:
    """Ranks with ``most_similar``; a query item the Trainer has no vector for is a miss."""

    name = "streamer"
    exact = False

    def __init__(self, seed: int = 1, trainer=None, **settings):
        self.trainer = trainer if trainer is not None else _new_trainer(seed, settings)
        self._known: set[str] | None = None

    def learn(self, events: list[Event]) -> None:
        self.trainer.learn(events)
        self._known = None

    def catalog(self, updates: list[dict]) -> None:
        self.trainer.catalog(updates)
        self._known = None

    def known_items(self) -> set[str]:
        if self._known is None:
            ids, _ = self.trainer.vectors()
            self._known = set(ids)
        return self._known

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        known = self.known_items()
        asked = [query for query in query_items if query in known]
        if hasattr(self.trainer, "most_similar_many"):  # the batched form of most_similar, when the engine has it
            answers = (self.trainer.most_similar_many(asked, k, exact=True) if self.exact
                       else self.trainer.most_similar_many(asked, k))
        else:
            answers = [self.trainer.most_similar(query, k) for query in asked]
        ranked = {query: [item for item, _ in answer if item != query][:k] for query, answer in zip(asked, answers)}
        return [ranked.get(query) for query in query_items]


class StreamerExactModel(StreamerModel):
    """``most_similar(..., exact=True)``: the brute force over every live item."""

    name = "streamer-exact"
    exact = True


class StreamerCosineModel:
    """Cosine ranking on the Trainer's own vectors (``vectors()``), the same math as the gensim baselines."""

    name = "streamer-cosine"

    def __init__(self, seed: int = 1, trainer=None, **settings):
        self.trainer = trainer if trainer is not None else _new_trainer(seed, settings)

    def learn(self, events: list[Event]) -> None:
        self.trainer.learn(events)

    def catalog(self, updates: list[dict]) -> None:
        self.trainer.catalog(updates)

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        ids, vectors = self.trainer.vectors()
        return rank_by_cosine(ids, vectors, query_items, k)
