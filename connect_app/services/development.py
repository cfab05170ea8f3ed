"""The issue's development data: commits, branches, pull requests and tags linked to one Jira
issue key, filtered for the viewer, newest first, in keyset pages. No Flask.

Visibility (:func:`visible_repository_ids`, applied to everything returned)
--------------------------------------------------------------------------
A repository shows only when it is enabled, not removed (``removed_at`` unset, status not
``removed``), its integration is not disabled, and its *project association* allows the
issue's project: ``repository.project_keys``, or the integration's when the repository's is
empty; both empty means every project. Repositories of integrations with **enforce git
service permissions** on show only what the :class:`PermissionChecker` says the viewer's own
token can read. Until user tokens exist the checker is :class:`NoUserTokens`: such
integrations show nothing and are listed in ``needs_token`` (every enforcing integration the
issue's project may see, whether or not it holds data for this issue, so the list never
reveals that hidden repositories mention the issue).

Pages
-----
Each kind (commits, branches, pull requests) is its own keyset over ``(time, id)``
descending: commits by ``committed_at``, branches by ``updated_at``, pull requests by
``updated_on_host``. ``limit`` caps each kind per page; one opaque cursor carries the three
positions (a kind already exhausted is marked done). The cursor is HMAC-signed with a
server key over the tenant and issue key, so a changed, truncated or replayed-elsewhere
cursor is a 400, not a silently different page.

Tags
----
``git tag --contains`` needs the commit graph, which is not stored. A tag is reported for a
commit when it points exactly at it (``tag.sha`` equals the commit's sha in the same
repository: annotated tags are stored peeled). Tags are looked up for the commits of the
returned page only.

Round trips (a page of an issue with only commits: four; with everything: seven)
--------------------------------------------------------------------------------
1. link counts per repository and kind (``GROUP BY`` over ``ix_issue_link_tenant_issue``):
   the linked repositories and, summed over the visible ones, ``counts``;
2. the tenant's integrations LEFT JOIN those repositories (and any in their first index);
3. commits: links JOIN commit on ``(repository_id, sha)`` (``uq_commit_repository_sha``),
   newest first, keyset, ``LIMIT n+1``;
4. tags of the page's commits (only when there are commits);
5. branches (links JOIN branch, LEFT JOIN the head commit) and 6. the pull requests from
   those branches (only when there are branches);
7. pull requests (links JOIN pull_request on ``(repository_id, external_id)``).
A kind with no visible links, or already done in the cursor, is not queried. Hidden
repositories are excluded in SQL with ``NOT IN`` (see :class:`Scope`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from connect_app.errors import ValidationError
from connect_app.hosts import weburls
from connect_app.indexing.issue_keys import is_issue_key, project_of
from connect_app.models import (
    Branch,
    Commit,
    Integration,
    IntegrationStatus,
    IssueLink,
    LinkKind,
    PullRequestRecord,
    Repository,
    RepositoryStatus,
    Tag,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MESSAGE_MAX_CHARS = 2000  # a commit message longer than this is cut (``message_truncated``)
INDEXING_LISTED = 10  # repositories named in the "indexing…" hint (``indexing_total`` counts all)
FIRST_INDEX_STATUSES = (RepositoryStatus.NEW.value, RepositoryStatus.QUEUED.value, RepositoryStatus.INDEXING.value)
CURSOR_MAX_CHARS = 400
CURSOR_VERSION = 1
_MAX_ID = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = int((datetime(1, 1, 2, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
_MAX_US = int((datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
_KINDS = ("c", "b", "p")  # commits, branches, pull requests: their slots in the cursor


# --------------------------------------------------------------------------- input


def parse_issue_key(raw: str) -> str:
    """``abc-12`` / ``ABC-12`` -> ``ABC-12``; anything else (spaces included) is a 400."""
    key = (raw or "").upper()
    if not is_issue_key(key):
        raise ValidationError("Expected a Jira issue key such as ABC-123.", code="bad_issue_key")
    return key


def parse_limit(raw: str | None) -> int:
    """Absent: 50. An integer from 1 up; above 500 is capped to 500. Anything else is a 400."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIMIT}.", code="bad_limit")
    return min(int(text), MAX_LIMIT)


# --------------------------------------------------------------------------- cursor

