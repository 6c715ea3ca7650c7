"""Browser helpers of the end-to-end admin tests (Playwright pages)."""

from __future__ import annotations

from typing import Any

from tests import factories as f


def log_in(page: Any, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url
