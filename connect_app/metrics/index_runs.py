"""Index run durations, computed at scrape time from the ``index_run`` table.

Why from the table and not observed in the worker: runs execute in RQ work horses on any
number of worker machines, and Prometheus scrapes web processes. The table already holds
every run's ``queued_at``/``started_at``/``finished_at``, so any web process on any machine
answers the same numbers, with nothing to aggregate and nothing lost when a work horse exits.

What is reported are gauges over a sliding window (``WINDOW``, the latest runs by id, at most
``SAMPLE_LIMIT`` of them so a scrape is one primary-key range read however large the
table grows): duration and queue-wait quantiles per run kind, and how many runs finished
per kind and status. Because every web process reports the same values, aggregate them with
``max``/``avg`` across instances, never ``sum``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.models import IndexRun, RunStatus

WINDOW = timedelta(minutes=15)
SAMPLE_LIMIT = 5000
QUANTILES = (0.5, 0.9, 0.99, 1.0)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values (q=1 is the maximum)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def index_run_metrics(session: Session, *, now: datetime | None = None) -> list[Metric]:
    now = now or datetime.now(UTC)
    since = now - WINDOW
    rows = session.execute(
        select(IndexRun.kind, IndexRun.status, IndexRun.queued_at, IndexRun.started_at, IndexRun.finished_at)
        .order_by(IndexRun.id.desc())
        .limit(SAMPLE_LIMIT)
    ).all()

    durations: dict[str, list[float]] = defaultdict(list)
    waits: dict[str, list[float]] = defaultdict(list)
    finished: dict[tuple[str, str], int] = defaultdict(int)
    running: dict[str, int] = defaultdict(int)
    oldest_running: dict[str, float] = defaultdict(float)
    for kind, status, queued_at, started_at, finished_at in rows:
        started, ended, queued = _aware(started_at), _aware(finished_at), _aware(queued_at)
        if status == RunStatus.RUNNING.value and started is not None:
            running[kind] += 1
            oldest_running[kind] = max(oldest_running[kind], (now - started).total_seconds())
        if started is not None and queued is not None and started >= since:
            waits[kind].append(max(0.0, (started - queued).total_seconds()))
        if ended is None or ended < since:
            continue
        finished[(kind, status)] += 1
        if started is not None:
            durations[kind].append(max(0.0, (ended - started).total_seconds()))

    duration = GaugeMetricFamily(
        "gcj_index_run_duration_seconds",
        f"Duration of index runs finished in the last {int(WINDOW.total_seconds())}s, by kind (quantile 1 = max).",
        labels=["kind", "quantile"],
    )
    wait = GaugeMetricFamily(
        "gcj_index_run_wait_seconds",
        f"Queue wait of index runs started in the last {int(WINDOW.total_seconds())}s, by kind (quantile 1 = max).",
        labels=["kind", "quantile"],
    )
    for family, samples in ((duration, durations), (wait, waits)):
        for kind, values in sorted(samples.items()):
            values.sort()
            for q in QUANTILES:
                family.add_metric([kind, repr(q)], quantile(values, q))
    done = GaugeMetricFamily(
        "gcj_index_runs_finished_recent",
        f"Index runs finished in the last {int(WINDOW.total_seconds())}s, by kind and status.",
        labels=["kind", "status"],
    )
    for (kind, status), count in sorted(finished.items()):
        done.add_metric([kind, status], float(count))
    active = GaugeMetricFamily("gcj_index_runs_running", "Index runs in progress, by kind.", labels=["kind"])
    oldest = GaugeMetricFamily(
        "gcj_index_run_oldest_running_seconds", "How long the oldest run in progress has run, by kind.", labels=["kind"]
    )
    for kind, count in sorted(running.items()):
        active.add_metric([kind], float(count))
        oldest.add_metric([kind], oldest_running[kind])
    return [duration, wait, done, active, oldest]
