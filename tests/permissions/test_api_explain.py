"""`GET /api/v1/environments/{api_key}/features/{feature_id}/explain/?user=&permission=`
(docs/API.md: the user themself or an environment admin; the decision matches the engine's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from permissions import engine
from permissions.catalogue import (
    CREATE_FEATURE,
    KEYS_BY_LEVEL,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    Level,
)
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def url(environment: Any, feature: Any) -> str:
    return f"/api/v1/environments/{environment.api_key}/features/{feature.pk}/explain/"


@pytest.fixture
def feature(project: Any) -> Any:
    return f.FeatureFactory(project=project)


@pytest.fixture
def viewer(organisation: Any, environment: Any) -> Any:
    user = f.member(organisation)
    f.grant(user, environment, [VIEW_ENVIRONMENT])
    return user


def test_self__direct_grant__allowed_via_user(environment: Any, feature: Any, viewer: Any) -> None:
    response = client_for(viewer).get(
        url(environment, feature), {"user": viewer.pk, "permission": VIEW_ENVIRONMENT}
    )
    assert response.status_code == 200
    assert set(response.data) == {"permission", "allowed", "reason", "granted_by", "blocked_by"}
    assert response.data["permission"] == VIEW_ENVIRONMENT
    assert response.data["allowed"] is True
    assert response.data["granted_by"] == [
        {"via": "user", "group": None, "role": None, "scope": "environment", "tags_matched": []}
    ]
    assert response.data["blocked_by"] == []
    assert isinstance(response.data["reason"], str) and response.data["reason"]


def test_explain__no_user_given__explains_the_caller(
    environment: Any, feature: Any, viewer: Any
) -> None:
    response = client_for(viewer).get(url(environment, feature), {"permission": VIEW_ENVIRONMENT})
    assert response.status_code == 200
    assert response.data["allowed"] is True


def test_role_through_group__via_role_with_group(
    organisation: Any, project: Any, environment: Any, viewer: Any
) -> None:
    tag = f.TagFactory(project=project)
    feature = f.FeatureFactory(project=project, tags=[tag])
    group = f.UserGroupFactory(organisation=organisation, users=[viewer])
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, group=group)
    f.grant(role, environment, {UPDATE_FEATURE_STATE: [tag]})
    response = client_for(viewer).get(
        url(environment, feature), {"permission": UPDATE_FEATURE_STATE}
    )
    assert response.data["allowed"] is True
    assert response.data["granted_by"] == [
        {
            "via": "role",
            "group": group.pk,
            "role": role.pk,
            "scope": "environment",
            "tags_matched": [tag.pk],
        }
    ]


@pytest.mark.parametrize("restricted", [False, True])
def test_tagged_entry_not_reaching__blocked_by(
    organisation: Any, project: Any, environment: Any, viewer: Any, restricted: bool
) -> None:
    mine = f.TagFactory(project=project)
    other = f.TagFactory(project=project, is_restricted=restricted)
    feature = f.FeatureFactory(project=project, tags=[other, mine] if restricted else [other])
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=viewer)
    f.grant(role, environment, {UPDATE_FEATURE_STATE: [mine]})
    response = client_for(viewer).get(
        url(environment, feature), {"permission": UPDATE_FEATURE_STATE}
    )
    assert response.data["allowed"] is False
    assert response.data["blocked_by"] == [
        {
            "via": "role",
            "group": None,
            "role": role.pk,
            "tags": [mine.pk],
            "why": "restricted_tag" if restricted else "tag_mismatch",
        }
    ]


def test_explain__every_environment_key__allowed_matches_the_engine(
    organisation: Any, project: Any, environment: Any, viewer: Any
) -> None:
    tag = f.TagFactory(project=project)
    feature = f.FeatureFactory(project=project, tags=[tag])
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=viewer)
    f.grant(role, environment, {UPDATE_FEATURE_STATE: [tag]})
    response = client_for(viewer).get(url(environment, feature))
    assert response.status_code == 200
    assert [item["permission"] for item in response.data] == list(KEYS_BY_LEVEL[Level.ENVIRONMENT])
    fresh = User.objects.get(pk=viewer.pk)
    for item in response.data:
        assert item["allowed"] == engine.allowed(fresh, item["permission"], environment, feature)


def test_explain__environment_admin_asks_for_another_user__200(
    organisation: Any, environment: Any, feature: Any, viewer: Any
) -> None:
    admin = f.member(organisation)
    f.grant(admin, environment, [], admin=True)
    response = client_for(admin).get(
        url(environment, feature), {"user": viewer.pk, "permission": VIEW_ENVIRONMENT}
    )
    assert response.status_code == 200
    assert response.data["allowed"] is True


def test_organisation_admin__granted_by_organisation_admin(
    environment: Any, feature: Any, org_admin: Any
) -> None:
    response = client_for(org_admin).get(
        url(environment, feature), {"permission": UPDATE_FEATURE_STATE}
    )
    assert response.data["allowed"] is True
    assert response.data["granted_by"][0]["via"] == "organisation_admin"


def test_explain__admin_api_key_names_a_user__200_every_key(
    organisation: Any, environment: Any, feature: Any, viewer: Any
) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    response = client_for(key).get(url(environment, feature), {"user": viewer.pk})
    assert response.status_code == 200
    assert len(response.data) == len(KEYS_BY_LEVEL[Level.ENVIRONMENT])


def test_api_key_without_user__400(organisation: Any, environment: Any, feature: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    response = client_for(key).get(url(environment, feature))
    assert response.status_code == 400
    assert "user" in response.data


def test_viewer_explains_another_user__403(
    organisation: Any, environment: Any, feature: Any, viewer: Any
) -> None:
    other = f.member(organisation)
    response = client_for(viewer).get(url(environment, feature), {"user": other.pk})
    assert response.status_code == 403


@pytest.mark.parametrize("key", ["NOPE", CREATE_FEATURE, ""])
def test_unknown_or_wrong_level_permission__400(
    environment: Any, feature: Any, viewer: Any, key: str
) -> None:
    response = client_for(viewer).get(url(environment, feature), {"permission": key})
    assert response.status_code == 400
    assert "permission" in response.data


@pytest.mark.parametrize("value", ["abc", "0", "1.5"])
def test_malformed_user__400(environment: Any, feature: Any, viewer: Any, value: str) -> None:
    response = client_for(viewer).get(url(environment, feature), {"user": value})
    assert response.status_code == 400
    assert "user" in response.data


def test_user_not_a_member__404(environment: Any, feature: Any, org_admin: Any) -> None:
    response = client_for(org_admin).get(url(environment, feature), {"user": f.UserFactory().pk})
    assert response.status_code == 404


def test_feature_of_another_project__404(organisation: Any, environment: Any, viewer: Any) -> None:
    foreign = f.FeatureFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(viewer).get(url(environment, foreign)).status_code == 404


def test_unknown_feature__404(environment: Any, viewer: Any) -> None:
    response = client_for(viewer).get(
        f"/api/v1/environments/{environment.api_key}/features/999999/explain/"
    )
    assert response.status_code == 404


def test_cannot_view_environment__404(organisation: Any, environment: Any, feature: Any) -> None:
    user = f.member(organisation)
    assert client_for(user).get(url(environment, feature)).status_code == 404


def test_no_credentials__401(environment: Any, feature: Any) -> None:
    assert APIClient().get(url(environment, feature)).status_code == 401
