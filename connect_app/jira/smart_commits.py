"""Smart commits: ``#comment``, ``#time`` and transitions from commit messages, once per commit.

Who runs them (``Integration.features["smart_commits_by"]``)
-------------------------------------------------------------
Jira itself processes smart commits in the commits an app sends to its Development panel:
the bulk endpoint's ``preventTransitions`` is documented as the "flag to prevent automatic
issue transitions and smart commits being fired", and Atlassian's GitHub for Jira leaves smart
commits entirely to Jira ("the GitHub for Jira app does not control smart commits",
atlassian/github-for-jira#1208; #192 for backfills firing them). Running them here *as well*
would comment, log work and transition twice, so exactly one side runs them:

* ``"jira"`` (the default while the Development panel feature is on): Jira runs them. The app
  decides, per commit, whether the push may let it (see :mod:`connect_app.jira.devinfo`): only
  commits newer than the age limit, never in a backfill, and only the first time the tenant's
  ledger sees the commit's commands (``delegated`` rows) -- every other push of that commit
  (reindex, another repository, a rebase) says ``preventTransitions: true``.
* ``"app"`` (or whenever the Development panel feature is off): this module runs them, acting
  as the Jira user whose email matches the commit author (:mod:`connect_app.jira.user_lookup`),
  and every devinfo push of a commit with commands says ``preventTransitions: true``.
* The ``smart_commits`` feature off: neither (pushes always prevent them).

Executing (mode "app"): :func:`run_smart_commits`
-------------------------------------------------
* Commits of the repository committed within the age limit (``features["smart_commits_max_age_days"]``,
  default 14 days), with a linked issue key and a ``#`` in the message.
* Commands act only on the commit's *linked* keys (tenant projects within the project association).
* Each (commit, key, command) is claimed in :class:`~connect_app.models.SmartCommitExecution`
  before it runs; the unique keys make it at most once per tenant (the same sha in another
  repository, or the same author/date/message under another sha, is not run again). A
  crash between the claim and Jira's answer leaves the row ``claimed``: never retried (a second
  comment is worse than a missing one). A 429 before anything ran releases the claim.
* The author is looked up once per commit; no unique user -> every command ``skipped`` with
  the reason. Impersonation unavailable -> ``skipped`` with the reason.
* ``#comment text``: ``POST /rest/api/3/issue/{key}/comment`` (ADF body).
  ``#time 1w 2d [text]``: ``POST .../worklog`` with ``timeSpent`` as written (Jira applies the
  site's hours per day / days per week), ``started`` = the commit's author date, the text as
  the worklog comment. ``#<transition> [text]``: ``GET .../transitions`` as the user, the name
  matched case-insensitively (:func:`~connect_app.jira.smart_commit_parser.match_transition`),
  ``POST .../transitions``, then the text as a comment.
* Malformed commands are recorded as ``skipped`` rows (``command = "invalid"``), never raised.
* What an admin should hear of (no matching Jira user, impersonation unavailable, Jira's
  refusals, transitions not found, malformed commands) also goes to the integration's log,
  once and bounded per run: :mod:`connect_app.jira.smart_commit_events`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from urllib.parse import quote

from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connect_app.errors import (
    AppError,
    HostAuthError,
    HostError,
    HostNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from connect_app.jira.smart_commit_events import SmartCommitLog
from connect_app.jira.smart_commit_parser import (
    CommandKind,
    ParsedMessage,
    Problem,
    SmartCommand,
    Transition,
    adf_paragraph,
    has_command,
    match_transition,
    parse_smart_commits,
)
from connect_app.jira.user_lookup import (
    ConnectImpersonation,
    ImpersonatedJiraClient,
    ImpersonationUnavailable,
    JiraApi,
    UserDirectory,
    UserMatch,
    UserTokenProvider,
)
from connect_app.models import (
    Commit,
    Integration,
    IssueLink,
    LinkKind,
    Repository,
    SmartCommitExecution,
    SmartCommitMode,
    SmartCommitStatus,
    Tenant,
    utcnow,
)
from connect_app.services.integration_settings import (
    DEFAULT_SMART_COMMIT_MAX_AGE_DAYS,
    SMART_COMMIT_MAX_AGE_DAYS_MAX,
    SMART_COMMITS_BY_KEY,
    SMART_COMMITS_MAX_AGE_KEY,
    Feature,
    feature_enabled,
    smart_commit_max_age_days,
    smart_commits_by,
)

log = logging.getLogger(__name__)

MODE_KEY = SMART_COMMITS_BY_KEY  # "app" | "jira"
MAX_AGE_KEY = SMART_COMMITS_MAX_AGE_KEY
DEFAULT_MAX_AGE = timedelta(days=DEFAULT_SMART_COMMIT_MAX_AGE_DAYS)
MAX_AGE_DAYS_LIMIT = SMART_COMMIT_MAX_AGE_DAYS_MAX
MAX_COMMITS_PER_RUN = 2000
INVALID_COMMAND = "invalid"
MAX_SUMMARY = 255
LOG_LIMIT = 200


class UserLookup(Protocol):
    def account_for(self, email: str) -> UserMatch: ...


# (tenant, accountId, token provider) -> a client acting as that user
UserClientFactory = Callable[[Tenant, str, UserTokenProvider], JiraApi]


def smart_commit_mode(integration: Integration) -> SmartCommitMode | None:
    """Who runs this integration's smart commits; ``None`` when the feature is off.
    "jira" (or unset) with the Development panel off is "app": Jira never sees the commits."""
    if not feature_enabled(integration, Feature.SMART_COMMITS):
        return None
    return smart_commits_by(integration)


def smart_commit_max_age(integration: Integration) -> timedelta:
    return timedelta(days=smart_commit_max_age_days(integration))


def fingerprint(author_email: str, authored_at: datetime, message: str) -> str:
    """The same change under another sha (rebase, cherry-pick) has the same fingerprint."""
    when = authored_at.astimezone(UTC).isoformat(timespec="seconds")
    material = f"{author_email.strip().casefold()}\n{when}\n{message}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def jira_datetime(when: datetime) -> str:
    """Jira's worklog format: ``2024-05-01T10:20:30.000+0000``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


