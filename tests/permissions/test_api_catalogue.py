"""`GET /api/v1/{organisations,projects,environments}/permissions/`: the catalogue, as a plain
list, winning over the detail routes."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from permissions.catalogue import Level, specs_for
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db

ROUTES = [
    ("/api/v1/organisations/permissions/", Level.ORGANISATION),
    ("/api/v1/projects/permissions/", Level.PROJECT),
    ("/api/v1/environments/permissions/", Level.ENVIRONMENT),
]


@pytest.mark.parametrize(("url", "level"), ROUTES)
def test_catalogue__any_user__plain_list_of_the_level(url: str, level: Level) -> None:
    response = client_for(f.UserFactory()).get(url)
    assert response.status_code == 200
    assert response.data == [
        {"key": s.key, "description": s.description, "supports_tag": s.supports_tag}
        for s in specs_for(level)
    ]


@pytest.mark.parametrize(("url", "level"), ROUTES)
def test_catalogue__no_credentials__401(url: str, level: Level) -> None:
    assert APIClient().get(url).status_code == 401


@pytest.mark.parametrize(("url", "level"), ROUTES)
def test_catalogue__api_key__200(url: str, level: Level, organisation: Any) -> None:
    response = client_for(f.APIKeyFactory(organisation=organisation)).get(url)
    assert response.status_code == 200
    assert len(response.data) == len(specs_for(level))


def test_catalogue__environment_route_wins_over_an_environment_named_permissions(
    project: Any,
) -> None:
    admin = f.member(project.organisation, admin=True)
    f.EnvironmentFactory(project=project, api_key="permissions")
    response = client_for(admin).get("/api/v1/environments/permissions/")
    assert response.status_code == 200
    assert isinstance(response.data, list)
    assert response.data[0]["key"] == "VIEW_ENVIRONMENT"


def test_catalogue__tag_supported_keys_are_flagged() -> None:
    response = client_for(f.UserFactory()).get("/api/v1/environments/permissions/")
    flagged = {item["key"] for item in response.data if item["supports_tag"]}
    assert flagged == {
        "UPDATE_FEATURE_STATE",
        "CREATE_CHANGE_REQUEST",
        "APPROVE_CHANGE_REQUEST",
        "MANAGE_SEGMENT_OVERRIDES",
    }


@pytest.mark.parametrize(("url", "level"), ROUTES)
def test_catalogue__post__405(url: str, level: Level) -> None:
    assert client_for(f.UserFactory()).post(url, {}).status_code == 405
