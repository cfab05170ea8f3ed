"""Jira's Development panel: push a repository's linked commits, branches and pull requests.

Entry points (the indexing engine / RQ jobs call them after a run; each needs an app
context unless ``client`` is given, uses the ``session`` given and commits it):

    push_repository(session, repository_id, *, since, backfill) -> DevinfoResult
    push_repository_changes(session, repository_id, *, backfill=False) -> DevinfoResult
    delete_repository(session, *, tenant_id, repository_id) -> None
    delete_integration(session, *, tenant_id, integration_id) -> None

What is sent
------------
Only linked entities (at least one issue key), built by :mod:`connect_app.jira.devinfo_payloads`
within every published limit, for repositories whose integration has the Development panel
feature on (``Feature.DEVELOPMENT_PANEL``). Every push carries the property
``integrationId=<id>``, so deleting an integration is one ``DELETE bulkByProperties``; deleting a
repository is ``DELETE repository/{id}``; uninstalling needs nothing (Jira drops the app's data).

``since=None`` sends everything linked (a full push). ``since=<datetime>`` sends what changed:
commits with a link added since (link ids above the last push's cursor, or created within
:data:`LINK_OVERLAP` of ``since`` -- so a link committed late by a concurrent transaction is
not missed), branches whose head moved or gained a link, pull requests updated on the host
since ``since - PULL_REQUEST_LAG``. Branches that were pushed and are gone (or lost their
links) are deleted in Jira. ``push_repository_changes`` is the incremental push with ``since``
= the start of the last complete push (a full backfill the first time).

preventTransitions
------------------
Jira fires workflow triggers and smart commits for entities sent with ``preventTransitions:
false``. An entity goes in a ``false`` request only when all of these hold, else in a ``true``
one:

* the push is not a backfill (the first push of a repository always is one);
* the entity's own time is within the smart-commit age limit (14 days by default);
* it is news to Jira: a commit with a link added since the last complete push (commits the
  overlap re-sends are redeliveries), a branch whose head moved or that gained a link; a pull
  request counts as news while it is within the age limit (Jira's triggers react to a change
  of its status, so re-sending an unchanged one fires nothing);
* for a commit whose message holds smart-commit commands: Jira runs this integration's smart
  commits (:func:`connect_app.jira.smart_commits.smart_commit_mode`) and this push wins the
  tenant-wide claim on every command (ledger rows ``delegating`` -> ``delegated``), so another
  repository, a reindex or a rebase of the same commit never lets Jira run them twice.

Jira's answers
--------------
* 202: ``failedDevinfoEntities`` and ``unknownIssueKeys`` are recorded in the result and on the
  repository's :class:`~connect_app.models.DevinfoRepositoryState` (the integration log).
* 413 (too large) and 400 (malformed): the request is split in halves and retried, down to
  single entities, which are then recorded as failed (bounded by :data:`MAX_SPLITS`).
* 429: the client waits out short ``Retry-After`` values; a long one raises
  :class:`~connect_app.errors.RateLimited` (``reset_at``) after the progress is saved -- the
  caller re-enqueues and the next call resumes where this one stopped.
* 401/403/404: the tenant is marked as needing attention (``DevinfoTenantState``) and the push
  returns ``status="needs_attention"``. Later pushes do not call Jira until the tenant
  reinstalls (a new shared secret) or :data:`ATTENTION_RETRY` has passed.
* 5xx / timeouts: progress saved, :class:`~connect_app.errors.HostUnavailable` raised.

Each push with something to tell (refusals, new unknown keys, dropped keys, smart commits left
to Jira, an interruption, Jira refusing the app) writes one event to the integration's log:
:mod:`connect_app.jira.devinfo_events`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from connect_app.jira.devinfo_events import PushTarget, record_interrupted, record_push, record_refused
from connect_app.jira.devinfo_payloads import (
    BranchInfo,
    CommitInfo,
    DevinfoLimits,
    DevinfoRequest,
    Entity,
    EntityKind,
    KeyOverflow,
    PullRequestInfo,
    RepositoryInfo,
    branch_entities,
    chunk_keys,
    commit_entity,
    encode_id,
    pack,
    properties_for,
    pull_request_entities,
    repository_url,
    sibling_id,
)
from connect_app.jira.smart_commit_parser import has_command, parse_smart_commits
from connect_app.jira.smart_commits import (
    CommitFacts,
    claim_values,
    insert_claim,
    smart_commit_max_age,
    smart_commit_mode,
)
from connect_app.jira.user_lookup import JiraApi, jira_error_text
from connect_app.models import (
    Branch,
    Commit,
    DevinfoRepositoryState,
    DevinfoStatus,
    DevinfoTenantState,
    Integration,
    IssueLink,
    LinkKind,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    SmartCommitExecution,
    SmartCommitMode,
    SmartCommitStatus,
    Tenant,
    utcnow,
)
from connect_app.services.integration_settings import Feature, feature_enabled

log = logging.getLogger(__name__)

BULK_PATH = "/rest/devinfo/0.10/bulk"
REPOSITORY_PATH = "/rest/devinfo/0.10/repository/{repository_id}"
ENTITY_PATH = "/rest/devinfo/0.10/repository/{repository_id}/{entity_type}/{entity_id}"
BY_PROPERTIES_PATH = "/rest/devinfo/0.10/bulkByProperties"
INTEGRATION_PROPERTY = "integrationId"
PRODUCT = "Git Connect for Jira"

LINK_OVERLAP = timedelta(minutes=2)
PULL_REQUEST_LAG = timedelta(days=1)
WINDOW = 1000  # linked refs read (and progress saved) per step
MAX_SPLITS = 200  # extra requests a push may spend splitting refused (400/413) requests
ATTENTION_RETRY = timedelta(hours=24)
MAX_UNKNOWN_KEYS = 200
SAMPLE = 50
PHASES = (EntityKind.COMMIT, EntityKind.BRANCH, EntityKind.PULL_REQUEST)
_LINK_KIND = {
    EntityKind.COMMIT: LinkKind.COMMIT.value,
    EntityKind.BRANCH: LinkKind.BRANCH.value,
    EntityKind.PULL_REQUEST: LinkKind.PULL_REQUEST.value,
}
_ENTITY_TYPE = {EntityKind.COMMIT: "commit", EntityKind.BRANCH: "branch", EntityKind.PULL_REQUEST: "pull_request"}
_GITLAB = ("gitlab", "gitlab-self-managed")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FailedEntity:
    kind: str  # "commits" / "branches" / "pullRequests" / "repository"
    entity_id: str
    messages: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.entity_id, "messages": list(self.messages)}


@dataclass
class DevinfoResult:
    repository_id: int
    status: str = "ok"  # ok / skipped / needs_attention / partial
    backfill: bool = False
    skipped_reason: str | None = None
    error: str | None = None
    requests: int = 0
    sent: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in PHASES})
    live: int = 0  # entities sent with preventTransitions=false
    failed: list[FailedEntity] = field(default_factory=list)
    unknown_issue_keys: list[str] = field(default_factory=list)
    key_overflow: list[KeyOverflow] = field(default_factory=list)
    deleted_branches: list[str] = field(default_factory=list)
    smart_commits_delegated: int = 0

    @property
    def accepted(self) -> dict[str, int]:
        refused = {k.value: 0 for k in PHASES}
        for f in self.failed:
            if f.kind in refused:
                refused[f.kind] += 1
        return {k: max(0, n - refused[k]) for k, n in self.sent.items()}

    def summary(self) -> dict[str, Any]:
        """Plain and JSON-able (the job's return value, ``DevinfoRepositoryState.last_result``)."""
        return {
            "repository_id": self.repository_id,
            "status": self.status,
            "backfill": self.backfill,
            "skipped_reason": self.skipped_reason,
            "error": self.error,
            "requests": self.requests,
            "sent": dict(self.sent),
            "accepted": self.accepted,
            "live": self.live,
            "failed_count": len(self.failed),
            "failed": [f.as_dict() for f in self.failed[:SAMPLE]],
            "unknown_issue_keys": self.unknown_issue_keys[:SAMPLE],
            "unknown_issue_key_count": len(self.unknown_issue_keys),
            "key_overflow": [
                {
                    "kind": o.kind.value,
                    "id": o.entity_id,
                    "dropped_count": len(o.dropped),
                    "dropped": list(o.dropped[:10]),
                }
                for o in self.key_overflow[:SAMPLE]
            ],
            "deleted_branches": self.deleted_branches[:SAMPLE],
            "smart_commits_delegated": self.smart_commits_delegated,
        }

    as_dict = summary


# ----------------------------------------------------------------------------- loading


def _load(session: Session, repository_id: int) -> tuple[Repository, Integration, Tenant]:
    repo = session.get(Repository, repository_id)
    if repo is None:
        raise NotFound("No such repository.", code="repository_not_found")
    integration = session.get(Integration, repo.integration_id)
    tenant = session.get(Tenant, repo.tenant_id)
    if integration is None or tenant is None:
        raise NotFound("No such repository.", code="repository_not_found")
    return repo, integration, tenant


def _client_for(tenant: Tenant) -> JiraApi:
    from connect_app.jira.permissions import jira_client_for

    return jira_client_for(tenant)


def skip_reason(tenant: Tenant, integration: Integration, repo: Repository) -> str | None:
    if not tenant.enabled:
        return "Git Connect is disabled on this Jira site."
    if not feature_enabled(integration, Feature.DEVELOPMENT_PANEL):
        return "Sending to Jira's Development panel is switched off for this integration."
    if not repo.enabled or repo.status == RepositoryStatus.REMOVED.value:
        return "The repository is disabled or no longer visible to the integration."
    return None


def _repository_info(repo: Repository) -> RepositoryInfo:
    return RepositoryInfo(
        id=repo.id,
        name=repo.name,  # the host's full name ("acme/widgets")
        url=repository_url(repo.web_url, repo.clone_url),
        updated_at=repo.updated_at or repo.created_at,
        provider=repo.provider,
    )


def _commit_info(c: Commit) -> CommitInfo:
    return CommitInfo(
        sha=c.sha,
        message=c.message,
        author_name=c.author_name,
        author_email=c.author_email,
        authored_at=c.authored_at,
        committed_at=c.committed_at,
        files_changed=c.files_changed,
        parent_count=c.parent_count,
        url=c.url,
    )


def _facts(c: Commit) -> CommitFacts:
    return CommitFacts(c.id, c.sha, c.message, c.author_email, c.authored_at, c.committed_at)


# ----------------------------------------------------------------------------- state


def repository_state(session: Session, repository_id: int) -> DevinfoRepositoryState | None:
    return session.scalar(select(DevinfoRepositoryState).where(DevinfoRepositoryState.repository_id == repository_id))


def tenant_state(session: Session, tenant_id: int) -> DevinfoTenantState | None:
    return session.scalar(select(DevinfoTenantState).where(DevinfoTenantState.tenant_id == tenant_id))


def _ensure_repository_state(
    session: Session, repository_id: int, tenant_id: int, integration_id: int
) -> DevinfoRepositoryState:
    state = repository_state(session, repository_id)
    if state is None:
        state = DevinfoRepositoryState(
            tenant_id=tenant_id,
            repository_id=repository_id,
            integration_id=integration_id,
            link_cursor=0,
            pushed_branch_ids=[],
            last_result={},
            unknown_issue_keys=[],
            status=DevinfoStatus.OK.value,
        )
        session.add(state)
        session.flush()
    return state


def _blocked(tstate: DevinfoTenantState | None, tenant: Tenant, now: datetime) -> bool:
    """Whether Jira refused the app recently and nothing suggests it would accept it now."""
    if tstate is None or tstate.status != DevinfoStatus.NEEDS_ATTENTION.value:
        return False
    if tstate.since is not None and tenant.secret_rotated_at > tstate.since:
        return False  # reinstalled (new shared secret): try again
    checked = tstate.last_checked_at or tstate.since
    return checked is not None and now - checked < ATTENTION_RETRY


_ATTENTION_TEXT = {
    401: (
        "Jira refused the app's credentials for this site (HTTP 401). Reinstall Git Connect from the "
        "site's Apps page; the Development panel is updated again after the new install."
    ),
    403: (
        "Jira denied the app access to development information (HTTP 403): the site needs Jira Software, "
        "and the app its Development tool module and WRITE/DELETE scopes. Update or reinstall the app."
    ),
    404: "This Jira site offers no development information API (HTTP 404): is Jira Software active on it?",
}


def _attention_status(error: AppError) -> int:
    if isinstance(error, HostAuthError):
        return 401
    if isinstance(error, PermissionDenied):
        return 403
    return 404


def _mark_attention(session: Session, tenant_id: int, error: AppError, now: datetime) -> str:
    status = _attention_status(error)
    detail = _ATTENTION_TEXT[status]
    tstate = tenant_state(session, tenant_id)
    if tstate is None:
        tstate = DevinfoTenantState(tenant_id=tenant_id)
        session.add(tstate)
    if tstate.status != DevinfoStatus.NEEDS_ATTENTION.value or tstate.since is None:
        tstate.since = now
    tstate.status = DevinfoStatus.NEEDS_ATTENTION.value
    tstate.detail = detail
    tstate.http_status = status
    tstate.last_checked_at = now
    return detail


def _clear_attention(session: Session, tenant_id: int) -> None:
    tstate = tenant_state(session, tenant_id)
    if tstate is not None and tstate.status != DevinfoStatus.OK.value:
        tstate.status = DevinfoStatus.OK.value
        tstate.detail = None
        tstate.http_status = None
        tstate.since = None


# ----------------------------------------------------------------------------- the push


@dataclass
class _Plan:
    full: bool
    since: datetime | None
    backfill: bool
    started: datetime
    watermark: int
    link_cursor: int
    kind: EntityKind = EntityKind.COMMIT
    after: str | None = None

    def pending(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "full": self.full,
            "backfill": self.backfill,
            "started": self.started.isoformat(),
            "watermark": self.watermark,
            "link_cursor": self.link_cursor,
            "kind": self.kind.value,
            "after": self.after,
        }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _plan(
    session: Session, state: DevinfoRepositoryState, repo_id: int, since: datetime | None, backfill: bool, now: datetime
) -> _Plan:
    never_pushed = state.last_success_started_at is None
    full = since is None
    plan = _Plan(
        full=full,
        since=since,
        backfill=backfill or never_pushed,
        started=now,
        watermark=_max_link_id(session, repo_id),
        link_cursor=0 if full else state.link_cursor,
    )
    pending = state.pending
    if not isinstance(pending, dict):
        return plan
    # An interrupted push: resume it when this call asks for no more than it did.
    old_since = _parse_time(pending.get("since"))
    old_full = bool(pending.get("full"))
    covers = old_full or (not full and old_since is not None and since is not None and old_since <= since)
    started = _parse_time(pending.get("started"))
    try:
        kind = EntityKind(pending.get("kind", EntityKind.COMMIT.value))
    except ValueError:
        kind = EntityKind.COMMIT
    if covers and started is not None:
        return _Plan(
            full=old_full,
            since=old_since,
            backfill=bool(pending.get("backfill")) or plan.backfill,
            started=started,
            watermark=int(pending.get("watermark") or 0),
            link_cursor=int(pending.get("link_cursor") or 0),
            kind=kind,
            after=pending.get("after") if isinstance(pending.get("after"), str) else None,
        )
    # A wider push than the interrupted one: start over (it selects all the old one would have).
    plan.backfill = plan.backfill or bool(pending.get("backfill"))
    return plan


def _max_link_id(session: Session, repo_id: int) -> int:
    return int(session.scalar(select(func.max(IssueLink.id)).where(IssueLink.repository_id == repo_id)) or 0)


@dataclass
class _Push:
    """One push in progress: plain values only (ORM objects expire at every rollback)."""

    session: Session
    client: JiraApi
    tenant_id: int
    integration_id: int
    repo_id: int
    provider: str
    web_url: str | None
    info: RepositoryInfo
    plan: _Plan
    limits: DevinfoLimits
    mode: SmartCommitMode | None
    live_since: datetime
    result: DevinfoResult
    properties: dict[str, str]
    splits_left: int = MAX_SPLITS
    delegating: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # sha -> ledger keys

    @property
    def header(self) -> dict[str, Any]:
        return self.info.header()

    @property
    def fallback_url(self) -> str:
        return self.info.url

    @property
    def target(self) -> PushTarget:
        return PushTarget(self.tenant_id, self.integration_id, self.repo_id, self.info.name)


def push_repository(
    session: Session,
    repository_id: int,
    *,
    since: datetime | None,
    backfill: bool,
    client: JiraApi | None = None,
    now: datetime | None = None,
    limits: DevinfoLimits | None = None,
) -> DevinfoResult:
    """Send the repository's linked entities (all, or those changed since ``since``) to Jira.

    Returns a :class:`DevinfoResult` (``status`` ok / skipped / needs_attention). Raises
    ``RateLimited`` (re-enqueue at ``reset_at``) or ``HostUnavailable`` after saving progress;
    a later call with the same or a later ``since`` resumes. Commits ``session``.
    """
    now = now or utcnow()
    limits = limits or DevinfoLimits()
    repo, integration, tenant = _load(session, repository_id)
    result = DevinfoResult(repository_id, backfill=backfill)
    reason = skip_reason(tenant, integration, repo)
    if reason:
        session.rollback()
        result.status, result.skipped_reason = "skipped", reason
        return result
    tstate = tenant_state(session, tenant.id)
    if _blocked(tstate, tenant, now):
        assert tstate is not None
        session.rollback()
        result.status, result.error = "needs_attention", tstate.detail
        return result
    state = _ensure_repository_state(session, repo.id, tenant.id, integration.id)
    plan = _plan(session, state, repo.id, since, backfill, now)
    result.backfill = plan.backfill
    state.pending = plan.pending()
    state.last_attempt_at = now
    session.commit()
    push = _Push(
        session=session,
        client=client or _client_for(tenant),
        tenant_id=tenant.id,
        integration_id=integration.id,
        repo_id=repo.id,
        provider=repo.provider,
        web_url=repo.web_url,
        info=_repository_info(repo),
        plan=plan,
        limits=limits,
        mode=smart_commit_mode(integration),
        live_since=now - smart_commit_max_age(integration),
        result=result,
        properties=properties_for(**{INTEGRATION_PROPERTY: str(integration.id)}),
    )
    try:
        for kind in PHASES[PHASES.index(plan.kind) :]:
            for window in _windows(push, kind):
                _send_window(push, kind, window)
                plan.kind, plan.after = kind, window[-1]
                _save_progress(push)
            plan.after = None
        _delete_gone_branches(push)
    except RateLimited as e:
        _interrupted(push, e, "rate limited by Jira", now)
        raise
    except (HostAuthError, PermissionDenied, HostNotFound) as e:
        session.rollback()
        detail = _mark_attention(session, push.tenant_id, e, now)
        state = _ensure_repository_state(session, push.repo_id, push.tenant_id, push.integration_id)
        state.status = DevinfoStatus.NEEDS_ATTENTION.value
        state.last_error = detail
        result.status, result.error = "needs_attention", detail
        state.last_result = result.summary()
        record_refused(session, push.target, detail, _attention_status(e), now)
        session.commit()
        return result
    except AppError as e:
        _interrupted(push, e, e.message, now)
        raise
    _finish(push)
    return result


def push_repository_changes(
    session: Session, repository_id: int, *, backfill: bool = False, **kw: Any
) -> DevinfoResult:
    """What the job after an index run calls: everything since the last complete push
    (or a full backfill when there was none)."""
    state = repository_state(session, repository_id)
    since = state.last_success_started_at if state is not None else None
    return push_repository(session, repository_id, since=since, backfill=backfill, **kw)


def _save_progress(push: _Push) -> None:
    state = _ensure_repository_state(push.session, push.repo_id, push.tenant_id, push.integration_id)
    state.pending = push.plan.pending()
    state.status = DevinfoStatus.PARTIAL.value
    push.session.commit()


def _interrupted(push: _Push, error: AppError, text: str, now: datetime) -> None:
    session = push.session
    session.rollback()
    state = _ensure_repository_state(session, push.repo_id, push.tenant_id, push.integration_id)
    state.pending = push.plan.pending()
    state.status = DevinfoStatus.PARTIAL.value
    state.last_error = f"Interrupted ({text}); the next push resumes where this one stopped."
    push.result.status, push.result.error = "partial", state.last_error
    state.last_result = push.result.summary()
    new_keys = _merge_unknown_keys(state, push.result.unknown_issue_keys)
    record_interrupted(session, push.target, push.result, new_keys, error, now)
    session.commit()
    log.info("devinfo push of repository %s interrupted: %s", push.repo_id, error)


def _finish(push: _Push) -> None:
    session, plan, result = push.session, push.plan, push.result
    state = _ensure_repository_state(session, push.repo_id, push.tenant_id, push.integration_id)
    state.link_cursor = max(plan.link_cursor, plan.watermark)
    state.last_success_started_at = plan.started
    state.last_success_at = utcnow()
    state.pending = None
    state.status = DevinfoStatus.OK.value
    state.last_error = None
    state.last_result = result.summary()
    new_keys = _merge_unknown_keys(state, result.unknown_issue_keys)
    _clear_attention(session, push.tenant_id)
    record_push(session, push.target, result, new_keys)
    session.commit()


def _merge_unknown_keys(state: DevinfoRepositoryState, keys: Sequence[str]) -> list[str]:
    """Add ``keys`` to the repository's list (newest last, capped); returns those it did not hold."""
    if not keys:
        return []
    known = set(state.unknown_issue_keys or [])
    merged = [k for k in (state.unknown_issue_keys or []) if k not in keys] + list(keys)
    state.unknown_issue_keys = merged[-MAX_UNKNOWN_KEYS:]
    return [k for k in keys if k not in known]


# ----------------------------------------------------------------------------- selection


def _changed_links(push: _Push, kind: EntityKind) -> list[Any]:
    plan = push.plan
    conditions: list[Any] = [IssueLink.repository_id == push.repo_id, IssueLink.kind == _LINK_KIND[kind]]
    if not plan.full and plan.since is not None:
        conditions.append(or_(IssueLink.id > plan.link_cursor, IssueLink.created_at >= plan.since - LINK_OVERLAP))
    return conditions


def _windows(push: _Push, kind: EntityKind) -> Iterator[list[str]]:
    """Sorted refs (sha / branch name / pull request id) to send, in windows of :data:`WINDOW`."""
    session, plan = push.session, push.plan
    after = plan.after if plan.kind is kind else None
    if kind is EntityKind.COMMIT:
        while True:
            stmt = select(IssueLink.ref).where(*_changed_links(push, kind)).distinct().order_by(IssueLink.ref)
            if after is not None:
                stmt = stmt.where(IssueLink.ref > after)
            refs = list(session.scalars(stmt.limit(WINDOW)))
            session.rollback()
            if not refs:
                return
            yield refs
            after = refs[-1]
        return
    refs_set = set(session.scalars(select(IssueLink.ref).where(*_changed_links(push, kind)).distinct()))
    if not plan.full and plan.since is not None:
        if kind is EntityKind.BRANCH:
            moved = select(Branch.name).where(
                Branch.repository_id == push.repo_id, Branch.updated_at >= plan.since - LINK_OVERLAP
            )
            linked = select(IssueLink.ref).where(
                IssueLink.repository_id == push.repo_id, IssueLink.kind == LinkKind.BRANCH.value
            )
            refs_set |= set(session.scalars(moved.where(Branch.name.in_(linked))))
        else:
            updated = select(PullRequestRecord.external_id).where(
                PullRequestRecord.repository_id == push.repo_id,
                PullRequestRecord.updated_on_host >= plan.since - PULL_REQUEST_LAG,
            )
            linked = select(IssueLink.ref).where(
                IssueLink.repository_id == push.repo_id, IssueLink.kind == LinkKind.PULL_REQUEST.value
            )
            refs_set |= set(session.scalars(updated.where(PullRequestRecord.external_id.in_(linked))))
    session.rollback()
    refs = sorted(r for r in refs_set if after is None or r > after)
    for start in range(0, len(refs), WINDOW):
        yield refs[start : start + WINDOW]


def _keys_for(push: _Push, kind: EntityKind, refs: Sequence[str]) -> tuple[dict[str, list[str]], set[str]]:
    """Each ref's linked keys (in link order), and the refs with a link newer than the last
    complete push (the others are re-sent by the overlap: never allowed to fire)."""
    keys: dict[str, list[str]] = {}
    new: set[str] = set()
    for start in range(0, len(refs), 500):
        chunk = list(refs[start : start + 500])
        rows = push.session.execute(
            select(IssueLink.ref, IssueLink.issue_key, IssueLink.id)
            .where(
                IssueLink.repository_id == push.repo_id,
                IssueLink.kind == _LINK_KIND[kind],
                IssueLink.ref.in_(chunk),
            )
            .order_by(IssueLink.id)
        )
        for ref, key, link_id in rows:
            keys.setdefault(ref, []).append(key)
            if push.plan.full or link_id > push.plan.link_cursor:
                new.add(ref)
    return keys, new


def _commits_by_sha(push: _Push, shas: Sequence[str]) -> dict[str, Commit]:
    found: dict[str, Commit] = {}
    for start in range(0, len(shas), 500):
        chunk = list(shas[start : start + 500])
        for commit in push.session.scalars(
            select(Commit).where(Commit.repository_id == push.repo_id, Commit.sha.in_(chunk))
        ):
            found[commit.sha] = commit
    return found


# ----------------------------------------------------------------------------- building


def _recent(push: _Push, when: datetime | None) -> bool:
    return not push.plan.backfill and when is not None and when >= push.live_since


def _build_commits(push: _Push, refs: Sequence[str]) -> list[Entity]:
    keys, new = _keys_for(push, EntityKind.COMMIT, refs)
    commits = _commits_by_sha(push, refs)
    entities: list[Entity] = []
    for sha in refs:
        commit = commits.get(sha)
        if commit is None or not keys.get(sha):
            continue
        entity, overflow = commit_entity(
            _commit_info(commit), keys[sha], fallback_url=push.fallback_url, limits=push.limits
        )
        if overflow is not None:
            push.result.key_overflow.append(overflow)
        if entity is None:
            continue
        live = sha in new and _recent(push, commit.committed_at) and _may_fire(push, commit, keys[sha])
        entities.append(Entity(entity.kind, entity.id, entity.body, commit.id, live))
    push.session.commit()  # claims made by _may_fire
    return entities


def _may_fire(push: _Push, commit: Commit, keys: Sequence[str]) -> bool:
    """Whether Jira may process this commit's smart commits (and transitions): always for a
    commit without commands; for one with commands only in mode "jira" and when this push
    claims every command (or holds the claims from an interrupted attempt)."""
    if not has_command(commit.message):
        return True
    if push.mode is not SmartCommitMode.JIRA:
        return False
    parsed = parse_smart_commits(commit.message, allowed_keys=set(keys))
    actions = list(parsed.actions())
    if not actions:
        return False
    facts = _facts(commit)
    mine: list[tuple[str, int]] = []
    for key, command in actions:
        values = claim_values(
            tenant_id=push.tenant_id,
            integration_id=push.integration_id,
            repository_id=push.repo_id,
            commit=facts,
            issue_key=key,
            command=command,
            command_index=command.index,
            summary=command.summary,
            mode=SmartCommitMode.JIRA,
            status=SmartCommitStatus.DELEGATING,
        )
        if insert_claim(push.session, values) or _held_by_us(push, commit.sha, key, command.index):
            mine.append((key, command.index))
            continue
        _release(push, commit.sha, mine)
        return False
    push.delegating[commit.sha] = mine
    return True


def _ledger_row(push: _Push, sha: str, key: str, index: int) -> SmartCommitExecution | None:
    return push.session.scalar(
        select(SmartCommitExecution).where(
            SmartCommitExecution.tenant_id == push.tenant_id,
            SmartCommitExecution.sha == sha,
            SmartCommitExecution.issue_key == key,
            SmartCommitExecution.command_index == index,
        )
    )


def _held_by_us(push: _Push, sha: str, key: str, index: int) -> bool:
    row = _ledger_row(push, sha, key, index)
    return row is not None and row.status == SmartCommitStatus.DELEGATING.value and row.repository_id == push.repo_id


def _release(push: _Push, sha: str, claims: Sequence[tuple[str, int]]) -> None:
    for key, index in claims:
        row = _ledger_row(push, sha, key, index)
        if row is not None and row.status == SmartCommitStatus.DELEGATING.value:
            push.session.delete(row)
    push.session.flush()


def _settle_delegations(push: _Push, sent: Sequence[Entity], failed: dict[str, list[str]]) -> None:
    """After Jira answered: ``delegated`` for accepted commits, ``failed`` for refused ones."""
    changed = False
    for entity in sent:
        if entity.kind is not EntityKind.COMMIT or not entity.live:
            continue
        claims = push.delegating.pop(entity.id, None)
        if not claims:
            continue
        refused = failed.get(entity.id)
        for key, index in claims:
            row = _ledger_row(push, entity.id, key, index)
            if row is None:
                continue
            row.status = (SmartCommitStatus.FAILED if refused else SmartCommitStatus.DELEGATED).value
            row.error = "; ".join(refused)[:1000] if refused else None
            row.executed_at = utcnow()
            changed = True
            if not refused:
                push.result.smart_commits_delegated += 1
    if changed:
        push.session.commit()


def _build_branches(push: _Push, refs: Sequence[str]) -> list[Entity]:
    keys, new = _keys_for(push, EntityKind.BRANCH, refs)
    since = push.plan.since
    branches = {
        b.name: b
        for b in push.session.scalars(
            select(Branch).where(Branch.repository_id == push.repo_id, Branch.name.in_(list(refs)))
        )
    }
    heads = _commits_by_sha(push, sorted({b.head_sha for b in branches.values()}))
    entities: list[Entity] = []
    for name in refs:
        branch = branches.get(name)
        if branch is None or not keys.get(name):
            continue
        head = heads.get(branch.head_sha)
        info = BranchInfo(
            name=branch.name,
            head_sha=branch.head_sha,
            updated_at=branch.updated_at,
            url=branch.url,
            head=_commit_info(head) if head is not None else None,
        )
        moved = name in new or since is None or branch.updated_at >= since
        live = moved and _recent(push, branch.updated_at)
        for entity in branch_entities(info, keys[name], fallback_url=push.fallback_url, limits=push.limits):
            entities.append(Entity(entity.kind, entity.id, entity.body, branch.id, live))
    return entities


def _build_pull_requests(push: _Push, refs: Sequence[str]) -> list[Entity]:
    keys, _ = _keys_for(push, EntityKind.PULL_REQUEST, refs)
    prs = {
        p.external_id: p
        for p in push.session.scalars(
            select(PullRequestRecord).where(
                PullRequestRecord.repository_id == push.repo_id, PullRequestRecord.external_id.in_(list(refs))
            )
        )
    }
    from connect_app.hosts.weburls import branch_url

    prefix = "!" if push.provider in _GITLAB else "#"
    entities: list[Entity] = []
    for external_id in refs:
        pr = prs.get(external_id)
        if pr is None or not keys.get(external_id):
            continue
        info = PullRequestInfo(
            external_id=pr.external_id,
            title=pr.title,
            state=pr.state,
            source_branch=pr.source_branch,
            target_branch=pr.target_branch,
            url=pr.url,
            updated_on_host=pr.updated_on_host,
            author=pr.author,
            display_prefix=prefix,
            source_branch_url=branch_url(push.provider, push.web_url, pr.source_branch),
            target_branch_url=branch_url(push.provider, push.web_url, pr.target_branch),
        )
        # Host time: a pull request updated within the age limit may fire (Jira's workflow
        # triggers react to a change of status, so a re-sent unchanged one fires nothing).
        live = _recent(push, pr.updated_on_host)
        for entity in pull_request_entities(
            info, keys[external_id], fallback_url=push.fallback_url, limits=push.limits
        ):
            entities.append(Entity(entity.kind, entity.id, entity.body, pr.id, live))
    return entities


_BUILDERS = {
    EntityKind.COMMIT: _build_commits,
    EntityKind.BRANCH: _build_branches,
    EntityKind.PULL_REQUEST: _build_pull_requests,
}


# ----------------------------------------------------------------------------- sending


def _send_window(push: _Push, kind: EntityKind, refs: Sequence[str]) -> None:
    entities = _BUILDERS[kind](push, refs)
    push.session.rollback()  # no snapshot stays open while Jira answers
    if not entities:
        return
    for live in (False, True):
        group = [e for e in entities if e.live is live]
        if not group:
            continue
        requests = pack(
            [(push.header, group)],
            prevent_transitions=not live,
            properties=push.properties,
            provider_metadata={"product": PRODUCT},
            limits=push.limits,
        )
        for request in requests:
            _send(push, request)


def _send(push: _Push, request: DevinfoRequest) -> None:
    response = push.client.request("POST", BULK_PATH, json=request.body(), expected=(200, 201, 202, 400, 413))
    push.result.requests += 1
    if response.status_code in (400, 413):
        said = jira_error_text(response)
        if request.entity_count > 1 and push.splits_left >= 2:
            push.splits_left -= 2
            first, second = request.halves()
            _send(push, first)
            _send(push, second)
            return
        reason = f"Jira refused the request (HTTP {response.status_code}{': ' + said if said else ''})"
        _count_sent(push, request)
        refused = {e.id: [reason] for e in request.entities if e.kind is EntityKind.COMMIT}
        for entity in request.entities:
            push.result.failed.append(FailedEntity(entity.kind.value, entity.id, (reason,)))
        _settle_delegations(push, request.entities, refused)
        return
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    _count_sent(push, request)
    refused_commits = _absorb(push, body if isinstance(body, dict) else {})
    _settle_delegations(push, request.entities, refused_commits)


def _count_sent(push: _Push, request: DevinfoRequest) -> None:
    for entity in request.entities:
        push.result.sent[entity.kind.value] += 1
        if entity.live:
            push.result.live += 1


def _messages(item: Any) -> tuple[str, ...]:
    if not isinstance(item, dict):
        return ()
    return tuple(
        str(m.get("message")) for m in item.get("errorMessages") or [] if isinstance(m, dict) and m.get("message")
    )


def _absorb(push: _Push, body: dict[str, Any]) -> dict[str, list[str]]:
    """Record a 202's refusals and unknown keys; returns refused commit ids -> messages."""
    refused_commits: dict[str, list[str]] = {}
    failed = body.get("failedDevinfoEntities")
    if isinstance(failed, dict):
        for repo_id, errors in failed.items():
            if not isinstance(errors, dict):
                continue
            repo_messages = _messages(errors)
            if repo_messages:
                push.result.failed.append(FailedEntity("repository", str(repo_id), repo_messages))
            for kind in PHASES:
                for item in errors.get(kind.value) or []:
                    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                        continue
                    messages = _messages(item) or ("refused by Jira",)
                    push.result.failed.append(FailedEntity(kind.value, item["id"], messages))
                    if kind is EntityKind.COMMIT:
                        refused_commits[item["id"]] = list(messages)
    unknown = body.get("unknownIssueKeys")
    if isinstance(unknown, list):
        seen = set(push.result.unknown_issue_keys)
        for key in unknown:
            if isinstance(key, str) and key not in seen:
                seen.add(key)
                push.result.unknown_issue_keys.append(key)
    return refused_commits


# ----------------------------------------------------------------------------- branches that went away


def linked_branch_ids(session: Session, repository_id: int, limits: DevinfoLimits | None = None) -> set[str]:
    """The branch entity ids (siblings included) Jira should hold for the repository now."""
    limits = limits or DevinfoLimits()
    keys: dict[str, list[str]] = {}
    rows = session.execute(
        select(IssueLink.ref, IssueLink.issue_key)
        .join(Branch, and_(Branch.repository_id == IssueLink.repository_id, Branch.name == IssueLink.ref))
        .where(IssueLink.repository_id == repository_id, IssueLink.kind == LinkKind.BRANCH.value)
        .order_by(IssueLink.id)
    )
    for ref, key in rows:
        keys.setdefault(ref, []).append(key)
    ids: set[str] = set()
    for name, branch_keys in keys.items():
        base = encode_id(name)
        ids.update(sibling_id(base, n) for n in range(len(chunk_keys(branch_keys, limits.max_issue_keys))))
    return ids


def _delete_gone_branches(push: _Push) -> None:
    session = push.session
    current = linked_branch_ids(session, push.repo_id, push.limits)
    state = _ensure_repository_state(session, push.repo_id, push.tenant_id, push.integration_id)
    gone = sorted(set(state.pushed_branch_ids or []) - current)
    session.rollback()
    for entity_id in gone:
        path = ENTITY_PATH.format(
            repository_id=quote(push.info.devinfo_id, safe=""),
            entity_type=_ENTITY_TYPE[EntityKind.BRANCH],
            entity_id=quote(entity_id, safe=""),
        )
        push.client.request("DELETE", path, expected=(200, 202, 204, 404))
        push.result.requests += 1
        push.result.deleted_branches.append(entity_id)
    state = _ensure_repository_state(session, push.repo_id, push.tenant_id, push.integration_id)
    state.pushed_branch_ids = sorted(current)
    session.commit()


# ----------------------------------------------------------------------------- deleting


def delete_repository(session: Session, *, tenant_id: int, repository_id: int, client: JiraApi | None = None) -> None:
    """Remove one repository's development information from Jira (``DELETE repository/{id}``).

    Call it before or after the row is gone (only the ids are needed). Raises the client's
    errors; a 401/403 also marks the tenant as needing attention.
    """
    client = client or _tenant_client(session, tenant_id)
    path = REPOSITORY_PATH.format(repository_id=quote(str(repository_id), safe=""))
    _delete(session, tenant_id, client, path, None)
    state = repository_state(session, repository_id)
    if state is not None:
        session.delete(state)
    session.commit()


def delete_integration(session: Session, *, tenant_id: int, integration_id: int, client: JiraApi | None = None) -> None:
    """Remove everything an integration ever pushed (``DELETE bulkByProperties?integrationId=<id>``)."""
    client = client or _tenant_client(session, tenant_id)
    _delete(session, tenant_id, client, BY_PROPERTIES_PATH, {INTEGRATION_PROPERTY: str(integration_id)})
    session.commit()


def _tenant_client(session: Session, tenant_id: int) -> JiraApi:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("This Jira site is not installed.", code="tenant_not_found")
    return _client_for(tenant)


def _delete(session: Session, tenant_id: int, client: JiraApi, path: str, params: dict[str, str | int] | None) -> None:
    session.rollback()
    try:
        client.request("DELETE", path, params=params, expected=(200, 202, 204))
    except (HostAuthError, PermissionDenied) as e:
        _mark_attention(session, tenant_id, e, utcnow())
        session.commit()
        raise


# ----------------------------------------------------------------------------- the log


def repository_log(session: Session, repository_id: int) -> dict[str, Any] | None:
    """What the integration's log shows for one repository's Development panel pushes."""
    state = repository_state(session, repository_id)
    return None if state is None else state_summary(state)


def state_summary(state: DevinfoRepositoryState) -> dict[str, Any]:
    """One repository's Development panel state as plain data (the log summary's rows)."""
    return {
        "status": state.status,
        "last_attempt_at": state.last_attempt_at.isoformat() if state.last_attempt_at else None,
        "last_success_at": state.last_success_at.isoformat() if state.last_success_at else None,
        "last_error": state.last_error,
        "last_result": state.last_result,
        "unknown_issue_keys": state.unknown_issue_keys,
        "resuming": state.pending is not None,
    }
