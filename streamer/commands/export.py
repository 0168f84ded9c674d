"""``streamer export CHECKPOINT OUT [--binary]``: write a checkpoint's vectors in word2vec format.

CHECKPOINT is the daemon's checkpoint directory (``--checkpoint-dir``: its newest consistent state, read
through :class:`streamer.io.checkpoint.CheckpointStore`) or one file written by ``Trainer.save``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "export a checkpoint's item vectors in word2vec text or binary format"
DESCRIPTION = (
    "Reads the daemon's checkpoint directory (its newest checkpoint) or a Trainer.save file and writes every "
    "live item's vector in the word2vec format that gensim.models.KeyedVectors.load_word2vec_format reads "
    "(text by default, --binary for binary)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the daemon's --checkpoint-dir (its newest checkpoint is read) or a file "
                        "written by Trainer.save")
    parser.add_argument("out", help="output file (written atomically)")
    parser.add_argument("--binary", action="store_true", help="word2vec binary format instead of text")


def _load(source: Path, trainer_class):
    """The engine of a checkpoint directory's newest consistent state, or of one checkpoint file."""
    from streamer.errors import CheckpointError
    from streamer.io.checkpoint import CheckpointStore

    if not source.exists():
        raise CheckpointError(f"{source}: no such checkpoint file or directory")
    if not source.is_dir():
        return trainer_class.load(source)
    engine, manifest = CheckpointStore(source).load(trainer_class.load)
    if engine is None:
        raise CheckpointError(f"{source}: no checkpoint in this directory (the daemon writes one per "
                              "--checkpoint-interval and when it stops)")
    print(f"{source}: checkpoint {manifest.sequence}, {engine.event_count:,} events learned")
    return engine


def run(args: argparse.Namespace) -> int:
    from streamer.core.export import write_word2vec
    from streamer.core.trainer import Trainer

    trainer = _load(Path(args.checkpoint), Trainer)
    ids, vectors = trainer.vectors()
    target = Path(args.out)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "wb") as stream:
        count = write_word2vec(stream, ids, vectors, binary=args.binary)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, target)
    print(f"exported {count} vectors of size {trainer.settings.vector_size} to {target}")
    return 0