Position = tuple[datetime, int]


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts, per kind: after ``(time, id)``, or ``None`` when that kind is done."""

    commits: Position | None
    branches: Position | None
    pull_requests: Position | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, tenant_id: int, issue_key: str, payload: bytes) -> bytes:
    message = f"{tenant_id}\n{issue_key}\n".encode() + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:16]


def _us(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_cursor(cursor: Cursor, *, key: bytes, tenant_id: int, issue_key: str) -> str:
    slots = {
        name: None if pos is None else [_us(pos[0]), pos[1]]
        for name, pos in zip(_KINDS, (cursor.commits, cursor.branches, cursor.pull_requests), strict=True)
    }
    payload = json.dumps({"v": CURSOR_VERSION, **slots}, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, tenant_id, issue_key, payload))}"


def _bad_cursor() -> ValidationError:
    return ValidationError(
        "The cursor is not valid for this issue (it must be a next_cursor returned by this API, unchanged).",
        code="bad_cursor",
    )


def _position(value: Any) -> Position | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        raise _bad_cursor()
    us, row_id = value
    if type(us) is not int or type(row_id) is not int or not (_MIN_US <= us <= _MAX_US and 1 <= row_id <= _MAX_ID):
        raise _bad_cursor()
    return _EPOCH + timedelta(microseconds=us), row_id


def decode_cursor(text: str, *, key: bytes, tenant_id: int, issue_key: str) -> Cursor:
    """The cursor :func:`encode_cursor` made for this tenant and issue, or ``ValidationError`` (400)."""
    if len(text) > CURSOR_MAX_CHARS or text.count(".") != 1:
        raise _bad_cursor()
    payload_text, mac_text = text.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (binascii.Error, ValueError) as e:
        raise _bad_cursor() from e
    if not hmac.compare_digest(mac, _mac(key, tenant_id, issue_key, payload)):
        raise _bad_cursor()
    try:
        data = json.loads(payload)
    except ValueError as e:  # signed by us, so only a server bug gets here
        raise _bad_cursor() from e
    if not isinstance(data, dict) or set(data) != {"v", *_KINDS} or data["v"] != CURSOR_VERSION:
        raise _bad_cursor()
    cursor = Cursor(*(_position(data[name]) for name in _KINDS))
    if cursor == Cursor(None, None, None):
        raise _bad_cursor()  # we never hand out a cursor with nothing left
    return cursor


def cursor_key(secret_material: str | bytes) -> bytes:
    """The HMAC key for cursors, derived from server-side secret material (the first
    encryption key): distinct from the key itself, so a cursor MAC reveals nothing about it."""
    material = secret_material.encode() if isinstance(secret_material, str) else secret_material
    return hashlib.sha256(b"git-connect/development-cursor/v1\x00" + material).digest()


# --------------------------------------------------------------------------- visibility


@dataclass(frozen=True)
class IntegrationRow:
    id: int
    display_name: str
    provider: str
    status: str
    enforce_permissions: bool
    project_keys: tuple[str, ...]


@dataclass(frozen=True)
class RepositoryRow:
    id: int
    integration_id: int
    name: str
    provider: str
    web_url: str | None
    enabled: bool
    removed: bool
    status: str
    project_keys: tuple[str, ...]
    first_index_running: bool


class PermissionChecker(Protocol):
    """Which repositories of integrations with "enforce git service permissions" a Jira user may see.

    ``candidates`` maps an integration id to repository ids of it (possibly none). Return, per
    integration id, the subset the account's own token can read, or ``None`` when the account
    has no usable token for that integration (nothing of it shows; the API lists it in
    ``needs_token``). A missing integration id counts as ``None``; ids outside the candidates
    are ignored. Called once per request with every enforcing integration, so an
    implementation can load the user's tokens and cached permissions in one query.
    """

    def readable(
        self, session: Session, tenant_id: int, account_id: str | None, candidates: Mapping[int, frozenset[int]]
    ) -> Mapping[int, frozenset[int] | None]: ...


class NoUserTokens:
    """The checker until user tokens exist: nobody has a token, so enforcing integrations show nothing."""

    def readable(
        self, session: Session, tenant_id: int, account_id: str | None, candidates: Mapping[int, frozenset[int]]
    ) -> Mapping[int, frozenset[int] | None]:
        return {}


_checker: PermissionChecker = NoUserTokens()


def permission_checker() -> PermissionChecker:
    return _checker


def set_permission_checker(checker: PermissionChecker) -> PermissionChecker:
    """Install the checker the API uses (the user-token slice does this); returns the previous one."""
    global _checker
    previous, _checker = _checker, checker
    return previous


def associated(repo: RepositoryRow, integration: IntegrationRow, project_key: str) -> bool:
    keys = repo.project_keys or integration.project_keys
    return not keys or project_key in keys


def _shown(repo: RepositoryRow, integration: IntegrationRow) -> bool:
    return (
        repo.enabled
        and not repo.removed
        and repo.status != RepositoryStatus.REMOVED.value
        and integration.status != IntegrationStatus.DISABLED.value
    )


@dataclass(frozen=True)
class Visibility:
    repositories: dict[int, RepositoryRow]  # what the viewer may see, by id
    needs_token: list[IntegrationRow]  # enforcing integrations the viewer has no token for


def filter_visible(
    session: Session,
    tenant_id: int,
    account_id: str | None,
    rows: Iterable[tuple[IntegrationRow, RepositoryRow | None]],
    *,
    project_key: str | None,
    checker: PermissionChecker,
) -> Visibility:
    """Apply the visibility rules to loaded rows (one per repository; ``None`` for an integration
    loaded without repositories, so it can still be listed in ``needs_token``)."""
    integrations: dict[int, IntegrationRow] = {}
    shown: list[RepositoryRow] = []
    for integration, repo in rows:
        integrations[integration.id] = integration
        if repo is None or not _shown(repo, integration):
            continue
        if project_key is not None and not associated(repo, integration, project_key):
            continue
        shown.append(repo)
    enforcing: dict[int, set[int]] = {
        i.id: set()
        for i in integrations.values()
        if i.enforce_permissions
        and i.status != IntegrationStatus.DISABLED.value
        and (project_key is None or not i.project_keys or project_key in i.project_keys)
    }
    for repo in shown:
        if integrations[repo.integration_id].enforce_permissions:
            enforcing.setdefault(repo.integration_id, set()).add(repo.id)
    verdicts: Mapping[int, frozenset[int] | None] = {}
    if enforcing:
        candidates = {iid: frozenset(ids) for iid, ids in enforcing.items()}
        verdicts = checker.readable(session, tenant_id, account_id, candidates)
    visible = {
        repo.id: repo
        for repo in shown
        if repo.integration_id not in enforcing or repo.id in (verdicts.get(repo.integration_id) or ())
    }
    needs_token = sorted(
        (integrations[iid] for iid in enforcing if verdicts.get(iid) is None), key=lambda i: (i.display_name, i.id)
    )
    return Visibility(visible, needs_token)


_INTEGRATION_COLUMNS = (
    Integration.id,
    Integration.display_name,
    Integration.provider,
    Integration.status,
    Integration.enforce_permissions,
    Integration.project_keys,
)
_REPOSITORY_COLUMNS = (
    Repository.id,
    Repository.integration_id,
    Repository.name,
    Repository.provider,
    Repository.web_url,
    Repository.enabled,
    Repository.removed_at,
    Repository.status,
    Repository.project_keys,
    Repository.last_indexed_at,
)


def _rows(result: Iterable[Any]) -> list[tuple[IntegrationRow, RepositoryRow | None]]:
    out: list[tuple[IntegrationRow, RepositoryRow | None]] = []
    n = len(_INTEGRATION_COLUMNS)
    for row in result:
        i = IntegrationRow(row[0], row[1], row[2], row[3], bool(row[4]), tuple(row[5] or ()))
        r = row[n:]
        repo = None
        if r[0] is not None:
            repo = RepositoryRow(
                id=r[0],
                integration_id=r[1],
                name=r[2],
                provider=r[3],
                web_url=r[4],
                enabled=bool(r[5]),
                removed=r[6] is not None,
                status=r[7],
                project_keys=tuple(r[8] or ()),
                first_index_running=r[9] is None and r[7] in FIRST_INDEX_STATUSES,
            )
        out.append((i, repo))
    return out


def visible_repository_ids(
    session: Session,
    tenant_id: int,
    account_id: str | None,
    candidate_repo_ids: Collection[int],
    *,
    project_key: str | None = None,
    checker: PermissionChecker | None = None,
) -> set[int]:
    """The filter hook: which of ``candidate_repo_ids`` the Jira user ``account_id`` may see in
    this tenant (another tenant's ids are never returned). With ``project_key``, project
    association applies too. ``checker`` defaults to the installed :func:`permission_checker`."""
    ids = sorted({int(i) for i in candidate_repo_ids})
    if not ids:
        return set()
    stmt = (
        select(*_INTEGRATION_COLUMNS, *_REPOSITORY_COLUMNS)
        .join_from(Integration, Repository, Repository.integration_id == Integration.id)
        .where(Integration.tenant_id == tenant_id, Repository.tenant_id == tenant_id, Repository.id.in_(ids))
    )
    rows = _rows(session.execute(stmt))
    visibility = filter_visible(
        session, tenant_id, account_id, rows, project_key=project_key, checker=checker or permission_checker()
    )
    return set(visibility.repositories)


# --------------------------------------------------------------------------- the page


@dataclass
class DevelopmentPage:
    issue_key: str
    commits: list[dict[str, Any]] = field(default_factory=list)
    branches: list[dict[str, Any]] = field(default_factory=list)
    pull_requests: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"commits": 0, "branches": 0, "pull_requests": 0})
    repositories: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    needs_token: list[IntegrationRow] = field(default_factory=list)
    indexing: list[RepositoryRow] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The JSON body of ``GET /api/issues/{key}/development``."""
        return {
            "issue_key": self.issue_key,
            "commits": self.commits,
            "branches": self.branches,
            "pull_requests": self.pull_requests,
            "tags": self.tags,
            "counts": self.counts,
            "repositories": self.repositories,
            "next_cursor": self.next_cursor,
            "needs_token": [i.id for i in self.needs_token],
            "needs_token_integrations": [
                {"id": i.id, "name": i.display_name, "provider": i.provider} for i in self.needs_token
            ],
            "indexing": [_repo_ref(r) for r in self.indexing[:INDEXING_LISTED]],
            "indexing_total": len(self.indexing),
        }


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def safe_url(url: str | None) -> str | None:
    """Only http(s) links leave the API: a ``javascript:`` URL in a row must never become a link."""
    if not url:
        return None
    head = url[:8].lower()
    return url if head.startswith(("https://", "http://")) else None


def repository_url(web_url: str | None) -> str | None:
    """The repository's page: http(s) only, without user info (Azure's ``org@`` prefix)."""
    if not web_url:
        return None
    parts = urlsplit(web_url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))


