"""Never widen (docs/PERMISSIONS.md, "Never widen"): no edit elsewhere leaves any principal with more access.

For every edit that could widen a grant, or that must take an effect away, the edit is made
through the API, and the access is then checked twice: with the engine, for a principal and a
feature reloaded from the database, and through an HTTP request authenticated for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import RestrictedError
from django.utils import timezone

from audit.models import AuditLogEntry
from features.models import Feature
from organisations.models import OrganisationAPIKey, OrganisationMembership, RoleAssignment
from organisations.services import membership_delete
from permissions import engine
from permissions.catalogue import (
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_TAGS,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Tag
from projects.services import tag_delete
from tagwarden.errors import Conflict
from tests import factories as f
from tests.support.access import allowed, fresh, toggle
from tests.support.clients import token_client

pytestmark = pytest.mark.django_db
User = get_user_model()
API = "/api/v1"


@dataclass
class World:
    """One organisation with a project, an environment, two tags and three features:
    `f_pay` tagged payments, `f_other` tagged other, `f_plain` untagged."""

    organisation: Any
    project: Any
    environment: Any
    admin: Any
    payments: Tag
    other: Tag
    f_pay: Feature
    f_other: Feature
    f_plain: Feature

    def member(self, **kwargs: Any) -> Any:
        return f.member(self.organisation, **kwargs)

    def role(self, name: str = "payments") -> Any:
        """A role holding UPDATE_FEATURE_STATE on payments features of the environment."""
        role = f.RoleFactory(organisation=self.organisation, name=name)
        f.grant(role, self.environment, {UPDATE_FEATURE_STATE: [self.payments]})
        return role

    def org_url(self) -> str:
        return f"{API}/organisations/{self.organisation.pk}"


@pytest.fixture
def world(organisation: Any, project: Any, environment: Any) -> World:
    payments = f.TagFactory(project=project, label="payments")
    other = f.TagFactory(project=project, label="other")
    return World(
        organisation=organisation,
        project=project,
        environment=environment,
        admin=f.member(organisation, admin=True),
        payments=payments,
        other=other,
        f_pay=f.FeatureFactory(project=project, tags=[payments]),
        f_other=f.FeatureFactory(project=project, tags=[other]),
        f_plain=f.FeatureFactory(project=project),
    )


def role_user(world: World, role: Any) -> Any:
    user = world.member()
    f.RoleAssignmentFactory(role=role, user=user)
    return user


def assert_no_access(principal: Any, world: World) -> None:
    """Nothing reachable: no key anywhere in the organisation, nothing visible, HTTP 404/401."""
    principal = fresh(principal)
    assert not engine.can_view(principal, world.project)
    assert not engine.can_view(principal, world.environment)
    for feature in (world.f_pay, world.f_other, world.f_plain):
        assert not allowed(principal, UPDATE_FEATURE_STATE, world.environment, feature)
        assert toggle(principal, feature, world.environment) in (401, 404)
    assert not allowed(principal, CREATE_PROJECT, world.organisation)
    assert not allowed(principal, VIEW_PROJECT, world.project)


# --------------------------------------------------------------------------------------
# Deleting a tag
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["project", "environment"])
def test_delete_tag__named_by_role_grant__409_naming_roles_and_entry_keeps_its_tag(
    world: World, scope: str
) -> None:
    role = f.RoleFactory(organisation=world.organisation, name="payments")
    target = world.project if scope == "project" else world.environment
    key = DELETE_FEATURE if scope == "project" else UPDATE_FEATURE_STATE
    g = f.grant(role, target, {key: [world.payments]})
    user = role_user(world, role)

    response = token_client(world.admin).delete(
        f"{API}/projects/{world.project.pk}/tags/{world.payments.pk}/"
    )

    assert response.status_code == 409
    assert response.data["code"] == "tag_in_use"
    assert response.data["roles"] == [{"id": role.pk, "name": "payments"}]
    assert Tag.objects.filter(pk=world.payments.pk).exists()
    entry = GrantEntry.objects.get(grant=g, key=key)
    assert list(entry.tags.values_list("pk", flat=True)) == [world.payments.pk]
    assert not AuditLogEntry.objects.filter(object_type="tag").exists()
    if scope == "environment":
        assert allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
        assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_plain)
        assert toggle(user, world.f_plain, world.environment) == 403


def test_delete_tag__named_by_grant__refused_to_the_system_actor_too(world: World) -> None:
    world.role()
    with pytest.raises(Conflict) as raised:
        tag_delete(tag=world.payments, actor=None)
    assert raised.value.code == "tag_in_use"
    assert Tag.objects.filter(pk=world.payments.pk).exists()


def test_delete_tag__named_by_grant__orm_delete_is_restricted(world: World) -> None:
    """The model keeps the invariant even where services are bypassed (admin, shell): the
    entry would otherwise lose its last tag and become untagged, reaching every feature."""
    world.role()
    with pytest.raises(RestrictedError):
        Tag.objects.get(pk=world.payments.pk).delete()
    assert GrantEntryTag.objects.filter(tag=world.payments).exists()


def test_delete_tag__restricted_and_attached__409_and_feature_stays_restricted(
    world: World,
) -> None:
    world.payments.is_restricted = True
    world.payments.save()
    untagged = world.member()
    f.grant(untagged, world.environment, [UPDATE_FEATURE_STATE])

    response = token_client(world.admin).delete(
        f"{API}/projects/{world.project.pk}/tags/{world.payments.pk}/"
    )

    assert response.status_code == 409
    assert response.data["code"] == "tag_in_use"
    assert not allowed(untagged, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
    assert toggle(untagged, world.f_pay, world.environment) == 403


def test_delete_tag__grant_named_by_manage_tags_holder__403_and_kept(world: World) -> None:
    world.role()
    manager = world.member()
    f.grant(manager, world.project, [MANAGE_TAGS])
    response = token_client(manager).delete(
        f"{API}/projects/{world.project.pk}/tags/{world.payments.pk}/"
    )
    assert response.status_code == 403
    assert Tag.objects.filter(pk=world.payments.pk).exists()


# --------------------------------------------------------------------------------------
# Removing a member
# --------------------------------------------------------------------------------------


@pytest.fixture
def well_connected(world: World) -> dict[str, Any]:
    """A USER member reaching the environment through every path: own grants at every level,
    a group with a grant and a role, and a role of their own; plus a colleague in the same
    group, who must keep the group's access."""
    user = world.member()
    colleague = world.member()
    f.grant(user, world.organisation, [CREATE_PROJECT])
    f.grant(user, world.project, [VIEW_PROJECT, CREATE_FEATURE])
    f.grant(user, world.environment, [VIEW_ENVIRONMENT])
    group = f.UserGroupFactory(organisation=world.organisation, users=[user, colleague])
    f.grant(group, world.environment, [UPDATE_FEATURE_STATE])
    group_role = f.RoleFactory(organisation=world.organisation, name="group-role")
    f.grant(group_role, world.project, [MANAGE_TAGS])
    f.RoleAssignmentFactory(role=group_role, group=group)
    own_role = world.role("own-role")
    f.RoleAssignmentFactory(role=own_role, user=user)
    return {"user": user, "colleague": colleague, "group": group, "own_role": own_role}


