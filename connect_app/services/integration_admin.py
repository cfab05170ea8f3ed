"""Create, change, reindex and delete integrations and their repositories (the admin API's
write side).

Two rules every function here keeps:

* **Network first, then one transaction.** The host is asked (credentials, repositories)
  with no database transaction open; then every row is written in one transaction that
  commits or rolls back whole, so a failure leaves nothing half-created.
* **Errors an admin can act on.** Host errors come back as 4xx with the host's own words
  (which scopes are missing, which URL did not answer), never as a 401 (that status means
  the *Jira* token failed) and never with a secret in them.

Queueing (discovery, reindex) happens after the commit through
:mod:`connect_app.indexing.scheduler`; when Redis is down the rows are kept and the
dispatcher picks the work up later (never-discovered integrations and requested
repositories are its first duty), so the response says so instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    Conflict,
    HostNotFound,
)
from connect_app.extensions import redis_conn
from connect_app.hosts.base import Credentials, ProviderId, RemoteRepository
from connect_app.hosts.plain_git import repository_key
from connect_app.hosts.registry import provider_info
from connect_app.indexing import mirror, scheduler
from connect_app.integrations import (
    NewIntegration,
    add_repositories,
    create_integration,
    credential_key,
    credentials_of,
    encode_credentials,
    remote_repository,
)
from connect_app.jira.followups import after_integration_deleted
from connect_app.models import (
    Integration,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    Tenant,
    Trigger,
    utcnow,
)
from connect_app.runtime import runtime
from connect_app.services.admin_input import (
    ConnectionRequest,
    CreateRequest,
    IntegrationPatch,
    RepositoryPatch,
)
from connect_app.services.host_checks import (
    check_base_url,
    open_host,
    picked_remotes,
    refuse_duplicate,
    remotes_to_store,
)
from connect_app.services.integration_effects import (
    Switches,
    after_integration_change,
    after_repository_change,
    follow_up_job_ids,
)
from connect_app.services.integration_settings import BRANCH_TEMPLATE_KEY, merged_features
from connect_app.services.run_admin import cancel_jobs

log = logging.getLogger(__name__)

# DELETE answers within a request: webhooks not reached in this time are reported, not waited for.
WEBHOOK_DELETE_BUDGET_SECONDS = 20.0
QUEUE_DOWN_NOTE = "The job queue (Redis) is unreachable right now; the work is saved and starts when it is back."
SETTING_COLUMNS = ("require_user_pat", "enforce_permissions", "project_keys", "reindex_interval_minutes")


# --- guards ------------------------------------------------------------------------


def _release(session: Session) -> None:
    """End the request's read transaction: no snapshot or lock is held across host calls."""
    session.commit()


