"""The issue panel iframe (descriptor ``webPanels`` module).

The first page of the issue's development data is queried here and embedded in the page as
JSON (``<script type="application/json">``, Jinja's ``tojson`` escapes ``<``, ``>``, ``&``
and ``'``), so the panel shows everything after one request; ``static/panel.js`` renders it
with ``textContent`` only and fetches further pages from ``/api/issues/{key}/development``.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, request, url_for

from connect_app.errors import ValidationError
from connect_app.extensions import db
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services import development
from connect_app.web.api_issues import cursor_secret
from connect_app.web.pages import frame_ancestors, render_page

bp = Blueprint("panel", __name__)

TOKENS_PAGE_KEY = "my-git-tokens"  # the descriptor's generalPages entry (user settings)
# Scripts only from us and Atlassian's AP.js: even a rendering bug could not run injected script.
SCRIPT_SOURCES = "'self' https://connect-cdn.atl-paas.net"


def issue_key_arg(name: str = "issueKey") -> str:
    try:
        return development.parse_issue_key((request.args.get(name) or "").strip())
    except ValidationError as e:
        raise ValidationError("Expected a Jira issue key such as ABC-123.", code="bad_issue_key") from e


def tokens_page_url(jira_base_url: str) -> str:
    """Where a user adds their personal git tokens (our generalPages module inside Jira)."""
    app_key = quote(runtime().settings.app_key, safe="")
    return f"{jira_base_url.rstrip('/')}/plugins/servlet/ac/{app_key}/{TOKENS_PAGE_KEY}"


@bp.get("/panel/issue")
@jira_auth()
def issue_panel() -> Response:
    issue_key = issue_key_arg()
    auth = current_auth()
    page = development.issue_development(
        db.session(),
        tenant_id=auth.tenant_id,
        account_id=auth.account_id,
        issue_key=issue_key,
        cursor_secret=cursor_secret(),
    )
    response = render_page(
        "panel.html",
        issue_key=issue_key,
        project_key=request.args.get("projectKey", ""),
        initial=page.payload(),
        counts=page.counts,
        api_url=url_for("api_issues.issue_development", key=issue_key),
        tokens_url=tokens_page_url(auth.jira_base_url),
    )
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {frame_ancestors()}; script-src {SCRIPT_SOURCES}; object-src 'none'; base-uri 'none'"
    )
    return response
