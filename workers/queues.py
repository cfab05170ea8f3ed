"""Queue names. Listed in priority order: a worker drains earlier queues first."""

from __future__ import annotations

from enum import StrEnum


class QueueName(StrEnum):
    INTERACTIVE = "interactive"  # user-facing work (create branch / PR): seconds matter
    WEBHOOKS = "webhooks"  # push-triggered incremental indexing
    INDEXING = "indexing"  # initial, scheduled and manual indexing
    MAINTENANCE = "maintenance"  # pruning, key rotation, reports


ALL_QUEUES: tuple[QueueName, ...] = tuple(QueueName)
