"""A ref's commits and the comparison of two refs, for the repository browser. No Flask.

Which commits, and in which order, comes from the repository's mirror (``git log`` over
shas only: :mod:`connect_app.indexing.git_compare`), because only git knows what a branch
contains; what is known about each commit comes from the index: its issue links
(``uq_issue_link_target_key``: ``repository_id, kind, ref``) and stored URL
(``uq_commit_repository_sha``), looked up for one batch of shas at a time. So a page costs
one ``git log`` that stops after the page (git's newest-first walk does not read the rest of
a million-commit history) and two index lookups per batch, at any repository size.

* Commits (:func:`commits_page`): newest first from a branch, tag or sha; ``linked`` /
  ``unlinked`` keep the commits with / without issue links, looking at no more than
  :data:`SCAN_LIMIT` commits per request (the page then says so and its cursor continues).
* Compare (:func:`compare_page`): ``git log from..to`` -- what ``to`` has that ``from`` has
  not, the files changed since their merge base, and every issue key the range's messages
  link (the indexer's own extraction and project filter, so the set equals the keys in
  ``git log A..B``). Totals are computed once per pair of shas and cached; commits are paged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from connect_app.errors import AppError, NotFound, ValidationError
from connect_app.extensions import redis_conn
from connect_app.hosts import weburls
from connect_app.indexing import mirror
from connect_app.indexing.git_compare import LogEntry, MirrorReader, RefKind, ResolvedRef, mirror_ready
from connect_app.indexing.git_safety import SHA
from connect_app.indexing.issue_keys import keys_in_text, project_of
from connect_app.indexing.links import KeyFilter
from connect_app.models import Commit, IssueLink, LinkKind, Repository
from connect_app.services.development import iso, safe_url
from connect_app.services.repository_browser import BrowseRepository, bad_cursor, decode_cursor, encode_cursor

SCAN_LIMIT = 10_000  # commits a linked/unlinked filter looks at per request
SCAN_BATCH = 500  # shas per index lookup
MESSAGE_MAX_CHARS = 2000
SUMMARY_TTL_SECONDS = 600  # a comparison's totals, per pair of shas
LAST_LINKED_DEPTH = 200  # commits searched for a repository's last linked issue
LAST_LINKED_TTL_SECONDS = 3600
JQL_KEYS_PER_LINK = 250  # keeps each issue-navigator URL well under common URL limits


class CommitFilter(StrEnum):
    ALL = "all"
    LINKED = "linked"
    UNLINKED = "unlinked"


def parse_filter(raw: str | None) -> CommitFilter:
    try:
        return CommitFilter((raw or CommitFilter.ALL.value).strip().lower())
    except ValueError as e:
        raise ValidationError("filter must be one of: all, linked, unlinked.", code="bad_filter") from e


# --------------------------------------------------------------------------- links to Jira


def issue_url(jira_base_url: str, key: str) -> str:
    return f"{jira_base_url.rstrip('/')}/browse/{quote(key, safe='')}"


def _key_order(key: str) -> tuple[str, int]:
    number = key.rsplit("-", 1)[1]
    return project_of(key), int(number) if number.isdigit() else 0


def sorted_keys(keys: Iterable[str]) -> list[str]:
    return sorted(set(keys), key=_key_order)


def jql_links(jira_base_url: str, keys: list[str]) -> list[dict[str, Any]]:
    """Issue navigator links for ``key in (...)``: one, or one per :data:`JQL_KEYS_PER_LINK` keys."""
    base = jira_base_url.rstrip("/")
    links = []
    for start in range(0, len(keys), JQL_KEYS_PER_LINK):
        chunk = keys[start : start + JQL_KEYS_PER_LINK]
        jql = f"key in ({', '.join(chunk)})"
        links.append({"url": f"{base}/issues/?jql={quote(jql, safe='')}", "jql": jql, "count": len(chunk)})
    return links


def _issues(jira_base_url: str, keys: Iterable[str]) -> list[dict[str, str]]:
    return [{"key": k, "url": issue_url(jira_base_url, k)} for k in keys]


# --------------------------------------------------------------------------- the mirror


def open_mirror(session: Session, repo: BrowseRepository, mirrors_dir: Path) -> Path:
    """The repository's mirror, or ``NotFound`` (``not_indexed``) when it has none yet, or a 503
    (``history_unavailable``) when it was indexed but its mirror is not on this machine."""
    model = session.get(Repository, repo.id)
    if model is None:
        raise NotFound("The repository no longer exists.", code="repository_not_found")
    path = mirror.mirror_path(model, mirrors_dir)
    if not mirror_ready(path) or not _mirror_belongs(path, model):
        if model.last_indexed_at is not None:
            # Indexed by a worker whose mirrors this process cannot see (README: Running at scale).
            raise AppError(
                f"{repo.name} is indexed, but its history is not readable on this web server: "
                "MIRRORS_PATH must be storage the workers and the web servers share. "
                "Ask your administrator of Git Connect for Jira.",
                code="history_unavailable",
                status=503,
            )
        raise NotFound(
            f"{repo.name} has not been indexed yet: its history is not available here. "
            "Try again once its first index has finished.",
            code="not_indexed",
        )
    return path


def _mirror_belongs(path: Path, model: Repository) -> bool:
    # The marker ensure_mirror writes: ids are reused on SQLite, so a directory may be a former repository's.
    try:
        return (path / mirror.MARKER).read_text() == f"{model.integration_id}:{model.external_id}\n"
    except OSError:
        return False


@dataclass(frozen=True)
class History:
    """One request's view of one repository's history."""

    session: Session
    tenant_id: int
    repo: BrowseRepository
    reader: MirrorReader
    path: Path
    jira_base_url: str

    def links(self, shas: list[str]) -> dict[str, list[str]]:
        """Issue keys linked to each of ``shas`` (one index range lookup)."""
        if not shas:
            return {}
        rows = self.session.execute(
            select(IssueLink.ref, IssueLink.issue_key).where(
                IssueLink.repository_id == self.repo.id,
                IssueLink.kind == LinkKind.COMMIT.value,
                IssueLink.ref.in_(shas),
                IssueLink.tenant_id == self.tenant_id,
            )
        )
        found: dict[str, list[str]] = {}
        for sha, key in rows:
            found.setdefault(sha, []).append(key)
        return {sha: sorted_keys(keys) for sha, keys in found.items()}

    def stored_urls(self, shas: list[str]) -> dict[str, str | None]:
        if not shas:
            return {}
        rows = self.session.execute(
            select(Commit.sha, Commit.url).where(
                Commit.repository_id == self.repo.id, Commit.sha.in_(shas), Commit.tenant_id == self.tenant_id
            )
        )
        return {sha: url for sha, url in rows}

    def item(self, entry: LogEntry, keys: list[str], stored: Mapping[str, str | None]) -> dict[str, Any]:
        row = self.repo.row
        message = entry.message
        truncated = len(message) > MESSAGE_MAX_CHARS
        return {
            "sha": entry.sha,
            "short_sha": entry.sha[:7],
            "message": message[:MESSAGE_MAX_CHARS] if truncated else message,
            "message_truncated": truncated,
            "author": {"name": entry.author_name, "email": entry.author_email},
            "time": iso(entry.committed_at),
            "merge": len(entry.parents) > 1,
            "url": safe_url(stored.get(entry.sha))
            or safe_url(weburls.commit_url(row.provider, row.web_url, entry.sha)),
            "indexed": entry.sha in stored,
            "issue_keys": _issues(self.jira_base_url, keys),
        }

    def ref_payload(self, ref: ResolvedRef) -> dict[str, Any]:
        return {"name": ref.name, "kind": ref.kind.value, "sha": ref.sha}

    def repository(self) -> dict[str, Any]:
        return {"id": self.repo.id, "name": self.repo.name}


def _cursor_position(data: Mapping[str, Any], *names: str) -> tuple[list[ResolvedRef], int]:
    """The refs (name, kind, sha) and offset a cursor carries."""
    offset = data.get("o")
    if type(offset) is not int or offset < 0:
        raise bad_cursor()
    refs = []
    for name in names:
        value = data.get(name)
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
            raise bad_cursor()
        ref_name, kind, sha = value
        if not SHA.match(sha) or kind not in {k.value for k in RefKind}:
            raise bad_cursor()
        refs.append(ResolvedRef(ref_name, RefKind(kind), sha))
    return refs, offset


def _packed(ref: ResolvedRef) -> list[str]:
    return [ref.name, ref.kind.value, ref.sha]


# --------------------------------------------------------------------------- commits of a ref


def _batches(entries: Iterator[LogEntry], size: int) -> Iterator[list[LogEntry]]:
    while batch := list(itertools.islice(entries, size)):
        yield batch


def commits_page(
    h: History,
    *,
    ref: str | None,
    commit_filter: CommitFilter,
    limit: int,
    cursor: str | None,
    cursor_secret: bytes,
) -> dict[str, Any]:
    """One page of the commits reachable from ``ref`` (default: the default branch), newest first."""
    asked = ref or h.repo.default_branch or ""
    if not asked:
        raise ValidationError("This repository has no default branch: choose a branch or tag.", code="bad_ref")
    context = f"{h.tenant_id}\ncommits\n{h.repo.id}\n{asked}\n{commit_filter.value}"
    if cursor:
        data = decode_cursor(cursor, key=cursor_secret, context=context)
        (start,), offset = _cursor_position(data, "r")
    else:
        start, offset = h.reader.resolve(h.path, asked), 0

    page: list[dict[str, Any]] = []
    position, scanned, more = offset, 0, False
    # One walk from ``offset``: reading stops (and git with it) once the page is full.
    size = limit + 1 if commit_filter is CommitFilter.ALL else SCAN_BATCH
    walk = h.reader.walk(h.path, start.sha, skip=offset)
    try:
        for batch in _batches(walk, size):
            shas = [e.sha for e in batch]
            links, stored = h.links(shas), h.stored_urls(shas)
            for entry in batch:
                keys = links.get(entry.sha, [])
                wanted = (
                    commit_filter is CommitFilter.ALL
                    or (commit_filter is CommitFilter.LINKED and bool(keys))
                    or (commit_filter is CommitFilter.UNLINKED and not keys)
                )
                if len(page) == limit:
                    more = True  # there is at least this one more commit to look at
                    break
                position += 1
                scanned += 1
                if wanted:
                    page.append(h.item(entry, keys, stored))
            if more or scanned >= SCAN_LIMIT:
                more = True
                break
            if len(batch) < size:
                break
    finally:
        walk.close()
    limited = commit_filter is not CommitFilter.ALL and scanned >= SCAN_LIMIT and len(page) < limit
    next_cursor = None
    if more:
        next_cursor = encode_cursor({"r": _packed(start), "o": position}, key=cursor_secret, context=context)
    return {
        "repository": h.repository(),
        "ref": h.ref_payload(start),
        "filter": commit_filter.value,
        "commits": page,
        "next_cursor": next_cursor,
        "scanned": scanned,
        "scan_limited": limited,
    }


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class RangeSummary:
    total: int
    files_changed: int
    keys: list[str]


def _summary_cache_key(h: History, base: str, head: str, keys: KeyFilter) -> str:
    projects = "*" if keys.projects is None else ",".join(sorted(keys.projects))
    digest = hashlib.sha256(projects.encode()).hexdigest()[:16]
    return f"gcj:browse-compare:{h.tenant_id}:{h.repo.id}:{base}:{head}:{digest}"


def range_summary(h: History, base: str, head: str, keys: KeyFilter) -> RangeSummary:
    """How many commits ``git log base..head`` lists, the files changed, and every issue key of
    their messages (one streamed walk; cached per pair of shas)."""
    redis = redis_conn.client
    cache_key = _summary_cache_key(h, base, head, keys)
    cached = redis.get(cache_key)
    if cached is not None:
        data = json.loads(cached)
        return RangeSummary(int(data["total"]), int(data["files"]), list(data["keys"]))
    total, found = 0, set()
    for entry in h.reader.walk(h.path, head, base):
        total += 1
        found.update(keys.keep(keys_in_text(entry.message)))
    files = h.reader.files_changed(h.path, head, base) if total else 0
    summary = RangeSummary(total, files, sorted_keys(found))
    payload = {"total": summary.total, "files": summary.files_changed, "keys": summary.keys}
    redis.set(cache_key, json.dumps(payload), ex=SUMMARY_TTL_SECONDS)
    return summary


def compare_page(
    h: History,
    *,
    from_ref: str,
    to_ref: str,
    keys: KeyFilter,
    limit: int,
    cursor: str | None,
    cursor_secret: bytes,
) -> dict[str, Any]:
    """What ``to_ref`` has that ``from_ref`` has not: totals, the issues linked, and a page of commits."""
    if not from_ref or not to_ref:
        raise ValidationError(
            "Choose both refs: 'from' (for example the previous release tag) and 'to' (for example main).",
            code="bad_ref",
        )
    context = f"{h.tenant_id}\ncompare\n{h.repo.id}\n{from_ref}\n{to_ref}"
    if cursor:
        data = decode_cursor(cursor, key=cursor_secret, context=context)
        (base, head), offset = _cursor_position(data, "a", "b")
    else:
        base, head, offset = h.reader.resolve(h.path, from_ref), h.reader.resolve(h.path, to_ref), 0
    summary = range_summary(h, base.sha, head.sha, keys)
    entries = list(h.reader.walk(h.path, head.sha, base.sha, skip=offset, max_count=limit)) if summary.total else []
    stored = h.stored_urls([e.sha for e in entries])
    commits = [h.item(e, sorted_keys(keys.keep(keys_in_text(e.message))), stored) for e in entries]
    position = offset + len(entries)
    next_cursor = None
    if entries and position < summary.total:
        payload = {"a": _packed(base), "b": _packed(head), "o": position}
        next_cursor = encode_cursor(payload, key=cursor_secret, context=context)
    return {
        "repository": h.repository(),
        "from": h.ref_payload(base),
        "to": h.ref_payload(head),
        "total_commits": summary.total,
        "files_changed": summary.files_changed,
        "issues": _issues(h.jira_base_url, summary.keys),
        "jira_links": jql_links(h.jira_base_url, summary.keys),
        "commits": commits,
        "next_cursor": next_cursor,
    }


# --------------------------------------------------------------------------- last linked issue


def last_linked_issues(
    session: Session,
    tenant_id: int,
    reader: MirrorReader,
    mirrors_dir: Path,
    jira_base_url: str,
    heads: list[tuple[BrowseRepository, str | None]],
) -> dict[int, dict[str, Any]]:
    """Per repository, the issue keys of the newest linked commit among the
    :data:`LAST_LINKED_DEPTH` newest commits from its newest branch head (cached per head)."""
    out: dict[int, dict[str, Any]] = {}
    redis = redis_conn.client
    for repo, head in heads:
        if not head or not SHA.match(head):
            continue
        cache_key = f"gcj:browse-last-linked:{tenant_id}:{repo.id}:{head}"
        cached = redis.get(cache_key)
        if cached is not None:
            found = json.loads(cached)
        else:
            found = _last_linked(session, tenant_id, reader, mirrors_dir, repo, head)
            redis.set(cache_key, json.dumps(found), ex=LAST_LINKED_TTL_SECONDS)
        if found:
            out[repo.id] = {**found, "issues": _issues(jira_base_url, found["keys"])}
    return out


def _last_linked(
    session: Session, tenant_id: int, reader: MirrorReader, mirrors_dir: Path, repo: BrowseRepository, head: str
) -> dict[str, Any] | None:
    try:
        path = open_mirror(session, repo, mirrors_dir)
    except NotFound:
        return None
    h = History(session, tenant_id, repo, reader, path, "")
    entries = list(reader.walk(path, head, max_count=LAST_LINKED_DEPTH))
    links = h.links([e.sha for e in entries])
    for entry in entries:
        if entry.sha in links:
            return {"keys": links[entry.sha], "sha": entry.sha, "time": iso(entry.committed_at)}
    return None
