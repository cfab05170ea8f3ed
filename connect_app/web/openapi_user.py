"""OpenAPI description of the caller's own git tokens (/api/me/tokens) and permission cache
(/api/me/permissions/refresh); merged into ``connect_app.web.api.OPENAPI``."""

from __future__ import annotations

from typing import Any

from connect_app.hosts.base import ProviderId
from connect_app.services.user_tokens import TOKEN_MAX_LENGTH, USER_AUTH_TYPES, USERNAME_MAX_LENGTH
from connect_app.web.openapi_admin import BOOL, INT, JSON, STR, TIME, body, nullable, obj, path_id, ref


def error(description: str) -> dict[str, Any]:
    return body(ref("FieldError"), description)


def responses(ok: str, ok_body: dict[str, Any] | None, ok_description: str, **errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        ok: body(ok_body, ok_description) if ok_body is not None else {"description": ok_description}
    }
    out["401"] = error("Missing or invalid Jira token")
    out["403"] = error("The Jira token names no user (no_user)")
    for status, description in errors.items():
        out[status.removeprefix("e")] = error(description)
    return out


_TOKEN_ENTRY = obj(
    {
        "integration": obj(
            {
                "id": INT,
                "display_name": STR,
                "provider": {"type": "string", "enum": [p.value for p in ProviderId]},
                "provider_name": STR,
                "auth_types": {
                    "type": "array",
                    "items": {"type": "string", "enum": [a.value for a in USER_AUTH_TYPES]},
                    "description": "pat: a token alone; password: user name + password or app password; "
                    "aws: access key id (username) + secret access key (token)",
                },
            },
            ["id", "display_name", "provider", "auth_types"],
        ),
        "required": {
            **BOOL,
            "description": 'The administrator turned on "require user PAT" or "enforce git service permissions"',
        },
        "token": nullable(
            obj(
                {
                    "last4": nullable({**STR, "description": "The token's last four characters (null when short)"}),
                    "host_account_name": nullable({**STR, "description": "Who the host says the token belongs to"}),
                    "validated_at": TIME,
                    "invalid_reason": nullable(
                        {**STR, "description": "Why the host refused the token since it was saved; then it is not used"}
                    ),
                },
                ["last4", "host_account_name", "validated_at", "invalid_reason"],
                description="null: no token saved. The token itself is never returned.",
            )
        ),
    },
    ["integration", "required", "token"],
)

SCHEMAS: dict[str, Any] = {
    "UserTokenEntry": _TOKEN_ENTRY,
    "UserTokenInput": obj(
        {
            "token": {**STR, "minLength": 1, "maxLength": TOKEN_MAX_LENGTH, "writeOnly": True},
            "username": {
                **STR,
                "maxLength": USERNAME_MAX_LENGTH,
                "description": "For hosts that take a user name with the password (app password, HTTP password) "
                "and for the AWS access key id",
            },
        },
        ["token"],
        additionalProperties=False,
    ),
    "UserTokenCheck": {
        "allOf": [
            ref("UserTokenEntry"),
            obj(
                {
                    "ok": {**BOOL, "description": "false: the host refused the token; it is now marked invalid"},
                    "message": STR,
                },
                ["ok", "message"],
            ),
        ]
    },
}

_INTEGRATION_ID = path_id("integration_id", "an integration of the caller's Jira site")
_HOST_ERRORS = {
    "e429": "The host is rate limiting the token",
    "e502": "The host could not be reached or failed",
}

PATHS: dict[str, Any] = {
    "/api/me/tokens": {
        "get": {
            "summary": "The caller's personal token for every integration where one is useful",
            "description": "Integrations that are not disabled and whose host uses a personal token (create "
            "branches and pull requests as the user, or show only what the user can read). Required ones first.",
            "responses": responses(
                "200",
                obj({"tokens": {"type": "array", "items": ref("UserTokenEntry")}}, ["tokens"]),
                "The caller's tokens (never the tokens themselves)",
            ),
        }
    },
    "/api/me/tokens/{integration_id}": {
        "parameters": [_INTEGRATION_ID],
        "put": {
            "summary": "Add or replace the caller's token, checked live with the host first",
            "description": "Stored encrypted only when the host accepts it; the user's cached repository "
            "permissions for this integration are dropped. A refused token stores nothing.",
            "requestBody": {"required": True, "content": {JSON: {"schema": ref("UserTokenInput")}}},
            "responses": responses(
                "200",
                ref("UserTokenEntry"),
                "Saved",
                e400="Invalid body, or the host refused the token (token_refused, with its reason)",
                e404="No such integration on this Jira site (or disabled)",
                **_HOST_ERRORS,
            ),
        },
        "delete": {
            "summary": "Remove the caller's token and the repository permissions cached for it",
            "responses": responses("204", None, "Removed (also when there was none)", e404="No such integration"),
        },
    },
    "/api/me/tokens/{integration_id}/test": {
        "parameters": [_INTEGRATION_ID],
        "post": {
            "summary": "Check the saved token with the host again",
            "description": "Refused: 200 with ok false, and the token is marked invalid (not used until replaced). "
            "Accepted: ok true, and a token marked invalid is valid again.",
            "responses": responses(
                "200",
                ref("UserTokenCheck"),
                "The host's answer",
                e404="No such integration, or no token saved for it (token_not_found)",
                **_HOST_ERRORS,
            ),
        },
    },
    "/api/me/permissions/refresh": {
        "post": {
            "summary": "Forget which repositories the caller's tokens could read",
            "description": "Where enforce git service permissions is on, what a token may read is cached for a "
            "few minutes; after this the next view of an issue asks the hosts again.",
            "responses": responses("204", None, "Forgotten"),
        }
    },
}
