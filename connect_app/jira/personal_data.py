"""Atlassian's personal-data reporting cycle (GDPR) for the Jira accountIds the app stores.

What we hold per site, keyed by accountId (see README "Personal data and retention"):

* ``user_token`` (the user's own git token, encrypted), ``user_repository_permission`` (what
  that token may read, cached minutes), ``user_preference`` (e.g. the last repository picked);
* ``action_job`` (branches / pull requests a user asked for, for the dialog's progress);
* ``smart_commit_execution.account_id`` (the Jira user a smart commit acted as);
* ``integration.created_by`` (the admin who connected the host);
* ``integration_event.detail["account_id"]`` (a failed action in the integration log) and
  ``["by"]`` (the admin who changed settings or replaced credentials);
* Redis caches, minutes to an hour: ``gcj:admin:<tenant>:<account>``,
  ``gcj:browse-projects:<tenant>:<account>``, ``gcj:user-permission-failures:<tenant>:<account>``,
  and ``gcj:jira-user:<tenant>:<email hash>`` whose value names an accountId.

The cycle (:func:`run_cycle`, run by ``workers.jobs.report_personal_data``, which the dispatcher
enqueues when a site is due): for every site whose ``tenant.personal_data_due_at`` has passed,
POST the accountIds held in the database, at most :data:`BATCH_SIZE` per request, as
``{"accounts": [{"accountId", "updatedAt"}]}`` to ``<site baseUrl>/app/report-accounts/``
(``PERSONAL_DATA_REPORT_URL`` replaces that with one fixed endpoint, e.g. a proxy or a test
stub), signed with the app's JWT for the site like every other call to Jira. ``updatedAt`` is
the newest time we wrote any row for the account. Answers (Atlassian's "user privacy guide for
app developers"; assumed, not provable offline):

* ``204``: nothing to do;
* ``200 {"accounts": [{"accountId", "status": "closed" | "updated"}]}``: ``closed`` accounts
  are erased here (:func:`erase_account`); ``updated`` needs nothing, as we keep no profile data
  (no name, no email) beyond the accountId itself, so there is nothing to refresh;
* ``429`` with ``Retry-After``: the site is tried again after that time;
* anything else (unreachable, 5xx, 401...): the site is tried again after
  :data:`RETRY_AFTER_ERROR`, logged as a warning.

After a complete report the site is due again in ``PERSONAL_DATA_CYCLE_DAYS`` (default 7,
Atlassian's default cycle). Never logged: tokens, accountIds, response bodies; only counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from connect_app.errors import AppError, HostError, RateLimited
from connect_app.extensions import db, redis_conn
from connect_app.jira.client import JiraClient
from connect_app.jira.tenants import shared_secret
from connect_app.models import (
    ActionJob,
    EventSource,
    Integration,
    IntegrationEvent,
    SmartCommitExecution,
    Tenant,
    UserPreference,
    UserRepositoryPermission,
    UserToken,
    utcnow,
)
from connect_app.runtime import runtime
from connect_app.services import user_permission_cache

log = logging.getLogger(__name__)

REPORT_PATH = "/app/report-accounts/"
BATCH_SIZE = 90  # Atlassian's limit per request
RETRY_AFTER_ERROR = timedelta(hours=1)
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)  # a 429 without a usable Retry-After
CONNECT_TIMEOUT = 5.0

JOB_FUNC = "workers.jobs.report_personal_data"
JOB_ID = "personal-data-report"
JOB_TIMEOUT = 1800

CLOSED = "closed"
UPDATED = "updated"


@dataclass(frozen=True)
class HeldAccount:
    account_id: str
    updated_at: datetime

    def payload(self) -> dict[str, str]:
        return {"accountId": self.account_id, "updatedAt": iso_millis(self.updated_at)}


def iso_millis(when: datetime) -> str:
    """``2019-10-25T23:08:51.382Z``: the form Atlassian's examples use."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# --- what we hold ---------------------------------------------------------------------------

# Integration log entries that may name an accountId, and the detail keys that do.
ACCOUNT_EVENT_SOURCES = (EventSource.ACTION.value, EventSource.CREDENTIALS.value, EventSource.SETTINGS.value)
ACCOUNT_DETAIL_KEYS = ("account_id", "by")


