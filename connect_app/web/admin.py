"""Admin iframes: Manage repositories, the configure page, the post-install page.

Manage repositories (``admin.html`` + ``static/admin.js``, ``admin_log.js``,
``admin_credentials.js``) is one page with four views: the integrations list, the
Add-integration wizard, one integration (settings, repositories, credentials, log), and the
indexing queue viewer; it links to the repository browser (our ``generalPages`` module).
Everything it shows comes from the admin JSON API (``/api/integrations``, ``/api/index-runs``,
:mod:`connect_app.web.api_admin_ui`) called with the context token, and is rendered with
``textContent`` only.

Registering this blueprint also registers :mod:`connect_app.web.api_admin_ui` and
:mod:`connect_app.web.oauth` (``record_once``), so the page's own endpoints ship with it.
"""

from __future__ import annotations

from flask import Blueprint, Response

from connect_app.jira.licensing import licensed_page
from connect_app.security.auth import current_auth, jira_auth
from connect_app.services.integration_settings import (
    BRANCH_NAME_MAX_LENGTH,
    BRANCH_TEMPLATE_VARIABLES,
    DEFAULT_BRANCH_TEMPLATE,
    FEATURE_LABELS,
    REINDEX_MINUTES_MAX,
    REINDEX_MINUTES_MIN,
    Feature,
)
from connect_app.web import api_admin_ui
from connect_app.web.page_links import BROWSE_PAGE_KEY, general_page_url
from connect_app.web.pages import frame_ancestors, render_page

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.record_once(api_admin_ui.register)

MANAGE_PAGE_KEY = "manage-repositories"  # the descriptor's adminPages entry (this page)

# Scripts only from us and Atlassian's AP.js (as the issue panel): no inline script, no eval.
SCRIPT_SOURCES = "'self' https://connect-cdn.atl-paas.net"

# What each feature switch does, in the admin's words (keys: integration_settings.Feature).
FEATURE_TEXT: dict[str, str] = {
    Feature.CREATE_BRANCH.value: "Create branch from a Jira issue",
    Feature.CREATE_PULL_REQUEST.value: "Create pull request from a Jira issue",
    Feature.SMART_COMMITS.value: "Smart commits (#comment, #time, transitions)",
    Feature.DEVELOPMENT_PANEL.value: "Send to Jira's Development panel",
    Feature.WEBHOOKS.value: "Index on webhooks (push and pull request events)",
}
assert set(FEATURE_TEXT) == {f.value for f in Feature} == {f.value for f in FEATURE_LABELS}


def _admin_page(page: str) -> Response:
    response = render_page(
        "admin.html",
        page=page,
        features=FEATURE_TEXT,
        default_branch_template=DEFAULT_BRANCH_TEMPLATE,
        branch_variables=BRANCH_TEMPLATE_VARIABLES,
        branch_max_length=BRANCH_NAME_MAX_LENGTH,
        reindex_min=REINDEX_MINUTES_MIN,
        reindex_max=REINDEX_MINUTES_MAX,
        browse_url=general_page_url(current_auth().jira_base_url, BROWSE_PAGE_KEY),
        browse_module_key=BROWSE_PAGE_KEY,
    )
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {frame_ancestors()}; script-src {SCRIPT_SOURCES}; object-src 'none'; base-uri 'none'"
    )
    return response


@bp.get("/repositories")
@jira_auth(admin=True)
@licensed_page
def manage_repositories() -> Response:
    return _admin_page("repositories")


@bp.get("/configure")
@jira_auth(admin=True)
@licensed_page
def configure() -> Response:
    return _admin_page("configure")


@bp.get("/welcome")
@jira_auth(admin=True)
@licensed_page
def welcome() -> Response:
    jira = current_auth().jira_base_url
    return render_page(
        "welcome.html",
        manage_url=general_page_url(jira, MANAGE_PAGE_KEY),
        browse_url=general_page_url(jira, BROWSE_PAGE_KEY),
    )