def test_remove_member__every_effect_goes_at_once(
    world: World, well_connected: dict[str, Any]
) -> None:
    user, group = well_connected["user"], well_connected["group"]
    assert toggle(user, world.f_plain, world.environment) == 200

    response = token_client(world.admin).delete(f"{world.org_url()}/users/{user.pk}/")

    assert response.status_code == 204
    assert not Grant.objects.filter(organisation=world.organisation, user=user).exists()
    assert not group.users.filter(pk=user.pk).exists()
    assert not RoleAssignment.objects.filter(user=user).exists()
    assert_no_access(user, world)
    client = token_client(user)
    assert client.get(f"{world.org_url()}/").status_code == 404
    assert client.get(f"{API}/projects/{world.project.pk}/").status_code == 404
    assert client.get(f"{API}/projects/").data["results"] == []
    assert client.get(f"{API}/environments/").data["results"] == []
    # the group and its role still serve the colleague
    colleague = well_connected["colleague"]
    assert allowed(colleague, UPDATE_FEATURE_STATE, world.environment, world.f_plain)
    assert allowed(colleague, MANAGE_TAGS, world.project)


def test_remove_member__one_audit_entry_describing_what_went(
    world: World, well_connected: dict[str, Any]
) -> None:
    user = well_connected["user"]
    token_client(world.admin).delete(f"{world.org_url()}/users/{user.pk}/")
    (entry,) = AuditLogEntry.objects.filter(object_type="organisation_membership")
    assert entry.action == "deleted"
    assert entry.before["groups"] == [well_connected["group"].pk]
    assert entry.before["roles"] == [well_connected["own_role"].pk]
    assert len(entry.before["grants"]) == 3


