"""Repository browser API under /api/browse/ (issue 9), for the ``/browse`` page.

* ``GET /api/browse/repositories?q=&limit=&cursor=``: repositories the caller may browse.
* ``GET /api/browse/repositories/{id}/refs?q=``: its branches and tags.
* ``GET /api/browse/repositories/{id}/commits?ref=&filter=all|linked|unlinked&limit=&cursor=``
* ``GET /api/browse/repositories/{id}/compare?from=&to=&limit=&cursor=``

The tenant and the user come from the verified context token only; a repository id of another
tenant, or one the caller may not browse, is a 404. Documented in ``/api/openapi.json``
(:mod:`connect_app.web.openapi_browse`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from connect_app.extensions import db
from connect_app.indexing.git_compare import MirrorReader
from connect_app.indexing.links import project_filter
from connect_app.jira.jwt import QshMode
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, current_tenant, jira_auth
from connect_app.security.crypto import resolve_keys
from connect_app.services import repository_browser as browser
from connect_app.services import repository_history as history
from connect_app.services.browsable_projects import browsable_keys
from connect_app.web.page_links import tokens_page_url

bp = Blueprint("api_browse", __name__, url_prefix="/api")

_CURSOR_KEY = "git_connect.browse_cursor_key"
COMMITS_DEFAULT_LIMIT = 50


def cursor_secret() -> bytes:
    key: bytes | None = current_app.extensions.get(_CURSOR_KEY)
    if key is None:
        key = browser.cursor_key(resolve_keys(runtime().settings)[0])
        current_app.extensions[_CURSOR_KEY] = key
    return key


def _project_access(keys: frozenset[str]) -> frozenset[str]:
    return browsable_keys(db.session(), current_tenant(), current_auth().account_id, keys)


def _reader() -> MirrorReader:
    return MirrorReader(allow_private=runtime().settings.allow_private_hosts)


def _json(payload: dict[str, Any]) -> Response:
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    return response


def _repository(repository_id: int) -> browser.BrowseRepository:
    auth = current_auth()
    return browser.browse_repository(
        db.session(), auth.tenant_id, auth.account_id, repository_id, project_access=_project_access
    )


def _history(repository_id: int) -> history.History:
    auth = current_auth()
    session = db.session()
    repo = _repository(repository_id)
    path = history.open_mirror(session, repo, runtime().settings.mirrors_dir)
    return history.History(session, auth.tenant_id, repo, _reader(), path, auth.jira_base_url)


@bp.get("/browse/repositories")
@jira_auth(QshMode.CONTEXT)
def repositories() -> Response:
    auth = current_auth()
    session = db.session()
    mirrors_dir = runtime().settings.mirrors_dir
    page = browser.list_repositories(
        session,
        tenant_id=auth.tenant_id,
        account_id=auth.account_id,
        project_access=_project_access,
        query=browser.parse_query(request.args.get("q")),
        limit=browser.parse_limit(request.args.get("limit")),
        cursor=request.args.get("cursor") or None,
        cursor_secret=cursor_secret(),
        last_linked=lambda heads: history.last_linked_issues(
            session, auth.tenant_id, _reader(), mirrors_dir, auth.jira_base_url, heads
        ),
    )
    return _json(
        {
            "repositories": page.repositories,
            "total": page.total,
            "next_cursor": page.next_cursor,
            "needs_token": [{"id": i.id, "name": i.display_name, "provider": i.provider} for i in page.needs_token],
            "tokens_url": tokens_page_url(auth.jira_base_url),
        }
    )


@bp.get("/browse/repositories/<int:repository_id>/refs")
@jira_auth(QshMode.CONTEXT)
def refs(repository_id: int) -> Response:
    auth = current_auth()
    repo = _repository(repository_id)
    query = browser.parse_query(request.args.get("q"))
    payload = browser.list_refs(db.session(), auth.tenant_id, repo, query)
    return _json({"repository": {"id": repo.id, "name": repo.name}, **payload})


@bp.get("/browse/repositories/<int:repository_id>/commits")
@jira_auth(QshMode.CONTEXT)
def commits(repository_id: int) -> Response:
    commit_filter = history.parse_filter(request.args.get("filter"))
    limit = browser.parse_limit(request.args.get("limit"), default=COMMITS_DEFAULT_LIMIT)
    h = _history(repository_id)
    payload = history.commits_page(
        h,
        ref=request.args.get("ref") or None,
        commit_filter=commit_filter,
        limit=limit,
        cursor=request.args.get("cursor") or None,
        cursor_secret=cursor_secret(),
    )
    return _json(payload)


@bp.get("/browse/repositories/<int:repository_id>/compare")
@jira_auth(QshMode.CONTEXT)
def compare(repository_id: int) -> Response:
    limit = browser.parse_limit(request.args.get("limit"), default=COMMITS_DEFAULT_LIMIT)
    h = _history(repository_id)
    payload = history.compare_page(
        h,
        from_ref=request.args.get("from") or "",
        to_ref=request.args.get("to") or "",
        keys=project_filter(h.session, h.tenant_id),
        limit=limit,
        cursor=request.args.get("cursor") or None,
        cursor_secret=cursor_secret(),
    )
    return _json(payload)