def _repo_ref(repo: RepositoryRow) -> dict[str, Any]:
    return {"id": repo.id, "name": repo.name, "url": repository_url(repo.web_url)}


def first_line(message: str) -> str:
    return message.split("\n", 1)[0].rstrip("\r")


def _after(time_col: InstrumentedAttribute[datetime], id_col: InstrumentedAttribute[int], pos: Position) -> Any:
    t, i = pos
    return or_(time_col < t, and_(time_col == t, id_col < i))


@dataclass(frozen=True)
class Scope:
    """One request's query scope. ``hidden``: repositories linked to the issue that the viewer
    may not see. SQL excludes them (``NOT IN``, usually empty: no clause at all, where an
    ``IN`` of every visible repository would cost a parameter per repository per statement);
    every returned row is then checked against ``repos`` as well, so a link written after
    the repositories were read can never show data of a repository not vetted here."""

    tenant_id: int
    issue_key: str
    repos: Mapping[int, RepositoryRow]
    hidden: tuple[int, ...]

    def links(self, kind: LinkKind) -> list[ColumnElement[bool]]:
        where = [IssueLink.tenant_id == self.tenant_id, IssueLink.issue_key == self.issue_key]
        where.append(IssueLink.kind == kind.value)
        if self.hidden:
            where.append(IssueLink.repository_id.not_in(self.hidden))
        return where


