"""`?dry_run=true` is a contract: where an endpoint offers it, the schema says so; where it does
not, asking for it is a 400 naming `dry_run` and nothing is written (a client that asks for a
preview must never get a real write)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from features.models import Feature, FeatureState, Segment
from tests.support.clients import client_for
from tests.support.dry_run import World, assert_unchanged, build_world, db_state

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch", "delete")


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_schema__dry_run_parameter_exactly_on_the_actions_that_honour_it() -> None:
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    documented = {
        (_normalise(path), method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if any(p.get("name") == "dry_run" for p in operation.get("parameters", []))
    }
    declared: set[tuple[str, str]] = set()
    writes: set[tuple[str, str]] = set()
    for path, _, method, callback in generator.endpoints:
        method = method.lower()
        if method not in WRITES:
            continue
        writes.add((_normalise(path), method))
        action = (getattr(callback, "actions", None) or {}).get(method)
        if action in getattr(callback.cls, "dry_run_actions", ()):
            declared.add((_normalise(path), method))
    assert declared, "no endpoint declares a dry run"
    assert documented == declared
    # The permission writes of docs/API.md all offer it (a sample of each kind).
    for expected in [
        ("/api/v1/organisations/{}/user-permissions/", "post"),
        ("/api/v1/projects/{}/user-group-permissions/{}/", "delete"),
        ("/api/v1/organisations/{}/roles/{}/environments-permissions/{}/", "patch"),
        ("/api/v1/organisations/{}/roles/{}/organisation-permissions/", "put"),
        ("/api/v1/organisations/{}/roles/{}/api-keys/", "post"),
        ("/api/v1/organisations/{}/groups/{}/", "put"),
        ("/api/v1/organisations/{}/users/{}/", "delete"),
        ("/api/v1/projects/{}/tags/{}/", "patch"),
        ("/api/v1/projects/{}/features/{}/", "patch"),
    ]:
        assert expected in declared, expected
    assert writes - declared, "some writes (e.g. feature states) have no dry run"


@pytest.fixture
def w() -> World:
    return build_world()


def _unsupported(w: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    state = FeatureState.objects.get(feature=w.f1, environment=w.environment)
    return [
        ("delete", f"{w.project_url}/features/{w.f1.pk}/", None),
        ("post", f"{w.project_url}/features/", {"name": "new-flag"}),
        ("post", f"{w.project_url}/segments/", {"name": "beta", "rules": []}),
        ("patch", f"{w.environment_url}/featurestates/{state.pk}/", {"enabled": True}),
        ("patch", f"{w.project_url}/", {"name": "renamed"}),
        ("post", f"{w.org_url}/roles/", {"name": "new-role"}),
    ]


@pytest.mark.parametrize("index", range(6))
def test_write_without_dry_run__dry_run_true__400_naming_dry_run__nothing_written(
    w: World, index: int
) -> None:
    method, url, body = _unsupported(w)[index]
    before = db_state()
    segments, states = Segment.objects.count(), list(FeatureState.objects.values())
    response = getattr(client_for(w.admin), method)(f"{url}?dry_run=true", body, format="json")
    assert response.status_code == 400, response.content
    assert "dry_run" in response.json()
    assert_unchanged(before)
    assert Segment.objects.count() == segments
    assert list(FeatureState.objects.values()) == states


def test_write_without_dry_run__dry_run_false__applies(w: World) -> None:
    response = client_for(w.admin).delete(f"{w.project_url}/features/{w.f3.pk}/?dry_run=false")
    assert response.status_code == 204
    assert not Feature.objects.filter(pk=w.f3.pk).exists()


def test_write_without_dry_run__no_credentials__401_before_dry_run(w: World) -> None:
    from rest_framework.test import APIClient

    response = APIClient().delete(f"{w.project_url}/features/{w.f1.pk}/?dry_run=true")
    assert response.status_code == 401
