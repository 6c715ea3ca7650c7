"""Production configuration (README, Deploying): `manage.py check --deploy` passes with the
production variables the README lists, and the server refuses the development secret key."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.support.readme import readme_production_variables

ROOT = Path(__file__).resolve().parents[2]


def _environment(**overrides: str) -> dict[str, str]:
    """The process environment without any Tagwarden setting, plus `overrides`."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env["DJANGO_SETTINGS_MODULE"] = "tagwarden.settings"
    env.update(overrides)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_readme__production_variables__cover_the_deploy_settings() -> None:
    variables = readme_production_variables()
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "HTTPS", "DATABASE_URL"} <= set(
        variables
    )
    assert variables.get("DEBUG", "0") in {"0", "false", ""}


def test_check_deploy__readme_production_variables__no_warning() -> None:
    variables = readme_production_variables()
    # The README tells to generate the key; any long random one stands for it here.
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _environment(**variables)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy__without_https__warns() -> None:
    variables = readme_production_variables()
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    variables["HTTPS"] = "0"
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _environment(**variables)
    )
    assert result.returncode != 0
    assert "security.W012" in result.stderr  # SESSION_COOKIE_SECURE


def test_wsgi__debug_off_without_secret_key__refuses_to_start() -> None:
    result = _run(["-c", "import tagwarden.wsgi"], _environment())
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_wsgi__debug_off_with_secret_key__starts() -> None:
    result = _run(
        ["-c", "import tagwarden.wsgi"], _environment(SECRET_KEY=secrets.token_urlsafe(50))
    )
    assert result.returncode == 0, result.stderr


def test_wsgi__debug_on_without_secret_key__starts() -> None:
    result = _run(["-c", "import tagwarden.wsgi"], _environment(DEBUG="1"))
    assert result.returncode == 0, result.stderr


def _database_options(**overrides: str) -> dict[str, object]:
    code = "import json; from django.conf import settings; print(json.dumps(settings.DATABASES['default']))"
    result = _run(["-c", f"import django; django.setup(); {code}"], _environment(**overrides))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_settings__postgresql__server_side_binding_and_prepared_statements() -> None:
    database = _database_options(DATABASE_URL="postgres://u:p@db.example.com:5432/tagwarden")
    assert database["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5}


def test_settings__postgresql__prepared_statements_off__neither() -> None:
    database = _database_options(
        DATABASE_URL="postgres://u:p@db.example.com:5432/tagwarden", DB_PREPARED_STATEMENTS="0"
    )
    assert "server_side_binding" not in database.get("OPTIONS", {})
    assert "prepare_threshold" not in database.get("OPTIONS", {})


def test_settings__sqlite__no_postgresql_options() -> None:
    database = _database_options()
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert "server_side_binding" not in database["OPTIONS"]
