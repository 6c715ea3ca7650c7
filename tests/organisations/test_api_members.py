"""`/api/v1/organisations/{id}/users/` (docs/API.md; docs/PERMISSIONS.md "Viewing": every member reads, admins
write; removing a member removes their grants, group memberships and role assignments in
that organisation; an organisation keeps at least one ADMIN)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import MembershipRole, OrganisationMembership, RoleAssignment
from permissions import engine
from permissions.catalogue import (
    CREATE_PROJECT,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def url(organisation: Any, user: Any | None = None) -> str:
    base = f"/api/v1/organisations/{organisation.pk}/users/"
    return base if user is None else f"{base}{user.pk}/"


def membership_audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(
        AuditLogEntry.objects.filter(object_type="organisation_membership", **kwargs).order_by("id")
    )


# -- list -------------------------------------------------------------------------------


def test_list__member__members_with_fields(organisation: Any, org_admin: Any) -> None:
    user = f.member(organisation, username="bob", email="bob@example.com")
    f.member(f.OrganisationFactory())  # another organisation's member
    response = client_for(user).get(url(organisation))
    assert response.status_code == 200
    assert response.data["results"] == [
        {
            "id": org_admin.pk,
            "email": org_admin.email,
            "username": org_admin.username,
            "role": "ADMIN",
        },
        {"id": user.pk, "email": "bob@example.com", "username": "bob", "role": "USER"},
    ]


def test_list__filter_by_role(organisation: Any, org_admin: Any, org_user: Any) -> None:
    response = client_for(org_user).get(url(organisation), {"role": "ADMIN"})
    assert [m["id"] for m in response.data["results"]] == [org_admin.pk]


def test_list__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(url(organisation)).status_code == 404


def test_list__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(url(organisation)).status_code == 401


def test_list__query_count__constant(organisation: Any, org_admin: Any) -> None:
    def add(n: int) -> None:
        start = User.objects.count()
        users = User.objects.bulk_create(
            [User(username=f"m{start + i}", email=f"m{start + i}@x.org") for i in range(n)]
        )
        OrganisationMembership.objects.bulk_create(
            [OrganisationMembership(user=u, organisation=organisation) for u in users]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url(organisation), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(4)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


# -- add --------------------------------------------------------------------------------


def test_create__admin__201_and_audit(organisation: Any, org_admin: Any) -> None:
    user = f.UserFactory()
    response = client_for(org_admin).post(url(organisation), {"user": user.pk, "role": "ADMIN"})
    assert response.status_code == 201
    assert response.data == {
        "id": user.pk,
        "email": user.email,
        "username": user.username,
        "role": "ADMIN",
    }
    assert OrganisationMembership.objects.get(organisation=organisation, user=user).is_admin
    (entry,) = membership_audit(action="created")
    assert entry.actor_user_id == org_admin.pk


def test_create__role_defaults_to_user(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"user": f.UserFactory().pk})
    assert response.status_code == 201
    assert response.data["role"] == "USER"


def test_create__already_a_member__400(organisation: Any, org_admin: Any, org_user: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"user": org_user.pk})
    assert response.status_code == 400
    assert "user" in response.data


@pytest.mark.parametrize("value", [999999, None, "abc", True])
def test_create__bad_user__400(organisation: Any, org_admin: Any, value: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"user": value}, format="json")
    assert response.status_code == 400
    assert "user" in response.data


@pytest.mark.parametrize("role", ["OWNER", "", None, "admin"])
def test_create__bad_role__400(organisation: Any, org_admin: Any, role: Any) -> None:
    response = client_for(org_admin).post(
        url(organisation), {"user": f.UserFactory().pk, "role": role}, format="json"
    )
    assert response.status_code == 400
    assert "role" in response.data


def test_create__member__403(organisation: Any, org_user: Any) -> None:
    user = f.UserFactory()
    response = client_for(org_user).post(url(organisation), {"user": user.pk})
    assert response.status_code == 403
    assert not OrganisationMembership.objects.filter(user=user).exists()


def test_create__member_cannot_promote_themself__403(organisation: Any, org_user: Any) -> None:
    response = client_for(org_user).patch(url(organisation, org_user), {"role": "ADMIN"})
    assert response.status_code == 403
    assert not OrganisationMembership.objects.get(user=org_user).is_admin


def test_create__non_member__404(organisation: Any) -> None:
    user = f.UserFactory()
    assert client_for(user).post(url(organisation), {"user": user.pk}).status_code == 404


def test_create__admin_api_key__201(organisation: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    response = client_for(key).post(url(organisation), {"user": f.UserFactory().pk})
    assert response.status_code == 201
    (entry,) = membership_audit()
    assert entry.actor_api_key_id == key.pk


# -- change role ------------------------------------------------------------------------


def test_patch__admin__changes_role_and_audits(
    organisation: Any, org_admin: Any, org_user: Any
) -> None:
    response = client_for(org_admin).patch(url(organisation, org_user), {"role": "ADMIN"})
    assert response.status_code == 200
    assert response.data["role"] == "ADMIN"
    (entry,) = membership_audit(action="updated")
    assert entry.before == {"user": org_user.pk, "role": "USER"}
    assert entry.after == {"user": org_user.pk, "role": "ADMIN"}


def test_patch__same_role__no_audit(organisation: Any, org_admin: Any, org_user: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, org_user), {"role": "USER"})
    assert response.status_code == 200
    assert membership_audit() == []


def test_patch__demoting_the_last_admin__400(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, org_admin), {"role": "USER"})
    assert response.status_code == 400
    assert "role" in response.data
    assert OrganisationMembership.objects.get(user=org_admin).is_admin
    assert membership_audit() == []


def test_patch__demoting_one_of_two_admins__200(organisation: Any, org_admin: Any) -> None:
    other = f.member(organisation, admin=True)
    response = client_for(org_admin).patch(url(organisation, other), {"role": "USER"})
    assert response.status_code == 200


def test_patch__not_a_member__404(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, f.UserFactory()), {"role": "USER"})
    assert response.status_code == 404


def test_patch__missing_or_bad_role__400(organisation: Any, org_admin: Any, org_user: Any) -> None:
    client = client_for(org_admin)
    assert client.patch(url(organisation, org_user), {}).status_code == 400
    assert client.patch(url(organisation, org_user), {"role": "KING"}).status_code == 400


def test_patch__member__403(organisation: Any, org_user: Any, org_admin: Any) -> None:
    response = client_for(org_user).patch(url(organisation, org_admin), {"role": "USER"})
    assert response.status_code == 403


# -- remove -----------------------------------------------------------------------------


def _give_everything(organisation: Any, user: Any) -> dict[str, Any]:
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    group = f.UserGroupFactory(organisation=organisation, users=[user])
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    f.grant(group, project, [VIEW_PROJECT])
    grants = [
        f.grant(user, organisation, [CREATE_PROJECT]),
        f.grant(user, project, [VIEW_PROJECT], admin=True),
        f.grant(user, environment, [VIEW_ENVIRONMENT]),
    ]
    return {
        "project": project,
        "environment": environment,
        "group": group,
        "role": role,
        "grants": grants,
    }


def test_delete__admin__removes_grants_groups_and_roles_in_that_organisation(
    organisation: Any, org_admin: Any, org_user: Any
) -> None:
    given = _give_everything(organisation, org_user)
    elsewhere = f.OrganisationFactory()
    f.MembershipFactory(user=org_user, organisation=elsewhere)
    other_group = f.UserGroupFactory(organisation=elsewhere, users=[org_user])
    other_grant = f.grant(org_user, elsewhere, [CREATE_PROJECT])
    other_role = f.RoleFactory(organisation=elsewhere)
    other_assignment = f.RoleAssignmentFactory(role=other_role, user=org_user)

    response = client_for(org_admin).delete(url(organisation, org_user))
    assert response.status_code == 204
    assert not OrganisationMembership.objects.filter(
        organisation=organisation, user=org_user
    ).exists()
    assert not Grant.objects.filter(user=org_user, organisation=organisation).exists()
    assert not given["group"].users.filter(pk=org_user.pk).exists()
    assert not RoleAssignment.objects.filter(user=org_user, role=given["role"]).exists()
    # The group, the role and their grants stay; so does everything in the other organisation.
    assert Grant.objects.filter(group=given["group"]).exists()
    assert Grant.objects.filter(role=given["role"]).exists()
    assert Grant.objects.filter(pk=other_grant.pk).exists()
    assert other_group.users.filter(pk=org_user.pk).exists()
    assert RoleAssignment.objects.filter(pk=other_assignment.pk).exists()

    (entry,) = membership_audit(action="deleted")
    assert entry.before["user"] == org_user.pk
    assert sorted(g["id"] for g in entry.before["grants"]) == sorted(g.pk for g in given["grants"])
    assert entry.before["groups"] == [given["group"].pk]
    assert entry.before["roles"] == [given["role"].pk]
    assert AuditLogEntry.objects.filter(action="deleted").count() == 1


def test_delete__re_adding_gives_nothing_back(
    organisation: Any, org_admin: Any, org_user: Any
) -> None:
    given = _give_everything(organisation, org_user)
    client = client_for(org_admin)
    assert client.delete(url(organisation, org_user)).status_code == 204
    assert client.post(url(organisation), {"user": org_user.pk}).status_code == 201
    fresh = User.objects.get(pk=org_user.pk)
    assert not engine.can_view(fresh, given["project"])
    assert not engine.can_view(fresh, given["environment"])
    assert not engine.allowed(fresh, CREATE_PROJECT, organisation)
    response = client_for(fresh).get(f"/api/v1/projects/{given['project'].pk}/my-permissions/")
    assert response.status_code == 404


def test_delete__the_last_admin__400(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).delete(url(organisation, org_admin))
    assert response.status_code == 400
    assert "user" in response.data
    assert OrganisationMembership.objects.filter(user=org_admin).exists()
    assert membership_audit() == []


def test_delete__one_of_two_admins_may_leave(organisation: Any, org_admin: Any) -> None:
    f.member(organisation, admin=True)
    assert client_for(org_admin).delete(url(organisation, org_admin)).status_code == 204


def test_delete__member__403(organisation: Any, org_admin: Any, org_user: Any) -> None:
    other = f.member(organisation)
    assert client_for(org_user).delete(url(organisation, other)).status_code == 403
    assert OrganisationMembership.objects.filter(user=other).exists()


def test_delete__not_a_member__404(organisation: Any, org_admin: Any) -> None:
    assert client_for(org_admin).delete(url(organisation, f.UserFactory())).status_code == 404


def test_delete__non_member_caller__404(organisation: Any, org_user: Any) -> None:
    assert client_for(f.UserFactory()).delete(url(organisation, org_user)).status_code == 404


def test_retrieve_and_put__405(organisation: Any, org_admin: Any, org_user: Any) -> None:
    client = client_for(org_admin)
    assert client.get(url(organisation, org_user)).status_code == 405
    assert client.put(url(organisation, org_user), {"role": "USER"}).status_code == 405


def test_role_field__matches_membership_role_values() -> None:
    assert set(MembershipRole.values) == {"ADMIN", "USER"}
