"""Jira's own "Create branch" action (``jiraDevelopmentTool.actions.createBranch``).

Jira substitutes ``{jwt}`` into our template URL and opens it in a new tab, so the
token cannot carry this exact URL's qsh: the route accepts a request qsh or the
context qsh (``QshMode.REQUEST_OR_CONTEXT``), and only this route does.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from connect_app.jira.jwt import QshMode
from connect_app.security.auth import jira_auth
from connect_app.web.pages import render_page
from connect_app.web.panel import issue_key_arg

bp = Blueprint("actions", __name__, url_prefix="/actions")


@bp.get("/create-branch")
@jira_auth(QshMode.REQUEST_OR_CONTEXT)
def create_branch() -> Response:
    summary = (request.args.get("issueSummary") or "")[:255]
    return render_page("create_branch.html", issue_key=issue_key_arg(), issue_summary=summary)