def test_remove_member__re_adding_gives_nothing_back(
    world: World, well_connected: dict[str, Any]
) -> None:
    user = well_connected["user"]
    client = token_client(world.admin)
    assert client.delete(f"{world.org_url()}/users/{user.pk}/").status_code == 204

    response = client.post(f"{world.org_url()}/users/", {"user": user.pk}, format="json")

    assert response.status_code == 201
    assert_no_access(user, world)
    mine = token_client(user).get(f"{world.org_url()}/my-permissions/")
    assert mine.status_code == 200
    assert mine.data["admin"] is False
    assert mine.data["permissions"] == []
    assert mine.data["tag_based_permissions"] == []


def test_remove_member__other_organisations_are_untouched(
    world: World, well_connected: dict[str, Any]
) -> None:
    user = well_connected["user"]
    elsewhere = f.OrganisationFactory()
    f.MembershipFactory(user=user, organisation=elsewhere)
    other_project = f.ProjectFactory(organisation=elsewhere)
    f.grant(user, other_project, [VIEW_PROJECT])

    token_client(world.admin).delete(f"{world.org_url()}/users/{user.pk}/")

    assert allowed(user, VIEW_PROJECT, other_project)
    assert OrganisationMembership.objects.filter(user=user, organisation=elsewhere).exists()


def test_remove_member__demoted_admin__loses_admin_at_once(world: World) -> None:
    second_admin = world.member(admin=True)
    assert toggle(second_admin, world.f_pay, world.environment) == 200
    response = token_client(world.admin).patch(
        f"{world.org_url()}/users/{second_admin.pk}/", {"role": "USER"}, format="json"
    )
    assert response.status_code == 200
    assert not engine.is_admin(fresh(second_admin), world.organisation)
    assert_no_access(second_admin, world)


def test_membership_row_gone__grants_left_behind_never_count(
    world: World, well_connected: dict[str, Any]
) -> None:
    """Membership gates every decision, even where a row is deleted behind the services'
    back (shell, admin, a bug): the grants, group and role links left behind give nothing."""
    user = well_connected["user"]
    OrganisationMembership.objects.filter(user=user, organisation=world.organisation).delete()
    assert Grant.objects.filter(user=user).exists()
    assert_no_access(user, world)


def test_remove_member__service__same_effect(world: World, well_connected: dict[str, Any]) -> None:
    user = well_connected["user"]
    membership_delete(
        membership=OrganisationMembership.objects.get(user=user, organisation=world.organisation),
        actor=world.admin,
    )
    f.MembershipFactory(user=user, organisation=world.organisation)
    assert_no_access(user, world)


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


