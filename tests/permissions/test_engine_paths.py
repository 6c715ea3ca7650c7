"""Principal paths (permissions/engine/paths.py): the one resolution of users, groups, roles
and API keys that the policy loader (SQL), the list filters (a queryset), the bulk loader,
explain and impact snapshots (Python) share; and the bulk loader's superuser rule
(docs/PERMISSIONS.md, "Membership gates everything", "Superusers")."""

from __future__ import annotations

from typing import Any

import pytest

from permissions import engine
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    """A member reaching grants through every path, and rows of another organisation that
    reference it (a group and a role of the other organisation) and must never count."""
    env = f.EnvironmentFactory()
    org = env.project.organisation
    other = f.OrganisationFactory()
    user = f.member(org)
    f.MembershipFactory(user=user, organisation=other)
    own_group = f.UserGroupFactory(organisation=org, users=[user])
    foreign_group = f.UserGroupFactory(organisation=other, users=[user])
    direct_role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=direct_role, user=user)
    group_role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=group_role, group=own_group)
    f.RoleAssignmentFactory(role=direct_role, group=own_group)  # a second path to one role
    # This organisation's role through the other's group; the other's role, assigned here.
    role_via_foreign_group = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role_via_foreign_group, group=foreign_group)
    foreign_role = f.RoleFactory(organisation=other)
    f.RoleAssignmentFactory(role=foreign_role, user=user)
    reaching = {
        f.grant(holder, env, [VIEW_ENVIRONMENT]).pk
        for holder in (user, own_group, direct_role, group_role)
    }
    for holder in (foreign_group, role_via_foreign_group, foreign_role):
        f.grant(holder, env, [UPDATE_FEATURE_STATE])
    return {
        "env": env,
        "org": org,
        "user": user,
        "own_group": own_group,
        "direct_role": direct_role,
        "group_role": group_role,
        "reaching": reaching,
    }


def test_principal_paths__groups_and_roles_of_another_organisation__never_count(
    world: dict[str, Any],
) -> None:
    paths = engine.principal_paths(world["user"], world["org"].pk)

    assert paths.group_ids == {world["own_group"].pk}
    assert paths.role_paths == {
        world["direct_role"].pk: {None, world["own_group"].pk},
        world["group_role"].pk: {world["own_group"].pk},
    }


def test_principal_paths__sql_queryset_and_python__reach_the_same_grants(
    world: dict[str, Any],
) -> None:
    user, org = world["user"], world["org"]
    by_sql = {grant_id for grant_id, *_ in engine.load_policy(user, org.pk).entry_rows}
    by_queryset = set(
        engine.grants_reaching(user).filter(organisation=org).values_list("pk", flat=True)
    )
    rows_of = engine.organisation_grant_rows(org.pk)
    holders = engine.principal_paths(user, org.pk).holders(("user", user.pk))
    by_python = {row[0] for holder in holders for row in rows_of.get(holder, ())}

    assert by_sql == by_queryset == by_python == world["reaching"]


def test_principal_paths__api_key__the_roles_of_its_organisation_assigned_to_it(
    world: dict[str, Any],
) -> None:
    org = world["org"]
    key = f.APIKeyFactory(organisation=org)
    f.RoleAssignmentFactory(role=world["group_role"], api_key=key)

    paths = engine.principal_paths(key, org.pk)

    assert paths.group_ids == frozenset()
    assert paths.role_paths == {world["group_role"].pk: {None}}
    assert paths.holders(("api_key", key.pk)) == [("role", world["group_role"].pk)]


def test_policies_for_members__paths__decide_as_the_single_loader(
    world: dict[str, Any],
) -> None:
    user, env = world["user"], world["env"]
    bulk = engine.policies_for_members(world["org"].pk, [user.pk])[user.pk]
    single = engine.load_policy(user, world["org"].pk)

    for key in (VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE):
        decided = bulk.decide(key, project_id=env.project_id, environment_id=env.pk)
        assert decided is single.decide(key, project_id=env.project_id, environment_id=env.pk)
    assert bulk.decide(VIEW_ENVIRONMENT, project_id=env.project_id, environment_id=env.pk)
    assert not bulk.decide(UPDATE_FEATURE_STATE, project_id=env.project_id, environment_id=env.pk)


def test_policies_for_members__active_superuser_not_a_member__organisation_admin() -> None:
    env = f.EnvironmentFactory()
    org = env.project.organisation
    superuser = f.UserFactory(is_superuser=True, is_staff=True)
    member_superuser = f.member(org, is_superuser=True)

    listed = engine.policies_for_members(org.pk, [superuser.pk])[superuser.pk]
    members = engine.policies_for_members(org.pk)

    assert listed.is_member and listed.is_organisation_admin
    assert listed.decide(UPDATE_FEATURE_STATE, project_id=env.project_id, environment_id=env.pk)
    assert members[member_superuser.pk].is_organisation_admin
    assert superuser.pk not in members  # without user_ids: the members


def test_policies_for_members__inactive_superuser_or_staff_not_a_member__nothing() -> None:
    env = f.EnvironmentFactory()
    org = env.project.organisation
    inactive = f.UserFactory(is_superuser=True, is_active=False)
    staff = f.UserFactory(is_staff=True)

    policies = engine.policies_for_members(org.pk, [inactive.pk, staff.pk])

    for user in (inactive, staff):
        assert not policies[user.pk].is_member
        assert not policies[user.pk].decide(
            VIEW_ENVIRONMENT, project_id=env.project_id, environment_id=env.pk
        )
