"""The repository browser page (descriptor ``generalPages`` ``git-repository-browser``; issue 9).

The page is a shell; ``static/browse.js`` fills it from ``/api/browse/...`` and renders git
data with ``textContent`` only.
"""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from connect_app.jira.licensing import licensed_page
from connect_app.security.auth import current_auth, jira_auth
from connect_app.web.page_links import tokens_page_url, with_script_policy
from connect_app.web.pages import render_page

bp = Blueprint("browse", __name__, url_prefix="/browse")


@bp.get("")
@jira_auth()
@licensed_page
def browse_page() -> Response:
    auth = current_auth()
    response = render_page(
        "browse.html",
        api_url=url_for("api_browse.repositories"),
        tokens_url=tokens_page_url(auth.jira_base_url),
    )
    return with_script_policy(response)
