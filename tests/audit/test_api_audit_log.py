"""`GET /api/v1/organisations/{id}/audit-log/` (organisation admin) and
`GET /api/v1/projects/{id}/audit-log/` (VIEW_AUDIT_LOG): read-only, newest first, filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from permissions.catalogue import DELETE_FEATURE, VIEW_AUDIT_LOG, VIEW_PROJECT
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()
FIELDS = {
    "id",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "organisation",
    "project",
    "environment",
    "before",
    "after",
    "impact",
}


def org_url(organisation: Any) -> str:
    return f"/api/v1/organisations/{organisation.pk}/audit-log/"


def project_url(project: Any) -> str:
    return f"/api/v1/projects/{project.pk}/audit-log/"


def entry(organisation: Any, **kwargs: Any) -> AuditLogEntry:
    return f.AuditLogEntryFactory(organisation=organisation, **kwargs)


# -- organisation -----------------------------------------------------------------------


def test_organisation__admin__entries_newest_first_with_fields(
    organisation: Any, org_admin: Any
) -> None:
    first = entry(organisation, actor_user=org_admin, actor_name=org_admin.username)
    second = entry(organisation, action="updated", before={"a": 1}, after={"a": 2})
    entry(f.OrganisationFactory())  # another organisation's
    response = client_for(org_admin).get(org_url(organisation))
    assert response.status_code == 200
    assert [e["id"] for e in response.data["results"]] == [second.pk, first.pk]
    item = response.data["results"][1]
    assert set(item) == FIELDS
    assert item["actor"] == {"type": "user", "id": org_admin.pk, "name": org_admin.username}
    assert item["organisation"] == organisation.pk
    assert response.data["results"][0]["before"] == {"a": 1}


def test_organisation__api_key_actor(organisation: Any, org_admin: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, name="robot")
    entry(organisation, actor_api_key=key, actor_name=str(key))
    response = client_for(org_admin).get(org_url(organisation))
    assert response.data["results"][0]["actor"] == {
        "type": "api_key",
        "id": key.pk,
        "name": str(key),
    }


def test_organisation__system_actor__null(organisation: Any, org_admin: Any) -> None:
    entry(organisation)
    response = client_for(org_admin).get(org_url(organisation))
    assert response.data["results"][0]["actor"] is None


def test_organisation__writes_through_the_api_appear(organisation: Any, org_admin: Any) -> None:
    client = client_for(org_admin)
    client.post(f"/api/v1/organisations/{organisation.pk}/roles/", {"name": "ops"})
    response = client.get(org_url(organisation), {"object_type": "role"})
    (item,) = response.data["results"]
    assert item["action"] == "created"
    assert item["after"] == {"name": "ops", "description": ""}
    assert item["actor"]["id"] == org_admin.pk


def test_organisation__member__403(organisation: Any, org_user: Any) -> None:
    assert client_for(org_user).get(org_url(organisation)).status_code == 403


def test_organisation__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(org_url(organisation)).status_code == 404


def test_organisation__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(org_url(organisation)).status_code == 401


def test_organisation__read_only__405(organisation: Any, org_admin: Any) -> None:
    client = client_for(org_admin)
    assert client.post(org_url(organisation), {}).status_code == 405
    assert client.delete(org_url(organisation)).status_code == 405


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "deleted"}, ["c"]),
        ({"object_type": "role"}, ["b"]),
        ({"actor": "ACTOR"}, ["a"]),
        ({"project": "PROJECT"}, ["b", "c"]),
        ({"environment": "ENVIRONMENT"}, ["c"]),
        ({"project": "PROJECT", "action": "created"}, ["b"]),
    ],
)
def test_organisation__filters(
    organisation: Any, org_admin: Any, params: dict[str, str], expected: list[str]
) -> None:
    actor = f.member(organisation)
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    made = {
        "a": entry(organisation, actor_user=actor, object_type="user_group"),
        "b": entry(organisation, project_id=project.pk, object_type="role"),
        "c": entry(
            organisation,
            action="deleted",
            project_id=project.pk,
            environment_id=environment.pk,
            object_type="grant",
        ),
    }
    values = {"ACTOR": actor.pk, "PROJECT": project.pk, "ENVIRONMENT": environment.pk}
    query = {k: values.get(v, v) for k, v in params.items()}
    response = client_for(org_admin).get(org_url(organisation), query)
    assert response.status_code == 200
    got = {e["id"] for e in response.data["results"]}
    assert got == {made[name].pk for name in expected}


def test_organisation__since_until(organisation: Any, org_admin: Any) -> None:
    old = entry(organisation)
    new = entry(organisation)
    now = timezone.now()
    # Backdate behind the append-only guard (a test-only write).
    QuerySet.update(AuditLogEntry.objects.filter(pk=old.pk), created_at=now - timedelta(days=3))
    QuerySet.update(AuditLogEntry.objects.filter(pk=new.pk), created_at=now - timedelta(hours=1))
    client = client_for(org_admin)
    since = (now - timedelta(days=1)).isoformat()
    until = (now - timedelta(days=2)).isoformat()
    got_since = client.get(org_url(organisation), {"since": since}).data["results"]
    got_until = client.get(org_url(organisation), {"until": until}).data["results"]
    assert [e["id"] for e in got_since] == [new.pk]
    assert [e["id"] for e in got_until] == [old.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2024-13-01"},
        {"actor": "bob"},
        {"project": "x"},
        {"environment": "1.5"},
        {"action": "exploded"},
    ],
)
def test_organisation__bad_filter__400_naming_it(
    organisation: Any, org_admin: Any, params: dict[str, str]
) -> None:
    response = client_for(org_admin).get(org_url(organisation), params)
    assert response.status_code == 400
    assert set(params) <= set(response.data)


def test_organisation__query_count__constant(organisation: Any, org_admin: Any) -> None:
    def add(n: int) -> None:
        AuditLogEntry.objects.bulk_create(
            [
                AuditLogEntry(
                    organisation=organisation,
                    actor_user=org_admin,
                    actor_name="x",
                    action="created",
                    object_type="role",
                    object_id=str(i),
                    after={"i": i},
                )
                for i in range(n)
            ]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(org_url(organisation), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


# -- project ----------------------------------------------------------------------------


def test_project__view_audit_log__only_that_projects_entries(
    organisation: Any, project: Any
) -> None:
    reader = f.member(organisation)
    f.grant(reader, project, [VIEW_AUDIT_LOG])
    mine = entry(organisation, project_id=project.pk)
    entry(organisation)  # organisation-level
    entry(organisation, project_id=f.ProjectFactory(organisation=organisation).pk)
    response = client_for(reader).get(project_url(project))
    assert response.status_code == 200
    assert [e["id"] for e in response.data["results"]] == [mine.pk]


def test_project__entries_of_a_deleted_sibling_never_leak(organisation: Any, project: Any) -> None:
    other_org = f.OrganisationFactory()
    # An entry of another organisation that happens to carry the same project id.
    entry(other_org, project_id=project.pk)
    admin = f.member(organisation, admin=True)
    assert client_for(admin).get(project_url(project)).data["count"] == 0


def test_project__viewer_without_the_key__403(organisation: Any, project: Any) -> None:
    viewer = f.member(organisation)
    f.grant(viewer, project, [VIEW_PROJECT])
    assert client_for(viewer).get(project_url(project)).status_code == 403


def test_project__tagged_role_only__403(organisation: Any, project: Any) -> None:
    viewer = f.member(organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=viewer)
    f.grant(role, project, {DELETE_FEATURE: [f.TagFactory(project=project)]})
    assert client_for(viewer).get(project_url(project)).status_code == 403


def test_project__project_admin__200(organisation: Any, project: Any) -> None:
    admin = f.member(organisation)
    f.grant(admin, project, [], admin=True)
    assert client_for(admin).get(project_url(project)).status_code == 200


def test_project__cannot_view__404(organisation: Any, project: Any, org_user: Any) -> None:
    assert client_for(org_user).get(project_url(project)).status_code == 404


def test_project__no_credentials__401(project: Any) -> None:
    assert APIClient().get(project_url(project)).status_code == 401


def test_project__filters_apply(organisation: Any, project: Any, org_admin: Any) -> None:
    entry(organisation, project_id=project.pk, object_type="tag")
    kept = entry(organisation, project_id=project.pk, object_type="feature")
    response = client_for(org_admin).get(project_url(project), {"object_type": "feature"})
    assert [e["id"] for e in response.data["results"]] == [kept.pk]


def test_project__query_count__constant(organisation: Any, project: Any) -> None:
    reader = f.member(organisation)
    f.grant(reader, project, [VIEW_AUDIT_LOG])

    def add(n: int) -> None:
        AuditLogEntry.objects.bulk_create(
            [
                AuditLogEntry(
                    organisation=organisation,
                    project_id=project.pk,
                    action="created",
                    object_type="tag",
                    object_id=str(i),
                )
                for i in range(n)
            ]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=reader.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(project_url(project), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


def test_audit_log__actor_deleted__keeps_type_and_name(db: Any) -> None:
    from audit.services import audit_record
    from tests.support.clients import client_for

    org = f.OrganisationFactory()
    admin = f.member(org, admin=True)
    key = f.APIKeyFactory(organisation=org, name="deploy-bot")
    audit_record(actor=key, action="created", obj=org, organisation_id=org.pk)
    key.delete()
    response = client_for(admin).get(f"/api/v1/organisations/{org.pk}/audit-log/")
    assert response.status_code == 200
    (entry,) = response.json()["results"]
    assert entry["actor"]["type"] == "api_key"
    assert entry["actor"]["id"] is None
    assert entry["actor"]["name"].startswith("deploy-bot")
