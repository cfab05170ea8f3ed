"""Headless Chromium for browser tests: Playwright driving Debian's ``/usr/bin/chromium``.

Playwright cannot download its own browsers here, so we point it at the distribution
package (``scripts/ensure-chromium.sh`` installs it). Every launch gets a fresh temporary
profile (Playwright creates and deletes it); nothing leaves 127.0.0.1 because the flags
below turn off Chromium's own background traffic.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO_ROOT / "test-artifacts"))
SCREENSHOTS_DIR = ARTIFACTS_DIR / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]


def chromium_path() -> Path | None:
    """``$CHROMIUM_PATH``, else ``/usr/bin/chromium``, else ``chromium`` on PATH; None if absent."""
    candidates = [os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def launch_chromium(playwright: Playwright, *, headless: bool = True, slow_mo: float = 0) -> Browser:
    path = chromium_path()
    if path is None:
        raise FileNotFoundError("Chromium not found: run scripts/ensure-chromium.sh (or set CHROMIUM_PATH)")
    return playwright.chromium.launch(
        executable_path=str(path), headless=headless, args=CHROMIUM_ARGS, slow_mo=slow_mo, timeout=60_000
    )


@contextmanager
def chromium(*, headless: bool = True) -> Iterator[Browser]:
    """Standalone use outside pytest: ``with chromium() as browser: page = browser.new_page()``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, headless=headless)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(test_name: str) -> Path:
    """``test-artifacts/screenshots/<test name>.png`` with characters unsafe in file names replaced."""
    safe = re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", test_name).strip("_")[:180] or "screenshot"
    return SCREENSHOTS_DIR / f"{safe}.png"
