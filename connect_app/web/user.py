"""The user's own settings page (descriptor ``generalPages`` ``my-git-tokens``): their git tokens.

Each user adds, tests and removes their own token per integration (``templates/user_settings.html``
+ ``static/user_settings.js``, calling :mod:`connect_app.web.api_me`). The first list is
embedded in the page as JSON, so it shows without a round trip; a token is never part of it.
``?integration=<id>`` (or Jira's ``ac.integration``, for links to the page inside Jira) puts
one integration first and focuses its token field: the issue panel and the create-branch
dialog link here to ask for a token.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from connect_app.extensions import db
from connect_app.jira.licensing import licensed_page
from connect_app.security.auth import jira_auth
from connect_app.services import user_tokens
from connect_app.web.api_me import caller, entry_payload
from connect_app.web.pages import frame_ancestors, render_page

bp = Blueprint("user", __name__, url_prefix="/user")

# Scripts only from us and Atlassian's AP.js (as the issue panel): no inline script, no eval.
SCRIPT_SOURCES = "'self' https://connect-cdn.atl-paas.net"


def focused_integration() -> int | None:
    raw = (request.args.get("integration") or request.args.get("ac.integration") or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    return int(raw)


@bp.get("/settings")
@jira_auth()
@licensed_page
def settings_page() -> Response:
    tenant_id, account_id = caller()
    entries = user_tokens.list_tokens(db.session(), tenant_id, account_id)
    response = render_page(
        "user_settings.html",
        initial={"tokens": [entry_payload(e) for e in entries]},
        focus=focused_integration(),
    )
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {frame_ancestors()}; script-src {SCRIPT_SOURCES}; object-src 'none'; base-uri 'none'"
    )
    return response
