"""The repository browser page (descriptor ``generalPages``; issue 9)."""

from __future__ import annotations

from flask import Blueprint, Response

from connect_app.security.auth import jira_auth
from connect_app.web.pages import render_page

bp = Blueprint("browse", __name__, url_prefix="/browse")


@bp.get("")
@jira_auth()
def browse_page() -> Response:
    return render_page("browse.html")
