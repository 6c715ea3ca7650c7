"""SQLite, the embedded default, waits instead of failing on concurrent writes
(docs/CONCURRENCY.md): two users PATCHing different states at once never get a 500."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROUNDS = 20


def _run_writers(tmp_path: Path, *extra: str) -> list[int]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.sqlite_writers",
            str(tmp_path / "db.sqlite3"),
            str(ROUNDS),
            *extra,
        ],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    statuses: list[int] = json.loads(done.stdout.strip().splitlines()[-1])
    return statuses


def test_settings__sqlite__immediate_transactions_and_busy_timeout() -> None:
    from tagwarden import settings as real_settings

    options = real_settings.DATABASES["default"].get("OPTIONS", {})
    if real_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        assert options["transaction_mode"] == "IMMEDIATE"
        assert options["timeout"] >= 5


def test_patch_state__two_writers_on_file_sqlite__no_500(tmp_path: Path) -> None:
    statuses = _run_writers(tmp_path)

    assert len(statuses) == 2 * ROUNDS
    assert set(statuses) == {200}, statuses
