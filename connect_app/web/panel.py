"""The issue panel iframe (descriptor ``webPanels`` module).

The first page of the issue's development data is queried here and embedded in the page as
JSON (``<script type="application/json">``, Jinja's ``tojson`` escapes ``<``, ``>``, ``&``
and ``'``), so the panel shows everything after one request; ``static/panel.js`` renders it
with ``textContent`` only and fetches further pages from ``/api/issues/{key}/development``.

The panel also offers "Create branch" / "Create pull request" (shown by the script when
``/api/issues/{key}/create-options`` says a repository allows it): inside Jira they open our
``dialogs`` modules through AP.dialog; without AP.js they are plain links, signed for their
own URL, that open the same pages in a new tab.
"""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for

from connect_app.extensions import db
from connect_app.jira.licensing import licensed_page
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services import development
from connect_app.web.api_issues import cursor_secret
from connect_app.web.page_links import (
    BROWSE_PAGE_KEY,
    general_page_url,
    issue_key_arg,
    signed_page_url,
    tokens_page_url,
    with_script_policy,
)
from connect_app.web.pages import render_page

bp = Blueprint("panel", __name__)

# The descriptor's ``dialogs`` modules (atlassian-connect.json).
CREATE_BRANCH_DIALOG = "git-connect-create-branch"
CREATE_PULL_REQUEST_DIALOG = "git-connect-create-pull-request"


@bp.get("/panel/issue")
@jira_auth()
@licensed_page
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
    project_key = request.args.get("projectKey", "")
    dialog_query = {"issueKey": issue_key, "projectKey": project_key} if project_key else {"issueKey": issue_key}
    response = render_page(
        "panel.html",
        issue_key=issue_key,
        project_key=project_key,
        initial=page.payload(),
        counts=page.counts,
        api_url=url_for("api_issues.issue_development", key=issue_key),
        create_options_url=f"{request.script_root}/api/issues/{issue_key}/create-options",
        create_branch_url=signed_page_url("actions.create_branch", **dialog_query),
        create_pull_request_url=signed_page_url("actions.create_pull_request", **dialog_query),
        create_branch_dialog=CREATE_BRANCH_DIALOG,
        create_pull_request_dialog=CREATE_PULL_REQUEST_DIALOG,
        tokens_url=tokens_page_url(auth.jira_base_url),
        browse_url=general_page_url(auth.jira_base_url, BROWSE_PAGE_KEY),
    )
    return with_script_policy(response)
