"""The group-join wedge (issue 16, item 1): detected by :class:`JoinWatch`, left by :func:`delete_group`.

Tansu 0.6.0 wedges a group when a member leaves while its JoinGroup is pending — what the fetch process
of a daemon killed within seconds of ``subscribed`` does when it finds itself orphaned and closes its
consumer. The group stays at generation 1 with the departed member as leader and every SyncGroup answers
REBALANCE_IN_PROGRESS: a successor is subscribed for ever without a partition. Measured against Tansu
0.6.0 with plain kafka-python consumers (session timeout 3 s, see docs/reliability.md): a new consumer
(a new member id) every 9 s was not assigned within 40 s (0 of 2 trials), nor one with a new
``group_instance_id`` (0 of 2); closing ours, deleting the group (DeleteGroups) and joining again was
assigned 3.3 s later. So the daemon, once subscribed without a partition for ``join_timeout`` seconds,
logs ``group_wedged``, reports not-ready, closes its consumer, deletes the group and joins again.

Deleting the group drops its committed offsets, which costs nothing here: the daemon positions every
partition at the offsets in its checkpoint (at least the committed ones, which were read when the source
opened), and its next checkpoint commits them again. On a healthy broker the deletion is refused while
other members are alive (NON_EMPTY_GROUP), and the daemon just joins again.
"""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient

from streamer.io.kafka_source import kafka_security_options

__all__ = ["JoinWatch", "delete_group"]


class JoinWatch:
    """Subscribed without any assigned partition for more than ``timeout`` seconds means wedged.

    >>> now = [0.0]
    >>> watch = JoinWatch(30.0, clock=lambda: now[0])
    >>> watch.update(assigned=False), watch.update(assigned=True)
    (None, None)
    >>> now[0] = 40.0; watch.update(assigned=False)  # the count starts when the partitions went
    >>> now[0] = 71.0; watch.update(assigned=False)
    31.0
    """

    def __init__(self, timeout: float, clock=time.monotonic):
        self.timeout = timeout
        self._clock = clock
        self._since: float | None = None

    def update(self, assigned: bool) -> float | None:
        """Seconds without a partition when that exceeds the timeout (then the count starts again), else None."""
        now = self._clock()
        if assigned:
            self._since = None
            return None
        if self._since is None:
            self._since = now
            return None
        waited = now - self._since
        if waited <= self.timeout:
            return None
        self._since = now
        return waited

    def reset(self) -> None:
        """The source was opened again: count from now."""
        self._since = None


def delete_group(settings) -> str:
    """Delete ``settings.group`` (its members and committed offsets); the broker's answer as text.
    Raises KafkaError when the broker cannot be asked."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.client_id}-rescue",
                             **kafka_security_options(settings))
    try:
        outcome = admin.delete_groups([settings.group])
    finally:
        admin.close()
    answer = outcome.get(settings.group) if isinstance(outcome, dict) else outcome
    return str(getattr(answer, "__name__", answer))
