"""discover_repositories: list the host's repositories, add new ones, mark removed ones.

    run_discovery(integration_id, run_id) -> dict        (inside an app context)

One DISCOVER :class:`~connect_app.models.IndexRun` per call. The whole listing is read
before anything changes, so a listing that fails half-way changes nothing. Then:

* repositories the host lists and we store: metadata refreshed (name, URLs, default
  branch); one we had marked removed is restored;
* repositories the host lists and we don't store: added when the selection is "all
  future repositories", or "all repositories" at the integration's first discovery;
  never for "selected repositories";
* repositories we store and the host no longer lists: ``status=removed``,
  ``removed_at`` set (their index is kept; they come back if the host lists them again).

Then background jobs bring the host and Jira in line: every enabled, visible repository gets
our webhook when the integration's ``webhooks`` feature is on and the credentials allow it
(new ones, and those picked in the wizard), removed ones lose it
(:mod:`~connect_app.indexing.webhook_sync`); a removed repository's data is deleted from Jira's
Development panel and a restored one is sent again from the start
(:mod:`~connect_app.jira.visibility`). Additions, removals and restorations go to the
integration's log. Every repository not indexed yet is then requested with trigger ``initial``.

``HostAuthError`` marks the integration ``auth_failed``; ``RateLimited`` pauses the credential
until the host's reset time.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import AppError, HostAuthError, RateLimited
from connect_app.extensions import db
from connect_app.hosts.base import RemoteRepository
from connect_app.indexing import runs
from connect_app.integrations import add_repositories, host_for
from connect_app.models import (
    EventLevel,
    EventSource,
    IndexRun,
    Integration,
    IntegrationStatus,
    Repository,
    RepositorySelection,
    RepositoryStatus,
    RunKind,
    RunStatus,
    Trigger,
    utcnow,
)
from connect_app.services.integration_log import record_event

log = logging.getLogger(__name__)

_METADATA = ("name", "namespace", "clone_url", "web_url", "default_branch")


def run_discovery(integration_id: int, run_id: int | None = None) -> dict[str, Any]:
    session = db.session()
    integration = session.get(Integration, integration_id)
    if integration is None:
        return {"integration_id": integration_id, "run_id": run_id, "status": "skipped", "note": "no such integration"}
    run = session.get(IndexRun, run_id) if run_id is not None else None
    if run is None or run.integration_id != integration.id or run.kind != RunKind.DISCOVER.value:
        run = runs.queue_run(
            session,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            repository_id=None,
            trigger=Trigger.MANUAL,
            kind=RunKind.DISCOVER,
        )
    runs.start_run(session, run)
    result: dict[str, Any] = {"integration_id": integration.id, "run_id": run.id}

    if integration.status == IntegrationStatus.DISABLED.value:
        runs.fail_run(session, run, AppError("the integration is disabled", code="integration_disabled"))
        return {**result, "status": RunStatus.FAILED.value, "error": run.error}
    try:
        remotes = list(host_for(integration).list_repositories(namespace=integration.namespace))
    except HostAuthError as e:
        runs.fail_run(session, run, e)
        integration.status = IntegrationStatus.AUTH_FAILED.value
        integration.status_detail = run.error
        session.commit()
        return {**result, "status": RunStatus.FAILED.value, "error": run.error}
    except RateLimited as e:
        runs.fail_run(session, run, e)
        if e.reset_at is not None:
            _pause(integration.credential_key, e)
        return {**result, "status": RunStatus.RATE_LIMITED.value, "error": run.error}
    except AppError as e:
        runs.fail_run(session, run, e)
        return {**result, "status": RunStatus.FAILED.value, "error": run.error}
    except Exception as e:
        log.exception("discovering the repositories of integration %s failed unexpectedly", integration.id)
        runs.fail_run(session, run, e)
        raise  # a bug: RQ's Retry tries again

    added, restored, removed = _apply(session, integration, remotes)
    run.repositories_seen = len(remotes)
    if integration.status == IntegrationStatus.AUTH_FAILED.value:
        integration.status = IntegrationStatus.ACTIVE.value  # the credentials work again
        integration.status_detail = None
    integration.last_discovered_at = utcnow()
    _log_changes(session, integration, added, restored, removed)
    runs.finish_run(session, run)  # commits the repositories (and the log lines) with the run

    _follow_up(session, integration)
    enqueued = _request_initial_index(session, integration)
    log.info(
        "discovered %d repositories of integration %s: %d new, %d back, %d gone",
        len(remotes),
        integration.id,
        len(added),
        len(restored),
        len(removed),
    )
    return {
        **result,
        "status": RunStatus.DONE.value,
        "repositories_seen": len(remotes),
        "added": len(added),
        "restored": len(restored),
        "removed": len(removed),
        "enqueued": enqueued,
    }


def _apply(
    session: Session, integration: Integration, remotes: list[RemoteRepository]
) -> tuple[list[Repository], list[Repository], list[Repository]]:
    """(added, restored, removed); flushed, not committed."""
    now = utcnow()
    stored = {
        r.external_id: r for r in session.scalars(select(Repository).where(Repository.integration_id == integration.id))
    }
    listed: dict[str, RemoteRepository] = {}
    for remote in remotes:
        listed.setdefault(remote.external_id, remote)

    restored: list[Repository] = []
    for external_id, remote in listed.items():
        repo = stored.get(external_id)
        if repo is None:
            continue
        for attr in _METADATA:
            value = getattr(remote, attr)
            if value is not None and getattr(repo, attr) != value:
                setattr(repo, attr, value)
        if repo.removed_at is not None or repo.status == RepositoryStatus.REMOVED.value:
            repo.removed_at = None
            repo.status = RepositoryStatus.OK.value if repo.last_indexed_at else RepositoryStatus.NEW.value
            repo.next_index_at = now  # it may have changed while we could not see it
            restored.append(repo)

    removed: list[Repository] = []
    for external_id, repo in stored.items():
        if external_id not in listed and repo.removed_at is None:
            repo.removed_at = now
            repo.status = RepositoryStatus.REMOVED.value
            removed.append(repo)

    selection = integration.repository_selection
    adds = selection == RepositorySelection.ALL_FUTURE.value or (
        selection == RepositorySelection.ALL.value and integration.last_discovered_at is None
    )
    new = [remote for external_id, remote in listed.items() if external_id not in stored]
    added = add_repositories(session, integration, new) if adds and new else []
    session.flush()
    return added, restored, removed


def _log_changes(
    session: Session,
    integration: Integration,
    added: list[Repository],
    restored: list[Repository],
    removed: list[Repository],
) -> None:
    """One line per kind of change in the integration's log (committed by the caller)."""
    from connect_app.indexing.webhook_sync import names

    changes = [
        (added, "discovery_added", EventLevel.INFO, "{n} new {repos} found: {names}; {it_is} indexed."),
        (
            removed,
            "discovery_removed",
            EventLevel.WARNING,
            "{n} {repos} no longer visible to the integration's credentials: {names}. {its} index is kept; "
            "{its_lower} webhook and {its_lower} data in Jira's Development panel are deleted. {it_is_cap} back "
            "when the host lists {it} again.",
        ),
        (restored, "discovery_restored", EventLevel.INFO, "{n} {repos} visible again: {names}; {it_is} indexed again."),
    ]
    for repos, code, level, template in changes:
        if not repos:
            continue
        one = len(repos) == 1
        message = template.format(
            n=len(repos),
            repos="repository" if one else "repositories",
            names=names([r.name for r in repos]),
            it_is="it is" if one else "they are",
            it_is_cap="It comes" if one else "They come",
            it="it" if one else "them",
            its="Its" if one else "Their",
            its_lower="its" if one else "their",
        )
        record_event(
            session,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            level=level,
            source=EventSource.DISCOVERY,
            message=message,
            repository_id=repos[0].id if one else None,
            detail={"code": code, "repositories": [r.name for r in repos]},
        )