# ----------------------------------------------------------------------------- ledger


def insert_claim(session: Session, values: dict[str, Any]) -> bool:
    """Insert one ledger row unless one of its unique keys exists; True when inserted.

    ``ON CONFLICT DO NOTHING RETURNING id``: atomic on both backends, and tells inserted from
    skipped without relying on ``rowcount`` (which psycopg reports as -1 here)."""
    table = cast(Table, SmartCommitExecution.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - the app runs on PostgreSQL and SQLite only
        raise AppError(f"unsupported database {dialect}")
    return session.execute(stmt.returning(table.c.id)).first() is not None


@dataclass(frozen=True)
class CommitFacts:
    """What the executor and the devinfo push need of a commit (no ORM object)."""

    id: int
    sha: str
    message: str
    author_email: str
    authored_at: datetime
    committed_at: datetime

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.author_email, self.authored_at, self.message)


def claim_values(
    *,
    tenant_id: int,
    integration_id: int | None,
    repository_id: int | None,
    commit: CommitFacts,
    issue_key: str,
    command: SmartCommand | None,
    command_index: int,
    summary: str,
    mode: SmartCommitMode,
    status: SmartCommitStatus,
    error: str | None = None,
    account_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "tenant_id": tenant_id,
        "integration_id": integration_id,
        "repository_id": repository_id,
        "sha": commit.sha,
        "fingerprint": commit.fingerprint,
        "issue_key": issue_key,
        "command_index": command_index,
        "command": command.kind.value if command is not None else INVALID_COMMAND,
        "summary": _summary(summary),
        "mode": mode.value,
        "status": status.value,
        "error": error,
        "account_id": account_id,
        "committed_at": commit.committed_at,
        "created_at": now,
        "executed_at": now if status in (SmartCommitStatus.SKIPPED,) else None,
    }


