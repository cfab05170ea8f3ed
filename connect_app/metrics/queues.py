"""RQ queue depth, read from Redis at scrape time (the same answer from any web process).

Plain reads only (``LLEN``, ``ZCARD``, ``SCARD``, one job's ``enqueued_at``): RQ's own
``registry.count`` would run a cleanup, and a scrape must not change anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from rq.job import Job
from rq.queue import Queue
from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.utils import str_to_date
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

# workers.queues.QueueName, in priority order (the web never imports ``workers``).
KNOWN_QUEUES = ("interactive", "webhooks", "indexing", "maintenance")
# workers.dispatcher.HEARTBEAT_KEY: epoch of the last dispatcher tick (expires after a minute or more).
DISPATCHER_HEARTBEAT_KEY = "gcj:dispatcher:heartbeat"
# Queues RQ knows of (``rq:queues``) are added, up to this many, so a custom queue shows too.
MAX_QUEUES = 32

_REGISTRIES = (
    ("started", StartedJobRegistry),
    ("deferred", DeferredJobRegistry),
    ("scheduled", ScheduledJobRegistry),
    ("failed", FailedJobRegistry),
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def queue_names(connection: Any) -> list[str]:
    names = list(KNOWN_QUEUES)
    prefix = Queue.redis_queue_namespace_prefix
    for key in sorted(_text(k) for k in connection.smembers(Queue.redis_queues_keys)):
        name = key[len(prefix) :] if key.startswith(prefix) else key
        if name not in names and len(names) < MAX_QUEUES:
            names.append(name)
    return names


def _age_seconds(raw: Any, now: datetime) -> float:
    if not raw:
        return 0.0
    try:
        enqueued = str_to_date(raw)
    except (TypeError, ValueError):
        return 0.0
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    return max(0.0, (now - enqueued).total_seconds())


def queue_metrics(connection: Any, *, now: datetime | None = None) -> list[Metric]:
    now = now or datetime.now(UTC)
    names = queue_names(connection)
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(Queue.redis_queue_namespace_prefix + name)
        for _, registry in _REGISTRIES:
            pipe.zcard(registry.key_template.format(name))
        pipe.scard(WORKERS_BY_QUEUE_KEY % name)
        pipe.lindex(Queue.redis_queue_namespace_prefix + name, 0)
    pipe.get(DISPATCHER_HEARTBEAT_KEY)
    *results, heartbeat = pipe.execute()

    jobs = GaugeMetricFamily(
        "gcj_queue_jobs", "RQ jobs per queue and state, read from Redis at scrape time.", labels=["queue", "state"]
    )
    workers = GaugeMetricFamily("gcj_queue_workers", "RQ workers registered for each queue.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "gcj_queue_oldest_job_age_seconds",
        "How long the job at the head of each queue has waited (0 when the queue is empty).",
        labels=["queue"],
    )
    heads: list[tuple[str, str]] = []
    width = 3 + len(_REGISTRIES)
    for i, name in enumerate(names):
        row = results[i * width : (i + 1) * width]
        jobs.add_metric([name, "queued"], float(row[0]))
        for (state, _), count in zip(_REGISTRIES, row[1 : 1 + len(_REGISTRIES)], strict=True):
            jobs.add_metric([name, state], float(count))
        workers.add_metric([name], float(row[-2]))
        if row[-1] is not None:
            heads.append((name, _text(row[-1])))
        else:
            oldest.add_metric([name], 0.0)
    if heads:
        pipe = connection.pipeline(transaction=False)
        for _, job_id in heads:
            pipe.hget(Job.key_for(job_id), "enqueued_at")
        for (name, _), raw in zip(heads, pipe.execute(), strict=True):
            oldest.add_metric([name], _age_seconds(raw, now))
    dispatcher = GaugeMetricFamily(
        "gcj_dispatcher_heartbeat_age_seconds",
        "Seconds since any worker's dispatcher last ticked (absent: none ticked in the last minute or more).",
    )
    if heartbeat is not None:
        try:
            dispatcher.add_metric([], max(0.0, now.timestamp() - float(_text(heartbeat))))
        except ValueError:
            pass
    return [jobs, workers, oldest, dispatcher]