def _commit_join() -> ColumnElement[bool]:
    return and_(Commit.repository_id == IssueLink.repository_id, Commit.sha == IssueLink.ref)


def _branch_join() -> ColumnElement[bool]:
    return and_(Branch.repository_id == IssueLink.repository_id, Branch.name == IssueLink.ref)


def _pr_join() -> ColumnElement[bool]:
    return and_(
        PullRequestRecord.repository_id == IssueLink.repository_id, PullRequestRecord.external_id == IssueLink.ref
    )


def _link_summary(session: Session, tenant_id: int, issue_key: str) -> dict[int, dict[str, int]]:
    """Round trip 1: how many links of each kind the issue has per repository (one pass over
    ``ix_issue_link_tenant_issue``). The indexer writes and deletes a link in the same
    transaction as the row it names, so these are the counts (no join needed)."""
    stmt = (
        select(IssueLink.repository_id, IssueLink.kind, func.count())
        .where(IssueLink.tenant_id == tenant_id, IssueLink.issue_key == issue_key)
        .group_by(IssueLink.repository_id, IssueLink.kind)
    )
    summary: dict[int, dict[str, int]] = defaultdict(dict)
    for repo_id, kind, n in session.execute(stmt):
        summary[repo_id][kind] = int(n)
    return summary