def _lock_tenant(session: Session, tenant_id: int) -> None:
    """Serialize integration writes of one tenant (PostgreSQL row lock; SQLite locks the file)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def _require_active(integration: Integration) -> None:
    if integration.status == IntegrationStatus.DISABLED.value:
        raise Conflict(
            f"Integration {integration.display_name!r} is disabled; enable it first.", code="integration_disabled"
        )
    if integration.status == IntegrationStatus.AUTH_FAILED.value:
        detail = f" ({integration.status_detail})" if integration.status_detail else ""
        raise Conflict(
            f"The host refused the credentials of {integration.display_name!r}{detail}; "
            "replace them in the integration's settings first.",
            code="credentials_refused",
        )


# --- queueing ----------------------------------------------------------------------


def _queue_discovery(session: Session, integration: Integration, *, initial: bool) -> tuple[bool, str | None]:
    try:
        if initial:
            return scheduler.start_integration(session, integration), None
        return scheduler.request_discovery(session, integration, Trigger.MANUAL, at_front=True), None
    except RedisError:
        session.rollback()
        log.warning("Redis unreachable: discovery of integration %s left to the dispatcher", integration.id)
        return False, QUEUE_DOWN_NOTE


def _request_index(session: Session, repos: list[Repository]) -> tuple[int, str | None]:
    try:
        return scheduler.request_index(session, repos, Trigger.MANUAL), None
    except RedisError:
        session.rollback()
        log.warning("Redis unreachable: reindex of %d repositories left to the dispatcher", len(repos))
        return 0, QUEUE_DOWN_NOTE


# --- create ------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    integration: Integration
    repositories_added: int
    indexing_started: bool
    note: str | None = None


def default_display_name(conn: ConnectionRequest, account: str) -> str:
    if conn.provider.id is ProviderId.GIT:
        return repository_key(conn.base_url or "")[1]
    suffix = conn.namespace or account
    return f"{conn.provider.name} ({suffix})" if suffix else conn.provider.name


def apply_settings(integration: Integration, settings: dict[str, object]) -> None:
    for column in SETTING_COLUMNS:
        if column in settings:
            setattr(integration, column, settings[column])
    changes: dict[str, object] = {}
    features = settings.get("features")
    if isinstance(features, dict):
        changes.update(features)
    if BRANCH_TEMPLATE_KEY in settings:
        changes[BRANCH_TEMPLATE_KEY] = settings[BRANCH_TEMPLATE_KEY]
    if changes:
        integration.features = merged_features(integration, changes)


def create(
    session: Session, tenant_id: int, request: CreateRequest, *, created_by: str | None, allow_private: bool
) -> Created:
    conn = request.connection
    check_base_url(conn.provider, conn.base_url, allow_private=allow_private)
    key = credential_key(conn.provider.id, conn.base_url, conn.credentials)
    refuse_duplicate(session, tenant_id, conn, key)  # before any host call
    _release(session)
    with open_host(conn, allow_private=allow_private) as host:
        account = host.validate_credentials()
        remotes = remotes_to_store(host, conn, request.repositories)
    try:
        _lock_tenant(session, tenant_id)
        refuse_duplicate(session, tenant_id, conn, key)  # again, under the lock: two wizards at once
        integration = create_integration(
            session,
            tenant_id,
            NewIntegration(
                provider=conn.provider.id,
                credentials=conn.credentials,
                display_name=request.display_name or default_display_name(conn, account),
                base_url=conn.base_url,
                namespace=conn.namespace,
                repository_selection=request.repositories.selection,
                created_by=created_by,
            ),
        )
        integration.account_name = account[:255] or None
        apply_settings(integration, request.settings)
        added = add_repositories(session, integration, remotes)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    log.info("integration %s created (%s, %d repositories picked)", integration.id, integration.provider, len(added))
    started, note = _queue_discovery(session, integration, initial=True)
    return Created(integration, len(added), started, note)


# --- update ------------------------------------------------------------------------


@dataclass(frozen=True)
class Updated:
    integration: Integration
    repositories_added: int = 0
    repositories_disabled: int = 0
    discovery_queued: bool = False
    note: str | None = None


def connection_of(integration: Integration, credentials: Credentials | None = None) -> ConnectionRequest:
    return ConnectionRequest(
        provider=provider_info(integration.provider),
        credentials=credentials or credentials_of(integration),
        base_url=integration.base_url,
        namespace=integration.namespace,
    )


def update_integration(
    session: Session, integration: Integration, patch: IntegrationPatch, *, allow_private: bool
) -> Updated:
    conn = connection_of(integration, patch.credentials)
    choice = patch.repositories
    new_key: str | None = None
    account: str | None = None
    remotes: list[RemoteRepository] = []
    lists_now = choice is not None and choice.selection is not RepositorySelection.ALL_FUTURE
    if patch.credentials is not None or lists_now:
        if patch.credentials is not None:
            new_key = credential_key(conn.provider.id, conn.base_url, conn.credentials)
            refuse_duplicate(session, integration.tenant_id, conn, new_key, exclude_id=integration.id)
        _release(session)
        check_base_url(conn.provider, conn.base_url, allow_private=allow_private)
        with open_host(conn, allow_private=allow_private) as host:
            if patch.credentials is not None:
                account = host.validate_credentials()
            if choice is not None and choice.selection is RepositorySelection.SELECTED:
                remotes = picked_remotes(host, conn, choice.picked)
            elif lists_now:
                remotes = list(host.list_repositories(namespace=conn.namespace))

    was_disabled = integration.status == IntegrationStatus.DISABLED.value
    before = Switches.of(integration)
    added: list[Repository] = []
    disabled = 0
    try:
        if patch.display_name is not None:
            integration.display_name = patch.display_name
        if patch.enabled is not None:
            if not patch.enabled:
                integration.status = IntegrationStatus.DISABLED.value
            elif was_disabled:
                integration.status = IntegrationStatus.ACTIVE.value
        if patch.credentials is not None and new_key is not None:
            integration.credentials_encrypted = runtime().secrets.encrypt(encode_credentials(patch.credentials))
            integration.credential_key = new_key
            integration.auth_type = patch.credentials.auth_type.value
            integration.account_name = (account or "")[:255] or None
            if integration.status == IntegrationStatus.AUTH_FAILED.value:
                integration.status = IntegrationStatus.ACTIVE.value
                integration.status_detail = None
        apply_settings(integration, patch.settings)
        if isinstance(patch.settings.get("reindex_interval_minutes"), int):
            _pull_schedule_in(session, integration, int(patch.settings["reindex_interval_minutes"]))
        if choice is not None:
            integration.repository_selection = choice.selection.value
            added = add_repositories(session, integration, remotes)
            if choice.selection is RepositorySelection.SELECTED:
                disabled = _enable_exactly(session, integration, {r.external_id for r in remotes})
        session.commit()
    except BaseException:
        session.rollback()
        raise

    rediscover = (
        patch.credentials is not None
        or (was_disabled and integration.status == IntegrationStatus.ACTIVE.value)
        or choice is not None
    )
    followed = after_integration_change(
        session,
        integration,
        before,
        repositories_changed=bool(added or disabled),
        credentials_changed=patch.credentials is not None,
    )
    queued, note = False, (None if followed else QUEUE_DOWN_NOTE)
    if rediscover and integration.status == IntegrationStatus.ACTIVE.value:
        queued, discovery_note = _queue_discovery(session, integration, initial=bool(added))
        note = note or discovery_note
    return Updated(integration, len(added), disabled, queued, note)


def _pull_schedule_in(session: Session, integration: Integration, minutes: int) -> None:
    """A shorter interval applies now, not after each repository's next run."""
    cap = utcnow() + timedelta(minutes=minutes)
    session.execute(
        update(Repository)
        .where(
            Repository.integration_id == integration.id,
            or_(Repository.next_index_at.is_(None), Repository.next_index_at > cap),
        )
        .values(next_index_at=cap)
    )


