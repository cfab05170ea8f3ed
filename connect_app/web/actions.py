"""The create-branch and create-pull-request dialogs (issue 6); ``static/actions.js`` drives them.

``/actions/create-branch`` is also Jira's own "Create branch" action
(``jiraDevelopmentTool.actions.createBranch``): Jira substitutes ``{jwt}`` into our template URL
and opens it in a new tab, so that token cannot carry this exact URL's qsh. That route accepts a
request qsh or the context qsh (``QshMode.REQUEST_OR_CONTEXT``), and only that route does.
``/actions/create-pull-request`` is opened as a ``dialogs`` module (or, without AP.js, from a link
the panel signed for this very URL) and takes a request qsh like every other page.

The pages only render the form; everything they show about repositories comes from the JSON API
(``/api/issues/<key>/create-options`` ...), rendered by the script as text.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from connect_app.jira.jwt import QshMode
from connect_app.jira.licensing import licensed_page
from connect_app.security.auth import jira_auth
from connect_app.web.page_links import issue_key_arg, issue_url, with_script_policy
from connect_app.web.pages import render_page

bp = Blueprint("actions", __name__, url_prefix="/actions")

SUMMARY_MAX_LENGTH = 255
ISSUE_TYPE_MAX_LENGTH = 64


def _render(template: str, action: str) -> Response:
    issue_key = issue_key_arg()
    response = render_page(
        template,
        action=action,
        issue_key=issue_key,
        issue_summary=(request.args.get("issueSummary") or "").strip()[:SUMMARY_MAX_LENGTH],
        issue_type=(request.args.get("issueType") or "").strip()[:ISSUE_TYPE_MAX_LENGTH],
        issue_url=issue_url(issue_key),
    )
    return with_script_policy(response)


@bp.get("/create-branch")
@jira_auth(QshMode.REQUEST_OR_CONTEXT)
@licensed_page
def create_branch() -> Response:
    return _render("create_branch.html", "branch")


@bp.get("/create-pull-request")
@jira_auth()
@licensed_page
def create_pull_request() -> Response:
    return _render("create_pull_request.html", "pull_request")
