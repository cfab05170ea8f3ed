"""Links and headers shared by the issue panel and the create-branch / pull-request dialogs.

* :func:`general_page_url`: one of our ``generalPages`` modules inside Jira (works as a plain
  ``target=_top`` link without AP.js, because the panel is always framed by Jira).
* :func:`signed_page_url`: one of our own pages with a token for exactly that URL (request
  qsh, same tenant and user, short-lived), for opening a dialog in a new tab when AP.js is
  missing; Jira itself signs the ``dialogs`` module URLs when AP.dialog is used.
* :func:`with_script_policy`: scripts only from us and Atlassian's CDN, so even a rendering bug
  could not run injected script.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Response, request, url_for

from connect_app.errors import ValidationError
from connect_app.jira import tenants
from connect_app.jira.jwt import encode_request_token, relative_path
from connect_app.runtime import runtime
from connect_app.security.auth import current_auth, current_tenant
from connect_app.services import development
from connect_app.web.pages import PAGE_TOKEN_TTL, frame_ancestors

TOKENS_PAGE_KEY = "my-git-tokens"  # the descriptor's generalPages entry (user settings)
BROWSE_PAGE_KEY = "git-repository-browser"  # the descriptor's generalPages entry (repository browser)
SCRIPT_SOURCES = "'self' https://connect-cdn.atl-paas.net"


def issue_key_arg(name: str = "issueKey") -> str:
    try:
        return development.parse_issue_key((request.args.get(name) or "").strip())
    except ValidationError as e:
        raise ValidationError("Expected a Jira issue key such as ABC-123.", code="bad_issue_key") from e


def general_page_url(jira_base_url: str, module_key: str) -> str:
    """Where Jira shows one of our generalPages modules."""
    app_key = quote(runtime().settings.app_key, safe="")
    return f"{jira_base_url.rstrip('/')}/plugins/servlet/ac/{app_key}/{quote(module_key, safe='')}"


def tokens_page_url(jira_base_url: str) -> str:
    """Where a user adds their personal git tokens (our generalPages module inside Jira)."""
    return general_page_url(jira_base_url, TOKENS_PAGE_KEY)


def issue_url(issue_key: str) -> str:
    return f"{current_auth().jira_base_url.rstrip('/')}/browse/{quote(issue_key, safe='')}"


def signed_page_url(endpoint: str, **query: str) -> str:
    """``endpoint``'s URL with ``query`` and a ``jwt`` whose qsh is that exact GET request."""
    auth = current_auth()
    rt = runtime()
    path = url_for(endpoint)
    token = encode_request_token(
        issuer=auth.client_key,
        secret=tenants.shared_secret(current_tenant(), rt.secrets),
        method="GET",
        path=relative_path(path, rt.settings.base_url),
        query={name: [value] for name, value in query.items()},
        subject=auth.account_id,
        ttl=PAGE_TOKEN_TTL,
    )
    return f"{path}?{urlencode({**query, 'jwt': token})}"


def with_script_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {frame_ancestors()}; script-src {SCRIPT_SOURCES}; object-src 'none'; base-uri 'none'"
    )
    return response
