"""Settings for the benchmark: the project's own, with the benchmark URLconf on top.

`bench.urls` serves every project URL unchanged, plus the naive list used for comparison and,
when `BENCH_ALLOWANY=1`, the feature-state detail view with its permission classes replaced
by AllowAny (for the authorisation-overhead measurement under gunicorn).
"""

from tagwarden.settings import *  # noqa: F403
from tagwarden.settings import DATABASES

ROOT_URLCONF = "bench.urls"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Two gunicorn workers write concurrently: take the write lock when a transaction starts,
    # so SQLite makes the second writer wait (busy timeout) instead of failing it with
    # "database is locked" when it upgrades a read transaction. Same for both variants.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"

# The benchmark renders admin pages (the permission matrix) without running collectstatic:
# plain static storage, as in the tests, instead of WhiteNoise's manifest.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
