"""`/api/v1/organisations/` and `/api/v1/organisations/{id}/` (docs/API.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import MembershipRole, Organisation, OrganisationMembership
from permissions.catalogue import CREATE_PROJECT
from projects.models import Project
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()
LIST = "/api/v1/organisations/"


def detail(organisation: Any) -> str:
    return f"{LIST}{organisation.pk}/"


# -- list -------------------------------------------------------------------------------


def test_list__only_organisations_the_caller_is_a_member_of(organisation: Any) -> None:
    user = f.member(organisation)
    other = f.OrganisationFactory(name="AAA other")
    f.member(other)
    f.OrganisationFactory()
    response = client_for(user).get(LIST)
    assert response.status_code == 200
    assert response.data["count"] == 1
    (item,) = response.data["results"]
    assert set(item) == {"id", "name", "created_at"}
    assert item["id"] == organisation.pk and item["name"] == organisation.name


def test_list__user_without_memberships__empty() -> None:
    response = client_for(f.UserFactory()).get(LIST)
    assert response.status_code == 200
    assert response.data["count"] == 0


def test_list__api_key__its_own_organisation(organisation: Any) -> None:
    f.OrganisationFactory()
    response = client_for(f.APIKeyFactory(organisation=organisation)).get(LIST)
    assert [o["id"] for o in response.data["results"]] == [organisation.pk]


def test_list__no_credentials__401() -> None:
    assert APIClient().get(LIST).status_code == 401


def test_list__query_count__constant() -> None:
    user = f.UserFactory()

    def add(n: int) -> None:
        orgs = Organisation.objects.bulk_create(
            [Organisation(name=f"o{Organisation.objects.count()}-{i}") for i in range(n)]
        )
        OrganisationMembership.objects.bulk_create(
            [OrganisationMembership(user=user, organisation=o) for o in orgs]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=user.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(LIST, {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


# -- create -----------------------------------------------------------------------------


def test_create__any_user__201_creator_becomes_admin_and_audit() -> None:
    user = f.UserFactory()
    response = client_for(user).post(LIST, {"name": "Acme"})
    assert response.status_code == 201
    organisation = Organisation.objects.get(pk=response.data["id"])
    assert organisation.name == "Acme" == response.data["name"]
    membership = OrganisationMembership.objects.get(organisation=organisation)
    assert (membership.user_id, membership.role) == (user.pk, MembershipRole.ADMIN)
    types = sorted(
        AuditLogEntry.objects.filter(organisation=organisation).values_list(
            "object_type", flat=True
        )
    )
    assert types == ["organisation", "organisation_membership"]


def test_create__the_creator_may_then_create_projects() -> None:
    user = f.UserFactory()
    org_id = client_for(user).post(LIST, {"name": "Acme"}).data["id"]
    fresh = User.objects.get(pk=user.pk)
    response = client_for(fresh).get(f"{LIST}{org_id}/my-permissions/")
    assert response.data["admin"] is True
    assert CREATE_PROJECT in response.data["permissions"]


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": None}, {"name": "x" * 201}])
def test_create__bad_name__400(payload: dict[str, Any]) -> None:
    response = client_for(f.UserFactory()).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert "name" in response.data
    assert not Organisation.objects.exists()


def test_create__api_key__403(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    assert client_for(key).post(LIST, {"name": "Acme"}).status_code == 403
    assert Organisation.objects.count() == 1


def test_create__no_credentials__401() -> None:
    assert APIClient().post(LIST, {"name": "Acme"}).status_code == 401


# -- retrieve, update, delete -----------------------------------------------------------


def test_retrieve__member__200(organisation: Any, org_user: Any) -> None:
    response = client_for(org_user).get(detail(organisation))
    assert response.status_code == 200
    assert response.data["id"] == organisation.pk


def test_retrieve__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(detail(organisation)).status_code == 404


def test_retrieve__unknown__404() -> None:
    assert client_for(f.UserFactory()).get(f"{LIST}999999/").status_code == 404


def test_patch__admin__renames_and_audits(organisation: Any, org_admin: Any) -> None:
    old = organisation.name
    response = client_for(org_admin).patch(detail(organisation), {"name": "Renamed"})
    assert response.status_code == 200
    assert response.data["name"] == "Renamed"
    organisation.refresh_from_db()
    assert organisation.name == "Renamed"
    entry = AuditLogEntry.objects.get(object_type="organisation", action="updated")
    assert entry.before == {"name": old}
    assert entry.actor_user_id == org_admin.pk
    assert entry.after == {"name": "Renamed"}


def test_patch__same_name__no_audit(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).patch(detail(organisation), {"name": organisation.name})
    assert response.status_code == 200
    assert not AuditLogEntry.objects.filter(object_type="organisation").exists()


def test_patch__member__403(organisation: Any, org_user: Any) -> None:
    response = client_for(org_user).patch(detail(organisation), {"name": "Mine"})
    assert response.status_code == 403
    organisation.refresh_from_db()
    assert organisation.name != "Mine"


def test_patch__non_member__404(organisation: Any) -> None:
    response = client_for(f.UserFactory()).patch(detail(organisation), {"name": "Mine"})
    assert response.status_code == 404


def test_patch__bad_name__400(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).patch(detail(organisation), {"name": ""})
    assert response.status_code == 400
    assert "name" in response.data


def test_patch__changing_the_id__400(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).patch(detail(organisation), {"id": organisation.pk + 1})
    assert response.status_code == 400
    assert "id" in response.data


def test_delete__admin__204_everything_goes(organisation: Any, org_admin: Any) -> None:
    project = f.ProjectFactory(organisation=organisation)
    tag = f.TagFactory(project=project)
    role = f.RoleFactory(organisation=organisation)
    f.grant(role, project, {"DELETE_FEATURE": [tag]})
    response = client_for(org_admin).delete(detail(organisation))
    assert response.status_code == 204
    assert not Organisation.objects.filter(pk=organisation.pk).exists()
    assert not Project.objects.filter(pk=project.pk).exists()


def test_delete__member__403(organisation: Any, org_user: Any) -> None:
    assert client_for(org_user).delete(detail(organisation)).status_code == 403
    assert Organisation.objects.filter(pk=organisation.pk).exists()


def test_delete__admin_of_another_organisation__404(organisation: Any) -> None:
    other_admin = f.member(f.OrganisationFactory(), admin=True)
    assert client_for(other_admin).delete(detail(organisation)).status_code == 404


def test_put__405(organisation: Any, org_admin: Any) -> None:
    assert client_for(org_admin).put(detail(organisation), {"name": "x"}).status_code == 405
