"""The tenant's Jira projects, kept in ``jira_project``: issue keys of other projects are not linked.

``fetch_projects`` pages through ``GET /rest/api/3/project/search`` (``startAt``/``maxResults``,
stopping at ``isLast``) with the app's signed client; ``refresh_projects`` replaces a tenant's
rows with that list in one transaction. A failed or malformed answer raises one of the app's
errors (``connect_app.errors``) before anything is written, so the stored list is always a
whole list from one successful fetch.

Decisions
---------
* Keys are stored exactly as Jira returns them (no case folding or validation beyond "a
  non-empty string"): a key that is not in issue-key form simply never matches.
* Only what ``project/search`` returns by default: live projects the app's user can browse
  (Connect apps browse every project through the ``atlassian-addons-project-access`` role).
  Archived and trashed projects, and a project's *previous* keys after a key change, are not
  included, so their issue keys are not linked.
* Paging advances by the number of values received (Jira may return fewer than
  ``maxResults``), asks for ``orderBy=key`` so pages are stable, and stops at ``isLast``; if
  ``isLast`` is missing, at ``total`` or an empty page. A server whose pages never advance
  (no new project on a page that is not the last) or that pages past :data:`MAX_PAGES`
  raises :class:`~connect_app.errors.HostError` instead of looping.
* A 404 from Jira (the description documents it for "no projects match the criteria") is an
  error, not an empty list: an empty list would delete every row and unlink every key.
* ``refresh_projects`` talks to Jira with no database transaction open, then locks the tenant
  row (``SELECT ... FOR UPDATE`` on PostgreSQL) for the write, so two refreshes of one tenant
  never interleave.
* After the new list is committed, ``refresh_projects`` brings the links in line with it
  (:func:`_after_refresh`): keys the tenant did not have before are linked in the content
  already indexed (``connect_app.indexing.relink``); after the tenant's *first* list, links
  made while every key was linked are pruned to its projects. Keys that disappear keep their
  links (``connect_app.indexing.links`` says why). That work runs after the commit so that
  an index run in progress either sees the new keys or has its rows seen by the relink.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connect_app.errors import HostError, NotFound
from connect_app.extensions import db
from connect_app.indexing.links import prune_unknown_projects
from connect_app.indexing.relink import relink_projects
from connect_app.jira.client import JiraClient
from connect_app.jira.permissions import jira_client_for
from connect_app.jira.tenants import require_enabled
from connect_app.models import JiraProject, Repository, Tenant, utcnow

log = logging.getLogger(__name__)

PROJECT_SEARCH_PATH = "/rest/api/3/project/search"
PAGE_SIZE = 50  # Jira's default (and usual cap) for this resource
MAX_PAGES = 2_000  # 100,000 projects: far beyond any real site; a guard against endless paging
DEFAULT_MAX_AGE = timedelta(hours=1)
KEY_MAX_LENGTH = 255  # jira_project.key
NAME_MAX_LENGTH = 255  # jira_project.name
PROJECT_ID_MAX_LENGTH = 32  # jira_project.project_id


@dataclass(frozen=True)
class ProjectInfo:
    """One Jira project as ``project/search`` describes it."""

    id: str
    key: str
    name: str


@dataclass(frozen=True)
class ProjectPage:
    """One page of ``project/search`` (Jira's ``PageBeanProject``)."""

    values: list[ProjectInfo]
    is_last: bool | None
    total: int | None


def _malformed(detail: str) -> HostError:
    return HostError(
        f"Jira answered {PROJECT_SEARCH_PATH} with an unexpected body ({detail}).", code="jira_bad_response"
    )


def _project(item: Any) -> ProjectInfo:
    if not isinstance(item, Mapping):
        raise _malformed("a project is not an object")
    raw_id, key, name = item.get("id"), item.get("key"), item.get("name")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
        raise _malformed("a project has no id")
    project_id = str(raw_id)
    if len(project_id) > PROJECT_ID_MAX_LENGTH:
        raise _malformed("a project id is too long")
    if not isinstance(key, str) or not key or len(key) > KEY_MAX_LENGTH:
        raise _malformed("a project has no usable key")
    if not isinstance(name, str) or not name:
        name = key
    return ProjectInfo(id=project_id, key=key, name=name[:NAME_MAX_LENGTH])


def parse_project_page(body: Any) -> ProjectPage:
    """Read one ``PageBeanProject``; raises :class:`HostError` when it is not one."""
    if not isinstance(body, Mapping):
        raise _malformed("not a JSON object")
    values = body.get("values")
    if not isinstance(values, list):
        raise _malformed("no 'values' list")
    is_last = body.get("isLast")
    total = body.get("total")
    return ProjectPage(
        values=[_project(item) for item in values],
        is_last=is_last if isinstance(is_last, bool) else None,
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def fetch_projects(client: JiraClient, *, page_size: int = PAGE_SIZE) -> list[ProjectInfo]:
    """Every project ``project/search`` returns, in Jira's order, each key once.

    Raises the client's errors (``HostAuthError``, ``RateLimited``, ``HostUnavailable``, ...)
    or :class:`HostError` for a body that is not a page of projects.
    """
    if page_size < 1:
        raise ValueError("page_size must be positive")
    found: dict[str, ProjectInfo] = {}
    start_at = 0
    for _ in range(MAX_PAGES):
        response = client.request(
            "GET",
            PROJECT_SEARCH_PATH,
            params={"startAt": start_at, "maxResults": page_size, "orderBy": "key"},
            expected=(200,),
        )
        try:
            body = response.json()
        except ValueError as e:
            raise _malformed("not JSON") from e
        page = parse_project_page(body)
        before = len(found)
        for project in page.values:
            found.setdefault(project.key, project)
        start_at += len(page.values)
        if page.is_last or not page.values:
            return list(found.values())
        if page.is_last is None and page.total is not None and start_at >= page.total:
            return list(found.values())
        if len(found) == before:
            raise HostError(
                f"Jira's {PROJECT_SEARCH_PATH} pages did not advance (startAt={start_at}); "
                "the project list was not updated.",
                code="jira_paging_stuck",
            )
    raise HostError(
        f"Jira's {PROJECT_SEARCH_PATH} returned more than {MAX_PAGES} pages; the project list was not updated.",
        code="jira_paging_stuck",
    )


def replace_projects(
    session: Session, tenant_id: int, projects: Iterable[ProjectInfo], *, now: datetime | None = None
) -> int:
    """Make the tenant's ``jira_project`` rows equal ``projects`` (insert new keys, update ids
    and names, delete vanished keys; every row's ``refreshed_at`` becomes ``now``). Flushes,
    does not commit. Returns how many projects the tenant now has."""
    now = now or utcnow()
    # One refresh of a tenant at a time: a row lock on PostgreSQL (SQLite has one writer).
    if session.scalar(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update()) is None:
        raise NotFound("This Jira site is not installed.", code="tenant_not_found")
    wanted: dict[str, ProjectInfo] = {}
    for project in projects:
        wanted.setdefault(project.key, project)
    existing = {row.key: row for row in session.scalars(select(JiraProject).where(JiraProject.tenant_id == tenant_id))}
    for key, row in existing.items():
        if key not in wanted:
            session.delete(row)
    for key, project in wanted.items():
        current = existing.get(key)
        if current is None:
            session.add(
                JiraProject(tenant_id=tenant_id, key=key, project_id=project.id, name=project.name, refreshed_at=now)
            )
        else:
            current.project_id = project.id
            current.name = project.name
            current.refreshed_at = now
    session.flush()
    return len(wanted)


def refresh_projects(tenant_id: int, *, now: datetime | None = None) -> int:
    """Fetch the tenant's projects from Jira and store them; returns the number of projects.

    Needs an app context (``workers.jobs.refresh_jira_projects`` provides one). Uses
    ``db.session`` and commits its own transaction: call it with no pending changes. On any
    error nothing is written and the previous list stays.
    """
    session = db.session()
    try:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("This Jira site is not installed.", code="tenant_not_found")
        require_enabled(tenant)
        client = jira_client_for(tenant)
    finally:
        session.rollback()  # no transaction (or snapshot) stays open while Jira answers
    projects = fetch_projects(client)
    for attempt in range(2):
        try:
            # The keys before, read under the same tenant row lock replace_projects takes.
            session.scalar(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
            before = known_project_keys(session, tenant_id)
            count = replace_projects(session, tenant_id, projects, now=now)
            session.commit()
            break
        except IntegrityError:
            # A concurrent refresh inserted the same key first (SQLite has no row lock): redo
            # the diff against what it committed.
            session.rollback()
            if attempt:
                raise
        except BaseException:
            session.rollback()
            raise
    else:  # pragma: no cover
        raise AssertionError("unreachable")
    _after_refresh(session, tenant_id, before, frozenset(p.key for p in projects))
    return count


def _after_refresh(session: Session, tenant_id: int, before: frozenset[str], after: frozenset[str]) -> None:
    """Links after a committed refresh: prune the strays of link-every-key mode after the first
    list, or link the content already indexed for keys that are new (one transaction per
    repository). An error propagates (the job fails and says so) after rolling back; the
    project list stays committed, so the keys it names in the log are not retried by the next
    refresh: ``relink_projects`` for them does it (idempotent)."""
    added = sorted(after - before)
    try:
        if not before:
            # Until now every key was linked: the new ones are linked already, the others go.
            if after:
                prune_unknown_projects(session, tenant_id)
                session.commit()
            return
        if not added:
            return
        repository_ids = session.scalars(select(Repository.id).where(Repository.tenant_id == tenant_id)).all()
        session.rollback()  # no snapshot held across the repositories
        for repository_id in repository_ids:
            relink_projects(session, tenant_id, added, repository_id=repository_id)
            session.commit()
    except BaseException:
        session.rollback()
        log.exception("tenant %s: updating links after the project refresh failed (new keys: %s)", tenant_id, added)
        raise


def known_project_keys(session: Session, tenant_id: int) -> frozenset[str]:
    """The tenant's project keys as stored by the last successful refresh."""
    return frozenset(session.scalars(select(JiraProject.key).where(JiraProject.tenant_id == tenant_id)))


def projects_stale(
    session: Session, tenant_id: int, max_age: timedelta = DEFAULT_MAX_AGE, *, now: datetime | None = None
) -> bool:
    """Whether the tenant's list needs a refresh: no rows yet, or the oldest is older than ``max_age``."""
    oldest = session.scalar(select(func.min(JiraProject.refreshed_at)).where(JiraProject.tenant_id == tenant_id))
    if oldest is None:
        return True
    return (now or utcnow()) - oldest > max_age
