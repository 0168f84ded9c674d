"""The engine's frozen configuration: every knob of :class:`streamer.Trainer` with its default."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from streamer.errors import ConfigError

__all__ = ["TrainerSettings"]


@dataclass(frozen=True)
class TrainerSettings:
    """Constructor configuration of :class:`streamer.Trainer` (saved in checkpoints).

    Model: ``vector_size``, ``window`` (previous session items each new item is paired with),
    ``negative`` (noise samples per pair), ``alpha`` (noise distribution count**alpha, may be negative),
    ``subsample`` (word2vec frequent-item subsampling threshold from running counts, 0 = off: off by
    default, it lowered HR@10 on the shared data), ``learning_rate`` and ``accum_initial`` (per-row
    AdaGrad: step = learning_rate / sqrt(accum_initial + sum of squared gradients)), ``dynamic_window``
    (reach drawn uniformly in 1..window per event, as word2vec; off by default: the full window ranked
    better), ``distance_power`` (a pair ``d`` positions apart in its session weighs ``d ** -distance_power``:
    1 = GloVe's 1/d, 0 = flat; next-item queries ask for the adjacent item), ``backward_weight`` (weight of the
    later -> earlier update of a pair, the earlier -> later one weighs 1: next-item prediction is directional),
    ``init_noise`` (relative noise on neighbour-initialised vectors), ``cold_start_neighbours``
    (items averaged for a catalog upsert), ``prior_weight`` (at the first event of an item announced by the
    catalog, its attribute prior counts as this many session-context neighbours: the start is the blend
    (sum of the context items + prior_weight * prior) / (context items + prior_weight); 0 = context only).
    Sessions (event time, seconds): ``session_gap``, ``max_session_length``, ``lateness``. A user's session
    gap is judged on the user's own clock; the event-time watermark that closes idle sessions, expires
    items (``item_ttl``) and decays popularity only moves to a time that ``watermark_quorum`` events in a row
    have reached (the minimum of the last that many): one event with a clock hours ahead cannot close
    everyone's session (1 = every event moves it, as before this knob).
    Replay: ``replay_passes`` extra pairs drawn uniformly from the buffer of the last ``replay_buffer``
    pairs per pair learned (0 = off). A small buffer biases replay towards recent pairs, which is what
    next-item prediction on a drifting stream needs (10k beat 100k and 1M on all three shared sets).
    ``interleaved_passes``: when replay is deferred (``learn(..., replay=False)``, the daemon under load), this
    many of the passes still run inline, interleaved with learning, and only the rest is owed: replay paid
    after a burst scored below replay interleaved with it; with two interleaved passes the daemon's served
    vectors score within 0.007 HR@10 of in process on the shared sets; each pass slows a backlog (README).
    Bounds: ``max_items`` (evict least-used items beyond it), ``item_ttl`` (expire items unseen for
    that long in event time); None = unbounded.
    Serving: ``vectors()`` serves input + output vectors; ``most_similar`` scores = ``dot_weight`` *
    (in[q].out[j] + out[q].in[j]) / 2 + ``cosine_weight`` * cosine of served vectors + ``popularity_weight``
    * log(1 + count) (alpha would turn the dot alone into log p(j|q); next to the cosine term a stronger prior
    ranked better), the count decayed by ``popularity_half_life`` seconds of event time (None: cumulative; one
    year by default: it only bites on streams spanning years, where it lifts new items); ``user_decay`` weights a user's session items
    by age; ``attribute_weight`` scales the catalog's term: candidates sharing the query's attributes (the
    attributes' most frequent items) gain ``attribute_weight * log(lift) * shared share``, the lift measured on
    the stream (:mod:`streamer.core.attributes`; 0 = off); ``cooccurrence_weight`` scales the observed
    co-occurrence term: a query's ``cooccurrence_partners`` most observed session partners (a bounded table of the
    pairs learned) are candidates and gain ``cooccurrence_weight * log(1 + count)`` (:mod:`streamer.core.observed_pairs`;
    0 = off); ``cold_query_events``: a query with n events whose attributes the measured attribute term credits has
    its dot and cosine terms scaled by n / (n + cold_query_events), so the counts (popularity, attribute and
    co-occurrence terms) order its candidates while its vectors are young (0 = off). The defaults are the settings measured best on all three shared data sets together
    (the shared/EVALUATION.md protocol, S = 10 and 100).
    Runtime: ``seed``, ``batch_size`` (events per compiled call), ``workers``: 1 = one deterministic thread
    (bit-reproducible; A then B equals A+B); more = the bookkeeping stays serial and deterministic while the
    SGNS updates run lock-free on ``workers`` numba threads (Hogwild, see :mod:`streamer.core.parallel`):
    faster on several cores, vectors not bit-reproducible.
    """

    vector_size: int = 64
    window: int = 3
    negative: int = 30
    alpha: float = 0.75
    subsample: float = 0.0
    learning_rate: float = 0.2
    accum_initial: float = 0.1
    dynamic_window: bool = False
    distance_power: float = 1.0
    backward_weight: float = 0.5
    init_noise: float = 0.1
    cold_start_neighbours: int = 5
    prior_weight: float = 0.0
    attribute_weight: float = 1.0
    cooccurrence_weight: float = 1.0
    cooccurrence_partners: int = 32
    cold_query_events: float = 10.0
    session_gap: float = 1800.0
    max_session_length: int = 200
    lateness: float = 300.0
    watermark_quorum: int = 16
    replay_passes: int = 8
    replay_buffer: int = 10_000
    interleaved_passes: int = 2
    max_items: int | None = None
    item_ttl: float | None = None
    dot_weight: float = 1.0
    cosine_weight: float = 8.0
    popularity_weight: float = 1.25
    popularity_half_life: float | None = 365 * 86400.0
    user_decay: float = 0.7
    seed: int = 1
    workers: int = 1
    batch_size: int = 65536

    def __post_init__(self) -> None:
        positive_ints = ("vector_size", "window", "max_session_length", "batch_size", "workers", "cold_start_neighbours",
                         "watermark_quorum")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("negative", "replay_passes", "replay_buffer", "interleaved_passes", "cooccurrence_partners"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("alpha", "subsample", "learning_rate", "accum_initial", "init_noise", "session_gap", "distance_power",
                     "backward_weight", "lateness", "prior_weight", "attribute_weight", "cooccurrence_weight",
                     "cold_query_events", "dot_weight", "cosine_weight", "popularity_weight", "user_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for name in ("subsample", "init_noise", "session_gap", "lateness", "user_decay", "distance_power",
                     "backward_weight", "prior_weight", "attribute_weight", "cooccurrence_weight", "cold_query_events"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.learning_rate <= 0 or self.accum_initial <= 0:
            raise ConfigError("learning_rate and accum_initial must be > 0")
        if self.max_items is not None and (not isinstance(self.max_items, int) or self.max_items < 2):
            raise ConfigError("max_items must be None or an integer >= 2")
        half_life = self.popularity_half_life
        if half_life is not None and (isinstance(half_life, bool) or not isinstance(half_life, (int, float))
                                      or not half_life > 0 or math.isnan(half_life)):
            raise ConfigError("popularity_half_life must be None or a positive number of seconds")
        if self.item_ttl is not None and not (isinstance(self.item_ttl, (int, float)) and self.item_ttl > 0):
            raise ConfigError("item_ttl must be None or a positive number of seconds")
        if not isinstance(self.seed, int):
            raise ConfigError("seed must be an integer")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainerSettings":
        """Settings from ``to_dict``; a knob missing from an older checkpoint takes the value that reproduces
        how that checkpoint was trained (see ``_BEFORE_KNOB``), not today's default."""
        known = {field.name for field in dataclasses.fields(cls)}
        chosen = {name: value for name, value in _BEFORE_KNOB.items() if name not in values}
        chosen.update({name: value for name, value in values.items() if name in known})
        return cls(**chosen)


_BEFORE_KNOB = {"distance_power": 0.0, "backward_weight": 1.0, "popularity_half_life": None, "interleaved_passes": 0}  # the behaviour before these knobs existed
