"""`/api/v1/organisations/{id}/groups/` (docs/API.md; docs/PERMISSIONS.md "Viewing": every member reads;
organisation admins write; MANAGE_USER_GROUPS holders create, rename, delete and manage
the members of groups holding no grant and no role; Flagsmith: `users` round-trips)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import UserGroup
from permissions.catalogue import MANAGE_USER_GROUPS, VIEW_PROJECT
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def url(organisation: Any, group: Any | None = None) -> str:
    base = f"/api/v1/organisations/{organisation.pk}/groups/"
    return base if group is None else f"{base}{group.pk}/"


def group_audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="user_group", **kwargs).order_by("id"))


@pytest.fixture
def group_manager(organisation: Any) -> Any:
    user = f.member(organisation)
    f.grant(user, organisation, [MANAGE_USER_GROUPS])
    return user


@pytest.fixture
def group(organisation: Any, org_user: Any) -> Any:
    return f.UserGroupFactory(organisation=organisation, name="ops", users=[org_user])


def with_grant(group: Any, organisation: Any) -> Any:
    f.grant(group, f.ProjectFactory(organisation=organisation), [VIEW_PROJECT])
    return group


def with_role(group: Any, organisation: Any) -> Any:
    f.RoleAssignmentFactory(role=f.RoleFactory(organisation=organisation), group=group)
    return group


# -- read -------------------------------------------------------------------------------


def test_list__member__groups_with_user_ids(organisation: Any, org_user: Any, group: Any) -> None:
    other = f.member(organisation)
    group.users.add(other)
    f.UserGroupFactory()  # another organisation's
    response = client_for(org_user).get(url(organisation))
    assert response.status_code == 200
    assert response.data["results"] == [
        {"id": group.pk, "name": "ops", "users": sorted([org_user.pk, other.pk])}
    ]


def test_list__non_member__404(organisation: Any, group: Any) -> None:
    assert client_for(f.UserFactory()).get(url(organisation)).status_code == 404


def test_list__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(url(organisation)).status_code == 401


def test_retrieve__member__200(organisation: Any, org_user: Any, group: Any) -> None:
    response = client_for(org_user).get(url(organisation, group))
    assert response.status_code == 200
    assert response.data == {"id": group.pk, "name": "ops", "users": [org_user.pk]}


def test_retrieve__group_of_another_organisation__404(organisation: Any, org_admin: Any) -> None:
    foreign = f.UserGroupFactory()
    assert client_for(org_admin).get(url(organisation, foreign)).status_code == 404


def test_list__query_count__constant(organisation: Any, org_user: Any) -> None:
    members = [f.member(organisation) for _ in range(3)]

    def add(n: int) -> None:
        start = UserGroup.objects.count()
        groups = UserGroup.objects.bulk_create(
            [UserGroup(organisation=organisation, name=f"g{start + i}") for i in range(n)]
        )
        through = UserGroup.users.through
        through.objects.bulk_create([through(usergroup=g, user=u) for g in groups for u in members])

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_user.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url(organisation), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


# -- create -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["org_admin", "group_manager"])
def test_create__admin_or_group_manager__201_and_audit(
    organisation: Any, org_user: Any, who: str, request: Any
) -> None:
    actor = request.getfixturevalue(who)
    response = client_for(actor).post(url(organisation), {"name": "devs", "users": [org_user.pk]})
    assert response.status_code == 201, response.data
    assert response.data["name"] == "devs"
    assert response.data["users"] == [org_user.pk]
    created = UserGroup.objects.get(pk=response.data["id"])
    assert list(created.users.all()) == [org_user]
    (entry,) = group_audit(action="created")
    assert entry.after == {"name": "devs", "users": [org_user.pk]}
    assert entry.actor_user_id == actor.pk


def test_create__users_optional(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"name": "empty"})
    assert response.status_code == 201
    assert response.data["users"] == []


def test_create__plain_member__403(organisation: Any, org_user: Any) -> None:
    response = client_for(org_user).post(url(organisation), {"name": "mine"})
    assert response.status_code == 403
    assert not UserGroup.objects.exists()


def test_create__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).post(url(organisation), {"name": "x"}).status_code == 404


def test_create__duplicate_name_case_insensitive__400(
    organisation: Any, org_admin: Any, group: Any
) -> None:
    response = client_for(org_admin).post(url(organisation), {"name": "OPS"})
    assert response.status_code == 400
    assert "name" in response.data


@pytest.mark.parametrize(
    "users",
    [[999999], [None], "1", None, [1.5], ["1"], [True], "dup", "outsider"],
)
def test_create__bad_users__400_on_users(organisation: Any, org_admin: Any, users: Any) -> None:
    if users == "dup":
        users = [org_admin.pk, org_admin.pk]
    elif users == "outsider":
        users = [f.UserFactory().pk]
    response = client_for(org_admin).post(
        url(organisation), {"name": "g", "users": users}, format="json"
    )
    assert response.status_code == 400
    assert list(response.data) == ["users"]
    assert isinstance(response.data["users"], list)
    assert not UserGroup.objects.exists()
    assert group_audit() == []


# -- update -----------------------------------------------------------------------------


def test_put__what_was_read__no_change_no_audit(
    organisation: Any, org_admin: Any, group: Any
) -> None:
    group.users.add(f.member(organisation))
    client = client_for(org_admin)
    read = client.get(url(organisation, group)).data
    response = client.put(url(organisation, group), read)
    assert response.status_code == 200, response.data
    assert response.data == read
    assert group_audit() == []


def test_patch__replace_users__audit_before_after(
    organisation: Any, org_admin: Any, org_user: Any, group: Any
) -> None:
    newcomer = f.member(organisation)
    response = client_for(org_admin).patch(url(organisation, group), {"users": [newcomer.pk]})
    assert response.status_code == 200
    assert response.data["users"] == [newcomer.pk]
    (entry,) = group_audit(action="updated")
    assert entry.before == {"name": "ops", "users": [org_user.pk]}
    assert entry.after == {"name": "ops", "users": [newcomer.pk]}


def test_patch__rename(organisation: Any, org_admin: Any, group: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, group), {"name": "platform"})
    assert response.status_code == 200
    assert response.data["name"] == "platform"
    group.refresh_from_db()
    assert group.name == "platform"


def test_patch__rename_to_another_groups_name__400(
    organisation: Any, org_admin: Any, group: Any
) -> None:
    other = f.UserGroupFactory(organisation=organisation, name="devs")
    response = client_for(org_admin).patch(url(organisation, other), {"name": "Ops"})
    assert response.status_code == 400
    assert "name" in response.data


def test_put__without_users__empties_the_group(
    organisation: Any, org_admin: Any, group: Any
) -> None:
    response = client_for(org_admin).put(url(organisation, group), {"name": "ops"})
    assert response.status_code == 200
    assert response.data["users"] == []


def test_put__without_name__400(organisation: Any, org_admin: Any, group: Any) -> None:
    response = client_for(org_admin).put(url(organisation, group), {"users": []})
    assert response.status_code == 400
    assert "name" in response.data


@pytest.mark.parametrize("users", [[None], [999999], "dup", "outsider"])
def test_patch__bad_users__400_nothing_changed(
    organisation: Any, org_admin: Any, org_user: Any, group: Any, users: Any
) -> None:
    if users == "dup":
        users = [org_user.pk, org_user.pk]
    elif users == "outsider":
        users = [f.UserFactory().pk]
    response = client_for(org_admin).patch(
        url(organisation, group), {"users": users}, format="json"
    )
    assert response.status_code == 400
    assert "users" in response.data
    assert list(group.users.all()) == [org_user]
    assert group_audit() == []


def test_patch__changing_id__400(organisation: Any, org_admin: Any, group: Any) -> None:
    response = client_for(org_admin).patch(url(organisation, group), {"id": group.pk + 1})
    assert response.status_code == 400


def test_patch__group_manager__bare_group__200(
    organisation: Any, group_manager: Any, group: Any
) -> None:
    response = client_for(group_manager).patch(
        url(organisation, group), {"users": [group_manager.pk]}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("holding", [with_grant, with_role])
def test_patch__group_manager__group_holding_access__403(
    organisation: Any, group_manager: Any, group: Any, holding: Any
) -> None:
    holding(group, organisation)
    response = client_for(group_manager).patch(
        url(organisation, group), {"users": [group_manager.pk]}
    )
    assert response.status_code == 403
    assert not group.users.filter(pk=group_manager.pk).exists()
    assert group_audit() == []


@pytest.mark.parametrize("holding", [with_grant, with_role])
def test_patch__admin__group_holding_access__200(
    organisation: Any, org_admin: Any, group: Any, holding: Any
) -> None:
    holding(group, organisation)
    response = client_for(org_admin).patch(url(organisation, group), {"name": "renamed"})
    assert response.status_code == 200


def test_patch__plain_member__403(organisation: Any, org_user: Any, group: Any) -> None:
    response = client_for(org_user).patch(url(organisation, group), {"name": "mine"})
    assert response.status_code == 403


def test_patch__forbidden_before_validation(organisation: Any, org_user: Any, group: Any) -> None:
    response = client_for(org_user).patch(url(organisation, group), {"users": [None]})
    assert response.status_code == 403


# -- delete -----------------------------------------------------------------------------


def test_delete__admin__group_with_grants_and_roles_goes_with_them(
    organisation: Any, org_admin: Any, group: Any
) -> None:
    with_grant(group, organisation)
    with_role(group, organisation)
    response = client_for(org_admin).delete(url(organisation, group))
    assert response.status_code == 204
    assert not UserGroup.objects.filter(pk=group.pk).exists()
    assert not Grant.objects.filter(group_id=group.pk).exists()
    (entry,) = group_audit(action="deleted")
    assert len(entry.before["grants"]) == 1
    assert len(entry.before["roles"]) == 1


def test_delete__group_manager__bare_group__204(
    organisation: Any, group_manager: Any, group: Any
) -> None:
    assert client_for(group_manager).delete(url(organisation, group)).status_code == 204


@pytest.mark.parametrize("holding", [with_grant, with_role])
def test_delete__group_manager__group_holding_access__403(
    organisation: Any, group_manager: Any, group: Any, holding: Any
) -> None:
    holding(group, organisation)
    assert client_for(group_manager).delete(url(organisation, group)).status_code == 403
    assert UserGroup.objects.filter(pk=group.pk).exists()


def test_delete__plain_member__403(organisation: Any, org_user: Any, group: Any) -> None:
    assert client_for(org_user).delete(url(organisation, group)).status_code == 403


def test_delete__non_member__404(organisation: Any, group: Any) -> None:
    assert client_for(f.UserFactory()).delete(url(organisation, group)).status_code == 404


def test_patch_group__manager_joins_a_group_holding_access__403_no_access_gained(
    organisation: Any, group_manager: Any, group: Any
) -> None:
    """A MANAGE_USER_GROUPS holder cannot join a group that holds access."""
    project = f.ProjectFactory(organisation=organisation)
    f.grant(group, project, [], admin=True)
    response = client_for(group_manager).patch(
        url(organisation, group), {"users": [group_manager.pk]}
    )
    assert response.status_code == 403
    fresh = User.objects.get(pk=group_manager.pk)
    response = client_for(fresh).get(f"/api/v1/projects/{project.pk}/my-permissions/")
    assert response.status_code == 404
