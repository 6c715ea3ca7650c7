"""gunicorn on loopback, and a small closed-loop HTTP driver (stdlib only).

Servers listen on 127.0.0.1 only, on a free port picked by the OS, and are always stopped by
the `Server` context manager (SIGTERM to the master we started, then SIGKILL after a grace
period), whatever happens in between.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def gunicorn_available() -> bool:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)  # gunicorn's master stops its workers
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # The master did not stop in time: kill the process group we created for it (master
        # and workers), and only that.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass


@contextmanager
def gunicorn(
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    workers: int = 2,
    ready_timeout: float = 60.0,
) -> Iterator[Server]:
    """Run `gunicorn tagwarden.wsgi` with `workers` sync workers on 127.0.0.1:<free port>."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        "--chdir",
        str(cwd),
        "tagwarden.wsgi:application",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn not listening after {ready_timeout}s:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        _stop(process)
        log.close()


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Load) -> None:
        self.latencies += other.latencies
        for code, n in other.statuses.items():
            self.statuses[code] = self.statuses.get(code, 0) + n
        self.elapsed += other.elapsed
        self.errors += other.errors

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


RequestFactory = Callable[[int, int], tuple[str, str, bytes, dict[str, str]]]


def drive(port: int, make_request: RequestFactory, *, seconds: float, concurrency: int) -> Load:
    """Closed loop: `concurrency` threads, each with its own connection (reopened when the
    server closes it), send requests back to back for `seconds`. `make_request(thread, n)`
    returns (method, path, body, headers)."""
    load = Load()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors: list[str] = []
        n = 0
        try:
            while time.monotonic() < stop_at:
                method, path, body, headers = make_request(index, n)
                n += 1
                started = time.perf_counter()
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(repr(exc))
                    connection.close()
                    continue
                took = time.perf_counter() - started
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    latencies.append(took)
                elif len(errors) < 5:
                    errors.append(f"{response.status}: {payload[:300]!r}")
                if response.will_close:
                    connection.close()
        finally:
            connection.close()
            with lock:
                load.latencies += latencies
                for code, count in statuses.items():
                    load.statuses[code] = load.statuses.get(code, 0) + count
                load.errors += errors

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.elapsed = time.monotonic() - started
    return load


def send(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    """One request on its own connection; its status."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def json_request(
    method: str, path: str, payload: Any, headers: dict[str, str]
) -> tuple[str, str, bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return method, path, body, {**headers, "Content-Type": "application/json"}
