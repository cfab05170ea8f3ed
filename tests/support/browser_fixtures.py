"""pytest fixtures for browser tests (see browser.py).

* ``browser`` (session): one headless Chromium for the whole run, started on first use.
* ``page`` (function): a new page in its own browser context (fresh cookies/storage); on
  teardown a full-page screenshot goes to ``test-artifacts/screenshots/<test name>.png``
  (also when the test failed), and the context is closed.

Browser tests are marked ``@pytest.mark.browser``. If Chromium is missing they are skipped
with a message naming ``scripts/ensure-chromium.sh`` (``make test`` runs it first), unless
``REQUIRE_BROWSER=1`` is set, which turns the skip into a failure (use it in CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import SCREENSHOTS_DIR, chromium_path, launch_chromium, screenshot_path

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if chromium_path() is None:
        _unavailable("Chromium is not installed: run scripts/ensure-chromium.sh (needs root) or set CHROMIUM_PATH")
    playwright = sync_playwright().start()
    try:
        yield playwright
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    instance = launch_chromium(playwright_instance)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture()
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        target = screenshot_path(request.node.name)
        try:
            SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
            new_page.screenshot(path=str(target), full_page=True)
        except Exception as exc:  # a closed/crashed page must not hide the test's own result
            print(f"screenshot for {request.node.nodeid} failed: {exc}")
        finally:
            context.close()
