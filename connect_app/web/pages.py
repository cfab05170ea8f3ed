"""Shared helpers for iframe pages: render with the context every page needs."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from connect_app.jira import tenants
from connect_app.jira.jwt import CONTEXT_QSH, encode_request_token
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, current_tenant

PAGE_TOKEN_TTL = 15 * 60


def page_token() -> str:
    """A context token for the page's own API calls until AP.js offers a fresh one
    (what atlassian-connect-express calls the page token): same tenant, same user,
    qsh ``context-qsh``, short-lived."""
    auth = current_auth()
    rt = runtime()
    return encode_request_token(
        issuer=auth.client_key,
        secret=tenants.shared_secret(current_tenant(), rt.secrets),
        method="GET",
        path="/",
        query={},
        subject=auth.account_id,
        qsh=CONTEXT_QSH,
        ttl=PAGE_TOKEN_TTL,
    )


def frame_ancestors() -> str:
    patterns = runtime().settings.jira_base_url_patterns
    return " ".join(["'self'", *patterns])


def render_page(template: str, **context: Any) -> Response:
    auth = current_auth()
    html = render_template(
        template,
        jira_base_url=auth.jira_base_url,
        account_id=auth.account_id,
        page_token=page_token(),
        **context,
    )
    response = make_response(html)
    response.headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
