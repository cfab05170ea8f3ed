"""The parts of the Manage repositories page added beside static/admin.js: the scripts of the
integration view's panels (log, credentials), loaded after admin.js and as careful with host
text; the links to our other Jira pages (repository browser, Manage repositories from the
post-install page), which must open inside Jira, not inside this iframe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.connect import Jira, JiraSite
from tests.support.jira_stub import JiraStub
from tests.web.admin_harness import ADMIN

STATIC = Path(__file__).resolve().parents[2] / "static"
ADMIN_SCRIPTS = sorted(p.name for p in STATIC.glob("admin*.js"))
APP_KEY = "git-connect-for-jira"  # tests/conftest.py


@pytest.fixture
def admin_site(installed_site: JiraSite, jira_stub: JiraStub) -> JiraSite:
    jira_stub.admins.add(ADMIN)
    return installed_site


def test_panel_scripts_load_after_admin_js(jira: Jira, admin_site: JiraSite) -> None:
    html = jira.get_page(admin_site, "/admin/repositories", account_id=ADMIN).get_data(as_text=True)
    sources = re.findall(r'<script src="/static/(admin[^"]*\.js)"', html)
    assert sources[0] == "admin.js" and sorted(sources) == ADMIN_SCRIPTS
    assert {"admin_log.js", "admin_credentials.js"} <= set(sources)


@pytest.mark.parametrize("name", ADMIN_SCRIPTS)
def test_no_admin_script_builds_markup_from_strings(name: str) -> None:
    text = (STATIC / name).read_text()
    source = "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in source, f"{name}: {forbidden}"
    assert "JSON.stringify(" not in source or name == "admin.js"  # only the request body is JSON


def test_links_to_other_jira_pages_open_in_jira(jira: Jira, admin_site: JiraSite) -> None:
    base = admin_site.base_url.rstrip("/")
    html = jira.get_page(admin_site, "/admin/repositories", account_id=ADMIN).get_data(as_text=True)
    browse = f'href="{base}/plugins/servlet/ac/{APP_KEY}/git-repository-browser"'
    assert browse in html
    link = html[html.index(browse) - 200 : html.index(browse) + 300]
    assert 'target="_top"' in link and 'data-module-key="git-repository-browser"' in link
    welcome = jira.get_page(admin_site, "/admin/welcome", account_id=ADMIN)
    assert welcome.status_code == 200
    page = welcome.get_data(as_text=True)
    assert f'href="{base}/plugins/servlet/ac/{APP_KEY}/manage-repositories" target="_top"' in page
    assert browse in page
