"""OpenAPI description of the admin API (integrations, repositories, index runs); merged
into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

from connect_app.hosts.base import AuthType, ProviderId
from connect_app.models import RepositoryStatus, RunKind, RunStatus, Trigger
from connect_app.services.admin_stats import Status
from connect_app.services.integration_settings import Feature

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time", "nullable": True}
STRINGS = {"type": "array", "items": STR}


def body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return body(ref("FieldError"), description)


def responses(ok: str, ok_schema: dict[str, Any], ok_description: str, **errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {ok: body(ok_schema, ok_description)}
    out["401"] = error("Missing or invalid Jira token")
    out["403"] = error("Not a Jira administrator")
    for status, description in errors.items():
        out[status.removeprefix("e")] = error(description)
    return out


def path_id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": INT, "description": what}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


SETTINGS = obj(
    {
        "require_user_pat": BOOL,
        "enforce_permissions": {**BOOL, "description": "Only for hosts with the user_permissions capability"},
        "project_keys": {**STRINGS, "description": "Jira project keys ([A-Z][A-Z0-9_]+); empty: every project"},
        "reindex_interval_minutes": {
            **INT,
            "nullable": True,
            "minimum": 5,
            "maximum": 10080,
            "description": "null: adaptive",
        },
        "features": obj({f.value: BOOL for f in Feature}),
        "branch_name_template": {
            **STR,
            "maxLength": 250,
            "description": "Variables ${issuekey} (required), ${summary}, ${issuetype}, ${projectkey}",
        },
        "smart_commits_by": {
            "type": "string",
            "enum": ["app", "jira"],
            "description": "Who runs smart commits (exactly one side does): jira = Jira, from the commits sent to "
            "its Development panel (needs features.development_panel; the default while it is on); app = Git "
            "Connect, as the Jira user whose email matches the commit author. Read: the side that runs them now.",
        },
        "smart_commits_max_age_days": {
            **INT,
            "minimum": 1,
            "maximum": 365,
            "default": 14,
            "description": "Smart commits run only for commits newer than this many days (either side)",
        },
    }
)
AUTH = obj(
    {
        "type": {"type": "string", "enum": [a.value for a in AuthType]},
        "token": STR,
        "username": STR,
        "password": STR,
    },
    ["type"],
    additionalProperties=STR,
    description="Secrets are stored encrypted and never returned. Extra string fields go to the host "
    "(e.g. region, session_token for AWS; access_key_id / secret_access_key are aliases of username / password).",
)
REPOSITORIES_CHOICE = {
    "oneOf": [{"type": "string", "enum": ["all", "all_future"]}, {"type": "array", "items": STR, "minItems": 1}],
    "description": "all current repositories, all current and future ones, or picked ids (or full names)",
}
COUNTERS = obj({"commits": INT, "branches": INT, "pull_requests": INT})
RUN_BRIEF = nullable(
    obj(
        {
            "id": INT,
            "kind": STR,
            "trigger": STR,
            "status": STR,
            "queued_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
            "error": nullable(STR),
        }
    )
)
REMOTE = obj(
    {
        "external_id": STR,
        "name": STR,
        "namespace": nullable(STR),
        "web_url": nullable(STR),
        "default_branch": nullable(STR),
        "private": BOOL,
        "added": BOOL,
    }
)

SCHEMAS: dict[str, Any] = {
    "FieldError": obj(
        {
            "error": obj(
                {"code": STR, "message": STR, "field": {**STR, "description": "the input to fix (400 only)"}},
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "Integration": obj(
        {
            "id": INT,
            "provider": {"type": "string", "enum": [p.value for p in ProviderId]},
            "provider_name": STR,
            "display_name": STR,
            "base_url": nullable(STR),
            "namespace": nullable(STR),
            "auth_type": STR,
            "account_name": nullable(STR),
            "enabled": BOOL,
            "status": {"type": "string", "enum": list(Status.ALL)},
            "status_detail": nullable(STR),
            "auth_failed": {**BOOL, "description": "The host refused the stored credentials: sign in again"},
            "repository_selection": {"type": "string", "enum": ["all", "all_future", "selected"]},
            "repository_count": INT,
            "repositories": obj(
                {
                    "total": INT,
                    "enabled": INT,
                    "removed": INT,
                    "by_status": {"type": "object", "additionalProperties": INT},
                }
            ),
            "counters": COUNTERS,
            "last_indexed_at": TIME,
            "last_discovered_at": TIME,
            "last_discovery": RUN_BRIEF,
            "features": obj({f.value: BOOL for f in Feature}),
            "settings": SETTINGS,
            "webhook": obj(
                {
                    "url": STR,
                    "secret": {**STR, "description": "only in GET /api/integrations/{integration_id}"},
                    "manual": {**BOOL, "description": "true: paste url and secret on the host by hand"},
                    "manual_reason": nullable(STR),
                }
            ),
            "created_at": TIME,
            "created_by": nullable(STR),
            "reindex_interval_hint": obj(
                {
                    "recommended_minutes": {**INT, "nullable": True},
                    "based_on_runs": INT,
                    "average_run_seconds": {"type": "number", "nullable": True},
                },
                description="only in GET /api/integrations/{integration_id}: the interval to suggest beside "
                "the setting, from recent run durations (null until a run finished)",
            ),
        },
        ["id", "provider", "display_name", "status", "repository_count", "counters", "settings"],
    ),
    "NewIntegration": obj(
        {
            "provider": {"type": "string", "enum": [p.value for p in ProviderId]},
            "display_name": STR,
            "base_url": {**STR, "description": "server URL (self-hosted), clone URL (git), API override (SaaS)"},
            "namespace": {**STR, "description": "org / group / workspace / project filter"},
            "auth": AUTH,
            "repositories": REPOSITORIES_CHOICE,
            "settings": SETTINGS,
        },
        ["provider", "auth"],
    ),
    "IntegrationPatch": obj(
        {
            "display_name": STR,
            "enabled": BOOL,
            "settings": SETTINGS,
            "auth": AUTH,
            "repositories": {
                **REPOSITORIES_CHOICE,
                "description": "a list: exactly these repositories enabled (the others disabled, their index kept)",
            },
        },
        description="provider, base_url and namespace cannot change (400 immutable_field)",
    ),
    "Repository": obj(
        {
            "id": INT,
            "integration_id": INT,
            "external_id": STR,
            "name": STR,
            "namespace": nullable(STR),
            "web_url": nullable(STR),
            "clone_url": STR,
            "default_branch": nullable(STR),
            "enabled": BOOL,
            "project_keys": STRINGS,
            "status": {"type": "string", "enum": [s.value for s in RepositoryStatus]},
            "last_error": nullable(STR),
            "last_indexed_at": TIME,
            "next_index_at": TIME,
            "reindex_requested_at": TIME,
            "removed_at": TIME,
            "webhook_registered": BOOL,
            "counters": COUNTERS,
            "active_run": RUN_BRIEF,
        }
    ),
    "IndexRun": obj(
        {
            "id": INT,
            "integration_id": INT,
            "integration_name": nullable(STR),
            "repository_id": nullable(INT),
            "repository_name": nullable(STR),
            "kind": {"type": "string", "enum": [k.value for k in RunKind]},
            "trigger": {"type": "string", "enum": [t.value for t in Trigger]},
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "queued_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
            "delay_ms": {**INT, "nullable": True, "description": "time queued (so far, when still queued)"},
            "duration_ms": {**INT, "nullable": True, "description": "time running (so far, when running)"},
            "attempts": INT,
            "counts": obj(
                {
                    k: INT
                    for k in (
                        "commits_seen",
                        "commits_linked",
                        "branches_seen",
                        "pull_requests_seen",
                        "links_created",
                        "repositories_seen",
                    )
                }
            ),
            "rate_limited_until": TIME,
            "error": nullable(STR),
        }
    ),
    "Reindex": obj(
        {"requested": INT, "enqueued": INT, "discovery_queued": BOOL, "note": nullable(STR)},
        description="enqueued: jobs queued now; the rest wait for the per-tenant/credential caps",
    ),
}

_UPDATED = {
    "allOf": [
        ref("Integration"),
        obj({"repositories_added": INT, "repositories_disabled": INT, "discovery_queued": BOOL, "note": nullable(STR)}),
    ]
}
_INTEGRATION_ID = path_id("integration_id", "an integration of the caller's Jira site")
_REPOSITORY_ID = path_id("repository_id", "a repository of the caller's Jira site")
_SCOPE = [
    query("integration", INT, "only this integration's runs"),
    query("repository", INT, "only this repository's runs"),
]

PATHS: dict[str, Any] = {
    "/api/integrations": {
        "get": {
            "summary": "Every integration of the Jira site, with status and counters",
            "responses": responses("200", obj({"integrations": {"type": "array", "items": ref("Integration")}}), "ok"),
        },
        "post": {
            "summary": "Add an integration: credentials checked live, picked repositories checked on the host",
            "requestBody": {"required": True, "content": {JSON: {"schema": ref("NewIntegration")}}},
            "responses": responses(
                "201",
                {
                    "allOf": [
                        ref("Integration"),
                        obj({"repositories_added": INT, "indexing_started": BOOL, "note": nullable(STR)}),
                    ]
                },
                "Created; discovery (then the initial index) is queued",
                e400="Invalid field, unsafe URL, unreachable host, refused credentials or missing scopes",
                e409="The same connection already exists (duplicate_integration)",
                e429="The host's rate limit is exhausted",
                e502="The host failed",
            ),
        },
    },
    "/api/integrations/validate": {
        "post": {
            "summary": "Check a connection live (the wizard's credentials step), optionally listing its repositories",
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": obj(
                            {
                                "provider": STR,
                                "base_url": STR,
                                "namespace": STR,
                                "auth": AUTH,
                                "list_repositories": BOOL,
                                "limit": {**INT, "minimum": 1, "maximum": 1000},
                            },
                            ["provider", "auth"],
                        )
                    }
                },
            },
            "responses": responses(
                "200",
                obj(
                    {
                        "ok": BOOL,
                        "account_name": STR,
                        "repositories": {"type": "array", "items": REMOTE},
                        "truncated": BOOL,
                    }
                ),
                "The credentials work",
                e400="Invalid field, unsafe URL, unreachable host, refused credentials or missing scopes",
            ),
        }
    },
    "/api/integrations/{integration_id}": {
        "parameters": [_INTEGRATION_ID],
        "get": {
            "summary": "One integration (with the webhook secret to paste on the host)",
            "responses": responses("200", ref("Integration"), "ok", e404="No such integration"),
        },
        "patch": {
            "summary": "Change name, enabled, settings, credentials (re-validated) or repository selection",
            "requestBody": {"required": True, "content": {JSON: {"schema": ref("IntegrationPatch")}}},
            "responses": responses(
                "200",
                _UPDATED,
                "Updated",
                e400="Invalid field or refused credentials",
                e404="No such integration",
                e409="The new credentials duplicate another integration",
            ),
        },
        "delete": {
            "summary": "Disconnect: delete its data, our webhooks on the host (best effort) and queued jobs",
            "responses": responses(
                "200",
                obj(
                    {
                        "id": INT,
                        "deleted": BOOL,
                        "repositories_removed": INT,
                        "jobs_cancelled": INT,
                        "webhooks": obj(
                            {
                                "deleted": INT,
                                "failed": {
                                    "type": "array",
                                    "items": obj(
                                        {"repository_id": INT, "repository_name": STR, "webhook_id": STR, "error": STR}
                                    ),
                                },
                            }
                        ),
                    }
                ),
                "Deleted",
                e404="No such integration",
            ),
        },
    },
    "/api/integrations/{integration_id}/credentials": {
        "parameters": [_INTEGRATION_ID],
        "put": {
            "summary": "Sign in again: replace the credentials (checked live first; clears auth_failed, reindexes)",
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": obj(
                            {
                                "auth": AUTH,
                                "oauth_flow": {
                                    **STR,
                                    "description": "the id of an OAuth sign-in this admin completed (POST "
                                    "/api/oauth/flows) for the integration's provider and server; used once",
                                },
                            },
                            description="exactly one of auth and oauth_flow",
                        )
                    }
                },
            },
            "responses": responses(
                "200",
                {
                    "allOf": [
                        _UPDATED,
                        obj(
                            {
                                "account_changed": {
                                    **BOOL,
                                    "description": "the host account differs from the one before (accepted, "
                                    "and written to the integration's log)",
                                },
                                "previous_account_name": nullable(STR),
                                "reindex_requested": INT,
                                "reindex_enqueued": INT,
                            }
                        ),
                    ]
                },
                "Replaced",
                e400="Invalid field, unknown / unfinished / other host's OAuth sign-in, or the host refused "
                "the credentials; nothing changed",
                e404="No such integration",
                e409="The new credentials duplicate another integration",
            ),
        },
    },
    "/api/integrations/{integration_id}/reindex": {
        "parameters": [_INTEGRATION_ID],
        "post": {
            "summary": "Reindex every enabled repository now (trigger manual) and rediscover",
            "responses": responses(
                "202",
                ref("Reindex"),
                "Requested",
                e404="No such integration",
                e409="The integration is disabled or its credentials were refused",
            ),
        },
    },
    "/api/integrations/{integration_id}/repositories": {
        "parameters": [_INTEGRATION_ID],
        "get": {
            "summary": "The integration's repositories with status, counters and the run in flight",
            "parameters": [
                query("status", STR, "comma-separated repository statuses"),
                query("enabled", {"type": "string", "enum": ["true", "false"]}, "only enabled / disabled ones"),
                query("q", STR, "name contains (case-insensitive) or exact external id"),
                query("limit", {**INT, "minimum": 1, "maximum": 1000, "default": 200}, "page size"),
                query("offset", {**INT, "minimum": 0, "default": 0}, "rows to skip"),
            ],
            "responses": responses(
                "200",
                obj(
                    {
                        "integration_id": INT,
                        "total": INT,
                        "limit": INT,
                        "offset": INT,
                        "repositories": {"type": "array", "items": ref("Repository")},
                    }
                ),
                "ok",
                e400="Invalid filter",
                e404="No such integration",
            ),
        },
        "post": {
            "summary": "Add picked repositories (ids or full names the host lists); they are indexed at once",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": obj({"repositories": {"type": "array", "items": STR}}, ["repositories"])}},
            },
            "responses": {
                **responses("201", _UPDATED, "Added", e400="Unknown repository ids", e404="No such integration"),
                "200": body(_UPDATED, "Nothing new (already added; re-enabled)"),
            },
        },
    },
    "/api/integrations/{integration_id}/remote-repositories": {
        "parameters": [_INTEGRATION_ID],
        "get": {
            "summary": "The host's repositories to pick from (live), with whether each is added",
            "parameters": [
                query("q", STR, "name contains (case-insensitive)"),
                query("limit", {**INT, "minimum": 1, "maximum": 1000, "default": 100}, "at most this many"),
            ],
            "responses": responses(
                "200",
                obj({"account_name": STR, "repositories": {"type": "array", "items": REMOTE}, "truncated": BOOL}),
                "ok",
                e400="The host refused the stored credentials",
                e404="No such integration",
            ),
        },
    },
    "/api/repositories/{repository_id}": {
        "parameters": [_REPOSITORY_ID],
        "patch": {
            "summary": "Enable/disable a repository or set its project association",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": obj({"enabled": BOOL, "project_keys": STRINGS})}},
            },
            "responses": responses(
                "200", ref("Repository"), "Updated", e400="Invalid field", e404="No such repository"
            ),
        },
    },
    "/api/repositories/{repository_id}/reindex": {
        "parameters": [_REPOSITORY_ID],
        "post": {
            "summary": "Reindex one repository now (trigger manual)",
            "responses": responses(
                "202",
                ref("Reindex"),
                "Requested",
                e404="No such repository",
                e409="Disabled or removed repository, or its integration is disabled / refused",
            ),
        },
    },
    "/api/index-runs": {
        "get": {
            "summary": "Indexing and discovery runs, newest first (the queue viewer)",
            "parameters": [
                query("status", STR, "comma-separated: " + ", ".join(s.value for s in RunStatus)),
                query("trigger", STR, "comma-separated: " + ", ".join(t.value for t in Trigger)),
                query("kind", STR, "comma-separated: " + ", ".join(k.value for k in RunKind)),
                *_SCOPE,
                query("limit", {**INT, "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                query("before", INT, "next page: the next_before of the previous one"),
            ],
            "responses": responses(
                "200",
                obj({"runs": {"type": "array", "items": ref("IndexRun")}, "next_before": nullable(INT)}),
                "ok",
                e400="Invalid filter",
                e404="No such integration or repository",
            ),
        },
        "delete": {
            "summary": "Clear queued runs: mark them failed (cancelled) and delete their waiting jobs",
            "parameters": [
                {"name": "status", "in": "query", "required": True, "schema": {"type": "string", "enum": ["queued"]}},
                *_SCOPE,
            ],
            "responses": responses(
                "200",
                obj({"cancelled": INT, "jobs_cancelled": INT, "already_started": INT}),
                "Cleared",
                e400="status is not queued",
                e404="No such integration or repository",
                e409="The scheduler is busy; try again",
            ),
        },
    },
}
