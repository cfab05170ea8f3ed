"""The issue panel iframe (descriptor ``webPanels`` module)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, request

from connect_app.errors import ValidationError
from connect_app.security.auth import jira_auth
from connect_app.web.pages import render_page

bp = Blueprint("panel", __name__)

ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]+-[1-9][0-9]{0,9}$")


def issue_key_arg(name: str = "issueKey") -> str:
    key = (request.args.get(name) or "").strip().upper()
    if not ISSUE_KEY.match(key):
        raise ValidationError("Expected a Jira issue key such as ABC-123.", code="bad_issue_key")
    return key


@bp.get("/panel/issue")
@jira_auth()
def issue_panel() -> Response:
    return render_page("panel.html", issue_key=issue_key_arg(), project_key=request.args.get("projectKey", ""))