def _follow_up(session: Session, integration: Integration) -> None:
    """Webhooks for repositories that should have one (new, picked in the wizard, restored) and
    none on those gone; Jira's Development panel in line (removed ones deleted, restored ones
    re-sent). Background jobs; a failure here must not cost the discovery."""
    from connect_app.indexing import webhook_sync
    from connect_app.jira import visibility

    try:
        hooks = webhook_sync.needs_sync(session, integration)
        jira = visibility.needs_reconcile(session, integration)
        integration_id = integration.id
        session.rollback()
        if hooks:
            webhook_sync.request_sync(integration)
        if jira:
            visibility.request_reconcile(integration_id)
    except RedisError:
        log.warning("Redis is unreachable: webhooks and Jira of integration %s catch up later", integration.id)
    except Exception:
        session.rollback()
        log.exception("following up the discovery of integration %s failed", integration.id)


def _request_initial_index(session: Session, integration: Integration) -> int:
    """Every enabled repository of the integration that was never indexed and is not in
    flight: new ones, and the ones an admin picked before this discovery ran."""
    from connect_app.indexing.scheduler import request_index

    waiting = list(
        session.scalars(
            select(Repository).where(
                Repository.integration_id == integration.id,
                Repository.enabled.is_(True),
                Repository.removed_at.is_(None),
                Repository.last_indexed_at.is_(None),
                Repository.status.not_in([RepositoryStatus.QUEUED.value, RepositoryStatus.INDEXING.value]),
            )
        )
    )
    if not waiting:
        return 0
    try:
        return request_index(session, waiting, Trigger.INITIAL)
    except RedisError:
        log.warning("Redis is unreachable: the initial index of %d repositories waits for the dispatcher", len(waiting))
        return 0


def _pause(credential_key: str, error: RateLimited) -> None:
    from connect_app.indexing.scheduler import pause_credential

    assert error.reset_at is not None
    try:
        pause_credential(credential_key, error.reset_at)
    except RedisError:
        log.warning("could not record the rate-limit pause of a credential (Redis unreachable)")
