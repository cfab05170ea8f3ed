"""The user's own settings page (descriptor ``generalPages``): their git tokens."""

from __future__ import annotations

from flask import Blueprint, Response

from connect_app.security.auth import jira_auth
from connect_app.web.pages import render_page

bp = Blueprint("user", __name__, url_prefix="/user")


@bp.get("/settings")
@jira_auth()
def settings_page() -> Response:
    return render_page("user_settings.html")
