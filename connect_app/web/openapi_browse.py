"""OpenAPI description of the repository browser API; merged into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_URL = {"type": "string", "format": "uri", "nullable": True, "description": "http(s) only; null when unknown"}
_CURSOR = {"type": "string", "nullable": True, "description": "Pass as `cursor` for the next page; null on the last"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _query(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema or _STR, "description": description}


_ID = {"name": "repository_id", "in": "path", "required": True, "schema": _INT, "description": "Repository id"}
_LIMIT = _query("limit", "Items per page (capped at 100)", {"type": "integer", "minimum": 1})
_PAGE_CURSOR = _query("cursor", "`next_cursor` of the previous page, unchanged (with the same other parameters)")
_ERROR = {"application/json": {"schema": _ref("Error")}}
_ERRORS = {
    "400": {"description": "Bad parameter or cursor; a ref git would refuse (`bad_ref`)", "content": _ERROR},
    "401": {"description": "Missing or invalid token", "content": _ERROR},
}
_REPO_ERRORS = {
    **_ERRORS,
    "403": {"description": "`token_required`: visible only with the caller's own token", "content": _ERROR},
    "404": {
        "description": "`repository_not_found` (another site's, removed, or not browsable), `unknown_ref`, or "
        "`not_indexed` (no history yet)",
        "content": _ERROR,
    },
    "503": {
        "description": "`history_unavailable`: the repository is indexed but this web server cannot read its"
        " history (MIRRORS_PATH is not shared with the workers)",
        "content": _ERROR,
    },
}

SCHEMAS: dict[str, Any] = {
    "BrowseIssue": _obj({"key": _STR, "url": {**_STR, "description": "The issue in Jira"}}, ["key", "url"]),
    "BrowseRepository": _obj(
        {
            "id": _INT,
            "name": _STR,
            "url": _URL,
            "provider": _STR,
            "integration": _obj({"id": _INT, "name": _STR}, ["id", "name"]),
            "default_branch": _NSTR,
            "status": _STR,
            "last_indexed": _TIME,
            "indexing_first_time": _BOOL,
            "token_needed": {
                **_BOOL,
                "description": "The integration asks for the caller's own token (creating branches and pull "
                "requests, or seeing its repositories) and the caller has none saved",
            },
            "project_keys": {**_array(_STR), "description": "Jira projects it is limited to (empty: all)"},
            "last_commit": _obj(
                {
                    "sha": _STR,
                    "short_sha": _STR,
                    "message": {**_STR, "description": "First line"},
                    "author": _obj({"name": _STR, "email": _STR}),
                    "time": _TIME,
                    "branch": _STR,
                    "url": _URL,
                },
                nullable=True,
                description="The newest commit any branch points at",
            ),
            "last_linked_issue": _obj(
                {"keys": _array(_STR), "issues": _array(_ref("BrowseIssue")), "sha": _STR, "time": _TIME},
                nullable=True,
                description="Issue keys of the newest linked commit among the newest 200 from the newest branch",
            ),
        },
        ["id", "name", "integration", "status", "token_needed", "last_commit", "last_linked_issue"],
    ),
    "BrowseRepositoryPage": _obj(
        {
            "repositories": _array(_ref("BrowseRepository")),
            "total": {**_INT, "description": "Repositories matching `q` that the caller may browse"},
            "next_cursor": _CURSOR,
            "needs_token": {
                **_array(_obj({"id": _INT, "name": _STR, "provider": _STR})),
                "description": 'Integrations with "enforce git service permissions" whose repositories show only '
                "after the caller adds their own token",
            },
            "tokens_url": {**_STR, "description": "The caller's token settings page in Jira"},
        },
        ["repositories", "total", "next_cursor", "needs_token", "tokens_url"],
    ),
    "BrowseRefs": _obj(
        {
            "repository": _obj({"id": _INT, "name": _STR}),
            "default_branch": _NSTR,
            "branches": _array(_obj({"name": _STR, "sha": _STR})),
            "tags": _array(_obj({"name": _STR, "sha": _STR})),
            "branches_truncated": _BOOL,
            "tags_truncated": _BOOL,
        },
        ["branches", "tags"],
    ),
    "BrowseResolvedRef": _obj(
        {"name": _STR, "kind": {"type": "string", "enum": ["branch", "tag", "commit"]}, "sha": _STR},
        ["name", "kind", "sha"],
    ),
    "BrowseCommit": _obj(
        {
            "sha": _STR,
            "short_sha": _STR,
            "message": {**_STR, "description": "Full message, cut at 2000 characters"},
            "message_truncated": _BOOL,
            "author": _obj({"name": _STR, "email": _STR}, ["name", "email"]),
            "time": {**_TIME, "description": "Commit time"},
            "merge": _BOOL,
            "url": _URL,
            "indexed": {**_BOOL, "description": "The commit is in the app's index"},
            "issue_keys": _array(_ref("BrowseIssue")),
        },
        ["sha", "message", "author", "time", "issue_keys"],
    ),
    "BrowseCommitPage": _obj(
        {
            "repository": _obj({"id": _INT, "name": _STR}),
            "ref": _ref("BrowseResolvedRef"),
            "filter": {"type": "string", "enum": ["all", "linked", "unlinked"]},
            "commits": _array(_ref("BrowseCommit")),
            "next_cursor": _CURSOR,
            "scanned": {**_INT, "description": "Commits looked at for this page"},
            "scan_limited": {
                **_BOOL,
                "description": "A filter looked at 10,000 commits without filling the page; continue with next_cursor",
            },
        },
        ["ref", "filter", "commits", "next_cursor"],
    ),
    "BrowseCompare": _obj(
        {
            "repository": _obj({"id": _INT, "name": _STR}),
            "from": _ref("BrowseResolvedRef"),
            "to": _ref("BrowseResolvedRef"),
            "total_commits": {**_INT, "description": "Commits in `to` that are not in `from` (`git log from..to`)"},
            "files_changed": {**_INT, "description": "Files changed between their merge base and `to`"},
            "issues": {**_array(_ref("BrowseIssue")), "description": "Every issue the range's commits link"},
            "jira_links": {
                **_array(_obj({"url": _STR, "jql": _STR, "count": _INT})),
                "description": "Issue navigator links (JQL `key in (...)`); one per 250 issues",
            },
            "commits": _array(_ref("BrowseCommit")),
            "next_cursor": _CURSOR,
        },
        ["from", "to", "total_commits", "files_changed", "issues", "jira_links", "commits", "next_cursor"],
    ),
}


def _get(summary: str, description: str, parameters: list[Any], schema: str, errors: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": description,
            "parameters": parameters,
            "responses": {
                "200": {"description": "One page", "content": {"application/json": {"schema": _ref(schema)}}},
                **errors,
            },
        }
    }


PATHS: dict[str, Any] = {
    "/api/browse/repositories": _get(
        "Repositories the caller may browse",
        "By name. Visible: enabled, not removed; limited to Jira projects only when the caller may browse one of "
        "them; with enforced host permissions, only with the caller's own token.",
        [_query("q", "Part of the repository name"), _LIMIT, _PAGE_CURSOR],
        "BrowseRepositoryPage",
        _ERRORS,
    ),
    "/api/browse/repositories/{repository_id}/refs": _get(
        "Branches and tags of a repository",
        "As last indexed, by name (the default branch first); at most 200 of each.",
        [_ID, _query("q", "Part of the branch or tag name")],
        "BrowseRefs",
        _REPO_ERRORS,
    ),
    "/api/browse/repositories/{repository_id}/commits": _get(
        "Commits of a branch, tag or commit, newest first",
        "From the repository's mirror, each with the issues it links. `linked`/`unlinked` look at up to 10,000 "
        "commits per request.",
        [
            _ID,
            _query("ref", "Branch, tag (`refs/heads/x`, `refs/tags/x` or a short name) or full sha; default branch"),
            _query("filter", "Which commits", {"type": "string", "enum": ["all", "linked", "unlinked"]}),
            _LIMIT,
            _PAGE_CURSOR,
        ],
        "BrowseCommitPage",
        _REPO_ERRORS,
    ),
    "/api/browse/repositories/{repository_id}/compare": _get(
        "Commits in `to` that are not in `from`, and the issues they link",
        "`git log from..to` on the repository's mirror: totals over the whole range, commits paged (ranges of any "
        "size).",
        [
            _ID,
            _query("from", "The older ref (e.g. the previous release tag)", required=True),
            _query("to", "The newer ref", required=True),
            _LIMIT,
            _PAGE_CURSOR,
        ],
        "BrowseCompare",
        _REPO_ERRORS,
    ),
}