def _row(session: Session, tenant_id: int, sha: str, key: str, index: int) -> SmartCommitExecution | None:
    return session.scalar(
        select(SmartCommitExecution).where(
            SmartCommitExecution.tenant_id == tenant_id,
            SmartCommitExecution.sha == sha,
            SmartCommitExecution.issue_key == key,
            SmartCommitExecution.command_index == index,
        )
    )


# ----------------------------------------------------------------------------- Jira calls


def _issue_path(key: str, tail: str) -> str:
    return f"/rest/api/3/issue/{quote(key, safe='')}/{tail}"


def add_comment(api: JiraApi, issue_key: str, text: str) -> None:
    api.request("POST", _issue_path(issue_key, "comment"), json={"body": adf_paragraph(text)}, expected=(200, 201))


def log_work(api: JiraApi, issue_key: str, duration: str, started: datetime, comment: str) -> None:
    body: dict[str, Any] = {"timeSpent": duration, "started": jira_datetime(started)}
    if comment:
        body["comment"] = adf_paragraph(comment)
    api.request("POST", _issue_path(issue_key, "worklog"), json=body, expected=(200, 201))


def available_transitions(api: JiraApi, issue_key: str) -> list[Transition]:
    body = api.get_json(_issue_path(issue_key, "transitions"))
    items = body.get("transitions") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise HostError("Jira answered the transitions request with an unexpected body.", code="jira_bad_response")
    return [
        Transition(str(t["id"]), str(t["name"]))
        for t in items
        if isinstance(t, dict) and t.get("id") is not None and isinstance(t.get("name"), str)
    ]


def run_transition(api: JiraApi, issue_key: str, command: str, comment: str) -> str:
    """Run the transition ``#command`` names; returns its name. ``CommandFailed`` (with the
    available transitions) when none matches."""
    available = available_transitions(api, issue_key)
    match = match_transition(command, available)
    if match.transition is None:
        raise CommandFailed(
            match.reason or "no such transition",
            code="transition_not_found",
            available=sorted({t.name for t in available}),
        )
    api.request(
        "POST",
        _issue_path(issue_key, "transitions"),
        json={"transition": {"id": match.transition.id}},
        expected=(200, 204),
    )
    if comment:
        add_comment(api, issue_key, comment)
    return match.transition.name


class CommandFailed(AppError):
    """A command Jira could not carry out (no such transition...)."""

    code = "smart_commit_failed"
    status = 422

    def __init__(self, message: str, *, code: str | None = None, available: Sequence[str] | None = None) -> None:
        super().__init__(message, code=code)
        self.available = list(available) if available is not None else None


def execute(api: JiraApi, issue_key: str, command: SmartCommand, commit: CommitFacts) -> str | None:
    """Carry out one command on one issue as ``api``'s user; returns a note for the log."""
    if command.kind is CommandKind.COMMENT:
        add_comment(api, issue_key, command.text)
        return None
    if command.kind is CommandKind.TIME:
        assert command.duration is not None
        log_work(api, issue_key, command.duration, commit.authored_at, command.text)
        return None
    assert command.transition is not None
    name = run_transition(api, issue_key, command.transition, command.text)
    return f"transition: {name}"


def _failure_text(error: AppError, issue_key: str, command: SmartCommand) -> str:
    if isinstance(error, HostNotFound):
        return f"Jira has no issue {issue_key}, or the user cannot see it."
    if isinstance(error, PermissionDenied):
        return f"The user may not run {command.summary} on {issue_key}: {error.message}"
    if isinstance(error, HostAuthError):
        return f"Jira refused the user's access token: {error.message}"
    return error.message


# ----------------------------------------------------------------------------- the run


@dataclass
class SmartCommitResult:
    repository_id: int
    mode: str | None = None
    skipped_reason: str | None = None
    commits_seen: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems[:50]
        return data


@dataclass
class _Context:
    session: Session
    tenant: Tenant
    integration: Integration
    repository: Repository
    mode: SmartCommitMode
    now: datetime
    result: SmartCommitResult
    log: SmartCommitLog


