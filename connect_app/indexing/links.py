"""Issue links: which Jira issue keys a commit, branch or pull request mentions, as ``issue_link`` rows.

Only keys of the tenant's own Jira projects are linked (``jira_project`` rows, refreshed
from Jira by ``connect_app.jira.projects``): ``UTF-8`` or ``SHA-256`` in a commit message
look like keys and must not become links to issues that do not exist. Until the first
refresh has stored any project for the tenant, every syntactically valid key is linked
(a fresh install would otherwise index nothing); :func:`prune_unknown_projects` drops the
strays once the projects are known (``refresh_projects`` runs it after the tenant's first
list). A project that appears later is linked in the content already stored by
:mod:`connect_app.indexing.relink`.

A project that *disappears* from the list (deleted, archived, moved to the trash, hidden
from the app, or its key changed) keeps its links. Archived and trashed projects come back,
and Jira still shows archived issues with their development information; a key change keeps
the old issue keys working in Jira; a list that came back short for a moment (permissions)
must not delete history that only a full reindex could rebuild. A key that is never an
issue again just has links nobody asks for. When the project returns, its content indexed
in between is relinked like any new project's.

Project association (a repository or integration limited to some projects) is applied
when links are *shown*, not here, so changing it needs no reindex.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from connect_app.indexing import store
from connect_app.indexing.issue_keys import keys_in_branch, keys_in_text, project_of
from connect_app.models import IssueLink, JiraProject, LinkKind, LinkSource

_T = TypeVar("_T")
LINK_KEYS = ("repository_id", "kind", "ref", "issue_key")
LINK_COLUMNS = ("tenant_id", "repository_id", "issue_key", "project_key", "kind", "ref", "source", "created_at")
_COMMIT, _MESSAGE = LinkKind.COMMIT.value, LinkSource.MESSAGE.value
# A pull request's key found in several places is linked once, from the first of these.
_PR_SOURCES = (LinkSource.TITLE, LinkSource.DESCRIPTION, LinkSource.BRANCH_NAME)


@dataclass(frozen=True)
class KeyFilter:
    """The project keys links may point at; ``None``: not known yet, every key is kept."""

    projects: frozenset[str] | None

    def keep(self, keys: Iterable[str]) -> list[str]:
        if self.projects is None:
            return list(keys)
        return [k for k in keys if project_of(k) in self.projects]


def project_filter(session: Session, tenant_id: int) -> KeyFilter:
    keys = session.scalars(select(JiraProject.key).where(JiraProject.tenant_id == tenant_id)).all()
    # No rows: the tenant's projects were never fetched (or the site has none): link every key.
    return KeyFilter(frozenset(keys) if keys else None)


@dataclass(frozen=True)
class LinkBuilder:
    """Makes ``issue_link`` rows (plain dicts for :mod:`store`) for one repository."""

    tenant_id: int
    repository_id: int
    keys: KeyFilter
    now: datetime

    def _row(self, key: str, kind: LinkKind, ref: str, source: LinkSource) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "repository_id": self.repository_id,
            "issue_key": key,
            "project_key": project_of(key),
            "kind": kind.value,
            "ref": ref,
            "source": source.value,
            "created_at": self.now,
        }

    def commit(self, sha: str, message: str) -> list[dict[str, Any]]:
        return [dict(zip(LINK_COLUMNS, values, strict=True)) for values in self.commit_values(sha, message)]

    def commit_values(self, sha: str, message: str) -> list[tuple[Any, ...]]:
        """:meth:`commit` as tuples in :data:`LINK_COLUMNS` order (for :func:`insert_link_values`):
        one per commit of a full index, so no dict per link."""
        keys = keys_in_text(message)
        if not keys:
            return []
        t, r, now = self.tenant_id, self.repository_id, self.now
        return [(t, r, k, project_of(k), _COMMIT, sha, _MESSAGE, now) for k in self.keys.keep(keys)]

    def branch(self, name: str) -> list[dict[str, Any]]:
        return [
            self._row(k, LinkKind.BRANCH, name, LinkSource.BRANCH_NAME) for k in self.keys.keep(keys_in_branch(name))
        ]

    def pull_request(self, external_id: str, title: str, description: str, source_branch: str) -> list[dict[str, Any]]:
        found: dict[str, LinkSource] = {}
        for source, keys in zip(
            _PR_SOURCES, (keys_in_text(title), keys_in_text(description), keys_in_branch(source_branch)), strict=True
        ):
            for key in self.keys.keep(keys):
                found.setdefault(key, source)
        return [self._row(k, LinkKind.PULL_REQUEST, external_id, s) for k, s in found.items()]


def insert_links(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert links not stored yet; returns how many were new."""
    return store.insert_ignore(session, IssueLink, rows, keys=LINK_KEYS)


def insert_link_values(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    """:func:`insert_links` for tuples in :data:`LINK_COLUMNS` order."""
    return store.insert_ignore_values(session, IssueLink, LINK_COLUMNS, rows, keys=LINK_KEYS)


def delete_links(session: Session, repository_id: int, kind: LinkKind, refs: Collection[str]) -> int:
    """Remove every link of these targets (branches that vanished)."""
    removed = 0
    for chunk in _chunks(sorted(refs), 500):
        result = session.execute(
            delete(IssueLink).where(
                IssueLink.repository_id == repository_id, IssueLink.kind == kind.value, IssueLink.ref.in_(chunk)
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def replace_links(
    session: Session, repository_id: int, kind: LinkKind, refs: Collection[str], rows: Sequence[dict[str, Any]]
) -> int:
    """Make the links of ``refs`` exactly ``rows`` (a pull request whose title changed loses the
    keys it no longer mentions). Returns how many links are new."""
    wanted = {(r["ref"], r["issue_key"]): r for r in rows}
    stale: list[tuple[str, str]] = []
    changed: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(refs), 500):
        existing = session.execute(
            select(IssueLink.ref, IssueLink.issue_key, IssueLink.source).where(
                IssueLink.repository_id == repository_id, IssueLink.kind == kind.value, IssueLink.ref.in_(chunk)
            )
        ).all()
        for ref, key, source in existing:
            row = wanted.get((ref, key))
            if row is None:
                stale.append((ref, key))
            elif row["source"] != source:
                changed.append(row)
    for chunk_pairs in _chunks(stale, 500):
        session.execute(
            delete(IssueLink).where(
                IssueLink.repository_id == repository_id,
                IssueLink.kind == kind.value,
                tuple_(IssueLink.ref, IssueLink.issue_key).in_(chunk_pairs),
            )
        )
    if changed:
        store.upsert(session, IssueLink, changed, keys=LINK_KEYS, update=("source",))
    return insert_links(session, rows)


def prune_unknown_projects(session: Session, tenant_id: int, *, repository_id: int | None = None) -> int:
    """Delete links to projects the tenant does not have (made before its projects were known),
    of one repository when ``repository_id`` is given. No-op while the tenant has no project
    rows. The caller commits. Run after the *first* project list only (see the module
    docstring: links to projects that disappear later are kept)."""
    keys = project_filter(session, tenant_id)
    if keys.projects is None:
        return 0
    where = [IssueLink.tenant_id == tenant_id, IssueLink.project_key.not_in(keys.projects)]
    if repository_id is not None:
        where.append(IssueLink.repository_id == repository_id)
    result = session.execute(delete(IssueLink).where(*where))
    return int(getattr(result, "rowcount", 0) or 0)


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
