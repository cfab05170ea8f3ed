"""The repository browser's queries: which repositories a user may browse, a page of them with
their last commit and last linked issue, and their branches and tags. No Flask.

Visibility (:func:`visible_repositories`)
-----------------------------------------
The issue panel's rules (:func:`connect_app.services.development.filter_visible`: enabled,
not removed, integration not disabled, and for integrations with "enforce git service
permissions" only what the installed :func:`~connect_app.services.development.permission_checker`
says the viewer's own token can read), with project association judged without an issue: a
repository limited to projects P1..Pn (its own list, else its integration's) shows only to a
user who may browse at least one of them in Jira (``project_access``, see
:mod:`connect_app.services.browsable_projects`); an unrestricted one shows to every user of
the site. Integrations that hide everything until the viewer adds a token are listed in
``needs_token`` when the viewer could otherwise see them.

Cursors
-------
Every page hands out an opaque cursor: JSON signed with an HMAC key derived from the first
encryption key, over the tenant and what the page is of (repository, refs, filter). A cursor
changed, truncated or used for another query is a 400 (``bad_cursor``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from connect_app.errors import NotFound, PermissionDenied, ValidationError
from connect_app.hosts import weburls
from connect_app.models import Branch, Commit, Integration, Repository, Tag, UserToken
from connect_app.services.development import (
    FIRST_INDEX_STATUSES,
    IntegrationRow,
    PermissionChecker,
    RepositoryRow,
    filter_visible,
    first_line,
    iso,
    permission_checker,
    repository_url,
    safe_url,
)

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
CURSOR_MAX_CHARS = 600
QUERY_MAX_CHARS = 200
REFS_LISTED = 200  # branches (and tags) per refs answer; ``q`` narrows them down

ProjectAccess = Callable[[frozenset[str]], frozenset[str]]  # project keys -> those the viewer may browse


# --------------------------------------------------------------------------- input and cursors


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ValidationError(f"limit must be a whole number from 1 to {maximum}.", code="bad_limit")
    return min(int(text), maximum)


def parse_query(raw: str | None) -> str:
    text = (raw or "").strip()
    if len(text) > QUERY_MAX_CHARS:
        raise ValidationError(f"The search text is longer than {QUERY_MAX_CHARS} characters.", code="bad_query")
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        raise ValidationError("The search text contains a NUL character.", code="bad_query")
    return text


def cursor_key(secret_material: str | bytes) -> bytes:
    """The cursor HMAC key: derived from server-side secret material, never the material itself."""
    material = secret_material.encode() if isinstance(secret_material, str) else secret_material
    return hashlib.sha256(b"git-connect/browse-cursor/v1\x00" + material).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(key: bytes, context: str, payload: bytes) -> bytes:
    return hmac.new(key, context.encode() + b"\n" + payload, hashlib.sha256).digest()[:16]


def encode_cursor(data: Mapping[str, Any], *, key: bytes, context: str) -> str:
    payload = json.dumps(dict(data), separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, context, payload))}"


def bad_cursor() -> ValidationError:
    return ValidationError(
        "The cursor does not belong to this list (use the next_cursor of the previous page, unchanged).",
        code="bad_cursor",
    )


def decode_cursor(text: str, *, key: bytes, context: str) -> dict[str, Any]:
    """What :func:`encode_cursor` signed for this ``context``, or a 400."""
    if len(text) > CURSOR_MAX_CHARS or text.count(".") != 1:
        raise bad_cursor()
    payload_text, mac_text = text.split(".")
    try:
        payload = base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4))
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError) as e:
        raise bad_cursor() from e
    if not hmac.compare_digest(mac, _mac(key, context, payload)):
        raise bad_cursor()
    try:
        data = json.loads(payload)
    except ValueError as e:
        raise bad_cursor() from e
    if not isinstance(data, dict):
        raise bad_cursor()
    return data


# --------------------------------------------------------------------------- visibility


@dataclass(frozen=True)
class BrowseRepository:
    """A repository the viewer may browse."""

    row: RepositoryRow
    integration: IntegrationRow
    default_branch: str | None
    last_indexed_at: datetime | None
    require_user_pat: bool

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def name(self) -> str:
        return self.row.name


@dataclass
class Visible:
    repositories: dict[int, BrowseRepository] = field(default_factory=dict)
    needs_token: list[IntegrationRow] = field(default_factory=list)
    hidden_for_token: set[int] = field(default_factory=set)  # repository ids hidden until a token is added


def _restriction(repo: RepositoryRow, integration: IntegrationRow) -> tuple[str, ...]:
    return repo.project_keys or integration.project_keys


def _load(
    session: Session, tenant_id: int, repository_ids: Collection[int] | None
) -> tuple[list[tuple[IntegrationRow, RepositoryRow | None]], dict[int, tuple[str | None, datetime | None, bool]]]:
    repo_filter = [Repository.tenant_id == tenant_id, Repository.integration_id == Integration.id]
    if repository_ids is not None:
        repo_filter.append(Repository.id.in_(sorted(repository_ids)))
    stmt = (
        select(
            Integration.id,
            Integration.display_name,
            Integration.provider,
            Integration.status,
            Integration.enforce_permissions,
            Integration.project_keys,
            Integration.require_user_pat,
            Repository.id,
            Repository.name,
            Repository.provider,
            Repository.web_url,
            Repository.enabled,
            Repository.removed_at,
            Repository.status,
            Repository.project_keys,
            Repository.last_indexed_at,
            Repository.default_branch,
        )
        .outerjoin_from(Integration, Repository, and_(*repo_filter))
        .where(Integration.tenant_id == tenant_id)
    )
    rows: list[tuple[IntegrationRow, RepositoryRow | None]] = []
    extra: dict[int, tuple[str | None, datetime | None, bool]] = {}
    for r in session.execute(stmt):
        integration = IntegrationRow(r[0], r[1], r[2], r[3], bool(r[4]), tuple(r[5] or ()))
        repo = None
        if r[7] is not None:
            repo = RepositoryRow(
                id=r[7],
                integration_id=r[0],
                name=r[8],
                provider=r[9],
                web_url=r[10],
                enabled=bool(r[11]),
                removed=r[12] is not None,
                status=r[13],
                project_keys=tuple(r[14] or ()),
                first_index_running=r[15] is None and r[13] in FIRST_INDEX_STATUSES,
            )
            extra[repo.id] = (r[16], r[15], bool(r[6]))
        rows.append((integration, repo))
    return rows, extra


def visible_repositories(
    session: Session,
    tenant_id: int,
    account_id: str | None,
    *,
    project_access: ProjectAccess,
    checker: PermissionChecker | None = None,
    repository_ids: Collection[int] | None = None,
) -> Visible:
    """The repositories of ``tenant_id`` that ``account_id`` may browse (all, or those of
    ``repository_ids``; ids of other tenants are never loaded)."""
    rows, extra = _load(session, tenant_id, repository_ids)
    verdict = filter_visible(
        session, tenant_id, account_id, rows, project_key=None, checker=checker or permission_checker()
    )
    integrations = {i.id: i for i, _ in rows}
    restricted = {
        k for repo in verdict.repositories.values() for k in _restriction(repo, integrations[repo.integration_id])
    }
    restricted |= {k for i in verdict.needs_token for k in i.project_keys}
    browsable = project_access(frozenset(restricted)) if restricted else frozenset()

    def allowed(keys: tuple[str, ...]) -> bool:
        return not keys or any(k in browsable for k in keys)

    out = Visible()
    for repo in verdict.repositories.values():
        integration = integrations[repo.integration_id]
        if allowed(_restriction(repo, integration)):
            default_branch, last_indexed_at, require_pat = extra[repo.id]
            out.repositories[repo.id] = BrowseRepository(
                repo, integration, default_branch, last_indexed_at, require_pat
            )
    out.needs_token = [i for i in verdict.needs_token if allowed(i.project_keys)]
    waiting = {i.id for i in out.needs_token}
    out.hidden_for_token = {
        repo.id
        for _, repo in rows
        if repo is not None and repo.integration_id in waiting and repo.id not in out.repositories
    }
    return out


def browse_repository(
    session: Session,
    tenant_id: int,
    account_id: str | None,
    repository_id: int,
    *,
    project_access: ProjectAccess,
    checker: PermissionChecker | None = None,
) -> BrowseRepository:
    """One repository the viewer may browse, or ``NotFound`` (never saying whether another
    tenant has it); ``PermissionDenied`` (``token_required``) when only a token is missing."""
    in_range = repository_id if 0 < repository_id <= 2**31 - 1 else -1  # ids are 32-bit on PostgreSQL
    visible = visible_repositories(
        session, tenant_id, account_id, project_access=project_access, checker=checker, repository_ids=[in_range]
    )
    found = visible.repositories.get(repository_id)
    if found is not None:
        return found
    if repository_id in visible.hidden_for_token:
        names = ", ".join(i.display_name for i in visible.needs_token)
        raise PermissionDenied(
            f"This repository is only shown to people who added their own token for {names}. "
            "Add yours under “My git tokens” and try again.",
            code="token_required",
        )
    raise NotFound(
        f"There is no repository {repository_id} that you can browse. It may have been removed, or be limited "
        "to Jira projects you cannot browse.",
        code="repository_not_found",
    )


# --------------------------------------------------------------------------- the repository list


def _ordered(visible: Iterable[BrowseRepository], query: str) -> list[BrowseRepository]:
    needle = query.casefold()
    chosen = [r for r in visible if not needle or needle in r.name.casefold()]
    return sorted(chosen, key=lambda r: (r.name.casefold(), r.id))


def _newest_heads(session: Session, tenant_id: int, repo_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per repository, the newest commit any branch points at (by commit time), in one statement
    over ``uq_branch_repository_name`` and ``uq_commit_repository_sha``."""
    if not repo_ids:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=Branch.repository_id, order_by=(Commit.committed_at.desc(), Branch.name))
        .label("rank")
    )
    inner = (
        select(
            Branch.repository_id,
            Branch.name,
            Commit.sha,
            func.substr(Commit.message, 1, 500).label("message"),
            Commit.author_name,
            Commit.author_email,
            Commit.committed_at,
            Commit.url,
            rank,
        )
        .join(Commit, and_(Commit.repository_id == Branch.repository_id, Commit.sha == Branch.head_sha))
        .where(Branch.tenant_id == tenant_id, Branch.repository_id.in_(repo_ids), Commit.tenant_id == tenant_id)
        .subquery()
    )
    out: dict[int, dict[str, Any]] = {}
    for row in session.execute(select(inner).where(inner.c.rank == 1)):
        out[row.repository_id] = {
            "sha": row.sha,
            "short_sha": row.sha[:7],
            "message": first_line(row.message or ""),
            "author": {"name": row.author_name, "email": row.author_email},
            "time": iso(row.committed_at),
            "branch": row.name,
            "stored_url": row.url,
        }
    return out


