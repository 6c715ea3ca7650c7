"""`/api/v1/environments/`: list, create, read, edit, delete (docs/API.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import FeatureState
from permissions.catalogue import (
    CREATE_ENVIRONMENT,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for
from tests.support.principals import user_with

pytestmark = pytest.mark.django_db
LIST = "/api/v1/environments/"
FIELDS = {"id", "api_key", "name", "project", "minimum_change_request_approvals"}


def detail(environment: Any) -> str:
    return f"{LIST}{environment.api_key}/"


def audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="environment", **kwargs))


# --------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------


def test_list__no_credentials__401() -> None:
    assert APIClient().get(LIST).status_code == 401


def test_list__only_viewable_environments(organisation: Any, project: Any) -> None:
    seen = f.EnvironmentFactory(project=project)
    f.EnvironmentFactory(project=project)
    f.EnvironmentFactory()  # another organisation
    user = user_with(organisation, seen, [VIEW_ENVIRONMENT])
    response = client_for(user).get(LIST)
    assert response.status_code == 200
    assert [e["id"] for e in response.data["results"]] == [seen.pk]
    assert set(response.data["results"][0]) == FIELDS
    assert response.data["results"][0]["api_key"] == seen.api_key


def test_list__tagged_environment_grant_shows_environment(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project)
    tag = f.TagFactory(project=project)
    role = f.RoleFactory(organisation=organisation)
    user = f.member(organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, environment, {UPDATE_FEATURE_STATE: [tag]})
    assert [e["id"] for e in client_for(user).get(LIST).data["results"]] == [environment.pk]


def test_list__project_viewer_without_environment_grant_sees_none(
    organisation: Any, project: Any
) -> None:
    f.EnvironmentFactory(project=project)
    user = user_with(organisation, project, [VIEW_PROJECT])
    assert client_for(user).get(LIST).data["count"] == 0


@pytest.mark.parametrize("who", ["org_admin", "project_admin"])
def test_list__admins_see_every_environment_of_the_project(
    who: str, organisation: Any, project: Any
) -> None:
    environments = {f.EnvironmentFactory(project=project).pk for _ in range(3)}
    user = (
        f.member(organisation, admin=True)
        if who == "org_admin"
        else user_with(organisation, project, [], admin=True)
    )
    assert {e["id"] for e in client_for(user).get(LIST).data["results"]} == environments


def test_list__removed_member__sees_nothing(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project)
    user = user_with(organisation, environment, [VIEW_ENVIRONMENT])
    user.organisation_memberships.all().delete()
    assert client_for(user).get(LIST).data["count"] == 0


def test_list__filter_by_project(organisation: Any, org_admin: Any, project: Any) -> None:
    mine = f.EnvironmentFactory(project=project)
    f.EnvironmentFactory(project=f.ProjectFactory(organisation=organisation))
    response = client_for(org_admin).get(LIST, {"project": project.pk})
    assert [e["id"] for e in response.data["results"]] == [mine.pk]


@pytest.mark.parametrize("value", ["x", "1.5"])
def test_list__filter_by_project_not_an_integer__400(org_admin: Any, value: str) -> None:
    response = client_for(org_admin).get(LIST, {"project": value})
    assert response.status_code == 400
    assert "project" in response.data


def test_list__api_key_through_role(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project)
    f.EnvironmentFactory(project=project)
    key = f.APIKeyFactory(organisation=organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, environment, [VIEW_ENVIRONMENT])
    response = client_for(key).get(LIST)
    assert [e["id"] for e in response.data["results"]] == [environment.pk]


def _count_queries(user_id: int) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(LIST, {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant(organisation: Any, project: Any) -> None:
    user = f.member(organisation)
    environments = [f.EnvironmentFactory(project=project) for _ in range(200)]
    for environment in environments[:5]:
        f.grant(user, environment, [VIEW_ENVIRONMENT])
    few, count = _count_queries(user.pk)
    assert count == 5
    for environment in environments[5:]:
        f.grant(user, environment, [VIEW_ENVIRONMENT])
    many, count = _count_queries(user.pk)
    assert count == 200
    assert few == many


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__no_credentials__401(project: Any) -> None:
    assert APIClient().post(LIST, {"name": "x", "project": project.pk}).status_code == 401


def test_create__create_environment__201_with_default_states_and_one_audit_entry(
    organisation: Any, project: Any
) -> None:
    for _ in range(3):
        f.FeatureFactory(project=project)
    user = user_with(organisation, project, [CREATE_ENVIRONMENT])
    response = client_for(user).post(
        LIST, {"name": "staging", "project": project.pk, "minimum_change_request_approvals": 2}
    )
    assert response.status_code == 201, response.data
    assert set(response.data) == FIELDS
    environment = Environment.objects.get(pk=response.data["id"])
    assert response.data["api_key"] == environment.api_key
    assert response.data["project"] == project.pk
    assert response.data["minimum_change_request_approvals"] == 2
    assert FeatureState.objects.filter(environment=environment).count() == 3
    # the environment, and the creator's environment-admin grant (a grant change is audited)
    assert sorted(AuditLogEntry.objects.values_list("object_type", flat=True)) == [
        "environment",
        "grant",
    ]
    (entry,) = audit(action="created")
    assert entry.environment_id == environment.pk
    assert entry.after["default_states_created"] == 3
    assert entry.actor_user_id == user.pk


def test_create__threshold_defaults_to_null(org_admin: Any, project: Any) -> None:
    response = client_for(org_admin).post(LIST, {"name": "x", "project": project.pk})
    assert response.status_code == 201
    assert response.data["minimum_change_request_approvals"] is None


@pytest.mark.parametrize("value", [None, 0, 3])
def test_create__valid_threshold__201(org_admin: Any, project: Any, value: Any) -> None:
    response = client_for(org_admin).post(
        LIST,
        {"name": "x", "project": project.pk, "minimum_change_request_approvals": value},
        format="json",
    )
    assert response.status_code == 201
    assert response.data["minimum_change_request_approvals"] == value


@pytest.mark.parametrize("value", [-1, "x", 1.5, True, [1]])
def test_create__invalid_threshold__400(org_admin: Any, project: Any, value: Any) -> None:
    response = client_for(org_admin).post(
        LIST,
        {"name": "x", "project": project.pk, "minimum_change_request_approvals": value},
        format="json",
    )
    assert response.status_code == 400
    assert "minimum_change_request_approvals" in response.data
    assert not Environment.objects.exists()


def test_create__without_create_environment__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT])
    response = client_for(user).post(LIST, {"name": "x", "project": project.pk})
    assert response.status_code == 403
    assert not Environment.objects.exists()
    assert not audit()


def test_create__environment_admin_of_another_environment__403(
    organisation: Any, project: Any
) -> None:
    user = user_with(organisation, f.EnvironmentFactory(project=project), [], admin=True)
    assert client_for(user).post(LIST, {"name": "x", "project": project.pk}).status_code == 403


@pytest.mark.parametrize("who", ["org_admin", "project_admin"])
def test_create__admins__201(who: str, organisation: Any, project: Any) -> None:
    user = (
        f.member(organisation, admin=True)
        if who == "org_admin"
        else user_with(organisation, project, [], admin=True)
    )
    assert client_for(user).post(LIST, {"name": "x", "project": project.pk}).status_code == 201


def test_create__admin_api_key__201(organisation: Any, project: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    response = client_for(key).post(LIST, {"name": "x", "project": project.pk})
    assert response.status_code == 201
    (entry,) = audit(action="created")
    assert entry.actor_api_key_id == key.pk


def test_create__project_not_viewable__400_on_project(organisation: Any, project: Any) -> None:
    user = f.member(organisation)
    response = client_for(user).post(LIST, {"name": "x", "project": project.pk})
    assert response.status_code == 400
    assert "project" in response.data


def test_create__project_of_another_organisation__400_on_project(org_admin: Any) -> None:
    foreign = f.ProjectFactory()
    response = client_for(org_admin).post(LIST, {"name": "x", "project": foreign.pk})
    assert response.status_code == 400
    assert "project" in response.data
    assert not Environment.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x"},
        {"name": "x", "project": None},
        {"name": "x", "project": "abc"},
        {"name": "x", "project": 999999},
        {"name": "x", "project": True},
        {"project": "PROJECT"},
        {"name": "", "project": "PROJECT"},
        {"name": "x" * 201, "project": "PROJECT"},
    ],
)
def test_create__invalid_payload__400(org_admin: Any, project: Any, payload: Any) -> None:
    payload = {k: project.pk if v == "PROJECT" else v for k, v in payload.items()}
    response = client_for(org_admin).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"name", "project"}
    assert not Environment.objects.exists()


# --------------------------------------------------------------------------------------
# Retrieve
# --------------------------------------------------------------------------------------


def test_retrieve__environment_viewer__200(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    user = user_with(organisation, environment, [VIEW_ENVIRONMENT])
    response = client_for(user).get(detail(environment))
    assert response.status_code == 200
    assert response.data == {
        "id": environment.pk,
        "api_key": environment.api_key,
        "name": environment.name,
        "project": project.pk,
        "minimum_change_request_approvals": 1,
    }


def test_retrieve__project_viewer_without_environment_grant__404(
    organisation: Any, project: Any
) -> None:
    environment = f.EnvironmentFactory(project=project)
    user = user_with(organisation, project, [VIEW_PROJECT])
    assert client_for(user).get(detail(environment)).status_code == 404


def test_retrieve__unknown_api_key__404(org_admin: Any) -> None:
    assert client_for(org_admin).get(f"{LIST}nope/").status_code == 404


def test_retrieve__no_credentials__401(environment: Any) -> None:
    assert APIClient().get(detail(environment)).status_code == 401


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["environment_admin", "project_admin", "org_admin"])
def test_patch__admins__200_and_audited(who: str, organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project, name="old")
    if who == "environment_admin":
        user = user_with(organisation, environment, [], admin=True)
    elif who == "project_admin":
        user = user_with(organisation, project, [], admin=True)
    else:
        user = f.member(organisation, admin=True)
    response = client_for(user).patch(
        detail(environment), {"name": "new", "minimum_change_request_approvals": 2}
    )
    assert response.status_code == 200, response.data
    assert response.data["name"] == "new"
    assert response.data["minimum_change_request_approvals"] == 2
    (entry,) = audit(action="updated")
    assert entry.before["name"] == "old"
    assert entry.before["minimum_change_request_approvals"] is None
    assert entry.after["minimum_change_request_approvals"] == 2


def test_patch__switch_change_requests_off_with_null(org_admin: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    response = client_for(org_admin).patch(
        detail(environment), {"minimum_change_request_approvals": None}, format="json"
    )
    assert response.status_code == 200
    environment.refresh_from_db()
    assert environment.minimum_change_request_approvals is None


def test_patch__leaving_threshold_out_keeps_it(org_admin: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    client_for(org_admin).patch(detail(environment), {"name": "renamed"})
    environment.refresh_from_db()
    assert environment.minimum_change_request_approvals == 1


@pytest.mark.parametrize("keys", [[VIEW_ENVIRONMENT], [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE]])
def test_patch__non_admin__403(organisation: Any, project: Any, keys: list[str]) -> None:
    environment = f.EnvironmentFactory(project=project, name="old")
    user = user_with(organisation, environment, keys)
    response = client_for(user).patch(detail(environment), {"name": "new"})
    assert response.status_code == 403
    environment.refresh_from_db()
    assert environment.name == "old"
    assert not audit()


def test_patch__admin_of_another_environment__404(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project)
    user = user_with(organisation, f.EnvironmentFactory(project=project), [], admin=True)
    assert client_for(user).patch(detail(environment), {"name": "n"}).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"minimum_change_request_approvals": -1},
        {"minimum_change_request_approvals": "many"},
        {"name": ""},
        {"project": "OTHER"},
        {"api_key": "different"},
    ],
)
def test_patch__invalid_payload__400(
    organisation: Any, org_admin: Any, project: Any, payload: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, name="old")
    other = f.ProjectFactory(organisation=organisation)
    payload = {k: other.pk if v == "OTHER" else v for k, v in payload.items()}
    response = client_for(org_admin).patch(detail(environment), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) == set(payload)
    environment.refresh_from_db()
    assert environment.project_id == project.pk
    assert not audit()


def test_patch__no_op__200_and_no_audit(org_admin: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project, name="same")
    response = client_for(org_admin).patch(
        detail(environment),
        {"name": "same", "project": project.pk, "minimum_change_request_approvals": None},
        format="json",
    )
    assert response.status_code == 200
    assert not audit()


def test_patch__put_is_not_allowed__405(org_admin: Any, environment: Any) -> None:
    assert client_for(org_admin).put(detail(environment), {"name": "x"}).status_code == 405


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__environment_admin__204_cascades_and_audited(
    organisation: Any, project: Any
) -> None:
    environment = f.EnvironmentFactory(project=project)
    f.FeatureFactory(project=project)
    admin = user_with(organisation, environment, [], admin=True)
    viewer = user_with(organisation, environment, [VIEW_ENVIRONMENT])
    response = client_for(admin).delete(detail(environment))
    assert response.status_code == 204
    assert not Environment.objects.filter(pk=environment.pk).exists()
    assert not FeatureState.objects.filter(environment_id=environment.pk).exists()
    assert not Grant.objects.filter(user=viewer).exists()
    (entry,) = audit(action="deleted")
    assert entry.environment_id == environment.pk
    assert entry.before["feature_states_deleted"] == 1
    assert entry.before["grants_deleted"] == 2


def test_delete__non_admin__403(organisation: Any, project: Any) -> None:
    environment = f.EnvironmentFactory(project=project)
    user = user_with(organisation, environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    assert client_for(user).delete(detail(environment)).status_code == 403
    assert Environment.objects.filter(pk=environment.pk).exists()
    assert not audit()


def test_delete__cannot_view__404(organisation: Any, environment: Any) -> None:
    assert client_for(f.member(organisation)).delete(detail(environment)).status_code == 404
    assert Environment.objects.filter(pk=environment.pk).exists()


def test_delete__no_credentials__401(environment: Any) -> None:
    assert APIClient().delete(detail(environment)).status_code == 401


def test_create_environment__creator_with_create_environment_only__becomes_environment_admin(db):
    from permissions import engine
    from permissions.catalogue import CREATE_ENVIRONMENT, VIEW_PROJECT
    from tests import factories as fac
    from tests.support.clients import client_for

    project = fac.ProjectFactory()
    user = fac.member(project.organisation)
    fac.grant(user, project, [VIEW_PROJECT, CREATE_ENVIRONMENT])
    response = client_for(user).post(
        "/api/v1/environments/", {"name": "qa", "project": project.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    api_key = response.json()["api_key"]
    assert client_for(user).get(f"/api/v1/environments/{api_key}/").status_code == 200
    environment = project.environments.get(api_key=api_key)
    engine.forget(user)
    assert engine.is_admin(user, environment)
    assert not engine.is_admin(user, project)


def test_create_environment__project_admin_creator__gets_no_redundant_grant(db):
    from permissions.models import Grant
    from tests import factories as fac
    from tests.support.clients import client_for

    project = fac.ProjectFactory()
    user = fac.member(project.organisation)
    fac.grant(user, project, admin=True)
    response = client_for(user).post(
        "/api/v1/environments/", {"name": "qa", "project": project.pk}, format="json"
    )
    assert response.status_code == 201
    assert not Grant.objects.filter(environment__api_key=response.json()["api_key"]).exists()
