"""`/api/v1/organisations/{id}/roles/` and the role assignments under
`.../roles/{role_id}/users|groups|api-keys/` (docs/API.md; docs/PERMISSIONS.md "Who may change grants": organisation admins
only, reading included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import OrganisationMembership, Role, RoleAssignment
from permissions.catalogue import CREATE_PROJECT, VIEW_PROJECT
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def url(organisation: Any, role: Any | None = None) -> str:
    base = f"/api/v1/organisations/{organisation.pk}/roles/"
    return base if role is None else f"{base}{role.pk}/"


def audit(object_type: str, **kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type=object_type, **kwargs).order_by("id"))


@pytest.fixture
def role(organisation: Any) -> Any:
    return f.RoleFactory(organisation=organisation, name="payments", description="Pay")


# -- roles ------------------------------------------------------------------------------


def test_list__admin__roles(organisation: Any, org_admin: Any, role: Any) -> None:
    f.RoleFactory()  # another organisation's
    response = client_for(org_admin).get(url(organisation))
    assert response.status_code == 200
    assert response.data["results"] == [{"id": role.pk, "name": "payments", "description": "Pay"}]


def test_list__member__403(organisation: Any, org_user: Any, role: Any) -> None:
    assert client_for(org_user).get(url(organisation)).status_code == 403


def test_list__role_holder__403(organisation: Any, org_user: Any, role: Any) -> None:
    f.RoleAssignmentFactory(role=role, user=org_user)
    assert client_for(org_user).get(url(organisation, role)).status_code == 403


def test_list__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(url(organisation)).status_code == 404


def test_list__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(url(organisation)).status_code == 401


def test_list__query_count__constant(organisation: Any, org_admin: Any) -> None:
    def add(n: int) -> None:
        start = Role.objects.count()
        Role.objects.bulk_create(
            [Role(organisation=organisation, name=f"r{start + i}") for i in range(n)]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url(organisation), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


def test_create__admin__201_and_audit(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"name": "ops"})
    assert response.status_code == 201
    assert response.data["name"] == "ops" and response.data["description"] == ""
    (entry,) = audit("role", action="created")
    assert entry.after == {"name": "ops", "description": ""}


def test_create__member__403(organisation: Any, org_user: Any) -> None:
    assert client_for(org_user).post(url(organisation), {"name": "ops"}).status_code == 403
    assert not Role.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "PAYMENTS"}, {"name": None}])
def test_create__bad_name__400(
    organisation: Any, org_admin: Any, role: Any, payload: dict[str, Any]
) -> None:
    response = client_for(org_admin).post(url(organisation), payload, format="json")
    assert response.status_code == 400
    assert "name" in response.data
    assert Role.objects.count() == 1


def test_retrieve__admin__200(organisation: Any, org_admin: Any, role: Any) -> None:
    response = client_for(org_admin).get(url(organisation, role))
    assert response.data == {"id": role.pk, "name": "payments", "description": "Pay"}


def test_retrieve__role_of_another_organisation__404(organisation: Any, org_admin: Any) -> None:
    assert client_for(org_admin).get(url(organisation, f.RoleFactory())).status_code == 404


def test_patch__admin__edits_and_audits(organisation: Any, org_admin: Any, role: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, role), {"description": "Payments"})
    assert response.status_code == 200
    assert response.data["description"] == "Payments"
    (entry,) = audit("role", action="updated")
    assert entry.before["description"] == "Pay" and entry.after["description"] == "Payments"


def test_patch__same_values__no_audit(organisation: Any, org_admin: Any, role: Any) -> None:
    client = client_for(org_admin)
    response = client.patch(url(organisation, role), client.get(url(organisation, role)).data)
    assert response.status_code == 200
    assert audit("role") == []


def test_patch__name_taken__400(organisation: Any, org_admin: Any, role: Any) -> None:
    other = f.RoleFactory(organisation=organisation, name="ops")
    response = client_for(org_admin).patch(url(organisation, other), {"name": "Payments"})
    assert response.status_code == 400
    assert "name" in response.data


def test_patch__member__403(organisation: Any, org_user: Any, role: Any) -> None:
    response = client_for(org_user).patch(url(organisation, role), {"name": "x"})
    assert response.status_code == 403


def test_delete__admin__role_with_grants_and_assignments(
    organisation: Any, org_admin: Any, org_user: Any, role: Any
) -> None:
    f.RoleAssignmentFactory(role=role, user=org_user)
    f.grant(role, f.ProjectFactory(organisation=organisation), [VIEW_PROJECT])
    response = client_for(org_admin).delete(url(organisation, role))
    assert response.status_code == 204
    assert not Role.objects.filter(pk=role.pk).exists()
    assert not Grant.objects.filter(role_id=role.pk).exists()
    assert not RoleAssignment.objects.exists()
    (entry,) = audit("role", action="deleted")
    assert len(entry.before["grants"]) == 1
    assert entry.before["assignments"] == [{"role": role.pk, "user": org_user.pk}]


def test_delete__member__403(organisation: Any, org_user: Any, role: Any) -> None:
    assert client_for(org_user).delete(url(organisation, role)).status_code == 403
    assert Role.objects.filter(pk=role.pk).exists()


# -- assignments ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    field: str
    path: str

    def make(self, organisation: Any) -> Any:
        if self.field == "user":
            return f.member(organisation)
        if self.field == "group":
            return f.UserGroupFactory(organisation=organisation)
        return f.APIKeyFactory(organisation=organisation)

    def foreign(self) -> Any:
        other = f.OrganisationFactory()
        if self.field == "user":
            return f.member(other)
        return self.make(other)


KINDS = [Kind("user", "users"), Kind("group", "groups"), Kind("api_key", "api-keys")]


@pytest.fixture(params=KINDS, ids=[k.field for k in KINDS])
def kind(request: Any) -> Kind:
    return request.param


def a_url(organisation: Any, role: Any, kind: Kind, assignment: Any | None = None) -> str:
    base = f"{url(organisation, role)}{kind.path}/"
    return base if assignment is None else f"{base}{assignment.pk}/"


def test_assign__admin__201_and_audit(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    principal = kind.make(organisation)
    response = client_for(org_admin).post(
        a_url(organisation, role, kind), {kind.field: principal.pk}
    )
    assert response.status_code == 201, response.data
    assignment = RoleAssignment.objects.get()
    assert response.data == {"id": assignment.pk, kind.field: principal.pk}
    assert assignment.principal == principal
    (entry,) = audit("role_assignment", action="created")
    assert entry.after == {"role": role.pk, kind.field: principal.pk}


def test_assign__list_only_this_kind(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    mine = f.RoleAssignmentFactory(role=role, **{kind.field: kind.make(organisation)})
    for other in KINDS:
        if other is not kind:
            f.RoleAssignmentFactory(role=role, **{other.field: other.make(organisation)})
    f.RoleAssignmentFactory(
        role=f.RoleFactory(organisation=organisation), **{kind.field: kind.make(organisation)}
    )
    response = client_for(org_admin).get(a_url(organisation, role, kind))
    assert response.status_code == 200
    assert response.data["results"] == [
        {"id": mine.pk, kind.field: getattr(mine, f"{kind.field}_id")}
    ]


def test_assign__twice__400(organisation: Any, org_admin: Any, role: Any, kind: Kind) -> None:
    principal = kind.make(organisation)
    f.RoleAssignmentFactory(role=role, **{kind.field: principal})
    response = client_for(org_admin).post(
        a_url(organisation, role, kind), {kind.field: principal.pk}
    )
    assert response.status_code == 400
    assert kind.field in response.data


def test_assign__principal_of_another_organisation__400(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    response = client_for(org_admin).post(
        a_url(organisation, role, kind), {kind.field: kind.foreign().pk}
    )
    assert response.status_code == 400
    assert kind.field in response.data
    assert not RoleAssignment.objects.exists()


@pytest.mark.parametrize("value", [999999, None, "abc", True])
def test_assign__bad_id__400(
    organisation: Any, org_admin: Any, role: Any, kind: Kind, value: Any
) -> None:
    response = client_for(org_admin).post(
        a_url(organisation, role, kind), {kind.field: value}, format="json"
    )
    assert response.status_code == 400
    assert kind.field in response.data


def test_assign__member__403(organisation: Any, org_user: Any, role: Any, kind: Kind) -> None:
    principal = org_user if kind.field == "user" else kind.make(organisation)
    response = client_for(org_user).post(
        a_url(organisation, role, kind), {kind.field: principal.pk}
    )
    assert response.status_code == 403
    assert not RoleAssignment.objects.exists()


def test_assign__member_lists__403(organisation: Any, org_user: Any, role: Any, kind: Kind) -> None:
    assert client_for(org_user).get(a_url(organisation, role, kind)).status_code == 403


def test_assign__non_member__404(organisation: Any, role: Any, kind: Kind) -> None:
    assert client_for(f.UserFactory()).get(a_url(organisation, role, kind)).status_code == 404


def test_assign__role_of_another_organisation__404(
    organisation: Any, org_admin: Any, kind: Kind
) -> None:
    foreign = f.RoleFactory()
    assert client_for(org_admin).get(a_url(organisation, foreign, kind)).status_code == 404


def test_unassign__admin__204_and_audit(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    assignment = f.RoleAssignmentFactory(role=role, **{kind.field: kind.make(organisation)})
    response = client_for(org_admin).delete(a_url(organisation, role, kind, assignment))
    assert response.status_code == 204
    assert not RoleAssignment.objects.exists()
    (entry,) = audit("role_assignment", action="deleted")
    assert entry.before["role"] == role.pk


def test_unassign__through_the_wrong_kind__404(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    other = next(k for k in KINDS if k is not kind)
    assignment = f.RoleAssignmentFactory(role=role, **{other.field: other.make(organisation)})
    response = client_for(org_admin).delete(a_url(organisation, role, kind, assignment))
    assert response.status_code == 404
    assert RoleAssignment.objects.exists()


def test_unassign__member__403(organisation: Any, org_user: Any, role: Any, kind: Kind) -> None:
    assignment = f.RoleAssignmentFactory(role=role, **{kind.field: kind.make(organisation)})
    response = client_for(org_user).delete(a_url(organisation, role, kind, assignment))
    assert response.status_code == 403
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


def test_assignments__query_count__constant(
    organisation: Any, org_admin: Any, role: Any, kind: Kind
) -> None:
    def add(n: int) -> None:
        if kind.field == "user":
            start = User.objects.count()
            users = User.objects.bulk_create([User(username=f"a{start + i}") for i in range(n)])
            OrganisationMembership.objects.bulk_create(
                [OrganisationMembership(user=u, organisation=organisation) for u in users]
            )
            principals: list[Any] = users
        else:
            principals = [kind.make(organisation) for _ in range(n)]
        RoleAssignment.objects.bulk_create(
            [RoleAssignment(role=role, **{kind.field: p}) for p in principals]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(a_url(organisation, role, kind), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


def test_assigned_role__grants_reach_the_principal(organisation: Any, org_admin: Any) -> None:
    role = f.RoleFactory(organisation=organisation)
    f.grant(role, organisation, [CREATE_PROJECT])
    user = f.member(organisation)
    client_for(org_admin).post(a_url(organisation, role, KINDS[0]), {"user": user.pk})
    fresh = User.objects.get(pk=user.pk)
    response = client_for(fresh).get(f"/api/v1/organisations/{organisation.pk}/my-permissions/")
    assert response.data["permissions"] == [CREATE_PROJECT]