def _load_repositories(
    session: Session, tenant_id: int, linked: Collection[int]
) -> list[tuple[IntegrationRow, RepositoryRow | None]]:
    """Round trip 2: every integration of the tenant, with its repositories that are linked
    to the issue or in their first index (``None`` when it has neither)."""
    first_index = and_(Repository.last_indexed_at.is_(None), Repository.status.in_(FIRST_INDEX_STATUSES))
    wanted = or_(Repository.id.in_(sorted(linked)), first_index) if linked else first_index
    stmt = (
        select(*_INTEGRATION_COLUMNS, *_REPOSITORY_COLUMNS)
        .outerjoin_from(
            Integration,
            Repository,
            and_(Repository.integration_id == Integration.id, Repository.tenant_id == tenant_id, wanted),
        )
        .where(Integration.tenant_id == tenant_id)
    )
    return _rows(session.execute(stmt))


def _commit_url(repo: RepositoryRow, stored: str | None, sha: str) -> str | None:
    return safe_url(stored) or safe_url(weburls.commit_url(repo.provider, repo.web_url, sha))


def _page_commits(
    session: Session, scope: Scope, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None]:
    """The page's commits in one statement, in two steps: the newest ``limit + 1`` ids among
    the linked commits (only ``(committed_at, id)`` go through the sort), then those rows by
    primary key. Index-only in the first step given ``(repository_id, sha)`` INCLUDE
    ``(committed_at)`` (see the report's index suggestions); a smaller sort without it."""
    ranked = aliased(Commit)
    newest = (
        select(ranked.id)
        .select_from(IssueLink)
        .join(ranked, and_(ranked.repository_id == IssueLink.repository_id, ranked.sha == IssueLink.ref))
        .where(*scope.links(LinkKind.COMMIT))  # the tenant check is on the rows below: none here keeps this
        .order_by(ranked.committed_at.desc(), ranked.id.desc())  # step index-only with the suggested index
        .limit(limit + 1)
    )
    if after is not None:
        newest = newest.where(_after(ranked.committed_at, ranked.id, after))
    message = func.substr(Commit.message, 1, MESSAGE_MAX_CHARS + 1)
    stmt = (
        select(
            Commit.id,
            Commit.repository_id,
            Commit.sha,
            message,
            Commit.author_name,
            Commit.author_email,
            Commit.authored_at,
            Commit.committed_at,
            Commit.url,
            Commit.branch,
        )
        .where(Commit.id.in_(newest.scalar_subquery()), Commit.tenant_id == scope.tenant_id)
        .order_by(Commit.committed_at.desc(), Commit.id.desc())
    )
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for cid, repo_id, sha, text, author_name, author_email, authored_at, committed_at, url, branch in rows:
        repo = scope.repos.get(repo_id)
        if repo is None:
            continue
        truncated = len(text) > MESSAGE_MAX_CHARS
        out.append(
            {
                "id": cid,
                "sha": sha,
                "short_sha": sha[:7],
                "message": text[:MESSAGE_MAX_CHARS] if truncated else text,
                "message_truncated": truncated,
                "author": {"name": author_name, "email": author_email},
                "time": iso(committed_at),
                "authored": iso(authored_at),
                "url": _commit_url(repo, url, sha),
                "repository": {"id": repo.id, "name": repo.name},
                # the branch the history walk labelled it with (connect_app.indexing.commit_branches), or None
                "branch": branch,
                "tags": [],
            }
        )
    last = (rows[-1][7], rows[-1][0]) if more and rows else None
    return out, last


