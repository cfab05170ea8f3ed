"""OpenAPI description of the integration log (:mod:`connect_app.web.api_integration_log`);
merged into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

from connect_app.models import DevinfoStatus, EventLevel, EventSource, SmartCommitMode, SmartCommitStatus
from connect_app.web.openapi_admin import BOOL, INT, STR, STRINGS, TIME, nullable, obj, path_id, query, ref, responses

_DETAIL = {
    "type": "object",
    "additionalProperties": True,
    "description": "Small JSON for the event: detail.code says which kind of event it is (devinfo_push, "
    "devinfo_interrupted, devinfo_app_refused, no_jira_user, impersonation_unavailable, command_failed, "
    "transition_not_found, malformed_commands, credentials_replaced...), plus counts and a few samples "
    "(refused, unknown_issue_keys, key_overflow, available_transitions, retry_at...). Never a secret.",
}
_REPOSITORY = nullable(obj({"id": INT, "name": STR}, ["id", "name"]))
_SITE = obj(
    {
        "status": {"type": "string", "enum": [s.value for s in DevinfoStatus]},
        "detail": nullable(STR),
        "http_status": {**INT, "nullable": True},
        "since": TIME,
    },
    ["status"],
    description="needs_attention: Jira refuses the app on this site (all integrations); detail says what to do",
)
_REPOSITORY_STATE = obj(
    {
        "repository": obj({"id": INT, "name": STR}, ["id", "name"]),
        "status": {
            "type": "string",
            "enum": [s.value for s in DevinfoStatus],
            "description": "partial: the last push was interrupted and the next one resumes it",
        },
        "last_attempt_at": TIME,
        "last_success_at": TIME,
        "last_error": nullable(STR),
        "resuming": BOOL,
        "unknown_issue_keys": {**STRINGS, "description": "issue keys Jira does not know (newest last, at most 50)"},
        "last_result": obj(
            {
                "status": STR,
                "backfill": BOOL,
                "sent": {"type": "object", "additionalProperties": INT},
                "accepted": {"type": "object", "additionalProperties": INT},
                "failed_count": INT,
                "unknown_issue_key_count": INT,
                "error": nullable(STR),
                "failed": {
                    "type": "array",
                    "items": obj({"kind": STR, "id": STR, "messages": STRINGS}),
                    "description": "at most 5 entities Jira refused",
                },
            }
        ),
    },
    ["repository", "status"],
)
_LEDGER_ROW = obj(
    {
        "sha": STR,
        "repository_id": {**INT, "nullable": True},
        "issue_key": {**STR, "description": "'-' for a malformed command"},
        "command": {**STR, "description": "e.g. #time 1h 30m, #comment, #start-progress"},
        "mode": {"type": "string", "enum": [m.value for m in SmartCommitMode]},
        "status": {"type": "string", "enum": [s.value for s in SmartCommitStatus]},
        "account_id": nullable(STR),
        "detail": nullable(STR),
        "committed_at": TIME,
        "executed_at": TIME,
    }
)

SCHEMAS: dict[str, Any] = {
    "IntegrationEvent": obj(
        {
            "id": INT,
            "at": TIME,
            "level": {"type": "string", "enum": [lv.value for lv in EventLevel]},
            "source": {"type": "string", "enum": [s.value for s in EventSource]},
            "message": {**STR, "description": "what happened and what to do, in words"},
            "repository": _REPOSITORY,
            "detail": _DETAIL,
        },
        ["id", "at", "level", "source", "message", "repository", "detail"],
    ),
    "IntegrationLogSummary": obj(
        {
            "integration_id": INT,
            "development_panel": obj(
                {
                    "enabled": BOOL,
                    "site": _SITE,
                    "repositories": {
                        "type": "array",
                        "items": _REPOSITORY_STATE,
                        "description": "repositories pushed at least once; problems first, at most 500",
                    },
                    "repository_count": INT,
                    "truncated": BOOL,
                }
            ),
            "smart_commits": obj(
                {
                    "enabled": BOOL,
                    "run_by": {"type": "string", "enum": ["app", "jira"], "nullable": True},
                    "max_age_days": INT,
                    "recent": {
                        "type": "array",
                        "items": _LEDGER_ROW,
                        "description": "the newest ledger rows (at most 50): what ran, as whom, or why not",
                    },
                }
            ),
        }
    ),
}

_INTEGRATION_ID = path_id("integration_id", "an integration of the caller's Jira site")

PATHS: dict[str, Any] = {
    "/api/integrations/{integration_id}/log": {
        "parameters": [_INTEGRATION_ID],
        "get": {
            "summary": "The integration's log, newest first: Development panel findings, smart-commit outcomes, ...",
            "parameters": [
                query("level", STR, "comma-separated: " + ", ".join(lv.value for lv in EventLevel)),
                query("source", STR, "comma-separated: " + ", ".join(s.value for s in EventSource)),
                query("repository", INT, "only this repository's events (a repository of this integration)"),
                query("before", INT, "next page: the next_before of the previous one"),
                query("limit", {**INT, "minimum": 1, "maximum": 200, "default": 50}, "page size"),
            ],
            "responses": responses(
                "200",
                obj(
                    {
                        "events": {"type": "array", "items": ref("IntegrationEvent")},
                        "next_before": {**INT, "nullable": True, "description": "null: no more pages"},
                    },
                    ["events", "next_before"],
                ),
                "Events",
                e400="Invalid filter",
                e404="No such integration, or the repository is not one of its",
            ),
        },
    },
    "/api/integrations/{integration_id}/log/summary": {
        "parameters": [_INTEGRATION_ID],
        "get": {
            "summary": "Where things stand: the Development panel per repository, the site, smart-commit settings",
            "responses": responses("200", ref("IntegrationLogSummary"), "Summary", e404="No such integration"),
        },
    },
}