def _load(session: Session, repository_id: int) -> tuple[Repository, Integration, Tenant]:
    repo = session.get(Repository, repository_id)
    if repo is None:
        raise NotFound("No such repository.", code="repository_not_found")
    integration = session.get(Integration, repo.integration_id)
    tenant = session.get(Tenant, repo.tenant_id)
    if integration is None or tenant is None:
        raise NotFound("No such repository.", code="repository_not_found")
    return repo, integration, tenant


def candidate_commits(
    session: Session, repository_id: int, since: datetime, *, limit: int = MAX_COMMITS_PER_RUN
) -> list[CommitFacts]:
    """Linked commits of the repository committed at or after ``since`` that may hold commands."""
    linked = select(IssueLink.id).where(
        IssueLink.repository_id == repository_id,
        IssueLink.kind == LinkKind.COMMIT.value,
        IssueLink.ref == Commit.sha,
    )
    rows = session.execute(
        select(Commit.id, Commit.sha, Commit.message, Commit.author_email, Commit.authored_at, Commit.committed_at)
        .where(
            Commit.repository_id == repository_id,
            Commit.committed_at >= since,
            Commit.message.contains("#", autoescape=True),
            linked.exists(),
        )
        .order_by(Commit.committed_at, Commit.id)
        .limit(limit)
    ).all()
    return [CommitFacts(*row) for row in rows if has_command(row.message)]


def linked_keys(session: Session, repository_id: int, shas: Iterable[str]) -> dict[str, list[str]]:
    """Issue keys linked to each commit, in link order."""
    keys: dict[str, list[str]] = defaultdict(list)
    shas = list(shas)
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        rows = session.execute(
            select(IssueLink.ref, IssueLink.issue_key)
            .where(
                IssueLink.repository_id == repository_id,
                IssueLink.kind == LinkKind.COMMIT.value,
                IssueLink.ref.in_(chunk),
            )
            .order_by(IssueLink.id)
        )
        for sha, key in rows:
            keys[sha].append(key)
    return keys


def existing_ledger(session: Session, tenant_id: int, shas: Sequence[str]) -> set[tuple[str, str, int]]:
    seen: set[tuple[str, str, int]] = set()
    for start in range(0, len(shas), 500):
        chunk = list(shas[start : start + 500])
        rows = session.execute(
            select(SmartCommitExecution.sha, SmartCommitExecution.issue_key, SmartCommitExecution.command_index).where(
                SmartCommitExecution.tenant_id == tenant_id, SmartCommitExecution.sha.in_(chunk)
            )
        )
        seen.update((sha, key, index) for sha, key, index in rows)
    return seen


def run_smart_commits(
    session: Session,
    repository_id: int,
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    client: JiraApi | None = None,
    tokens: UserTokenProvider | None = None,
    users: UserLookup | None = None,
    user_client_factory: UserClientFactory | None = None,
) -> SmartCommitResult:
    """Execute the repository's pending smart commits (mode "app"); a no-op in mode "jira".

    Uses ``session`` and commits it after every ledger change (call it with no pending
    changes). ``client`` is the app's signed client (user search), ``tokens`` the impersonation
    provider; both default to the tenant's real ones (needs an app context). Raises
    ``RateLimited`` (re-enqueue at ``reset_at``); every other Jira error is recorded on its row.
    """
    now = now or utcnow()
    repo, integration, tenant = _load(session, repository_id)
    result = SmartCommitResult(repository_id)
    mode = smart_commit_mode(integration)
    result.mode = mode.value if mode else None
    if not tenant.enabled:
        result.skipped_reason = "Git Connect is disabled on this Jira site."
    elif not repo.enabled:
        result.skipped_reason = "The repository is disabled."
    elif mode is None:
        result.skipped_reason = "Smart commits are switched off for this integration."
    elif mode is SmartCommitMode.JIRA:
        result.skipped_reason = "Jira runs this integration's smart commits (from the Development panel)."
    if result.skipped_reason:
        session.rollback()
        return result
    assert mode is not None
    since = now - (max_age or smart_commit_max_age(integration))
    commits = candidate_commits(session, repo.id, since)
    keys = linked_keys(session, repo.id, [c.sha for c in commits])
    done = existing_ledger(session, tenant.id, [c.sha for c in commits])
    session.rollback()  # no snapshot stays open while Jira answers
    result.commits_seen = len(commits)
    if not commits:
        return result
    events = SmartCommitLog(session, tenant.id, integration.id, repo.id, repo.name, now)
    ctx = _Context(session, tenant, integration, repo, mode, now, result, events)
    app_client = client or _app_client(tenant)
    directory: UserLookup = users or UserDirectory(app_client, tenant_id=tenant.id, cache=_redis())
    provider = tokens or _default_tokens()
    for commit in commits:
        parsed = parse_smart_commits(commit.message, allowed_keys=set(keys.get(commit.sha, ())))
        _record_problems(ctx, commit, parsed, done)
        pending = [(k, c) for k, c in parsed.actions() if (commit.sha, k, c.index) not in done]
        result.already_done += sum(1 for k, c in parsed.actions() if (commit.sha, k, c.index) in done)
        if not pending:
            continue
        _run_commit(ctx, commit, pending, directory, provider, user_client_factory)
    events.close()
    session.commit()
    return result


