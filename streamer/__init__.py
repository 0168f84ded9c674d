"""streamer — a streaming Item2vec trainer: Kafka events in, fresh item vectors in Redis out.

``from streamer import Trainer`` gives the pure in-process engine (no Kafka, no Redis).
"""

__version__ = "0.1.0"

__all__ = ["Trainer", "__version__"]

# Stop signals caught by ``python -m streamer run`` before the daemon's handlers exist (streamer.__main__,
# streamer.cli): kept here, in the first module imported, so the earliest handler can record them.
EARLY_SIGNALS: list[int] = []


def __getattr__(name: str):
    # Imported lazily so `streamer --help` and `streamer replay` do not pay for compiling the engine.
    if name == "Trainer":
        from streamer.core.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'streamer' has no attribute {name!r}")