def test_user_removed_from_group__loses_the_groups_and_its_roles_access(
    world: World, well_connected: dict[str, Any]
) -> None:
    user, colleague, group = (well_connected[k] for k in ("user", "colleague", "group"))
    # only the group gave UPDATE_FEATURE_STATE on untagged features and MANAGE_TAGS
    assert allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_plain)
    assert allowed(user, MANAGE_TAGS, world.project)

    response = token_client(world.admin).put(
        f"{world.org_url()}/groups/{group.pk}/",
        {"name": group.name, "users": [colleague.pk]},
        format="json",
    )

    assert response.status_code == 200
    assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_plain)
    assert not allowed(user, MANAGE_TAGS, world.project)
    assert toggle(user, world.f_plain, world.environment) == 403
    tag_response = token_client(user).post(
        f"{API}/projects/{world.project.pk}/tags/", {"label": "x"}, format="json"
    )
    assert tag_response.status_code == 403
    # own role still reaches payments features only
    assert toggle(user, world.f_pay, world.environment) == 200
    assert allowed(colleague, MANAGE_TAGS, world.project)


def test_group_deleted__its_grants_and_role_assignments_go_with_it(
    world: World, well_connected: dict[str, Any]
) -> None:
    user, group = well_connected["user"], well_connected["group"]
    response = token_client(world.admin).delete(f"{world.org_url()}/groups/{group.pk}/")
    assert response.status_code == 204
    assert not Grant.objects.filter(group_id=group.pk).exists()
    assert not RoleAssignment.objects.filter(group_id=group.pk).exists()
    assert not allowed(user, MANAGE_TAGS, world.project)
    assert toggle(user, world.f_plain, world.environment) == 403


def test_group_manager__cannot_join_a_group_holding_access__403(world: World) -> None:
    manager = world.member()
    f.grant(manager, world.organisation, [MANAGE_USER_GROUPS])
    group = f.UserGroupFactory(organisation=world.organisation)
    f.grant(group, world.environment, [UPDATE_FEATURE_STATE])

    response = token_client(manager).put(
        f"{world.org_url()}/groups/{group.pk}/",
        {"name": group.name, "users": [manager.pk]},
        format="json",
    )

    assert response.status_code == 403
    assert not group.users.exists()
    assert toggle(manager, world.f_plain, world.environment) == 404


def test_group_manager__cannot_give_their_group_a_role__403(world: World) -> None:
    manager = world.member()
    f.grant(manager, world.organisation, [MANAGE_USER_GROUPS])
    client = token_client(manager)
    created = client.post(
        f"{world.org_url()}/groups/", {"name": "mine", "users": [manager.pk]}, format="json"
    )
    assert created.status_code == 201
    role = world.role()

    response = client.post(
        f"{world.org_url()}/roles/{role.pk}/groups/", {"group": created.data["id"]}, format="json"
    )

    assert response.status_code == 403
    assert not RoleAssignment.objects.filter(role=role).exists()
    assert toggle(manager, world.f_pay, world.environment) == 404


def test_group_manager__cannot_grant_their_group_project_access__404(
    world: World,
) -> None:
    manager = world.member()
    f.grant(manager, world.organisation, [MANAGE_USER_GROUPS])
    group = f.UserGroupFactory(organisation=world.organisation, users=[manager])
    response = token_client(manager).post(
        f"{API}/projects/{world.project.pk}/user-group-permissions/",
        {"group": group.pk, "admin": True, "permissions": []},
        format="json",
    )
    assert response.status_code == 404  # cannot even view the project
    assert not Grant.objects.filter(group=group).exists()


