"""`/api/v1/projects/`: list, create, read, rename, delete (docs/API.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import Feature
from permissions.catalogue import (
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_USER_GROUPS,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant
from projects.models import Project, Tag
from tests import factories as f
from tests.support.clients import client_for
from tests.support.principals import user_with

pytestmark = pytest.mark.django_db
LIST = "/api/v1/projects/"


def detail(project: Any) -> str:
    return f"{LIST}{project.pk}/"


def audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="project", **kwargs))


# --------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------


def test_list__no_credentials__401() -> None:
    assert APIClient().get(LIST).status_code == 401


def test_list__only_viewable_projects(organisation: Any, project: Any) -> None:
    hidden = f.ProjectFactory(organisation=organisation)
    through_environment = f.ProjectFactory(organisation=organisation)
    f.ProjectFactory()  # another organisation
    user = user_with(organisation, project, [VIEW_PROJECT])
    f.grant(user, f.EnvironmentFactory(project=through_environment), [VIEW_ENVIRONMENT])
    response = client_for(user).get(LIST)
    assert response.status_code == 200
    ids = {p["id"] for p in response.data["results"]}
    assert ids == {project.pk, through_environment.pk}
    assert hidden.pk not in ids
    item = next(p for p in response.data["results"] if p["id"] == project.pk)
    assert set(item) == {"id", "name", "organisation", "created_at"}
    assert item["organisation"] == organisation.pk


def test_list__org_admin_sees_every_project_of_the_organisation(
    organisation: Any, org_admin: Any
) -> None:
    mine = {f.ProjectFactory(organisation=organisation).pk for _ in range(3)}
    f.ProjectFactory()
    assert {p["id"] for p in client_for(org_admin).get(LIST).data["results"]} == mine


def test_list__member_without_grants_sees_none(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).get(LIST).data["count"] == 0


def test_list__removed_member_sees_none(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT])
    user.organisation_memberships.all().delete()
    assert client_for(user).get(LIST).data["count"] == 0


def test_list__filter_by_organisation(organisation: Any, project: Any) -> None:
    other_org = f.OrganisationFactory()
    other = f.ProjectFactory(organisation=other_org)
    user = f.member(organisation, admin=True)
    f.MembershipFactory(user=user, organisation=other_org, role="ADMIN")
    client = client_for(user)
    assert {p["id"] for p in client.get(LIST).data["results"]} == {project.pk, other.pk}
    response = client.get(LIST, {"organisation": other_org.pk})
    assert [p["id"] for p in response.data["results"]] == [other.pk]


def test_list__filter_by_organisation_not_an_integer__400(org_admin: Any) -> None:
    response = client_for(org_admin).get(LIST, {"organisation": "x"})
    assert response.status_code == 400
    assert "organisation" in response.data


def test_list__api_key(organisation: Any, project: Any) -> None:
    f.ProjectFactory(organisation=organisation)
    key = f.APIKeyFactory(organisation=organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, project, [VIEW_PROJECT])
    assert [p["id"] for p in client_for(key).get(LIST).data["results"]] == [project.pk]


def _count_queries(user_id: int) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(LIST, {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant(organisation: Any) -> None:
    user = f.member(organisation)

    def add(n: int) -> None:
        for _ in range(n):
            f.grant(user, f.ProjectFactory(organisation=organisation), [VIEW_PROJECT])

    add(5)
    few, count = _count_queries(user.pk)
    assert count == 5
    add(195)
    many, count = _count_queries(user.pk)
    assert count == 200
    assert few == many


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__no_credentials__401(organisation: Any) -> None:
    response = APIClient().post(LIST, {"name": "x", "organisation": organisation.pk})
    assert response.status_code == 401


@pytest.mark.parametrize("how", ["org_admin", "user_grant", "role"])
def test_create__allowed__201_creator_becomes_project_admin(how: str, organisation: Any) -> None:
    if how == "org_admin":
        user = f.member(organisation, admin=True)
    elif how == "user_grant":
        user = user_with(organisation, organisation, [CREATE_PROJECT])
    else:
        user = f.member(organisation)
        role = f.RoleFactory(organisation=organisation)
        f.RoleAssignmentFactory(role=role, user=user)
        f.grant(role, organisation, [CREATE_PROJECT])
    response = client_for(user).post(LIST, {"name": "Shop", "organisation": organisation.pk})
    assert response.status_code == 201, response.data
    project = Project.objects.get(pk=response.data["id"])
    assert response.data["name"] == "Shop"
    assert response.data["organisation"] == organisation.pk
    assert Grant.objects.get(user=user, project=project, environment__isnull=True).admin
    (entry,) = audit(action="created")
    assert entry.project_id == project.pk
    assert entry.actor_user_id == user.pk
    # the creator can administer it straight away
    assert client_for(user).patch(detail(project), {"name": "Shop 2"}).status_code == 200


def test_create__member_without_create_project__403(organisation: Any) -> None:
    user = user_with(organisation, organisation, [MANAGE_USER_GROUPS])
    response = client_for(user).post(LIST, {"name": "x", "organisation": organisation.pk})
    assert response.status_code == 403
    assert not Project.objects.exists()
    assert not audit()


def test_create__admin_api_key__201_without_grant(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    response = client_for(key).post(LIST, {"name": "x", "organisation": organisation.pk})
    assert response.status_code == 201
    assert not Grant.objects.filter(project_id=response.data["id"]).exists()
    (entry,) = audit(action="created")
    assert entry.actor_api_key_id == key.pk


def test_create__non_admin_api_key_without_role__403(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation)
    response = client_for(key).post(LIST, {"name": "x", "organisation": organisation.pk})
    assert response.status_code == 403


def test_create__organisation_caller_is_not_member_of__400_on_organisation(
    org_admin: Any,
) -> None:
    foreign = f.OrganisationFactory()
    response = client_for(org_admin).post(LIST, {"name": "x", "organisation": foreign.pk})
    assert response.status_code == 400
    assert "organisation" in response.data
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x"},
        {"name": "x", "organisation": None},
        {"name": "x", "organisation": "abc"},
        {"name": "x", "organisation": 999999},
        {"name": "x", "organisation": True},
        {"organisation": "ORG"},
        {"name": "", "organisation": "ORG"},
        {"name": "x" * 201, "organisation": "ORG"},
    ],
)
def test_create__invalid_payload__400(organisation: Any, org_admin: Any, payload: Any) -> None:
    payload = {k: organisation.pk if v == "ORG" else v for k, v in payload.items()}
    response = client_for(org_admin).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"name", "organisation"}
    assert not Project.objects.exists()


# --------------------------------------------------------------------------------------
# Retrieve
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["project", "environment"])
def test_retrieve__viewer__200(organisation: Any, project: Any, scope: str) -> None:
    target = project if scope == "project" else f.EnvironmentFactory(project=project)
    key = VIEW_PROJECT if scope == "project" else VIEW_ENVIRONMENT
    user = user_with(organisation, target, [key])
    response = client_for(user).get(detail(project))
    assert response.status_code == 200
    assert response.data["id"] == project.pk
    assert response.data["name"] == project.name


def test_retrieve__tagged_role_grant_shows_project(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project)
    user = f.member(organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, project, {DELETE_FEATURE: [tag]})
    assert client_for(user).get(detail(project)).status_code == 200


def test_retrieve__member_without_grant__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).get(detail(project)).status_code == 404


def test_retrieve__unknown__404(org_admin: Any) -> None:
    assert client_for(org_admin).get(f"{LIST}999999/").status_code == 404


def test_retrieve__no_credentials__401(project: Any) -> None:
    assert APIClient().get(detail(project)).status_code == 401


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["project_admin", "org_admin"])
def test_patch__admin__200_and_audited(who: str, organisation: Any, project: Any) -> None:
    user = (
        user_with(organisation, project, [], admin=True)
        if who == "project_admin"
        else f.member(organisation, admin=True)
    )
    old = project.name
    response = client_for(user).patch(detail(project), {"name": "Renamed"})
    assert response.status_code == 200
    assert response.data["name"] == "Renamed"
    (entry,) = audit(action="updated")
    assert entry.before == {"name": old, "organisation": organisation.pk}
    assert entry.after == {"name": "Renamed", "organisation": organisation.pk}


def test_patch__non_admin__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT, CREATE_FEATURE])
    response = client_for(user).patch(detail(project), {"name": "Renamed"})
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.name != "Renamed"
    assert not audit()


def test_patch__environment_admin__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, f.EnvironmentFactory(project=project), [], admin=True)
    assert client_for(user).patch(detail(project), {"name": "Renamed"}).status_code == 403


def test_patch__cannot_view__404(organisation: Any, project: Any) -> None:
    response = client_for(f.member(organisation)).patch(detail(project), {"name": "Renamed"})
    assert response.status_code == 404


@pytest.mark.parametrize("payload", [{"name": ""}, {"name": None}, {"organisation": "OTHER"}])
def test_patch__invalid__400(org_admin: Any, project: Any, payload: Any) -> None:
    other = f.OrganisationFactory()
    payload = {k: other.pk if v == "OTHER" else v for k, v in payload.items()}
    response = client_for(org_admin).patch(detail(project), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) == set(payload)
    assert not audit()


def test_patch__no_op__200_and_no_audit(organisation: Any, org_admin: Any, project: Any) -> None:
    response = client_for(org_admin).patch(
        detail(project), {"name": project.name, "organisation": organisation.pk}
    )
    assert response.status_code == 200
    assert not audit()


def test_patch__put_is_not_allowed__405(org_admin: Any, project: Any) -> None:
    assert client_for(org_admin).put(detail(project), {"name": "x"}).status_code == 405


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__project_admin__204_cascades_grants_and_audited(
    organisation: Any, project: Any
) -> None:
    environment = f.EnvironmentFactory(project=project)
    tag = f.TagFactory(project=project)
    f.FeatureFactory(project=project, tags=[tag])
    role = f.RoleFactory(organisation=organisation)
    f.grant(role, project, {DELETE_FEATURE: [tag]})
    f.grant(role, environment, [VIEW_ENVIRONMENT])
    admin = user_with(organisation, project, [], admin=True)
    response = client_for(admin).delete(detail(project))
    assert response.status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Grant.objects.filter(organisation=organisation).exists()
    assert not Environment.objects.exists()
    assert not Feature.objects.exists()
    assert not Tag.objects.exists()
    (entry,) = audit(action="deleted")
    assert entry.project_id == project.pk
    assert entry.before["grants_deleted"] == 3
    assert entry.before["environments_deleted"] == 1
    assert entry.before["features_deleted"] == 1
    assert AuditLogEntry.objects.count() == 1


def test_delete__non_admin__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT, DELETE_FEATURE])
    assert client_for(user).delete(detail(project)).status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()
    assert not audit()


def test_delete__cannot_view__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).delete(detail(project)).status_code == 404
    assert Project.objects.filter(pk=project.pk).exists()


def test_delete__no_credentials__401(project: Any) -> None:
    assert APIClient().delete(detail(project)).status_code == 401
