"""The pure engine: sessions, vocabulary, noise distribution, SGNS step, trainer, checkpoints, export.

No Kafka, Redis, clock or logging side effects live here; the daemon is a shell around :class:`Trainer`.
"""

__all__ = ["Trainer", "TrainerSettings", "LearnReport"]


def __getattr__(name: str):
    if name in __all__:
        from streamer.core import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'streamer.core' has no attribute {name!r}")
