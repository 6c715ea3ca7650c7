"""Start servers the way `make serve` does (gunicorn with tagwarden/gunicorn_conf.py) on a free
loopback port, for the soak check (bench/soak.py) and the many-processes test
(tests/production/test_many_processes.py). Always stopped on exit (SIGTERM to the master we
started, SIGKILL to its process group after a grace period)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.http_load import HOST, Server, _stop, free_port

ROOT = Path(__file__).resolve().parent.parent


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for a Django PostgreSQL connection's settings (e.g. the test database)."""
    return (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}"
        f"@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
    )


def server_environment(*, database_url: str, secret_key: str, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tagwarden.settings",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        SECRET_KEY=secret_key,
        ALLOWED_HOSTS="127.0.0.1",
        CONN_MAX_AGE="60",
        LOG_FORMAT="json",
        GUNICORN_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


@contextmanager
def serve(
    *,
    env: dict[str, str],
    log_path: Path,
    workers: int,
    threads: int,
    ready_timeout: float = 60.0,
) -> Iterator[Server]:
    """`gunicorn -c python:tagwarden.gunicorn_conf` on 127.0.0.1:<free port>, yielded once
    `/health/ready` answers 200."""
    port = free_port()
    env = {
        **env,
        "HOST": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:tagwarden.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(port, process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {process.returncode}:\n{server.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn not ready after {ready_timeout}s:\n{server.log_tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)
        log.close()


def call(
    port: int,
    method: str,
    path: str,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    *,
    connection: Any = None,
) -> tuple[int, Any]:
    """One JSON request; (status, parsed body or None). Reuses `connection` when given."""
    import http.client
    import json

    own = connection is None
    conn = connection or http.client.HTTPConnection(HOST, port, timeout=60)
    body = None if payload is None else json.dumps(payload).encode()
    all_headers = {"Host": HOST, **(headers or {})}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed
    finally:
        if own:
            conn.close()
