"""A daemon that finds no state: a first start, or a lost checkpoint (issue 16, item 3).

No checkpoint and no offsets committed by the group is a first start. No checkpoint while the group
*has* committed offsets means the model those offsets belong to is gone (the directory was emptied, a
volume was not mounted, the manifest was deleted): going on from the committed offsets would train a
new model on the tail of the stream and serve it beside the old one's vectors. The daemon refuses to
start with :class:`MissingStateError` unless ``--reset-model`` asks for a new model explicitly; then it
reads every partition from its beginning (the first checkpoint commits the new offsets) and deletes the
namespace's old vectors, neighbour lists, user vectors and meta first. ``--reset-model`` acts only when
no state is found: it never throws an existing checkpoint away.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, TopicPartition

from streamer.errors import StreamerError
from streamer.io.kafka_source import Offsets, consumer_options
from streamer.io.lease import FENCE_CHECK, Lease
from streamer.io.redis_sink import FencedError
from streamer.keys import Keys
from streamer.logs import log_event

__all__ = ["MissingStateError", "clear_namespace", "group_offsets", "start_without_state"]

logger = logging.getLogger("streamer.checkpoint")
DELETE_CHUNK = 500
_DELETE = FENCE_CHECK + "for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end return #KEYS - 1\n"


class MissingStateError(StreamerError):
    """The group has committed offsets but no checkpoint was found: the model would be lost silently."""


def group_offsets(settings) -> tuple[Offsets, Offsets]:
    """``(committed, beginnings)`` of every partition of ``settings.topics``, read without joining the group."""
    options = consumer_options(settings)
    options.pop("group_instance_id", None)  # it never joins: no static identity to share with the daemon's own
    consumer = KafkaConsumer(**options)
    try:
        partitions = [TopicPartition(topic, number) for topic in settings.topics
                      for number in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = {}
        for partition in partitions:
            offset = consumer.committed(partition)
            if offset is not None:
                committed[(partition.topic, partition.partition)] = offset
        beginnings = consumer.beginning_offsets(partitions) if partitions else {}
        return committed, {(partition.topic, partition.partition): offset for partition, offset in beginnings.items()}
    finally:
        consumer.close(autocommit=False)


def start_without_state(settings, client, lease: Lease) -> Offsets | None:
    """Where a daemon without state reads from: None = the group's own offsets (a first start: there are
    none); the beginnings after ``--reset-model``. Raises :class:`MissingStateError` otherwise."""
    committed, beginnings = group_offsets(settings)
    if not committed:
        return None
    summary = ",".join(f"{topic}/{number}={offset}" for (topic, number), offset in sorted(committed.items()))
    if not settings.reset_model:
        log_event(logger, logging.ERROR, "state_missing", checkpoint_dir=settings.checkpoint_dir,
                  group=settings.group, committed=summary)
        raise MissingStateError(
            f"no checkpoint in {settings.checkpoint_dir} but group {settings.group!r} has committed offsets "
            f"({summary}): restore the checkpoint, or start a new model with --reset-model")
    deleted = clear_namespace(client, Keys(settings.namespace), lease)
    log_event(logger, logging.WARNING, "model_reset", group=settings.group, committed=summary,
              start=",".join(f"{topic}/{number}={offset}" for (topic, number), offset in sorted(beginnings.items())),
              redis_keys_deleted=deleted)
    return beginnings


def clear_namespace(client, keys: Keys, lease: Lease) -> int:
    """Delete the namespace's items, neighbour lists, users and meta (fenced: only while we hold the lease).
    The lease and fence keys stay. Returns the number of keys deleted."""
    delete = client.register_script(_DELETE)
    deleted = 0
    patterns = [f"{keys.namespace}:{kind}:*" for kind in ("item", "nn", "user")] + [keys.meta]
    for pattern in patterns:
        chunk = []
        for name in client.scan_iter(match=pattern, count=1000):
            chunk.append(name)
            if len(chunk) >= DELETE_CHUNK:
                deleted += _delete_fenced(delete, keys, lease, chunk)
                chunk = []
        if chunk:
            deleted += _delete_fenced(delete, keys, lease, chunk)
    return deleted


def _delete_fenced(delete, keys: Keys, lease: Lease, names: list) -> int:
    result = delete(keys=[keys.lease, *names], args=[lease.value])
    if result == -1:
        raise FencedError("lease lost while clearing the namespace")
    return int(result)
