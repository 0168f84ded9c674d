"""gensim 4 Word2Vec baselines of the protocol: "static", "online" and "retrain".

Hyperparameters are the protocol's: ``sg=1, negative=5, window=3, vector_size=64, min_count=1,
epochs=10, sample=1e-3``. Sentences are sessions (per key, new after a gap > 30 minutes). For
reproducibility every model uses ``workers=1``, the given ``seed`` and a deterministic hash function
(gensim's default ``hash`` of str changes with ``PYTHONHASHSEED``).

gensim is optional (the ``eval`` extra): it is imported when a model is built, with a clear error.
"""

from __future__ import annotations

import zlib

from streamer.errors import ConfigError, StreamerError
from streamer.evaluation.protocol import SESSION_GAP_SECONDS, Event, SessionTracker, rank_by_cosine

__all__ = ["GENSIM_SETTINGS", "GensimModel", "GensimUnavailable", "session_sentences"]

GENSIM_SETTINGS = dict(sg=1, negative=5, window=3, vector_size=64, min_count=1, epochs=10, sample=1e-3)
MODES = ("static", "online", "retrain")


class GensimUnavailable(StreamerError):
    """The gensim baselines were asked for but gensim is not installed."""


def _word2vec_class():
    try:
        from gensim.models import Word2Vec
    except ImportError as error:
        raise GensimUnavailable(
            "the gensim baselines need gensim: pip install -e '.[eval]' in a checkout, "
            "or pip install 'streamer-item2vec[eval]' (or drop gensim-* from --models)"
        ) from error
    return Word2Vec


def stable_hash(text: str) -> int:
    """Deterministic across processes, unlike ``hash(str)``."""
    return zlib.crc32(text.encode("utf-8"))


def session_sentences(
    tracker: SessionTracker, events: list[Event], current: dict[str, list[str]] | None = None
) -> list[list[str]]:
    """The sessions that start in ``events`` (``tracker`` keeps session state across calls).

    With a persistent ``current`` (key -> its open session list), an event that continues a session
    opened in an earlier call is appended to that earlier list; without it, each call starts fresh
    fragments (what "online" trains on).
    """
    current = {} if current is None else current
    sentences: list[list[str]] = []
    for key, item, ts in events:
        if not tracker.push(key, item, ts) or key not in current:
            current[key] = []
            sentences.append(current[key])
        current[key].append(item)
    return sentences


class GensimModel:
    """``mode``: "static" learns the warm-up only, "online" adds each chunk with ``build_vocab(update=True)``
    then ``train``, "retrain" trains from scratch on every session seen so far at each ``learn``."""

    def __init__(self, mode: str, seed: int = 1, **overrides):
        if mode not in MODES:
            raise ConfigError(f"gensim mode must be one of {MODES}, not {mode!r}")
        self.Word2Vec = _word2vec_class()
        self.mode = mode
        self.name = f"gensim-{mode}"
        self.settings = {**GENSIM_SETTINGS, **overrides, "seed": seed, "workers": 1, "hashfxn": stable_hash}
        self.tracker = SessionTracker(window=1, gap=SESSION_GAP_SECONDS)
        self.history: list[list[str]] = []  # retrain: every session so far, extended in place
        self.open_sessions: dict[str, list[str]] = {}
        self.model = None

    def learn(self, events: list[Event]) -> None:
        if self.mode == "retrain":
            self.history.extend(session_sentences(self.tracker, events, self.open_sessions))
            self.model = self._fresh(self.history)
            return
        sentences = session_sentences(self.tracker, events)
        if self.model is None:
            self.model = self._fresh(sentences)
        elif self.mode == "online" and sentences:
            self.model.build_vocab(sentences, update=True)
            self.model.train(sentences, total_examples=len(sentences), epochs=self.model.epochs)

    def _fresh(self, sentences: list[list[str]]):
        model = self.Word2Vec(**self.settings)
        model.build_vocab(sentences)
        model.train(sentences, total_examples=len(sentences), epochs=model.epochs)
        return model

    def rank(self, query_items: list[str], k: int) -> list[list[str] | None]:
        if self.model is None:
            return [None] * len(query_items)
        vectors = self.model.wv
        return rank_by_cosine(vectors.index_to_key, vectors.vectors, query_items, k)
