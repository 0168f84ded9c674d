"""``streamer export CHECKPOINT OUT [--binary]``: write a checkpoint's vectors in word2vec format."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run"]

HELP = "export a checkpoint's item vectors in word2vec text or binary format"
DESCRIPTION = (
    "Reads a Trainer checkpoint and writes every live item's vector in the word2vec format that "
    "gensim.models.KeyedVectors.load_word2vec_format reads (text by default, --binary for binary)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file written by the daemon or Trainer.save")
    parser.add_argument("out", help="output file (written atomically)")
    parser.add_argument("--binary", action="store_true", help="word2vec binary format instead of text")


def run(args: argparse.Namespace) -> int:
    from streamer.core.export import write_word2vec
    from streamer.core.trainer import Trainer

    trainer = Trainer.load(args.checkpoint)
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
