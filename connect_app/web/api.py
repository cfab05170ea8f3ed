"""JSON API for the iframes (``Authorization: JWT <context token>``), described at
``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from connect_app.hosts.base import ProviderInfo
from connect_app.hosts.registry import providers
from connect_app.jira.jwt import QshMode
from connect_app.security.auth import current_auth, jira_auth
from connect_app.web import openapi_actions, openapi_admin, openapi_browse, openapi_log, openapi_user

bp = Blueprint("api", __name__, url_prefix="/api")

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Git Connect for Jira API", "version": "1"},
    "components": {
        "securitySchemes": {
            "connectJwt": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`JWT <token>` from AP.context.getToken() (qsh `context-qsh`).",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        },
    },
    "security": [{"connectJwt": []}],
    "paths": {
        "/api/providers": {
            "get": {
                "summary": "Every git host provider and what it supports",
                "responses": {
                    "200": {
                        "description": "Providers in wizard order",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["id", "name", "auth_types", "self_hosted", "capabilities"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "name": {"type": "string"},
                                            "auth_types": {"type": "array", "items": {"type": "string"}},
                                            "self_hosted": {"type": "boolean"},
                                            "capabilities": {"type": "array", "items": {"type": "string"}},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "401": {
                        "description": "Missing or invalid token",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
        "/api/me": {
            "get": {
                "summary": "Who the token belongs to",
                "responses": {
                    "200": {
                        "description": "The verified Jira site and account",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "account_id": {"type": "string", "nullable": True},
                                        "jira_base_url": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "401": {
                        "description": "Missing or invalid token",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
    },
}

# Each API module documents itself in an openapi_* module (paths and component schemas).
for _described in (openapi_admin, openapi_log, openapi_user, openapi_actions, openapi_browse):
    OPENAPI["paths"].update(_described.PATHS)
    OPENAPI["components"]["schemas"].update(_described.SCHEMAS)


def provider_payload(info: ProviderInfo) -> dict[str, Any]:
    return {
        "id": info.id.value,
        "name": info.name,
        "auth_types": [a.value for a in info.auth_types],
        "self_hosted": info.self_hosted,
        "capabilities": sorted(c.value for c in info.capabilities),
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(OPENAPI)


@bp.get("/providers")
@jira_auth(QshMode.CONTEXT)
def list_providers() -> Response:
    """Every host the admin can connect and what it supports (the wizard hides the rest)."""
    return jsonify([provider_payload(info) for info in providers()])


@bp.get("/me")
@jira_auth(QshMode.CONTEXT)
def me() -> Response:
    auth = current_auth()
    return jsonify({"account_id": auth.account_id, "jira_base_url": auth.jira_base_url})