def _record_problems(
    ctx: _Context, commit: CommitFacts, parsed: ParsedMessage, done: set[tuple[str, str, int]]
) -> None:
    for problem in parsed.problems:
        ctx.result.problems.append(f"{commit.sha[:12]} {problem}")
    # Malformed commands go to the log once (as skipped rows); "not linked" keys are only counted.
    recorded: set[int] = set()
    new: list[Problem] = []
    for problem in parsed.problems:
        index = problem.index
        if index is None or index in recorded or (commit.sha, "-", index) in done:
            continue
        recorded.add(index)
        inserted = insert_claim(
            ctx.session,
            claim_values(
                tenant_id=ctx.tenant.id,
                integration_id=ctx.integration.id,
                repository_id=ctx.repository.id,
                commit=commit,
                issue_key="-",
                command=None,
                command_index=index,
                summary=problem.fragment,
                mode=ctx.mode,
                status=SmartCommitStatus.SKIPPED,
                error=problem.reason,
                now=ctx.now,
            ),
        )
        if inserted:
            new.append(problem)
    if new:
        ctx.log.malformed(commit.sha, new)
        ctx.session.commit()


def _run_commit(
    ctx: _Context,
    commit: CommitFacts,
    pending: list[tuple[str, SmartCommand]],
    directory: UserLookup,
    provider: UserTokenProvider,
    user_client_factory: UserClientFactory | None,
) -> None:
    match = directory.account_for(commit.author_email)
    api: JiraApi | None = None
    reason: str | None = match.reason
    unavailable = False
    if match.account_id is not None:
        try:
            provider.token_for(ctx.tenant, match.account_id)
            factory = user_client_factory or _user_client
            api = factory(ctx.tenant, match.account_id, provider)
        except ImpersonationUnavailable as e:
            reason, unavailable = e.message, True
    if api is None:
        reason = reason or "no Jira user to act as"
        skipped = [
            command.summary for key, command in pending if _skip(ctx, commit, key, command, reason, match.account_id)
        ]
        if skipped and unavailable:
            ctx.log.impersonation_unavailable(commit.sha, reason)
        elif skipped:
            ctx.log.no_user(commit.sha, commit.author_email, reason, skipped)
        ctx.session.commit()
        return
    for key, command in pending:
        _run_one(ctx, api, commit, key, command, match.account_id)


def _skip(
    ctx: _Context, commit: CommitFacts, key: str, command: SmartCommand, reason: str, account_id: str | None
) -> bool:
    """Record the command as skipped; True when this call recorded it (not seen before)."""
    inserted = insert_claim(
        ctx.session,
        claim_values(
            tenant_id=ctx.tenant.id,
            integration_id=ctx.integration.id,
            repository_id=ctx.repository.id,
            commit=commit,
            issue_key=key,
            command=command,
            command_index=command.index,
            summary=command.summary,
            mode=ctx.mode,
            status=SmartCommitStatus.SKIPPED,
            error=reason,
            account_id=account_id,
            now=ctx.now,
        ),
    )
    ctx.session.commit()
    if inserted:
        ctx.result.skipped += 1
    else:
        ctx.result.already_done += 1
    return inserted


