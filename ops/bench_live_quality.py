"""Processor time per event of the live check (docs/live-quality.md), next to the engine learning the same batches.

    python ops/bench_live_quality.py yoochoose

``LiveQuality.observe`` on the data set in ``max_poll_records`` (5,000) batches, best of 3, for the defaults, the
defaults without the shadow, and rate 1.0; ``Trainer.learn(batch, replay=False)`` (how the daemon learns a
backlog) on the same batches for scale. Processor time of this process only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer import Trainer  # noqa: E402
from streamer.config import load_settings  # noqa: E402
from streamer.core.live_quality import LiveQuality  # noqa: E402
from streamer.datasets import load_events  # noqa: E402


def per_event(action, events: int, repeats: int = 3) -> float:
    """Best processor microseconds per event over ``repeats`` runs of ``action()``."""
    best = float("inf")
    for _ in range(repeats):
        began = time.process_time()
        action()
        best = min(best, time.process_time() - began)
    return best / events * 1e6


def main(argv: list[str] | None = None) -> int:
    dataset = (argv or sys.argv[1:] or ["yoochoose"])[0]
    events = load_events(dataset)
    settings = load_settings(environ={})
    batches = [events[start:start + settings.max_poll_records] for start in range(0, len(events),
                                                                                  settings.max_poll_records)]
    Trainer(seed=1).learn(events[:2000])  # compiled before the clock starts

    def learn() -> None:
        engine = Trainer(seed=1)
        for batch in batches:
            engine.learn(batch, replay=False)

    print(f"{dataset}: {len(events)} events; engine.learn, replay owed: {per_event(learn, len(events), 1):.2f} us/event")
    variants = {"defaults": {}, "no shadow": {"shadow_items": 0}, "rate 1.0": {"sample_rate": 1.0}}
    for label, change in variants.items():
        options = {"sample_rate": settings.live_sample_rate, "window": settings.live_window,
                   "shadow_items": settings.live_shadow_items, "shadow_pairs": settings.live_shadow_pairs,
                   "max_sessions": settings.live_sessions}
        options.update(change)

        def observe() -> None:
            quality = LiveQuality(**options)
            for batch in batches:
                quality.observe(batch)

        print(f"  live check, {label}: {per_event(observe, len(events)):.2f} us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
