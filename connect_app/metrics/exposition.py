"""One registry per scrape: this process's (or all gunicorn processes') request samples,
plus what is read from Redis and the database at scrape time.

A source that cannot be read (Redis or the database down) leaves its metrics out and
reports ``gcj_metrics_source_up{source=...} 0``; the scrape itself still answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connect_app.extensions import db, redis_conn
from connect_app.metrics import http
from connect_app.metrics.index_runs import index_run_metrics
from connect_app.metrics.queues import queue_metrics
from connect_app.metrics.rate_limits import rate_limit_metrics

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Source = Callable[[datetime], list[Metric]]


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when it is set and exists (gunicorn: ``gunicorn_conf``)."""
    raw = os.environ.get(MULTIPROC_ENV, "").strip()
    return Path(raw) if raw and Path(raw).is_dir() else None


def _queues(now: datetime) -> list[Metric]:
    return queue_metrics(redis_conn.client, now=now)


def _index_runs(now: datetime) -> list[Metric]:
    session = db.session()
    try:
        return index_run_metrics(session, now=now)
    finally:
        session.rollback()  # read-only; leave no transaction open in this thread


def _rate_limits(now: datetime) -> list[Metric]:
    session = db.session()
    try:
        return rate_limit_metrics(session, now=now)
    finally:
        session.rollback()


DEFAULT_SOURCES: dict[str, Source] = {
    "queues": _queues,
    "index_runs": _index_runs,
    "rate_limits": _rate_limits,
}


class SharedStateCollector(Collector):
    """Runs every source at collect time; a failing source is reported, not raised."""

    def __init__(self, sources: dict[str, Source] | None = None) -> None:
        self._sources = DEFAULT_SOURCES if sources is None else sources

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        up = GaugeMetricFamily(
            "gcj_metrics_source_up",
            "1 when the shared state behind a group of metrics could be read at this scrape.",
            labels=["source"],
        )
        for name, source in self._sources.items():
            try:
                families = source(now)
            except Exception as e:
                log.warning("metrics: could not read %s: %s", name, type(e).__name__)
                up.add_metric([name], 0.0)
                continue
            up.add_metric([name], 1.0)
            yield from families
        yield up


def build_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is not None:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(http.LOCAL_REGISTRY)
    for collector in extra:
        registry.register(collector)
    return registry


def render(sources: dict[str, Source] | None = None) -> tuple[bytes, str]:
    """The exposition text and its content type (needs an app context for the sources)."""
    registry = build_registry([SharedStateCollector(sources)])
    return generate_latest(registry), CONTENT_TYPE_LATEST
