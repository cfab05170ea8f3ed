"""Hosts' remaining rate budgets, read at scrape time from the shared store in Redis.

The host clients record every response's rate-limit headers in Redis
(:class:`~connect_app.hosts.ratelimit.RedisBudgetStore`, keyed by host and a stretched
fingerprint of the credential). To name a budget by integration, this builds the
integration's host client (:func:`connect_app.indexing.budgets.cached_host`, shared with the
dispatcher), which decrypts the credentials and derives the fingerprint: no network call,
nothing refreshed, clients kept per integration and credentials version, at most
``MAX_NEW_CLIENTS_PER_SCRAPE`` new ones per scrape so a first scrape over thousands of
integrations stays quick (the rest appear on the following scrapes).

Labels are the integration id and provider only: never a host URL with credentials, never
a fingerprint.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.hosts.base import ProviderId
from connect_app.indexing import budgets
from connect_app.indexing.budgets import cached_host, read_budget
from connect_app.models import Integration, IntegrationStatus

log = logging.getLogger(__name__)

MAX_INTEGRATIONS = 2000
MAX_NEW_CLIENTS_PER_SCRAPE = 200
# These report no budget (plain git over the wire; AWS paces boto3 itself).
_NO_BUDGET = frozenset({ProviderId.GIT.value, ProviderId.AWS_CODECOMMIT.value})

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
        host, new = cached_host(integration, allow_new=built < MAX_NEW_CLIENTS_PER_SCRAPE)
        built += int(new)
        budget = read_budget(host) if host is not None else None
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


clear_cache = budgets.clear_cache
