"""JSON API of one issue's git data, for the issue panel (and any iframe of the app).

``GET /api/issues/{key}/development``: commits, branches, pull requests and tags linked to
the issue, already filtered for the calling user (see :mod:`connect_app.services.development`).
The tenant and the user come from the verified context token only; the key is validated.
Documented in ``/api/openapi.json`` (merged into ``connect_app.web.api.OPENAPI`` below).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from connect_app.extensions import db
from connect_app.jira.jwt import QshMode
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, jira_auth
from connect_app.security.crypto import resolve_keys
from connect_app.services import development
from connect_app.web import api

bp = Blueprint("api_issues", __name__, url_prefix="/api")

_CURSOR_KEY = "git_connect.development_cursor_key"


def cursor_secret() -> bytes:
    """The cursor HMAC key, derived once per app from the first encryption key."""
    key: bytes | None = current_app.extensions.get(_CURSOR_KEY)
    if key is None:
        key = development.cursor_key(resolve_keys(runtime().settings)[0])
        current_app.extensions[_CURSOR_KEY] = key
    return key


@bp.get("/issues/<key>/development")
@jira_auth(QshMode.CONTEXT)
def issue_development(key: str) -> Response:
    issue_key = development.parse_issue_key(key)
    limit = development.parse_limit(request.args.get("limit"))
    auth = current_auth()
    page = development.issue_development(
        db.session(),
        tenant_id=auth.tenant_id,
        account_id=auth.account_id,
        issue_key=issue_key,
        limit=limit,
        cursor=request.args.get("cursor") or None,
        cursor_secret=cursor_secret(),
    )
    response = jsonify(page.payload())
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- OpenAPI

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_INT = {"type": "integer"}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_URL = {"type": "string", "format": "uri", "nullable": True, "description": "http(s) only; null when unknown"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


SCHEMAS: dict[str, Any] = {
    "RepositoryRef": _obj({"id": _INT, "name": _STR, "url": _URL}, ["id", "name"]),
    "DevCommit": _obj(
        {
            "id": _INT,
            "sha": _STR,
            "short_sha": _STR,
            "message": {**_STR, "description": f"Full message, cut at {development.MESSAGE_MAX_CHARS} characters"},
            "message_truncated": {"type": "boolean"},
            "author": _obj({"name": _STR, "email": _STR}, ["name", "email"]),
            "time": {**_TIME, "description": "Commit time (the page order)"},
            "authored": _TIME,
            "url": _URL,
            "repository": _ref("RepositoryRef"),
            "branch": {
                **_NSTR,
                "description": "The branch this commit belongs to: the branch at it, else the one its newest"
                " child was on, the default branch first along its first parents; null when only tags reach it",
            },
            "tags": {**_array(_STR), "description": "Tags pointing at this commit"},
        },
        ["sha", "message", "author", "time", "url", "repository"],
    ),
    "DevBranch": _obj(
        {
            "id": _INT,
            "name": _STR,
            "url": _URL,
            "repository": _ref("RepositoryRef"),
            "last_commit": _obj(
                {"sha": _STR, "short_sha": _STR, "message": _NSTR, "author": _NSTR, "time": _TIME, "url": _URL},
                ["sha"],
                description="The branch head; message/author/time null when that commit is not indexed",
            ),
            "updated": {**_TIME, "description": "When the branch last moved (the page order)"},
            "ahead_behind": _obj(
                {"ahead": _INT, "behind": _INT, "base": _STR},
                ["ahead", "behind", "base"],
                nullable=True,
                description="Commits on this branch and not on the default branch (base), and the reverse,"
                " counted at the branch's current head; null when not known",
            ),
            "pull_request": _obj(
                {"id": _STR, "state": _STR, "url": _URL},
                nullable=True,
                description="A pull request from this branch: an open one first, else the latest",
            ),
        },
        ["name", "url", "repository", "last_commit"],
    ),
    "DevPullRequest": _obj(
        {
            "id": {**_STR, "description": "The host's id or number"},
            "title": _STR,
            "state": {"type": "string", "enum": ["OPEN", "MERGED", "DECLINED"]},
            "source": _STR,
            "target": _STR,
            "author": _NSTR,
            "url": _URL,
            "updated": _TIME,
            "repository": _ref("RepositoryRef"),
        },
        ["id", "title", "state", "source", "target", "author", "url", "updated", "repository"],
    ),
    "DevTag": _obj(
        {
            "name": _STR,
            "sha": _STR,
            "url": {**_URL, "description": "The tagged commit's page"},
            "repository": _ref("RepositoryRef"),
        },
        ["name", "sha", "repository"],
        description="A tag pointing exactly at a commit of this page (tags that merely contain it are not known)",
    ),
    "IssueDevelopment": _obj(
        {
            "issue_key": _STR,
            "commits": _array(_ref("DevCommit")),
            "branches": _array(_ref("DevBranch")),
            "pull_requests": _array(_ref("DevPullRequest")),
            "tags": _array(_ref("DevTag")),
            "counts": _obj(
                {"commits": _INT, "branches": _INT, "pull_requests": _INT},
                ["commits", "branches", "pull_requests"],
                description="Totals over every page, for what the caller may see",
            ),
            "repositories": {**_array(_ref("RepositoryRef")), "description": "Repositories of this page's items"},
            "next_cursor": {
                **_NSTR,
                "description": "Pass as `cursor` for the next page; null on the last page. Opaque and signed.",
            },
            "needs_token": {
                **_array(_INT),
                "description": 'Integrations with "enforce git service permissions" on whose data the caller '
                "cannot see without adding a personal token (user settings page). Nothing from them is "
                "included. Listed whether or not they hold data for this issue.",
            },
            "needs_token_integrations": _array(_obj({"id": _INT, "name": _STR, "provider": _STR})),
            "indexing": {
                **_array(_ref("RepositoryRef")),
                "description": f"Visible repositories whose first index is still running (at most "
                f"{development.INDEXING_LISTED}); results may be incomplete until they finish",
            },
            "indexing_total": _INT,
        },
        ["commits", "branches", "pull_requests", "counts", "next_cursor", "needs_token"],
    ),
}

_ERROR = {"application/json": {"schema": _ref("Error")}}
_JSON_PAGE = {"application/json": {"schema": _ref("IssueDevelopment")}}

PATHS: dict[str, Any] = {
    "/api/issues/{key}/development": {
        "get": {
            "summary": "Commits, branches, pull requests and tags linked to an issue, for the calling user",
            "description": (
                "Newest first per kind (commits by commit time, branches by last move, pull requests by last "
                "update), each kind paged by `limit`; one `next_cursor` continues all kinds. Only repositories "
                "the caller may see: enabled, not removed, associated with the issue's project, and — for "
                'integrations with "enforce git service permissions" — readable with the caller\'s own token '
                "(until personal tokens exist, such integrations show nothing and are listed in `needs_token`)."
            ),
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]+-[1-9][0-9]*$"},
                    "description": "Jira issue key (upper-cased before use)",
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "default": development.DEFAULT_LIMIT},
                    "description": f"Items per kind per page; above {development.MAX_LIMIT} is capped",
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "`next_cursor` of the previous page, unchanged",
                },
            ],
            "responses": {
                "200": {
                    "description": "One page",
                    "content": {"application/json": {"schema": _ref("IssueDevelopment")}},
                },
                "400": {"description": "Bad issue key, limit or cursor", "content": _ERROR},
                "401": {"description": "Missing or invalid token", "content": _ERROR},
            },
        }
    }
}

api.OPENAPI["paths"].update(PATHS)
api.OPENAPI["components"]["schemas"].update(SCHEMAS)