# --------------------------------------------------------------------------------------
# Roles and role assignments
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["users", "groups", "api-keys"])
def test_role_assignment_deleted__the_assignee_loses_the_roles_access(
    world: World, kind: str
) -> None:
    role = world.role()
    if kind == "users":
        principal = world.member()
        assignment = f.RoleAssignmentFactory(role=role, user=principal)
    elif kind == "groups":
        principal = world.member()
        group = f.UserGroupFactory(organisation=world.organisation, users=[principal])
        assignment = f.RoleAssignmentFactory(role=role, group=group)
    else:
        principal = f.APIKeyFactory(organisation=world.organisation)
        assignment = f.RoleAssignmentFactory(role=role, api_key=principal)
    assert toggle(principal, world.f_pay, world.environment) == 200

    response = token_client(world.admin).delete(
        f"{world.org_url()}/roles/{role.pk}/{kind}/{assignment.pk}/"
    )

    assert response.status_code == 204
    assert not allowed(principal, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
    assert toggle(principal, world.f_pay, world.environment) == 404


def test_role_deleted__every_assignee_loses_its_access(world: World) -> None:
    role = world.role()
    user = role_user(world, role)
    api_key = f.APIKeyFactory(organisation=world.organisation)
    f.RoleAssignmentFactory(role=role, api_key=api_key)

    response = token_client(world.admin).delete(f"{world.org_url()}/roles/{role.pk}/")

    assert response.status_code == 204
    assert not Grant.objects.filter(role_id=role.pk).exists()
    for principal in (user, api_key):
        assert not allowed(principal, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
        assert toggle(principal, world.f_pay, world.environment) == 404


def test_role_grant_tags_replaced__old_tag_features_are_out_of_reach(world: World) -> None:
    role = world.role()
    user = role_user(world, role)
    g = Grant.objects.get(role=role)

    response = token_client(world.admin).put(
        f"{world.org_url()}/roles/{role.pk}/environments-permissions/{g.pk}/",
        {
            "environment": world.environment.pk,
            "admin": False,
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [world.other.pk]}],
        },
        format="json",
    )

    assert response.status_code == 200
    assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
    assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_plain)
    assert allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_other)
    assert toggle(user, world.f_pay, world.environment) == 403


def test_role_grant_entry_removed__key_is_gone_not_untagged(world: World) -> None:
    role = world.role()
    user = role_user(world, role)
    g = Grant.objects.get(role=role)
    response = token_client(world.admin).patch(
        f"{world.org_url()}/roles/{role.pk}/environments-permissions/{g.pk}/",
        {"permissions": [{"permission_key": VIEW_ENVIRONMENT, "tags": []}]},
        format="json",
    )
    assert response.status_code == 200
    for feature in (world.f_pay, world.f_other, world.f_plain):
        assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, feature)
        assert toggle(user, feature, world.environment) == 403


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


@pytest.fixture(params=["admin_key", "role_key"])
def api_key(request: Any, world: World) -> OrganisationAPIKey:
    if request.param == "admin_key":
        return f.APIKeyFactory(organisation=world.organisation, is_admin=True)
    key = f.APIKeyFactory(organisation=world.organisation)
    f.RoleAssignmentFactory(role=world.role(), api_key=key)
    return key


