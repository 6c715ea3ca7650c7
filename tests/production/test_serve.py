"""`make serve` with the README's production variables (README, Deploying): migrates, collects
static files and serves the API, the admin with its CSS (WhiteNoise, hashed and compressed) and
the health checks, with DEBUG off."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from tests.support.readme import readme_production_variables

ROOT = Path(__file__).resolve().parents[2]
HOST = "flags.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}
    }
    env.update(readme_production_variables())
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        ["make", "serve", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            with suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        yield port
    finally:
        # The process group is the one make started for us: make, its shell, gunicorn.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _get(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers={"Host": HOST, **headers})
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def test_make_serve__production_variables__serves_health_api_and_admin_css(served: int) -> None:
    https = {"X-Forwarded-Proto": "https"}
    ready = _get(served, "/health/ready")  # plain HTTP: exempt from the HTTPS redirect
    assert ready.status == 200, ready.body  # type: ignore[attr-defined]
    assert _get(served, "/health/live").status == 200

    assert _get(served, "/api/v1/organisations/").status == 301  # plain HTTP → HTTPS
    api = _get(served, "/api/v1/organisations/", **https)
    assert api.status == 401
    assert api.getheader("Strict-Transport-Security", "").startswith("max-age=31536000")
    assert api.getheader("X-Request-ID")

    login = _get(served, "/admin/login/", **https)
    assert login.status == 200
    page = login.body.decode()  # type: ignore[attr-defined]
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, "admin CSS is not served with a hashed name"
    css = _get(served, stylesheet.group(1), **https, **{"Accept-Encoding": "gzip"})
    assert css.status == 200
    assert css.getheader("Content-Encoding") == "gzip"
    assert "immutable" in css.getheader("Cache-Control", "")
    assert "secure" in (login.getheader("Set-Cookie") or "").lower()
