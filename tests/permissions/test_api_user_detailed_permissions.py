"""`GET /api/v1/projects/{id}/user-detailed-permissions/{user_id}/` and the environment one
(docs/API.md: the user themself, or an admin of that scope; 403 otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from permissions.catalogue import (
    CREATE_FEATURE,
    DELETE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from projects.models import Project
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def project_url(project: Any, user: Any) -> str:
    return f"/api/v1/projects/{project.pk}/user-detailed-permissions/{user.pk}/"


def env_url(environment: Any, user: Any) -> str:
    return f"/api/v1/environments/{environment.api_key}/user-detailed-permissions/{user.pk}/"


@pytest.fixture
def subject(organisation: Any, project: Any) -> Any:
    """A member with a direct grant, a group grant and a tagged role grant on the project."""
    user = f.member(organisation)
    f.grant(user, project, [VIEW_PROJECT])
    group = f.UserGroupFactory(organisation=organisation, name="devs", users=[user])
    f.grant(group, project, [CREATE_FEATURE, VIEW_PROJECT])
    role = f.RoleFactory(organisation=organisation, name="payments")
    f.RoleAssignmentFactory(role=role, user=user)
    tag = f.TagFactory(project=project)
    f.grant(role, project, {DELETE_FEATURE: [tag]})
    user.test_group, user.test_role, user.test_tag = group, role, tag
    return user


def test_project__self__where_each_key_comes_from(project: Any, subject: Any) -> None:
    response = client_for(subject).get(project_url(project, subject))
    assert response.status_code == 200
    group, role, tag = subject.test_group, subject.test_role, subject.test_tag
    assert response.data["admin"] is False
    by_key = {p["permission_key"]: p for p in response.data["permissions"]}
    assert set(by_key) == {CREATE_FEATURE, DELETE_FEATURE, VIEW_PROJECT}
    assert by_key[VIEW_PROJECT]["is_directly_granted"] is True
    assert by_key[VIEW_PROJECT]["derived_from"]["groups"] == [{"id": group.pk, "name": "devs"}]
    assert by_key[CREATE_FEATURE]["is_directly_granted"] is False
    assert by_key[DELETE_FEATURE]["derived_from"] == {
        "groups": [],
        "roles": [{"id": role.pk, "name": "payments", "tags": [tag.pk]}],
    }


def test_project__project_admin_reads_another_user(
    organisation: Any, project: Any, subject: Any
) -> None:
    admin = f.member(organisation)
    f.grant(admin, project, [], admin=True)
    assert client_for(admin).get(project_url(project, subject)).status_code == 200


def test_project__organisation_admin_reads_another_user(
    project: Any, subject: Any, org_admin: Any
) -> None:
    assert client_for(org_admin).get(project_url(project, subject)).status_code == 200


def test_project__admin_api_key__200(organisation: Any, project: Any, subject: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    assert client_for(key).get(project_url(project, subject)).status_code == 200


def test_project__viewer_reads_another_user__403(
    organisation: Any, project: Any, subject: Any
) -> None:
    viewer = f.member(organisation)
    f.grant(viewer, project, [VIEW_PROJECT])
    assert client_for(viewer).get(project_url(project, subject)).status_code == 403


def test_project__non_admin_api_key_with_the_same_id__403(
    organisation: Any, project: Any, subject: Any
) -> None:
    """An API key is never "the user themself", whatever its id."""
    key = f.APIKeyFactory(organisation=organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, project, [VIEW_PROJECT])
    url = f"/api/v1/projects/{project.pk}/user-detailed-permissions/{key.pk}/"
    assert client_for(key).get(url).status_code in (403, 404)
    assert client_for(key).get(project_url(project, subject)).status_code == 403


def test_project__cannot_view__404(organisation: Any, project: Any, subject: Any) -> None:
    assert client_for(f.member(organisation)).get(project_url(project, subject)).status_code == 404


def test_project__user_not_a_member__404(project: Any, org_admin: Any) -> None:
    assert client_for(org_admin).get(project_url(project, f.UserFactory())).status_code == 404


def test_project__unknown_user__404(project: Any, org_admin: Any) -> None:
    url = f"/api/v1/projects/{project.pk}/user-detailed-permissions/999999/"
    assert client_for(org_admin).get(url).status_code == 404


def test_project__no_credentials__401(project: Any, subject: Any) -> None:
    assert APIClient().get(project_url(project, subject)).status_code == 401


def test_project__admin_through_a_group(organisation: Any, project: Any) -> None:
    user = f.member(organisation)
    group = f.UserGroupFactory(organisation=organisation, name="leads", users=[user])
    f.grant(group, project, [], admin=True)
    response = client_for(user).get(project_url(project, user))
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["is_directly_granted"] is False
    assert response.data["derived_from"]["groups"] == [{"id": group.pk, "name": "leads"}]


def test_environment__self(organisation: Any, environment: Any) -> None:
    user = f.member(organisation)
    f.grant(user, environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert [p["permission_key"] for p in response.data["permissions"]] == [
        UPDATE_FEATURE_STATE,
        VIEW_ENVIRONMENT,
    ]
    assert all(p["is_directly_granted"] for p in response.data["permissions"])


def test_environment__environment_admin_reads_another(organisation: Any, environment: Any) -> None:
    admin = f.member(organisation)
    f.grant(admin, environment, [], admin=True)
    other = f.member(organisation)
    f.grant(other, environment, [VIEW_ENVIRONMENT])
    assert client_for(admin).get(env_url(environment, other)).status_code == 200


def test_environment__project_admin_reads_another(
    organisation: Any, project: Any, environment: Any
) -> None:
    admin = f.member(organisation)
    f.grant(admin, project, [], admin=True)
    other = f.member(organisation)
    assert client_for(admin).get(env_url(environment, other)).status_code == 200


def test_environment__viewer_reads_another__403(organisation: Any, environment: Any) -> None:
    viewer = f.member(organisation)
    f.grant(viewer, environment, [VIEW_ENVIRONMENT])
    other = f.member(organisation)
    assert client_for(viewer).get(env_url(environment, other)).status_code == 403


def test_environment__cannot_view__404(organisation: Any, environment: Any) -> None:
    user = f.member(organisation)
    assert client_for(user).get(env_url(environment, user)).status_code == 404


# --------------------------------------------------------------------------------------
# Where admin comes from: every path, project-level and environment-level admin (issue 13,
# item 8: a project admin grant of a group or role made the user environment admin with an
# empty `derived_from`)
# --------------------------------------------------------------------------------------

PATHS = ["user", "group", "role", "role_via_group"]


def admin_through(
    organisation: Any, user: Any, path: str, scope: Any, *, admin: bool = True
) -> dict[str, Any]:
    """Give `user` a grant on `scope` through `path` (admin, or only VIEW when `admin` is
    false); the `derived_from` the detailed view should then show for admin."""
    if path == "user":
        f.grant(user, scope, [] if admin else _view_key(scope), admin=admin)
        return {"direct": True, "groups": [], "roles": []}
    group = f.UserGroupFactory(organisation=organisation, name="leads", users=[user])
    if path == "group":
        f.grant(group, scope, [] if admin else _view_key(scope), admin=admin)
        return {"direct": False, "groups": [{"id": group.pk, "name": "leads"}], "roles": []}
    role = f.RoleFactory(organisation=organisation, name="release managers")
    if path == "role":
        f.RoleAssignmentFactory(role=role, user=user)
        groups = []
    else:
        f.RoleAssignmentFactory(role=role, group=group)
        groups = [{"id": group.pk, "name": "leads"}]
    f.grant(role, scope, [] if admin else _view_key(scope), admin=admin)
    roles = [{"id": role.pk, "name": "release managers", "tags": []}]
    return {"direct": False, "groups": groups, "roles": roles}


def _view_key(scope: Any) -> list[str]:
    return [VIEW_PROJECT] if isinstance(scope, Project) else [VIEW_ENVIRONMENT]


@pytest.mark.parametrize("path", PATHS)
def test_environment__admin_through_project_grant__derived_from_names_it(
    organisation: Any, project: Any, environment: Any, path: str
) -> None:
    user = f.member(organisation)
    expected = admin_through(organisation, user, path, project)
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["is_directly_granted"] is expected["direct"]
    assert response.data["derived_from"] == {
        "groups": expected["groups"],
        "roles": expected["roles"],
    }


@pytest.mark.parametrize("path", PATHS)
def test_environment__admin_through_environment_grant__derived_from_names_it(
    organisation: Any, environment: Any, path: str
) -> None:
    user = f.member(organisation)
    expected = admin_through(organisation, user, path, environment)
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["is_directly_granted"] is expected["direct"]
    assert response.data["derived_from"] == {
        "groups": expected["groups"],
        "roles": expected["roles"],
    }


@pytest.mark.parametrize("path", PATHS)
def test_project__admin_through_project_grant__derived_from_names_it(
    organisation: Any, project: Any, path: str
) -> None:
    user = f.member(organisation)
    expected = admin_through(organisation, user, path, project)
    response = client_for(user).get(project_url(project, user))
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["is_directly_granted"] is expected["direct"]
    assert response.data["derived_from"] == {
        "groups": expected["groups"],
        "roles": expected["roles"],
    }


@pytest.mark.parametrize("path", PATHS)
def test_environment__project_grant_without_admin__not_admin_and_derived_from_empty(
    organisation: Any, project: Any, environment: Any, path: str
) -> None:
    user = f.member(organisation)
    admin_through(organisation, user, path, project, admin=False)
    f.grant(user, environment, [VIEW_ENVIRONMENT])  # to view the environment
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert response.data["admin"] is False
    assert response.data["is_directly_granted"] is False
    assert response.data["derived_from"] == {"groups": [], "roles": []}


@pytest.mark.parametrize("path", PATHS)
def test_environment__admin_of_another_environment__not_admin_here(
    organisation: Any, project: Any, environment: Any, path: str
) -> None:
    other = f.EnvironmentFactory(project=project)
    user = f.member(organisation)
    admin_through(organisation, user, path, other)
    f.grant(user, environment, [VIEW_ENVIRONMENT])
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert response.data["admin"] is False
    assert response.data["is_directly_granted"] is False
    assert response.data["derived_from"] == {"groups": [], "roles": []}


@pytest.mark.parametrize("path", PATHS)
def test_environment__admin_of_another_project__not_admin_here(
    organisation: Any, environment: Any, path: str
) -> None:
    other = f.ProjectFactory(organisation=organisation)
    user = f.member(organisation)
    admin_through(organisation, user, path, other)
    f.grant(user, environment, [VIEW_ENVIRONMENT])
    response = client_for(user).get(env_url(environment, user))
    assert response.status_code == 200
    assert response.data["admin"] is False
    assert response.data["derived_from"] == {"groups": [], "roles": []}