def held_accounts(session: Session, tenant_id: int) -> list[HeldAccount]:
    """Every accountId the database holds for the tenant, with the newest time we wrote it."""
    newest: dict[str, datetime] = {}

    def note(account_id: str | None, when: datetime | None) -> None:
        if not account_id or when is None:
            return
        if account_id not in newest or when > newest[account_id]:
            newest[account_id] = when

    columns = (
        (UserToken.account_id, UserToken.updated_at, UserToken.tenant_id),
        (UserPreference.account_id, UserPreference.updated_at, UserPreference.tenant_id),
        (
            UserRepositoryPermission.account_id,
            UserRepositoryPermission.checked_at,
            UserRepositoryPermission.tenant_id,
        ),
        (ActionJob.account_id, ActionJob.updated_at, ActionJob.tenant_id),
        (SmartCommitExecution.account_id, SmartCommitExecution.created_at, SmartCommitExecution.tenant_id),
        (Integration.created_by, Integration.created_at, Integration.tenant_id),
    )
    for account, when, tenant in columns:
        rows = session.execute(
            select(account, func.max(when)).where(tenant == tenant_id, account.is_not(None)).group_by(account)
        )
        for account_id, at in rows:
            note(account_id, at)
    for detail, at in session.execute(
        select(IntegrationEvent.detail, IntegrationEvent.at).where(
            IntegrationEvent.tenant_id == tenant_id, IntegrationEvent.source.in_(ACCOUNT_EVENT_SOURCES)
        )
    ):
        for key in ACCOUNT_DETAIL_KEYS:
            if isinstance(detail, dict) and isinstance(detail.get(key), str):
                note(detail[key], at)
    return [HeldAccount(a, newest[a]) for a in sorted(newest)]


# --- erasing one account --------------------------------------------------------------------


def erase_account(session: Session, tenant_id: int, account_id: str, *, conn: Redis | None = None) -> dict[str, int]:
    """Delete (or anonymise) everything the tenant's data holds about the account, and its
    Redis caches. Flushed, not committed. Returns counts per kind of data."""
    counts: dict[str, int] = {}

    def rowcount(result: Any) -> int:
        return int(getattr(result, "rowcount", 0) or 0)

    counts["cached_permissions"] = user_permission_cache.drop(session, tenant_id, account_id)
    counts["user_tokens"] = rowcount(
        session.execute(delete(UserToken).where(UserToken.tenant_id == tenant_id, UserToken.account_id == account_id))
    )
    counts["user_preferences"] = rowcount(
        session.execute(
            delete(UserPreference).where(UserPreference.tenant_id == tenant_id, UserPreference.account_id == account_id)
        )
    )
    # The dialog's progress records: only the person who asked can read them, so they go.
    counts["action_jobs"] = rowcount(
        session.execute(delete(ActionJob).where(ActionJob.tenant_id == tenant_id, ActionJob.account_id == account_id))
    )
    counts["smart_commits_anonymised"] = rowcount(
        session.execute(
            update(SmartCommitExecution)
            .where(SmartCommitExecution.tenant_id == tenant_id, SmartCommitExecution.account_id == account_id)
            .values(account_id=None)
        )
    )
    counts["integrations_anonymised"] = rowcount(
        session.execute(
            update(Integration)
            .where(Integration.tenant_id == tenant_id, Integration.created_by == account_id)
            .values(created_by=None)
        )
    )
    events = session.scalars(
        select(IntegrationEvent).where(
            IntegrationEvent.tenant_id == tenant_id, IntegrationEvent.source.in_(ACCOUNT_EVENT_SOURCES)
        )
    ).all()
    anonymised = 0
    for event in events:
        detail = event.detail if isinstance(event.detail, dict) else {}
        if any(detail.get(key) == account_id for key in ACCOUNT_DETAIL_KEYS):
            # a new dict: the JSON change is seen
            event.detail = {k: v for k, v in detail.items() if not (k in ACCOUNT_DETAIL_KEYS and v == account_id)}
            anonymised += 1
    counts["log_events_anonymised"] = anonymised
    session.flush()
    counts["redis_keys"] = forget_account_caches(tenant_id, account_id, conn=conn)
    return counts