def _enable_exactly(session: Session, integration: Integration, external_ids: set[str]) -> int:
    """Picked repositories enabled, the others disabled (their index is kept); returns how many were disabled."""
    disabled = 0
    for repo in session.scalars(select(Repository).where(Repository.integration_id == integration.id)):
        picked = repo.external_id in external_ids
        if repo.enabled and not picked:
            disabled += 1
        repo.enabled = picked
    return disabled


def add_picked(session: Session, integration: Integration, picked: tuple[str, ...], *, allow_private: bool) -> Updated:
    """Add (or re-enable) repositories by id or full name, the selection unchanged; an active
    integration then discovers, which requests the first index of every new one."""
    conn = connection_of(integration, None)
    _release(session)
    check_base_url(conn.provider, conn.base_url, allow_private=allow_private)
    with open_host(conn, allow_private=allow_private) as host:
        remotes = picked_remotes(host, conn, picked)
    try:
        added = add_repositories(session, integration, remotes)
        ids = [r.external_id for r in remotes]
        session.execute(
            update(Repository)
            .where(Repository.integration_id == integration.id, Repository.external_id.in_(ids))
            .values(enabled=True)
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    # picked repositories get our webhook, re-enabled ones go back to Jira
    followed = after_integration_change(session, integration, Switches.of(integration), repositories_changed=True)
    queued, note = False, (None if followed else QUEUE_DOWN_NOTE)
    if integration.status == IntegrationStatus.ACTIVE.value:
        queued, discovery_note = _queue_discovery(session, integration, initial=True)
        note = note or discovery_note
    return Updated(integration, len(added), 0, queued, note)


# --- repositories ------------------------------------------------------------------


def update_repository(session: Session, repo: Repository, patch: RepositoryPatch) -> Repository:
    """Enabling or disabling also brings its webhook and its Jira data along (background jobs)."""
    was_enabled = repo.enabled
    if patch.enabled is not None:
        repo.enabled = patch.enabled
    if patch.project_keys is not None:
        repo.project_keys = patch.project_keys
    session.commit()
    after_repository_change(session, repo, was_enabled)
    return repo


# --- reindex -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reindexed:
    requested: int
    enqueued: int
    discovery_queued: bool = False
    note: str | None = None


def reindex_integration(session: Session, integration: Integration) -> Reindexed:
    _require_active(integration)
    repos = list(
        session.scalars(
            select(Repository).where(
                Repository.integration_id == integration.id,
                Repository.enabled.is_(True),
                Repository.removed_at.is_(None),
            )
        )
    )
    enqueued, note = _request_index(session, repos) if repos else (0, None)
    discovered, discovery_note = _queue_discovery(session, integration, initial=False)
    return Reindexed(len(repos), enqueued, discovered, note or discovery_note)


def reindex_repository(session: Session, repo: Repository, integration: Integration) -> Reindexed:
    _require_active(integration)
    if not repo.enabled:
        raise Conflict(f"Repository {repo.name!r} is disabled; enable it first.", code="repository_disabled")
    if repo.removed_at is not None:
        raise Conflict(
            f"Repository {repo.name!r} is no longer visible to the integration's credentials.",
            code="repository_removed",
        )
    enqueued, note = _request_index(session, [repo])
    return Reindexed(1, enqueued, note=note)


# --- delete ------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOutcome:
    repository_id: int
    repository_name: str
    webhook_id: str
    deleted: bool
    error: str | None = None


@dataclass(frozen=True)
class Deleted:
    integration_id: int
    repositories: int
    webhooks: list[WebhookOutcome] = field(default_factory=list)
    jobs_cancelled: int = 0


def delete_integration(session: Session, integration: Integration, *, allow_private: bool) -> Deleted:
    """Delete our webhooks from the host (best effort, within a time budget), cancel the
    integration's queued jobs, then delete its rows (the foreign keys cascade) and mirrors."""
    repos = list(session.scalars(select(Repository).where(Repository.integration_id == integration.id)))
    _release(session)
    outcomes = _delete_webhooks(integration, [r for r in repos if r.webhook_id], allow_private=allow_private)
    job_ids = [f"discover-{integration.id}", *(f"index-{r.id}" for r in repos), *follow_up_job_ids(integration.id)]
    cancelled = cancel_jobs(redis_conn.client, job_ids)
    try:
        session.execute(
            delete(Integration).where(Integration.id == integration.id, Integration.tenant_id == integration.tenant_id)
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    for repo in repos:
        mirror.remove_mirror(repo)
    after_integration_deleted(integration.tenant_id, integration.id)
    log.info("integration %s deleted with %d repositories", integration.id, len(repos))
    return Deleted(integration.id, len(repos), outcomes, cancelled)


def _delete_webhooks(
    integration: Integration, repos: Iterable[Repository], *, allow_private: bool
) -> list[WebhookOutcome]:
    todo = list(repos)
    if not todo:
        return []
    outcomes: list[WebhookOutcome] = []

    def outcome(repo: Repository, deleted: bool, error: str | None = None) -> None:
        outcomes.append(WebhookOutcome(repo.id, repo.name, repo.webhook_id or "", deleted, error))

    deadline = time.monotonic() + WEBHOOK_DELETE_BUDGET_SECONDS
    try:
        with open_host(connection_of(integration, None), allow_private=allow_private) as host:
            for repo in todo:
                if time.monotonic() > deadline:
                    outcome(repo, False, "not attempted: the time for this request ran out; delete it on the host")
                    continue
                try:
                    host.delete_webhook(remote_repository(repo), repo.webhook_id or "")
                    outcome(repo, True)
                except HostNotFound:
                    outcome(repo, True)  # gone already
                except AppError as e:
                    outcome(repo, False, e.message)
                except Exception:
                    log.exception("deleting webhook of repository %s failed", repo.id)
                    outcome(repo, False, "unexpected error (logged); delete it on the host")
    except AppError as e:  # the host client could not even be built
        done = {o.repository_id for o in outcomes}
        for repo in todo:
            if repo.id not in done:
                outcome(repo, False, e.message)
    return outcomes
