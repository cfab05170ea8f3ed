"""Shared by the admin browser tests (tests/browser/test_admin*_browser.py): the real app on
127.0.0.1 embedded in an iframe of a page on another origin as Jira embeds it (module URL +
JWT), jobs run between steps, screenshots per step.

Atlassian's all.js is refused (only 127.0.0.1 is reachable), so every test also proves the
page works without AP. Fixtures are imported by name by the test modules that use them."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from rq import SimpleWorker
from werkzeug.wrappers import Request, Response

from connect_app.extensions import redis_conn
from tests.support.browser import SCREENSHOTS_DIR, screenshot_path
from tests.support.connect import JiraSite
from tests.support.http_server import LoopbackServer
from tests.support.jira_stub import JiraStub

ADMIN = "acct-admin"
QUEUES = ("interactive", "webhooks", "indexing", "maintenance")
FRAME = "#gcj-addon-frame"


def jira_page(environ: Any, start_response: Any) -> Any:
    """What Jira does: a page on its own origin with the app's iframe (Connect's sandbox flags)."""
    src = Request(environ).args.get("src", "")
    body = (
        "<!doctype html><html><head><title>Jira — Manage repositories</title></head><body style='margin:0'>"
        "<header style='height:40px;background:#0747a6;color:#fff;font:14px sans-serif;padding:10px'>"
        "Jira settings</header>"
        f'<iframe id="gcj-addon-frame" name="gcj-addon-frame" src="{html.escape(src)}" '
        'style="border:0;width:100%;height:2200px" '
        'sandbox="allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox allow-same-origin allow-scripts '
        'allow-top-navigation-by-user-activation allow-downloads"></iframe></body></html>'
    )
    return Response(body, content_type="text/html")(environ, start_response)


@pytest.fixture
def live(app: Flask) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def jira_host() -> Iterator[LoopbackServer]:
    server = LoopbackServer(jira_page).start()
    yield server
    server.stop()


@pytest.fixture
def admin(installed_site: JiraSite, jira_stub: JiraStub) -> JiraSite:
    jira_stub.admins.add(ADMIN)
    return installed_site


def open_admin(page: Any, live: LoopbackServer, jira_host: LoopbackServer, site: JiraSite, hash_: str = "") -> Any:
    """Open Manage repositories inside the Jira-like page; returns the iframe's FrameLocator."""
    refused: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    path = "/admin/repositories"
    src = f"{live.url}{path}?jwt={site.token('GET', path, account_id=ADMIN)}{hash_}"
    page.goto(f"{jira_host.url}/?src={quote(src, safe='')}")
    frame = page.frame_locator(FRAME)
    frame.locator("#gcj-admin[data-ready=true]").wait_for()
    assert any("atl-paas.net" in url for url in refused)  # all.js was asked for and refused
    return frame


def shot(page: Any, name: str) -> None:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_path(f"admin-{name}")), full_page=True)


def run_jobs(app: Flask) -> None:
    with app.app_context():
        SimpleWorker(list(QUEUES), connection=redis_conn.client).work(burst=True)


def text(locator: Any) -> str:
    return " ".join(locator.inner_text().split())