def forget_account_caches(tenant_id: int, account_id: str, *, conn: Redis | None = None) -> int:
    """Drop the Redis caches that name the account (best effort: they expire within an hour)."""
    from connect_app.services.browsable_projects import cache_key as browse_key

    client = conn if conn is not None else redis_conn.client
    try:
        removed = int(
            client.delete(
                f"gcj:admin:{tenant_id}:{account_id}",  # connect_app.jira.permissions
                browse_key(tenant_id, account_id),
                user_permission_cache.failures_key(tenant_id, account_id),
            )
        )
        # connect_app.jira.user_lookup: email hash -> {"a": accountId, ...}
        for key in client.scan_iter(match=f"gcj:jira-user:{tenant_id}:*", count=500):
            raw = client.get(key)
            try:
                named = json.loads(raw).get("a") if raw is not None else None
            except (ValueError, AttributeError):
                named = None
            if named == account_id:
                removed += int(client.delete(key))
        return removed
    except RedisError as e:
        log.warning("personal data: Redis caches of a closed account not cleared (%s)", type(e).__name__)
        return 0


# --- reporting ------------------------------------------------------------------------------


class Reporter(Protocol):
    def report(self, tenant: Tenant, accounts: Sequence[HeldAccount]) -> dict[str, str]:
        """accountId -> status for the accounts Atlassian asks us to act on ({} for 204)."""
        ...


def report_endpoint(tenant: Tenant, override: str | None) -> tuple[str, str]:
    """(origin, path) to POST to: the site's ``/app/report-accounts/`` or the fixed override."""
    if not override:
        return tenant.base_url.rstrip("/"), REPORT_PATH
    parts = urlsplit(override)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("PERSONAL_DATA_REPORT_URL must be an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}", parts.path or REPORT_PATH


@dataclass
class JiraReporter:
    """Reports through :class:`~connect_app.jira.client.JiraClient` (JWT, timeout, no redirects);
    a 429 is not waited for here: it raises ``RateLimited`` and the site is tried later."""

    override_url: str | None = None
    session: requests.Session | None = None

    def report(self, tenant: Tenant, accounts: Sequence[HeldAccount]) -> dict[str, str]:
        rt = runtime()
        origin, path = report_endpoint(tenant, self.override_url)
        client = JiraClient(
            base_url=origin,
            app_key=rt.settings.app_key,
            shared_secret=shared_secret(tenant, rt.secrets),
            timeout=(CONNECT_TIMEOUT, rt.settings.http_timeout_seconds),
            session=self.session,
            max_retries=0,
            max_retry_wait=0.0,
        )
        response = client.request("POST", path, json={"accounts": [a.payload() for a in accounts]}, expected=(200, 204))
        if response.status_code == 204 or not response.content:
            return {}
        return parse_answer(response.content)


def parse_answer(content: bytes) -> dict[str, str]:
    try:
        body = json.loads(content)
    except ValueError as e:
        raise HostError("The personal-data reporting API answered with something that is not JSON.") from e
    if not isinstance(body, dict) or not isinstance(body.get("accounts", []), list):
        raise HostError("The personal-data reporting API answered in an unexpected shape.")
    out: dict[str, str] = {}
    for item in body.get("accounts") or []:
        if isinstance(item, dict) and isinstance(item.get("accountId"), str) and isinstance(item.get("status"), str):
            out[item["accountId"]] = item["status"]
    return out


@dataclass
class TenantReport:
    tenant_id: int
    reported: int = 0
    closed: int = 0
    updated: int = 0
    erased: dict[str, int] = field(default_factory=dict)
    outcome: str = "reported"  # reported / rate_limited / failed
    next_due_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "reported": self.reported,
            "closed": self.closed,
            "updated": self.updated,
            "erased": dict(self.erased),
            "outcome": self.outcome,
            "next_due_at": self.next_due_at.isoformat() if self.next_due_at else None,
        }


