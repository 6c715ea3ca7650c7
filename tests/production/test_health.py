"""Health checks (docs/OPERATIONS.md, Health checks): no credentials, JSON, one query at most."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError, connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from tagwarden import health

pytestmark = pytest.mark.django_db

LIVE = "/health/live"
READY = "/health/ready"


def test_live__no_credentials__200_ok_without_a_query(
    django_assert_max_num_queries: Any,
) -> None:
    with django_assert_max_num_queries(0):
        response = Client().get(LIVE)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready__migrated_database__200_in_one_query(django_assert_max_num_queries: Any) -> None:
    health.migrations_on_disk()  # read once per process, before the first check
    with django_assert_max_num_queries(1):
        response = Client().get(READY)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_ready__unapplied_migration__503_naming_it(django_assert_max_num_queries: Any) -> None:
    latest = MigrationRecorder.Migration.objects.filter(app="audit").order_by("-name").first()
    assert latest is not None
    latest.delete()
    with django_assert_max_num_queries(1):
        response = Client().get(READY)
    assert response.status_code == 503
    assert response.json()["unapplied_migrations"] == [f"audit.{latest.name}"]


def test_ready__database_unreachable__503() -> None:
    def refuse(*args: Any) -> Any:
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse):
        response = Client().get(READY)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("unavailable", "unreachable")


def test_live__post__405() -> None:
    assert Client().post(LIVE).status_code == 405


def test_ready__ssl_redirect_on__plain_http_still_answers(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get(READY).status_code == 200
    assert Client().get(LIVE).status_code == 200
    assert Client().get("/api/v1/organisations/").status_code == 301


SQUASHED = ("audit", "0001_squashed_0002")
REPLACED = frozenset({("audit", "0001_initial"), ("audit", "0002_more")})


@pytest.fixture
def squashed_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        health, "migrations_on_disk", lambda: (frozenset({SQUASHED}), {SQUASHED: REPLACED})
    )


@pytest.mark.usefixtures("squashed_on_disk")
def test_unapplied__squashed_migration_applied_through_what_it_replaces__none() -> None:
    assert health.unapplied_migrations(set(REPLACED)) == []


@pytest.mark.usefixtures("squashed_on_disk")
def test_unapplied__squashed_migration_half_applied__listed() -> None:
    assert health.unapplied_migrations({("audit", "0001_initial")}) == [SQUASHED]


@pytest.mark.usefixtures("squashed_on_disk")
def test_unapplied__squashed_migration_recorded__none() -> None:
    assert health.unapplied_migrations({SQUASHED}) == []