def _run_one(
    ctx: _Context, api: JiraApi, commit: CommitFacts, key: str, command: SmartCommand, account_id: str | None
) -> None:
    session = ctx.session
    claimed = insert_claim(
        session,
        claim_values(
            tenant_id=ctx.tenant.id,
            integration_id=ctx.integration.id,
            repository_id=ctx.repository.id,
            commit=commit,
            issue_key=key,
            command=command,
            command_index=command.index,
            summary=command.summary,
            mode=ctx.mode,
            status=SmartCommitStatus.CLAIMED,
            account_id=account_id,
            now=ctx.now,
        ),
    )
    session.commit()
    if not claimed:  # another repository, worker or sha (rebase) got there first
        ctx.result.already_done += 1
        return
    status, error, note = SmartCommitStatus.DONE, None, None
    available: list[str] | None = None
    try:
        note = execute(api, key, command, commit)
    except RateLimited:
        row = _row(session, ctx.tenant.id, commit.sha, key, command.index)
        if row is not None:
            session.delete(row)  # nothing ran: let a later run do it
        session.commit()
        raise
    except AppError as e:
        status, error = SmartCommitStatus.FAILED, _failure_text(e, key, command)
        available = e.available if isinstance(e, CommandFailed) else None
    row = _row(session, ctx.tenant.id, commit.sha, key, command.index)
    if row is not None:
        row.status = status.value
        row.error = error if error is not None else note
        row.executed_at = utcnow()
    if error is not None:
        ctx.log.failed(commit.sha, key, command.summary, error, available)
    session.commit()
    if status is SmartCommitStatus.DONE:
        ctx.result.done += 1
    else:
        ctx.result.failed += 1
        log.info("smart commit %s on %s failed: %s", command.summary, key, error)


# ----------------------------------------------------------------------------- defaults (app context)


def _app_client(tenant: Tenant) -> JiraApi:
    from connect_app.jira.permissions import jira_client_for

    return jira_client_for(tenant)


def _redis() -> Any:
    from connect_app.extensions import redis_conn

    try:
        return redis_conn.client
    except Exception:  # a cache is optional
        return None


def _default_tokens() -> UserTokenProvider:
    from connect_app.jira.tenants import shared_secret
    from connect_app.runtime import runtime

    secrets = runtime().secrets
    return ConnectImpersonation(secret_for=lambda t: shared_secret(t, secrets))


def _user_client(tenant: Tenant, account_id: str, tokens: UserTokenProvider) -> JiraApi:
    from connect_app.runtime import runtime

    return ImpersonatedJiraClient(
        tenant=tenant,
        account_id=account_id,
        tokens=tokens,
        timeout=(5.0, runtime().settings.http_timeout_seconds),
    )


def smart_commit_log(
    session: Session, integration_id: int, *, limit: int = LOG_LIMIT, tenant_id: int | None = None
) -> list[dict[str, Any]]:
    """The integration's smart-commit ledger, newest first (what ran, as whom, or why not)."""
    query = select(SmartCommitExecution).where(SmartCommitExecution.integration_id == integration_id)
    if tenant_id is not None:
        query = query.where(SmartCommitExecution.tenant_id == tenant_id)
    rows = session.scalars(
        query.order_by(SmartCommitExecution.created_at.desc(), SmartCommitExecution.id.desc()).limit(limit)
    )
    return [
        {
            "sha": r.sha,
            "repository_id": r.repository_id,
            "issue_key": r.issue_key,
            "command": r.summary,
            "mode": r.mode,
            "status": r.status,
            "account_id": r.account_id,
            "detail": r.error,
            "committed_at": r.committed_at.isoformat(),
            "executed_at": r.executed_at.isoformat() if r.executed_at else None,
        }
        for r in rows
    ]