def _batches(accounts: Sequence[HeldAccount], size: int) -> Iterator[Sequence[HeldAccount]]:
    for start in range(0, len(accounts), size):
        yield accounts[start : start + size]


def report_tenant(
    session: Session, tenant: Tenant, reporter: Reporter, *, now: datetime | None = None, conn: Redis | None = None
) -> TenantReport:
    """One site's report; commits after every batch (what was erased stays erased)."""
    now = now or utcnow()
    result = TenantReport(tenant.id)
    accounts = held_accounts(session, tenant.id)
    try:
        for batch in _batches(accounts, BATCH_SIZE):
            statuses = reporter.report(tenant, batch)
            result.reported += len(batch)
            sent = {a.account_id for a in batch}
            for account_id, status in statuses.items():
                if account_id not in sent:
                    continue  # never act on an account we did not ask about
                if status == CLOSED:
                    result.closed += 1
                    for kind, n in erase_account(session, tenant.id, account_id, conn=conn).items():
                        result.erased[kind] = result.erased.get(kind, 0) + n
                elif status == UPDATED:
                    result.updated += 1  # we keep no profile data to refresh: nothing to do
            session.commit()
        result.next_due_at = now + timedelta(days=runtime().settings.personal_data_cycle_days)
    except RateLimited as e:
        session.rollback()
        result.outcome = "rate_limited"
        result.next_due_at = max(e.reset_at or now + DEFAULT_RATE_LIMIT_WAIT, now + timedelta(seconds=1))
    except (AppError, ValueError) as e:
        session.rollback()
        result.outcome = "failed"
        result.next_due_at = now + RETRY_AFTER_ERROR
        log.warning("personal-data report for tenant %s failed: %s", tenant.id, e)
    tenant = session.get(Tenant, result.tenant_id) or tenant
    tenant.personal_data_due_at = result.next_due_at
    session.commit()
    log.info(
        "personal-data report for tenant %s: %s, %d account(s) reported, %d closed, %d updated, erased %s",
        result.tenant_id,
        result.outcome,
        result.reported,
        result.closed,
        result.updated,
        {k: v for k, v in result.erased.items() if v} or "nothing",
    )
    return result


def due_condition(now: datetime) -> Any:
    return or_(Tenant.personal_data_due_at.is_(None), Tenant.personal_data_due_at <= now)


def due_tenant_ids(session: Session, now: datetime) -> list[int]:
    return list(session.scalars(select(Tenant.id).where(due_condition(now)).order_by(Tenant.id)))


def run_cycle(
    now: datetime | None = None, *, reporter: Reporter | None = None, session: Session | None = None
) -> dict[str, Any]:
    """Report every site that is due (inside an app context). Returns a summary of counts."""
    now = now or utcnow()
    session = session or db.session()
    reporter = reporter or JiraReporter(override_url=runtime().settings.personal_data_report_url)
    reports: list[TenantReport] = []
    for tenant_id in due_tenant_ids(session, now):
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            continue  # uninstalled meanwhile
        reports.append(report_tenant(session, tenant, reporter, now=now))
    return summarise(reports)


def summarise(reports: Iterable[TenantReport]) -> dict[str, Any]:
    items = list(reports)
    return {
        "tenants": len(items),
        "reported": sum(r.reported for r in items),
        "closed": sum(r.closed for r in items),
        "updated": sum(r.updated for r in items),
        "rate_limited": sum(1 for r in items if r.outcome == "rate_limited"),
        "failed": sum(1 for r in items if r.outcome == "failed"),
    }


def enqueue_if_due(session: Session, conn: Redis, now: datetime | None = None) -> bool:
    """The dispatcher's trigger: one unique job on the maintenance queue when any site is due."""
    from connect_app.indexing import queueing

    now = now or utcnow()
    if session.scalar(select(Tenant.id).where(due_condition(now)).limit(1)) is None:
        return False
    return queueing.enqueue_unique(
        conn,
        queueing.MAINTENANCE_QUEUE,
        JOB_FUNC,
        (),
        JOB_ID,
        timeout=JOB_TIMEOUT,
        retry=False,  # a failed site is already rescheduled by its due time
        description="report the Jira accountIds we hold (personal-data reporting)",
    )