def assert_key_is_no_principal(api_key: OrganisationAPIKey, world: World) -> None:
    loaded = OrganisationAPIKey.objects.filter(pk=api_key.pk).first()
    if loaded is not None:
        assert not engine.allowed(loaded, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
        assert not engine.can_view(loaded, world.organisation)
    client = token_client(api_key)
    assert client.get(f"{API}/organisations/").status_code == 401
    assert client.get(f"{world.org_url()}/").status_code == 401
    assert toggle(api_key, world.f_pay, world.environment) == 401


def test_api_key_revoked__401_on_the_next_request(world: World, api_key: Any) -> None:
    assert toggle(api_key, world.f_pay, world.environment) == 200
    response = token_client(world.admin).patch(
        f"{world.org_url()}/api-keys/{api_key.pk}/", {"revoked": True}, format="json"
    )
    assert response.status_code == 200
    assert_key_is_no_principal(api_key, world)


def test_api_key_revoked__cannot_be_unrevoked(world: World, api_key: Any) -> None:
    client = token_client(world.admin)
    client.patch(f"{world.org_url()}/api-keys/{api_key.pk}/", {"revoked": True}, format="json")
    response = client.patch(
        f"{world.org_url()}/api-keys/{api_key.pk}/", {"revoked": False}, format="json"
    )
    assert response.status_code == 400
    assert "revoked" in response.data
    assert_key_is_no_principal(api_key, world)


def test_api_key_deleted__401_on_the_next_request(world: World, api_key: Any) -> None:
    response = token_client(world.admin).delete(f"{world.org_url()}/api-keys/{api_key.pk}/")
    assert response.status_code == 204
    assert not RoleAssignment.objects.filter(api_key_id=api_key.pk).exists()
    assert_key_is_no_principal(api_key, world)


def test_api_key_expired__401_on_the_next_request(world: World, api_key: Any) -> None:
    past = timezone.now() - timedelta(minutes=1)
    OrganisationAPIKey.objects.filter(pk=api_key.pk).update(expiry_date=past)
    assert_key_is_no_principal(api_key, world)


def test_api_key_revoked__cannot_act_through_its_own_request(world: World) -> None:
    """An admin key that revokes itself is refused on its next request."""
    key = f.APIKeyFactory(organisation=world.organisation, is_admin=True)
    client = token_client(key)
    response = client.patch(f"{world.org_url()}/api-keys/{key.pk}/", {"revoked": True})
    assert response.status_code == 200
    assert client.get(f"{world.org_url()}/api-keys/").status_code == 401


# --------------------------------------------------------------------------------------
# Deleting projects and environments
# --------------------------------------------------------------------------------------


def grants_of_every_principal(world: World, scope: Any) -> list[Grant]:
    user = world.member()
    group = f.UserGroupFactory(organisation=world.organisation, users=[user])
    role = f.RoleFactory(organisation=world.organisation)
    key = UPDATE_FEATURE_STATE if scope is world.environment else CREATE_FEATURE
    tagged_key = UPDATE_FEATURE_STATE if scope is world.environment else DELETE_FEATURE
    return [
        f.grant(user, scope, [key]),
        f.grant(group, scope, [key], admin=True),
        f.grant(role, scope, {tagged_key: [world.payments]}),
    ]


def test_delete_project__its_grants_and_its_environments_grants_go(world: World) -> None:
    grants = grants_of_every_principal(world, world.project)
    grants += grants_of_every_principal(world, world.environment)
    elsewhere = f.ProjectFactory(organisation=world.organisation)
    kept = f.grant(world.member(), elsewhere, [VIEW_PROJECT])

    response = token_client(world.admin).delete(f"{API}/projects/{world.project.pk}/")

    assert response.status_code == 204
    assert not Grant.objects.filter(pk__in=[g.pk for g in grants]).exists()
    assert not GrantEntry.objects.filter(grant_id__in=[g.pk for g in grants]).exists()
    assert not GrantEntryTag.objects.filter(tag_id=world.payments.pk).exists()
    assert Grant.objects.filter(pk=kept.pk).exists()


def test_delete_environment__its_grants_go_project_grants_stay(world: World) -> None:
    env_grants = grants_of_every_principal(world, world.environment)
    project_grants = grants_of_every_principal(world, world.project)
    api_key = world.environment.api_key
    env_user = env_grants[0].user

    response = token_client(world.admin).delete(f"{API}/environments/{api_key}/")

    assert response.status_code == 204
    assert not Grant.objects.filter(pk__in=[g.pk for g in env_grants]).exists()
    assert Grant.objects.filter(pk__in=[g.pk for g in project_grants]).count() == 3
    # a new environment of the same name is a new scope: nothing carries over
    created = token_client(world.admin).post(
        f"{API}/environments/",
        {"name": world.environment.name, "project": world.project.pk},
        format="json",
    )
    assert created.status_code == 201
    new_env = type(world.environment).objects.get(pk=created.data["id"])
    assert not engine.can_view(fresh(env_user), new_env)
    assert not allowed(env_user, UPDATE_FEATURE_STATE, new_env, world.f_plain)


# --------------------------------------------------------------------------------------
# Tags on features
# --------------------------------------------------------------------------------------


def feature_url(world: World, feature: Feature) -> str:
    return f"{API}/projects/{world.project.pk}/features/{feature.pk}/"


def test_tag_detached_by_project_admin__tagged_role_users_lose_that_feature(
    world: World,
) -> None:
    user = role_user(world, world.role())
    project_admin = world.member()
    f.grant(project_admin, world.project, [], admin=True)
    assert toggle(user, world.f_pay, world.environment) == 200

    response = token_client(project_admin).patch(
        feature_url(world, world.f_pay), {"tags": []}, format="json"
    )

    assert response.status_code == 200
    assert not allowed(user, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
    assert toggle(user, world.f_pay, world.environment) == 403


@pytest.mark.parametrize("how", ["patch", "create"])
def test_create_feature_holder__cannot_move_a_feature_into_a_roles_tag_scope__403(
    world: World, how: str
) -> None:
    """Flagsmith #1535: CREATE_FEATURE must not let anyone tag a feature into a role's scope."""
    user = role_user(world, world.role())
    f.grant(user, world.project, [CREATE_FEATURE])
    client = token_client(user)
    if how == "patch":
        response = client.patch(
            feature_url(world, world.f_plain), {"tags": [world.payments.pk]}, format="json"
        )
    else:
        response = client.post(
            f"{API}/projects/{world.project.pk}/features/",
            {"name": "sneaky", "tags": [world.payments.pk]},
            format="json",
        )
    assert response.status_code == 403
    assert response.data["code"] == "protected_tag"
    assert not world.payments.features.exclude(pk=world.f_pay.pk).exists()
    assert toggle(user, world.f_plain, world.environment) == 403


def test_create_feature_holder__cannot_detach_a_restricted_tag__403(world: World) -> None:
    Tag.objects.filter(pk=world.payments.pk).update(is_restricted=True)
    user = world.member()
    f.grant(user, world.project, [CREATE_FEATURE])
    f.grant(user, world.environment, [UPDATE_FEATURE_STATE])
    assert toggle(user, world.f_pay, world.environment) == 403

    response = token_client(user).patch(
        feature_url(world, world.f_pay), {"tags": []}, format="json"
    )

    assert response.status_code == 403
    assert list(world.f_pay.tags.all()) == [world.payments]
    assert toggle(user, world.f_pay, world.environment) == 403


# --------------------------------------------------------------------------------------
# Restricting tags
# --------------------------------------------------------------------------------------


def test_tag_made_restricted__untagged_users_lose_its_features__intended_narrowing(
    world: World,
) -> None:
    untagged = world.member()
    f.grant(untagged, world.environment, [UPDATE_FEATURE_STATE])
    tagged = role_user(world, world.role())
    env_admin = world.member()
    f.grant(env_admin, world.environment, [], admin=True)
    assert toggle(untagged, world.f_pay, world.environment) == 200

    response = token_client(world.admin).patch(
        f"{API}/projects/{world.project.pk}/tags/{world.payments.pk}/",
        {"is_restricted": True},
        format="json",
    )

    assert response.status_code == 200
    assert not allowed(untagged, UPDATE_FEATURE_STATE, world.environment, world.f_pay)
    assert toggle(untagged, world.f_pay, world.environment) == 403
    assert toggle(untagged, world.f_plain, world.environment) == 200
    assert toggle(tagged, world.f_pay, world.environment) == 200
    assert toggle(env_admin, world.f_pay, world.environment) == 200


def test_second_tag_of_a_feature_restricted__holders_of_entries_naming_it_gain_nothing(
    world: World,
) -> None:
    """A feature tagged payments (restricted) and other: restricting `other` too must not
    let an entry naming only `other` reach it (the old any-restricted-tag rule did), nor
    anyone else gain anything (docs/PERMISSIONS.md, "Restricted tags")."""
    Tag.objects.filter(pk=world.payments.pk).update(is_restricted=True)
    both = f.FeatureFactory(project=world.project, tags=[world.payments, world.other])
    other_role = f.RoleFactory(organisation=world.organisation, name="other")
    f.grant(other_role, world.environment, {UPDATE_FEATURE_STATE: [world.other]})
    other_user = role_user(world, other_role)
    payments_user = role_user(world, world.role())
    untagged = world.member()
    f.grant(untagged, world.environment, [UPDATE_FEATURE_STATE])
    users = (other_user, payments_user, untagged)
    features = (both, world.f_pay, world.f_other, world.f_plain)
    before = {
        (u.pk, ft.pk): allowed(u, UPDATE_FEATURE_STATE, world.environment, ft)
        for u in users
        for ft in features
    }
    assert before[other_user.pk, both.pk] is False

    response = token_client(world.admin).patch(
        f"{API}/projects/{world.project.pk}/tags/{world.other.pk}/",
        {"is_restricted": True},
        format="json",
    )

    assert response.status_code == 200
    after = {
        (u.pk, ft.pk): allowed(u, UPDATE_FEATURE_STATE, world.environment, ft)
        for u in users
        for ft in features
    }
    gained = {k for k, v in after.items() if v and not before[k]}
    assert gained == set()
    assert toggle(other_user, both, world.environment) == 403
    # payments alone no longer covers both restricted tags of `both`: a narrowing
    assert after[payments_user.pk, both.pk] is False
    assert toggle(payments_user, both, world.environment) == 403
    assert toggle(payments_user, world.f_pay, world.environment) == 200


@pytest.mark.parametrize("restricted_before", [False, True])
def test_changing_is_restricted__manage_tags_holder__403_and_unchanged(
    world: World, restricted_before: bool
) -> None:
    Tag.objects.filter(pk=world.payments.pk).update(is_restricted=restricted_before)
    manager = world.member()
    f.grant(manager, world.project, [MANAGE_TAGS])
    f.grant(manager, world.environment, [UPDATE_FEATURE_STATE])

    response = token_client(manager).patch(
        f"{API}/projects/{world.project.pk}/tags/{world.payments.pk}/",
        {"is_restricted": not restricted_before},
        format="json",
    )

    assert response.status_code == 403
    assert Tag.objects.get(pk=world.payments.pk).is_restricted is restricted_before
    expected = 403 if restricted_before else 200
    assert toggle(manager, world.f_pay, world.environment) == expected


def test_create_restricted_tag__manage_tags_holder__403(world: World) -> None:
    manager = world.member()
    f.grant(manager, world.project, [MANAGE_TAGS])
    response = token_client(manager).post(
        f"{API}/projects/{world.project.pk}/tags/",
        {"label": "locked", "is_restricted": True},
        format="json",
    )
    assert response.status_code == 403
    assert not Tag.objects.filter(label="locked").exists()


# --------------------------------------------------------------------------------------
# Nobody raises their own access
# --------------------------------------------------------------------------------------


def test_project_key_holder__cannot_grant_themself__403(world: World) -> None:
    user = world.member()
    f.grant(user, world.project, [VIEW_PROJECT, CREATE_FEATURE, MANAGE_TAGS])
    response = token_client(user).post(
        f"{API}/projects/{world.project.pk}/user-permissions/",
        {"user": user.pk, "admin": True, "permissions": []},
        format="json",
    )
    assert response.status_code == 403
    assert Grant.objects.filter(user=user).count() == 1


def test_environment_admin__cannot_write_project_grants__403(world: World) -> None:
    env_admin = world.member()
    f.grant(env_admin, world.environment, [], admin=True)
    response = token_client(env_admin).post(
        f"{API}/projects/{world.project.pk}/user-permissions/",
        {"user": env_admin.pk, "admin": True, "permissions": []},
        format="json",
    )
    assert response.status_code == 403
    assert not engine.is_admin(fresh(env_admin), world.project)


def test_project_admin__cannot_write_role_grants_or_assignments__403(world: World) -> None:
    project_admin = world.member()
    f.grant(project_admin, world.project, [], admin=True)
    role = world.role()
    client = token_client(project_admin)
    assignment = client.post(
        f"{world.org_url()}/roles/{role.pk}/users/", {"user": project_admin.pk}, format="json"
    )
    grant = client.put(
        f"{world.org_url()}/roles/{role.pk}/organisation-permissions/",
        {"permissions": [CREATE_PROJECT]},
        format="json",
    )
    assert assignment.status_code == 403
    assert grant.status_code == 403
    assert not RoleAssignment.objects.filter(role=role).exists()


def test_member__cannot_promote_themself__403(world: World) -> None:
    user = world.member()
    response = token_client(user).patch(
        f"{world.org_url()}/users/{user.pk}/", {"role": "ADMIN"}, format="json"
    )
    assert response.status_code == 403
    assert not engine.is_admin(fresh(user), world.organisation)