def _attach_tags(session: Session, tenant_id: int, commits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tags pointing exactly at a commit of the page (see the module docstring)."""
    if not commits:
        return []
    repo_ids = sorted({c["repository"]["id"] for c in commits})
    shas = sorted({c["sha"] for c in commits})
    stmt = (
        select(Tag.repository_id, Tag.sha, Tag.name)
        .where(Tag.tenant_id == tenant_id, Tag.repository_id.in_(repo_ids), Tag.sha.in_(shas))
        .order_by(Tag.name)
    )
    by_commit: dict[tuple[int, str], list[str]] = defaultdict(list)
    for repo_id, sha, name in session.execute(stmt):
        by_commit[(repo_id, sha)].append(name)
    tags = []
    for commit in commits:
        names = by_commit.get((commit["repository"]["id"], commit["sha"]), [])
        commit["tags"] = names
        for name in names:
            tags.append({"name": name, "sha": commit["sha"], "url": commit["url"], "repository": commit["repository"]})
    return tags


def _page_branches(
    session: Session, scope: Scope, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None]:
    stmt = (
        select(
            Branch.id,
            Branch.repository_id,
            Branch.name,
            Branch.head_sha,
            Branch.url,
            Branch.updated_at,
            func.substr(Commit.message, 1, 500),
            Commit.author_name,
            Commit.committed_at,
            Commit.url,
            Branch.ahead,
            Branch.behind,
            Branch.compared_head_sha,
            Repository.default_branch,
        )
        .select_from(IssueLink)
        .join(Branch, _branch_join())
        .join(Repository, Repository.id == Branch.repository_id)
        .outerjoin(Commit, and_(Commit.repository_id == Branch.repository_id, Commit.sha == Branch.head_sha))
        .where(*scope.links(LinkKind.BRANCH), Branch.tenant_id == scope.tenant_id)
        .order_by(Branch.updated_at.desc(), Branch.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(_after(Branch.updated_at, Branch.id, after))
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for row in rows:
        bid, repo_id, name, head, url, updated, message, author, committed_at, commit_url = row[:10]
        ahead, behind, compared_head, default_branch = row[10:]
        repo = scope.repos.get(repo_id)
        if repo is None:
            continue
        last_commit = {
            "sha": head,
            "short_sha": head[:7],
            "message": first_line(message) if message is not None else None,
            "author": author,
            "time": iso(committed_at),
            "url": _commit_url(repo, commit_url, head),
        }
        out.append(
            {
                "id": bid,
                "name": name,
                "url": safe_url(url) or safe_url(weburls.branch_url(repo.provider, repo.web_url, name)),
                "repository": {"id": repo.id, "name": repo.name},
                "last_commit": last_commit,
                "updated": iso(updated),
                "ahead_behind": _ahead_behind(name, head, ahead, behind, compared_head, default_branch),
                "pull_request": None,
            }
        )
    last = (rows[-1][5], rows[-1][0]) if more and rows else None
    return out, last


def _ahead_behind(
    name: str, head: str, ahead: int | None, behind: int | None, counted_at: str | None, base: str | None
) -> dict[str, Any] | None:
    """Commits ahead of / behind the default branch, when they were counted at this head (the
    default branch may have moved since: the next index counts again)."""
    if base is None or name == base or ahead is None or behind is None or counted_at != head:
        return None
    return {"ahead": ahead, "behind": behind, "base": base}


_COUNT_NAMES = {
    LinkKind.COMMIT.value: "commits",
    LinkKind.BRANCH.value: "branches",
    LinkKind.PULL_REQUEST.value: "pull_requests",
}
_STATE_RANK = {"OPEN": 0, "MERGED": 1, "DECLINED": 2}


def _attach_branch_pull_requests(session: Session, scope: Scope, branches: list[dict[str, Any]]) -> None:
    """Each branch's pull request (from it as the source): an open one first, else the latest.

    Read through the issue's links: a pull request is linked to every key of its source
    branch's name (``LinkSource.BRANCH_NAME``), and a branch is linked by its name, so every
    pull request from a branch of this page is linked to the issue too. That keeps the query
    on ``ix_issue_link_tenant_issue`` (no index on ``pull_request.source_branch`` needed)."""
    if not branches:
        return
    pr = PullRequestRecord
    names = sorted({b["name"] for b in branches})
    stmt = (
        select(pr.repository_id, pr.source_branch, pr.external_id, pr.state, pr.url, pr.updated_on_host)
        .select_from(IssueLink)
        .join(pr, _pr_join())
        .where(*scope.links(LinkKind.PULL_REQUEST), pr.tenant_id == scope.tenant_id, pr.source_branch.in_(names))
    )
    best: dict[tuple[int, str], tuple[Any, ...]] = {}
    for row in session.execute(stmt):
        key = (row[0], row[1])
        rank = (_STATE_RANK.get(row[3], 3), -row[5].timestamp())
        if key not in best or rank < best[key][0]:
            best[key] = (rank, row)
    for branch in branches:
        found = best.get((branch["repository"]["id"], branch["name"]))
        if found is not None:
            row = found[1]
            branch["pull_request"] = {"id": row[2], "state": row[3], "url": safe_url(row[4])}


def _page_pull_requests(
    session: Session, scope: Scope, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None]:
    pr = PullRequestRecord
    stmt = (
        select(pr.id, pr.repository_id, pr.external_id, pr.title, pr.state, pr.source_branch, pr.target_branch)
        .add_columns(pr.author, pr.url, pr.updated_on_host)
        .select_from(IssueLink)
        .join(pr, _pr_join())
        .where(*scope.links(LinkKind.PULL_REQUEST), pr.tenant_id == scope.tenant_id)
        .order_by(pr.updated_on_host.desc(), pr.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(_after(pr.updated_on_host, pr.id, after))
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for _row_id, repo_id, external_id, title, state, source, target, author, url, updated in rows:
        repo = scope.repos.get(repo_id)
        if repo is None:
            continue
        out.append(
            {
                "id": external_id,
                "title": title,
                "state": state,
                "source": source,
                "target": target,
                "author": author,
                "url": safe_url(url),
                "updated": iso(updated),
                "repository": {"id": repo.id, "name": repo.name},
            }
        )
    last = (rows[-1][9], rows[-1][0]) if more and rows else None
    return out, last


def issue_development(
    session: Session,
    *,
    tenant_id: int,
    account_id: str | None,
    issue_key: str,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    cursor_secret: bytes,
    checker: PermissionChecker | None = None,
) -> DevelopmentPage:
    """One page of the issue's development data for ``account_id`` in ``tenant_id``.

    ``issue_key`` must already be valid (:func:`parse_issue_key`); ``cursor`` is a
    ``next_cursor`` of an earlier page (a bad one raises ``ValidationError``)."""
    if not is_issue_key(issue_key):
        raise ValidationError("Expected a Jira issue key such as ABC-123.", code="bad_issue_key")
    limit = max(1, min(limit, MAX_LIMIT))
    start = Cursor(None, None, None)
    if cursor:
        start = decode_cursor(cursor, key=cursor_secret, tenant_id=tenant_id, issue_key=issue_key)
    first_page = not cursor

    page = DevelopmentPage(issue_key=issue_key)
    summary = _link_summary(session, tenant_id, issue_key)
    rows = _load_repositories(session, tenant_id, summary.keys())
    visibility = filter_visible(
        session,
        tenant_id,
        account_id,
        rows,
        project_key=project_of(issue_key),
        checker=checker or permission_checker(),
    )
    repos = visibility.repositories
    page.needs_token = visibility.needs_token
    page.indexing = sorted((r for r in repos.values() if r.first_index_running), key=lambda r: (r.name, r.id))
    if not repos:
        return page

    # Linked repositories the viewer may not see (including any not loaded: another tenant's
    # would be a broken row; excluded all the same).
    scope = Scope(tenant_id, issue_key, repos, tuple(sorted(set(summary) - set(repos))))
    for repo_id in repos:
        for kind, n in summary.get(repo_id, {}).items():
            if kind in _COUNT_NAMES:
                page.counts[_COUNT_NAMES[kind]] += n
    next_commits = next_branches = next_prs = None
    if page.counts["commits"] and (first_page or start.commits is not None):
        page.commits, next_commits = _page_commits(session, scope, start.commits, limit)
        page.tags = _attach_tags(session, tenant_id, page.commits)
    if page.counts["branches"] and (first_page or start.branches is not None):
        page.branches, next_branches = _page_branches(session, scope, start.branches, limit)
        _attach_branch_pull_requests(session, scope, page.branches)
    if page.counts["pull_requests"] and (first_page or start.pull_requests is not None):
        page.pull_requests, next_prs = _page_pull_requests(session, scope, start.pull_requests, limit)
    following = Cursor(next_commits, next_branches, next_prs)
    if following != Cursor(None, None, None):
        page.next_cursor = encode_cursor(following, key=cursor_secret, tenant_id=tenant_id, issue_key=issue_key)

    shown_repo_ids = {item["repository"]["id"] for item in (*page.commits, *page.branches, *page.pull_requests)}
    page.repositories = [_repo_ref(repos[rid]) for rid in sorted(shown_repo_ids, key=lambda i: (repos[i].name, i))]
    return page
