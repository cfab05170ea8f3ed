"""Hosts' remaining rate budgets, read at scrape time from the shared store in Redis.

The host clients record every response's rate-limit headers in Redis
(:class:`~connect_app.hosts.ratelimit.RedisBudgetStore`, keyed by host and a stretched
fingerprint of the credential). To name a budget by integration, this builds the
integration's host client, which decrypts the credentials and derives the fingerprint:
no network call (unlike ``integrations.host_for``, nothing is refreshed), and clients are
kept per integration and credentials version, at most ``MAX_NEW_CLIENTS_PER_SCRAPE`` new
ones per scrape so a first scrape over thousands of integrations stays quick (the rest
appear on the following scrapes).

Labels are the integration id and provider only: never a host URL with credentials, never
a fingerprint.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.extensions import redis_conn
from connect_app.hosts.base import GitHost, ProviderId, RateBudget
from connect_app.models import Integration, IntegrationStatus

log = logging.getLogger(__name__)

MAX_INTEGRATIONS = 2000
MAX_NEW_CLIENTS_PER_SCRAPE = 200
# These report no budget (plain git over the wire; AWS paces boto3 itself).
_NO_BUDGET = frozenset({ProviderId.GIT.value, ProviderId.AWS_CODECOMMIT.value})

_CacheKey = tuple[int, str, str | None, str | None, str, int]
_hosts: dict[_CacheKey, GitHost | None] = {}
_lock = threading.Lock()


def _client(integration: Integration, allow_new: bool) -> tuple[GitHost | None, bool]:
    """(client or None, whether one was built now)."""
    from connect_app.hosts.registry import build_host
    from connect_app.integrations import host_config

    key: _CacheKey = (
        integration.id,
        integration.provider,
        integration.base_url,
        integration.namespace,
        integration.credentials_encrypted,
        id(redis_conn.client),
    )
    with _lock:
        if key in _hosts:
            return _hosts[key], False
    if not allow_new:
        return None, False
    try:
        host: GitHost | None = build_host(host_config(integration))
    except Exception as e:  # a broken integration has no budget to show; its runs say why
        log.debug("no host client for integration %s: %s", integration.id, type(e).__name__)
        host = None
    with _lock:
        if len(_hosts) >= 2 * MAX_INTEGRATIONS:
            _hosts.clear()
        _hosts[key] = host
    return host, True


def _budget(host: GitHost) -> RateBudget | None:
    try:
        return host.rate_budget()
    except RedisError:
        raise
    except Exception as e:
        log.debug("could not read a rate budget: %s", type(e).__name__)
        return None


def rate_limit_metrics(session: Session, *, now: datetime | None = None) -> list[Metric]:
    now = now or datetime.now(UTC)
    integrations = session.scalars(
        select(Integration)
        .where(Integration.status != IntegrationStatus.DISABLED.value)
        .where(Integration.provider.not_in(_NO_BUDGET))
        .order_by(Integration.id)
        .limit(MAX_INTEGRATIONS)
    ).all()
    labels = ["integration", "provider"]
    remaining = GaugeMetricFamily(
        "gcj_host_rate_limit_remaining",
        "Requests left in the host's current rate-limit window for an integration's credential.",
        labels=labels,
    )
    limit = GaugeMetricFamily("gcj_host_rate_limit_limit", "Size of that window.", labels=labels)
    reset = GaugeMetricFamily(
        "gcj_host_rate_limit_reset_seconds", "Seconds until that window resets (0 when past).", labels=labels
    )
    built = 0
    for integration in integrations:
        host, new = _client(integration, allow_new=built < MAX_NEW_CLIENTS_PER_SCRAPE)
        built += int(new)
        budget = _budget(host) if host is not None else None
        if budget is None:
            continue
        values = [str(integration.id), integration.provider]
        if budget.remaining is not None:
            remaining.add_metric(values, float(budget.remaining))
        if budget.limit is not None:
            limit.add_metric(values, float(budget.limit))
        if budget.reset_at is not None:
            reset.add_metric(values, max(0.0, (budget.reset_at - now).total_seconds()))
    return [remaining, limit, reset]


def clear_cache() -> None:
    with _lock:
        _hosts.clear()
