"""The browser harness works: Chromium opens a loopback page, a click changes it, a screenshot is kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import screenshot_path
from tests.support.http_server import LoopbackServer

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Smoke</title></head>
<body>
  <h1 id="status">Not clicked</h1>
  <button type="button" id="go" onclick="document.getElementById('status').textContent = 'Clicked'">Click me</button>
</body></html>"""


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))])
    return [PAGE]


@pytest.fixture()
def smoke_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer(_app).start()
    yield server
    server.stop()


@pytest.mark.browser
def test_click_changes_text(page: Any, smoke_server: LoopbackServer, request: pytest.FixtureRequest) -> None:
    page.goto(smoke_server.url + "/")
    assert page.title() == "Smoke"
    assert page.locator("#status").text_content() == "Not clicked"
    page.get_by_role("button", name="Click me").click()
    assert page.locator("#status").text_content() == "Clicked"
    # The page fixture saves test-artifacts/screenshots/<test name>.png on teardown (over this one).
    target = screenshot_path(request.node.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 1000


@pytest.mark.browser
def test_browser_is_debian_chromium(browser: Any) -> None:
    assert browser.version.split(".")[0].isdigit()
