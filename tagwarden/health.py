"""Health checks for load balancers (docs/OPERATIONS.md, Health checks).

`GET /health/live`: the process answers (no query). `GET /health/ready`: the database answers
and every migration on disk is applied; 503 otherwise. Neither needs credentials, and ready
costs one query: the migrations on disk are read once per process (they only change with a
deploy, which restarts it), then each check compares them with one `SELECT` of
`django_migrations`, which also proves the database reachable.
"""

from __future__ import annotations

import functools
import logging

from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

Migration = tuple[str, str]


@functools.cache
def migrations_on_disk() -> tuple[frozenset[Migration], dict[Migration, frozenset[Migration]]]:
    """Every migration the code has, and what each squashed one replaces (no query)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    replacements = {
        key: frozenset(migration.replaces) for key, migration in loader.replacements.items()
    }
    return frozenset(loader.graph.nodes), replacements


def unapplied_migrations(applied: set[Migration]) -> list[Migration]:
    on_disk, replacements = migrations_on_disk()
    return sorted(
        key
        for key in on_disk
        if key not in applied and not (key in replacements and replacements[key] <= applied)
    )


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    try:
        applied = set(
            MigrationRecorder.Migration.objects.using(connection.alias).values_list("app", "name")
        )
    except DatabaseError:
        logger.warning("readiness: database unreachable", exc_info=True)
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    missing = unapplied_migrations(applied)
    if missing:
        return JsonResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "unapplied_migrations": [f"{app}.{name}" for app, name in missing],
            },
            status=503,
        )
    return JsonResponse({"status": "ok", "database": "ok"})
