"""Admin iframes: Manage repositories, the configure page, the post-install page."""

from __future__ import annotations

from flask import Blueprint, Response

from connect_app.security.auth import jira_auth
from connect_app.web.pages import render_page

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/repositories")
@jira_auth(admin=True)
def manage_repositories() -> Response:
    return render_page("admin.html", page="repositories")


@bp.get("/configure")
@jira_auth(admin=True)
def configure() -> Response:
    return render_page("admin.html", page="configure")


@bp.get("/welcome")
@jira_auth(admin=True)
def welcome() -> Response:
    return render_page("welcome.html")
