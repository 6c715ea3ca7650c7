"""Browser tests: Playwright driving Debian's Chromium against `live_server`.

Playwright's own browser download cannot work here: the browser is Debian's `chromium`
package (`apt-get install -y --no-install-recommends chromium`), launched headless with
`--no-sandbox`. Without the `playwright` package or the binary, every test here is skipped
with a message saying which is missing. `CHROMIUM` overrides the binary's path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def missing() -> str | None:
    if sync_playwright is None:
        return (
            "e2e skipped: the 'playwright' Python package is not installed (pip install playwright)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"e2e skipped: no Chromium at {CHROMIUM} "
            "(apt-get install -y --no-install-recommends chromium, or set CHROMIUM)"
        )
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls
    # from a thread with a running loop unless told it is safe (it is: the loop is idle).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:  # type: ignore[misc]
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
