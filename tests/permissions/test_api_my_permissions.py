"""`GET .../my-permissions/` at organisation, project and environment level (docs/API.md)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_SEGMENT_OVERRIDES,
    MANAGE_USER_GROUPS,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def org_url(organisation: Any) -> str:
    return f"/api/v1/organisations/{organisation.pk}/my-permissions/"


def project_url(project: Any) -> str:
    return f"/api/v1/projects/{project.pk}/my-permissions/"


def env_url(environment: Any) -> str:
    return f"/api/v1/environments/{environment.api_key}/my-permissions/"


def role_for(user: Any, organisation: Any) -> Any:
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    return role


EMPTY = {"admin": False, "permissions": [], "tag_based_permissions": [], "restricted_tags": []}


# -- organisation -----------------------------------------------------------------------


def test_organisation__plain_member__nothing(organisation: Any, org_user: Any) -> None:
    response = client_for(org_user).get(org_url(organisation))
    assert response.status_code == 200
    assert response.data == EMPTY


def test_organisation__admin__every_key(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).get(org_url(organisation))
    assert response.data == {
        **EMPTY,
        "admin": True,
        "permissions": sorted(KEYS_BY_LEVEL[Level.ORGANISATION]),
    }


def test_organisation__keys_through_user_group_and_role(organisation: Any, org_user: Any) -> None:
    f.grant(org_user, organisation, [CREATE_PROJECT])
    role = role_for(org_user, organisation)
    f.grant(role, organisation, [MANAGE_USER_GROUPS])
    response = client_for(org_user).get(org_url(organisation))
    assert response.data["permissions"] == [CREATE_PROJECT, MANAGE_USER_GROUPS]


def test_organisation__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(org_url(organisation)).status_code == 404


def test_organisation__unknown__404() -> None:
    assert (
        client_for(f.UserFactory()).get("/api/v1/organisations/999999/my-permissions/").status_code
        == 404
    )


def test_organisation__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(org_url(organisation)).status_code == 401


def test_organisation__admin_api_key__admin(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    assert client_for(key).get(org_url(organisation)).data["admin"] is True


def test_organisation__api_key_of_another_organisation__404(organisation: Any) -> None:
    key = f.APIKeyFactory(is_admin=True)
    assert client_for(key).get(org_url(organisation)).status_code == 404


# -- project ----------------------------------------------------------------------------


def test_project__cannot_view__404(organisation: Any, project: Any, org_user: Any) -> None:
    assert client_for(org_user).get(project_url(project)).status_code == 404


def test_project__untagged_and_tagged_keys(organisation: Any, project: Any, org_user: Any) -> None:
    t1 = f.TagFactory(project=project)
    t2 = f.TagFactory(project=project)
    restricted = f.TagFactory(project=project, is_restricted=True)
    f.grant(org_user, project, [VIEW_PROJECT, CREATE_FEATURE])
    f.grant(role_for(org_user, organisation), project, {DELETE_FEATURE: [t2, t1]})
    response = client_for(org_user).get(project_url(project))
    assert response.status_code == 200
    assert response.data == {
        "admin": False,
        "permissions": [CREATE_FEATURE, VIEW_PROJECT],
        "tag_based_permissions": [
            {"permissions": [DELETE_FEATURE], "tags": sorted([t1.pk, t2.pk])}
        ],
        "restricted_tags": [restricted.pk],
    }


def test_project__only_tagged_grant__can_view(
    organisation: Any, project: Any, org_user: Any
) -> None:
    tag = f.TagFactory(project=project)
    f.grant(role_for(org_user, organisation), project, {DELETE_FEATURE: [tag]})
    response = client_for(org_user).get(project_url(project))
    assert response.status_code == 200
    assert response.data["permissions"] == []
    assert response.data["tag_based_permissions"] == [
        {"permissions": [DELETE_FEATURE], "tags": [tag.pk]}
    ]


def test_project__project_admin__every_project_key(
    organisation: Any, project: Any, org_user: Any
) -> None:
    f.grant(org_user, project, [], admin=True)
    response = client_for(org_user).get(project_url(project))
    assert response.data["admin"] is True
    assert response.data["permissions"] == sorted(KEYS_BY_LEVEL[Level.PROJECT])


def test_project__organisation_admin__admin(project: Any, org_admin: Any) -> None:
    response = client_for(org_admin).get(project_url(project))
    assert response.data["admin"] is True


# -- environment ------------------------------------------------------------------------


def test_environment__cannot_view__404(environment: Any, org_user: Any, project: Any) -> None:
    f.grant(org_user, project, [VIEW_PROJECT])  # the project, not the environment
    assert client_for(org_user).get(env_url(environment)).status_code == 404


def test_environment__unknown_api_key__404(org_user: Any) -> None:
    assert client_for(org_user).get("/api/v1/environments/nope/my-permissions/").status_code == 404


def test_environment__keys_with_equal_tag_sets_share_one_entry(
    organisation: Any, project: Any, environment: Any, org_user: Any
) -> None:
    a = f.TagFactory(project=project)
    b = f.TagFactory(project=project)
    f.grant(org_user, environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    f.grant(
        role_for(org_user, organisation),
        environment,
        {
            UPDATE_FEATURE_STATE: [a],
            CREATE_CHANGE_REQUEST: [a],
            APPROVE_CHANGE_REQUEST: [a, b],
        },
    )
    response = client_for(org_user).get(env_url(environment))
    assert response.status_code == 200
    assert response.data["permissions"] == [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT]
    # UPDATE_FEATURE_STATE keeps its tag set although it is also held untagged.
    assert response.data["tag_based_permissions"] == sorted(
        [
            {"permissions": [APPROVE_CHANGE_REQUEST], "tags": sorted([a.pk, b.pk])},
            {"permissions": [CREATE_CHANGE_REQUEST, UPDATE_FEATURE_STATE], "tags": [a.pk]},
        ],
        key=lambda item: (item["permissions"], item["tags"]),
    )


def test_environment__tag_sets_of_two_roles_are_united(
    organisation: Any, project: Any, environment: Any, org_user: Any
) -> None:
    a = f.TagFactory(project=project)
    b = f.TagFactory(project=project)
    f.grant(role_for(org_user, organisation), environment, {MANAGE_SEGMENT_OVERRIDES: [a]})
    f.grant(role_for(org_user, organisation), environment, {MANAGE_SEGMENT_OVERRIDES: [b]})
    response = client_for(org_user).get(env_url(environment))
    assert response.data["tag_based_permissions"] == [
        {"permissions": [MANAGE_SEGMENT_OVERRIDES], "tags": sorted([a.pk, b.pk])}
    ]


def test_environment__restricted_tags_of_the_project(
    project: Any, environment: Any, org_user: Any
) -> None:
    restricted = f.TagFactory(project=project, is_restricted=True)
    f.TagFactory(project=project)
    f.TagFactory(project=f.ProjectFactory(organisation=project.organisation), is_restricted=True)
    f.grant(org_user, environment, [VIEW_ENVIRONMENT])
    assert client_for(org_user).get(env_url(environment)).data["restricted_tags"] == [restricted.pk]


def test_environment__project_admin__every_environment_key(
    project: Any, environment: Any, org_user: Any
) -> None:
    f.grant(org_user, project, [], admin=True)
    response = client_for(org_user).get(env_url(environment))
    assert response.data["admin"] is True
    assert response.data["permissions"] == sorted(KEYS_BY_LEVEL[Level.ENVIRONMENT])


def test_environment__api_key_through_its_role(
    organisation: Any, project: Any, environment: Any
) -> None:
    key = f.APIKeyFactory(organisation=organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, environment, [VIEW_ENVIRONMENT])
    response = client_for(key).get(env_url(environment))
    assert response.status_code == 200
    assert response.data["permissions"] == [VIEW_ENVIRONMENT]


def test_environment__removed_member_with_grants__404(organisation: Any, environment: Any) -> None:
    outsider = f.UserFactory()
    f.grant(outsider, environment, [VIEW_ENVIRONMENT])  # a stale row: membership gates
    assert client_for(outsider).get(env_url(environment)).status_code == 404


def test_environment__my_permissions_matches_decisions_for_a_feature(
    organisation: Any, project: Any, environment: Any, org_user: Any
) -> None:
    """A client reading my-permissions with docs/API.md's rule (for tag-supported keys)
    decides as the server does."""
    from permissions import engine

    plain = f.TagFactory(project=project)
    restricted = f.TagFactory(project=project, is_restricted=True)
    f.grant(org_user, environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    f.grant(role_for(org_user, organisation), environment, {CREATE_CHANGE_REQUEST: [restricted]})
    data = client_for(org_user).get(env_url(environment)).data
    features = [
        f.FeatureFactory(project=project),
        f.FeatureFactory(project=project, tags=[plain]),
        f.FeatureFactory(project=project, tags=[restricted]),
        f.FeatureFactory(project=project, tags=[plain, restricted]),
    ]
    restricted_ids = set(data["restricted_tags"])
    tag_sets = {
        key: set(entry["tags"])
        for entry in data["tag_based_permissions"]
        for key in entry["permissions"]
    }
    for feature in features:
        tags = {t.pk for t in feature.tags.all()}
        r = tags & restricted_ids
        for key in KEYS_BY_LEVEL[Level.ENVIRONMENT]:
            s = tag_sets.get(key, set())
            if key in TAG_SUPPORTED_KEYS:
                client_decision = (
                    data["admin"]
                    or (not r and key in data["permissions"])
                    or (bool(s & r) if r else bool(s & tags))
                )
            else:  # the catalogue says supports_tag: false; restricted tags do not apply
                client_decision = data["admin"] or key in data["permissions"]
            assert client_decision == engine.allowed(org_user, key, environment, feature), (
                key,
                feature.name,
            )