def token_state(session: Session, tenant_id: int, account_id: str | None) -> dict[int, bool]:
    """integration id -> whether the viewer has a usable token saved for it."""
    if not account_id:
        return {}
    rows = session.execute(
        select(UserToken.integration_id, UserToken.invalid_reason).where(
            UserToken.tenant_id == tenant_id, UserToken.account_id == account_id
        )
    )
    return {integration_id: reason is None for integration_id, reason in rows}


def repository_payload(repo: BrowseRepository, tokens: Mapping[int, bool]) -> dict[str, Any]:
    integration = repo.integration
    needs_token = (repo.require_user_pat or integration.enforce_permissions) and not tokens.get(integration.id)
    return {
        "id": repo.id,
        "name": repo.name,
        "url": repository_url(repo.row.web_url),
        "provider": repo.row.provider,
        "integration": {"id": integration.id, "name": integration.display_name},
        "default_branch": repo.default_branch,
        "status": repo.row.status,
        "last_indexed": iso(repo.last_indexed_at),
        "indexing_first_time": repo.row.first_index_running,
        "token_needed": bool(needs_token),
        "project_keys": list(_restriction(repo.row, integration)),
    }


@dataclass
class RepositoryPage:
    repositories: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    needs_token: list[IntegrationRow]


def list_repositories(
    session: Session,
    *,
    tenant_id: int,
    account_id: str | None,
    project_access: ProjectAccess,
    query: str = "",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    cursor_secret: bytes,
    checker: PermissionChecker | None = None,
    last_linked: Callable[[list[tuple[BrowseRepository, str | None]]], Mapping[int, dict[str, Any]]] | None = None,
) -> RepositoryPage:
    """A page of the repositories the viewer may browse, by name, with each one's newest commit
    (over its branch heads) and, via ``last_linked``, its last linked issue."""
    visible = visible_repositories(session, tenant_id, account_id, project_access=project_access, checker=checker)
    ordered = _ordered(visible.repositories.values(), query)
    context = f"{tenant_id}\nrepositories\n{query}"
    total = len(ordered)
    if cursor:
        data = decode_cursor(cursor, key=cursor_secret, context=context)
        after = (data.get("n"), data.get("i"))
        if not isinstance(after[0], str) or not isinstance(after[1], int):
            raise bad_cursor()
        ordered = [r for r in ordered if (r.name.casefold(), r.id) > after]
    page, more = ordered[:limit], len(ordered) > limit
    heads = _newest_heads(session, tenant_id, [r.id for r in page])
    linked = last_linked([(r, (heads.get(r.id) or {}).get("sha")) for r in page]) if last_linked else {}
    tokens = token_state(session, tenant_id, account_id)
    items = []
    for repo in page:
        item = repository_payload(repo, tokens)
        head = heads.get(repo.id)
        if head is not None:
            stored = head.pop("stored_url")
            head["url"] = safe_url(stored) or safe_url(
                weburls.commit_url(repo.row.provider, repo.row.web_url, head["sha"])
            )
        item["last_commit"] = head
        item["last_linked_issue"] = linked.get(repo.id)
        items.append(item)
    next_cursor = None
    if more and page:
        last = page[-1]
        next_cursor = encode_cursor({"n": last.name.casefold(), "i": last.id}, key=cursor_secret, context=context)
    return RepositoryPage(items, next_cursor, total, visible.needs_token)


# --------------------------------------------------------------------------- branches and tags


def list_refs(session: Session, tenant_id: int, repo: BrowseRepository, query: str = "") -> dict[str, Any]:
    """The repository's branches and tags as last indexed (default branch first), narrowed by
    ``query`` (a substring), at most :data:`REFS_LISTED` of each."""
    out: dict[str, Any] = {"default_branch": repo.default_branch}
    for kind, model in (("branches", Branch), ("tags", Tag)):
        sha_column = Branch.head_sha if model is Branch else Tag.sha
        stmt = select(model.name, sha_column).where(model.tenant_id == tenant_id, model.repository_id == repo.id)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(model.name.ilike(pattern, escape="\\"))
        stmt = stmt.order_by(model.name).limit(REFS_LISTED + 1)
        rows = session.execute(stmt).all()
        names = [{"name": name, "sha": sha} for name, sha in rows[:REFS_LISTED]]
        if kind == "branches" and repo.default_branch:
            names.sort(key=lambda b: b["name"] != repo.default_branch)
        out[kind] = names
        out[f"{kind}_truncated"] = len(rows) > REFS_LISTED
    return out
