"""OpenAPI description of create branch / pull request, the job status and the dialogs' options;
merged into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

from connect_app.hosts.base import ProviderId
from connect_app.models import ActionKind, ActionStatus
from connect_app.services import action_options
from connect_app.services.action_input import BODY_MAX_LENGTH, TITLE_MAX_LENGTH
from connect_app.services.branch_names import MAX_LENGTH as BRANCH_MAX_LENGTH
from connect_app.web.openapi_admin import BOOL, INT, JSON, STR, TIME, body, nullable, obj, query, ref

ISSUE_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {**STR, "pattern": "^[A-Za-z][A-Za-z0-9_]+-[1-9][0-9]*$"},
    "description": "A Jira issue key (any case), e.g. ABC-123",
}
BRANCH = {**STR, "maxLength": BRANCH_MAX_LENGTH, "description": "A branch name by git's rules (check-ref-format)"}
PROVIDER = {"type": "string", "enum": [p.value for p in ProviderId]}
REPOSITORY_REF = obj({"id": INT, "name": STR}, ["id", "name"])
INTEGRATION_REF = obj({"id": INT, "display_name": STR, "provider": PROVIDER}, ["id", "display_name", "provider"])


def error(description: str, schema: str = "ActionError") -> dict[str, Any]:
    return body(ref(schema), description)


def common_errors(**errors: str) -> dict[str, Any]:
    out = {"401": error("Missing or invalid Jira token"), "403": error("The Jira token names no user (no_user)")}
    for status, description in errors.items():
        out[status.removeprefix("e")] = error(description)
    return out


SUBMIT_ERRORS = common_errors(
    e400="bad_issue_key; a field (``field``): missing_field, invalid_branch_name, same_branch, invalid_field, "
    "invalid_json; action_unsupported (the host cannot do it)",
    e403="feature_disabled: the integration's administrator switched the action off (or no_user)",
    e404="issue_not_found; repository_not_found (unknown, another site's, hidden from you, or not linked "
    "to the issue's project: all the same)",
    e409="user_token_required (``integration`` names which one: ask for the token, then retry); "
    "credentials_refused (the integration's credentials need an administrator)",
    e429="Jira is rate limiting the app",
    e503="queue_unavailable: nothing was created; try again",
)


def submit_path(summary: str, request_schema: str, description: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": description,
            "parameters": [ISSUE_KEY],
            "requestBody": {"required": True, "content": {JSON: {"schema": ref(request_schema)}}},
            "responses": {
                "202": {
                    **body(ref("JobAccepted"), "Queued; poll GET /api/jobs/{job_id} (also the Location header)"),
                    "headers": {"Location": {"schema": STR, "description": "/api/jobs/{job_id}"}},
                },
                **SUBMIT_ERRORS,
            },
        }
    }


_CHECKS = (
    "Checked before anything is stored: the key, the fields, the repository (visible to you and linked to the "
    "issue's project), the host's capability and the integration's feature switch, the credentials (your own "
    'token when "require user PAT" is on), and that the issue exists in Jira. Runs as a job; the created '
    "item is linked to the issue at once."
)

PATHS: dict[str, Any] = {
    "/api/issues/{key}/branches": submit_path("Create a branch for the issue", "CreateBranch", _CHECKS),
    "/api/issues/{key}/pull-requests": submit_path("Create a pull request for the issue", "CreatePullRequest", _CHECKS),
    "/api/jobs/{job_id}": {
        "get": {
            "summary": "The status of a create-branch / create-pull-request job",
            "description": "Only the site and user that created the job see it; any other id is a 404. "
            "A job that stopped reporting (the worker died) turns failed with code job_lost.",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {**STR, "maxLength": 32}}],
            "responses": {"200": body(ref("ActionJob"), "The job"), **common_errors(e404="job_not_found")},
        }
    },
    "/api/issues/{key}/create-options": {
        "get": {
            "summary": "What the create-branch / create-pull-request dialog offers for this issue",
            "description": "Repositories you may use for the issue's project where the host and the integration "
            "allow the action (at most "
            f"{action_options.MAX_REPOSITORIES}, by name), your last choice in the project, a branch name from "
            "the integration's template, and a pull request title and description linking to the issue. "
            "Without ``summary`` the issue is read from Jira (404 issue_not_found when it does not exist).",
            "parameters": [
                ISSUE_KEY,
                query("action", {"type": "string", "enum": ["branch", "pull_request"]}, "Default: branch"),
                query("summary", STR, "The issue's summary, as Jira gave it to the dialog"),
                query("issuetype", STR, "The issue's type name, for ${issuetype}"),
            ],
            "responses": {
                "200": body(ref("CreateOptions"), "The dialog's choices"),
                **common_errors(e400="bad_issue_key, bad_action", e404="issue_not_found"),
            },
        }
    },
    "/api/repositories/{repository_id}/branches": {
        "get": {
            "summary": "Branch names of a repository you may see, from the index (source / target pickers)",
            "parameters": [
                {"name": "repository_id", "in": "path", "required": True, "schema": INT},
                query("q", STR, "Only names containing this (any case)"),
            ],
            "responses": {
                "200": body(ref("BranchNames"), f"At most {action_options.MAX_BRANCHES}, the default branch first"),
                **common_errors(e404="repository_not_found"),
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "ActionError": obj(
        {
            "error": obj(
                {
                    "code": STR,
                    "message": {**STR, "description": "Words to show the user"},
                    "field": {**STR, "description": "The input to fix (400 only)"},
                    "integration": {
                        **INTEGRATION_REF,
                        "description": "user_token_required: the integration to ask a token for",
                    },
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "CreateBranch": obj(
        {
            "repository_id": INT,
            "source": {**BRANCH, "description": "The branch (or full commit sha) to start from"},
            "name": BRANCH,
        },
        ["repository_id", "source", "name"],
    ),
    "CreatePullRequest": obj(
        {
            "repository_id": INT,
            "source": BRANCH,
            "target": {**BRANCH, "description": "Must differ from source"},
            "title": {**STR, "maxLength": TITLE_MAX_LENGTH},
            "body": {**STR, "maxLength": BODY_MAX_LENGTH, "description": "Optional"},
        },
        ["repository_id", "source", "target", "title"],
    ),
    "JobAccepted": obj(
        {"job_id": STR, "status": {"type": "string", "enum": [ActionStatus.QUEUED.value]}}, ["job_id", "status"]
    ),
    "ActionJob": obj(
        {
            "id": STR,
            "kind": {"type": "string", "enum": [k.value for k in ActionKind]},
            "status": {"type": "string", "enum": [s.value for s in ActionStatus]},
            "issue_key": STR,
            "repository_id": nullable(INT),
            "created_at": TIME,
            "finished_at": TIME,
            "result": obj(
                {
                    "name": {**STR, "description": "The branch name, or the pull request's title"},
                    "url": nullable(STR),
                    "id": {**STR, "description": "Pull requests: the host's number / id"},
                    "title": STR,
                    "state": STR,
                    "head_sha": nullable(STR),
                    "source": STR,
                    "target": STR,
                    "repository": REPOSITORY_REF,
                },
                ["name", "url", "repository"],
                description="When done",
            ),
            "error": obj(
                {
                    "code": {
                        **STR,
                        "description": "branch_exists, pull_request_exists, no_permission, protected_branch, "
                        "not_found, rate_limited, host_unavailable, user_token_invalid, user_token_required, "
                        "credentials_refused, feature_disabled, repository_not_found, rejected, "
                        "queue_unavailable, job_lost, internal_error",
                    },
                    "message": {**STR, "description": "Words to show the user"},
                    "retry_at": {**TIME, "description": "rate_limited: when trying again will work"},
                },
                ["code", "message"],
                description="When failed",
            ),
        },
        ["id", "kind", "status", "issue_key"],
    ),
    "CreateOptions": obj(
        {
            "issue": obj(
                {"key": STR, "summary": STR, "issue_type": STR, "project_key": STR, "url": STR},
                ["key", "summary", "project_key", "url"],
            ),
            "action": {"type": "string", "enum": ["branch", "pull_request"]},
            "repositories": {
                "type": "array",
                "items": obj(
                    {
                        "id": INT,
                        "name": STR,
                        "integration": INTEGRATION_REF,
                        "default_branch": nullable(STR),
                        "can_create_branch": BOOL,
                        "can_create_pull_request": BOOL,
                        "needs_user_token": {**BOOL, "description": "Ask for the user's token before creating"},
                        "branch_name": {**BRANCH, "description": "From this integration's template"},
                    },
                    ["id", "name", "integration", "default_branch", "can_create_branch", "can_create_pull_request"],
                ),
            },
            "repositories_truncated": BOOL,
            "last_repository_id": nullable({**INT, "description": "Your last choice in this project, if offered"}),
            "branch_name": {**BRANCH, "description": "For the preselected repository (last choice, else the first)"},
            "pull_request": obj(
                {"title": STR, "body": {**STR, "description": "Links back to the issue"}}, ["title", "body"]
            ),
        },
        ["repositories", "last_repository_id", "branch_name", "pull_request"],
    ),
    "BranchNames": obj(
        {
            "repository_id": INT,
            "default_branch": nullable(STR),
            "branches": {"type": "array", "items": STR},
            "truncated": {**BOOL, "description": "More names match than were returned"},
        },
        ["repository_id", "default_branch", "branches", "truncated"],
    ),
}
