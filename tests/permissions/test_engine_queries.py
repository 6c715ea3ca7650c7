"""docs/PERMISSIONS.md, "How it is fast": a decision costs at most 2 queries cold whatever the number of grants,
groups, roles and tags, and 0 warm; list filters cost a constant number of queries."""

from __future__ import annotations

from typing import Any

import pytest

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import OrganisationAPIKey, RoleAssignment
from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from permissions.engine import ScopeRights
from projects.models import Tag
from tests import factories as f

pytestmark = pytest.mark.django_db


def fresh(principal: Any) -> Any:
    return type(principal).objects.get(pk=principal.pk)


def build(n_roles: int, n_groups: int, n_tags: int) -> dict[str, Any]:
    """A member reached by `n_roles` roles (half directly, half through `n_groups` groups), each
    with tagged and untagged entries on the environment and the project; `n_tags` tags."""
    env = f.EnvironmentFactory()
    project = env.project
    org = project.organisation
    user = f.member(org)
    key = f.APIKeyFactory(organisation=org)
    tags = Tag.objects.bulk_create(
        [Tag(project=project, label=f"t{i}", is_restricted=i % 10 == 0) for i in range(n_tags)]
    )
    groups = [f.UserGroupFactory(organisation=org, users=[user]) for _ in range(n_groups)]
    for i in range(n_roles):
        role = f.RoleFactory(organisation=org)
        if groups and i % 2:
            f.RoleAssignmentFactory(role=role, group=groups[i % len(groups)])
        else:
            f.RoleAssignmentFactory(role=role, user=user)
        RoleAssignment.objects.create(role=role, api_key=key)
        role_tags = [tags[(i * 7 + j) % n_tags] for j in range(3)]
        f.grant(
            role,
            env,
            {UPDATE_FEATURE_STATE: role_tags, APPROVE_CHANGE_REQUEST: [], VIEW_ENVIRONMENT: []},
        )
        f.grant(role, project, {DELETE_FEATURE: role_tags[:1], VIEW_PROJECT: []})
    for group in groups:
        f.grant(group, env, [VIEW_ENVIRONMENT])
    # the feature carries the first role's first tag (restricted: t0)
    feature = f.FeatureFactory(project=project, tags=[tags[0], tags[-1]])
    return {"env": env, "project": project, "user": user, "api_key": key, "feature": feature}


SIZES = [(1, 0, 3), (50, 20, 100)]


@pytest.mark.parametrize("sizes", SIZES, ids=["small", "large"])
@pytest.mark.parametrize("select_related", [True, False], ids=["project-loaded", "bare-env"])
@pytest.mark.parametrize("principal_kind", ["user", "api_key"])
def test_allowed__cold_any_size__two_queries(
    django_assert_num_queries: Any, sizes: Any, select_related: bool, principal_kind: str
) -> None:
    world = build(*sizes)
    principal = fresh(world[principal_kind])
    qs = Environment.objects.select_related("project") if select_related else Environment.objects
    env = qs.get(pk=world["env"].pk)
    feature = Feature.objects.get(pk=world["feature"].pk)

    # policy + the feature's tags
    with django_assert_num_queries(2):
        assert engine.allowed(principal, UPDATE_FEATURE_STATE, env, feature) is True
    # warm: no query, for any key on the scope, the project, or the same feature
    with django_assert_num_queries(0):
        assert engine.allowed(principal, UPDATE_FEATURE_STATE, env, feature) is True
        # untagged entries do not reach the feature: it carries the restricted t0
        assert engine.allowed(principal, APPROVE_CHANGE_REQUEST, env, feature) is False
        assert engine.allowed(principal, APPROVE_CHANGE_REQUEST, env) is True
        assert engine.allowed(principal, UPDATE_FEATURE_STATE, env) is False
        assert engine.allowed(principal, VIEW_ENVIRONMENT, env) is True
        assert engine.can_view(principal, env) is True
        assert engine.is_admin(principal, env) is False
        assert engine.allowed(principal, DELETE_FEATURE, world["project"], feature) is True
        assert engine.can_view(principal, world["project"]) is True
        assert engine.keys_on_feature(principal, env, feature) == [
            UPDATE_FEATURE_STATE,
            VIEW_ENVIRONMENT,
        ]


@pytest.mark.parametrize("sizes", SIZES, ids=["small", "large"])
@pytest.mark.parametrize("select_related", [True, False], ids=["project-loaded", "bare-env"])
def test_allowed__cold_without_feature__one_query(
    django_assert_num_queries: Any, sizes: Any, select_related: bool
) -> None:
    world = build(*sizes)
    user = fresh(world["user"])
    qs = Environment.objects.select_related("project") if select_related else Environment.objects
    env = qs.get(pk=world["env"].pk)
    with django_assert_num_queries(1):
        assert engine.allowed(user, VIEW_ENVIRONMENT, env) is True
    with django_assert_num_queries(0):
        assert engine.allowed(user, VIEW_ENVIRONMENT, env) is True


def test_allowed__cold_on_project__two_queries(django_assert_num_queries: Any) -> None:
    world = build(50, 20, 100)
    user = fresh(world["user"])
    feature = Feature.objects.get(pk=world["feature"].pk)
    with django_assert_num_queries(2):
        assert engine.allowed(user, DELETE_FEATURE, world["project"], feature) is True
    with django_assert_num_queries(0):
        assert engine.allowed(user, DELETE_FEATURE, world["project"], feature) is True


def test_allowed__non_tag_key_with_feature__no_feature_query(
    django_assert_num_queries: Any,
) -> None:
    world = build(1, 0, 3)
    user = fresh(world["user"])
    feature = Feature.objects.get(pk=world["feature"].pk)
    with django_assert_num_queries(1):
        assert engine.allowed(user, VIEW_ENVIRONMENT, world["env"], feature) is True


def test_allowed__non_member_or_unusable_key__at_most_one_query(
    django_assert_max_num_queries: Any,
) -> None:
    world = build(1, 0, 3)
    outsider = f.UserFactory()
    with django_assert_max_num_queries(1):
        assert engine.allowed(outsider, VIEW_ENVIRONMENT, world["env"]) is False
    OrganisationAPIKey.objects.filter(pk=world["api_key"].pk).update(revoked=True)
    key = fresh(world["api_key"])
    with django_assert_max_num_queries(1):
        assert engine.allowed(key, VIEW_ENVIRONMENT, world["env"]) is False


def test_policy_for__same_organisation__memoised(django_assert_num_queries: Any) -> None:
    first = build(1, 0, 3)
    user = first["user"]
    second_env = f.EnvironmentFactory()
    f.MembershipFactory(user=user, organisation=second_env.project.organisation)
    f.grant(user, second_env, [VIEW_ENVIRONMENT])
    user = fresh(user)
    with django_assert_num_queries(2):
        assert engine.allowed(user, VIEW_ENVIRONMENT, first["env"]) is True
        assert engine.allowed(user, VIEW_ENVIRONMENT, second_env) is True
    with django_assert_num_queries(0):
        assert engine.allowed(user, VIEW_ENVIRONMENT, first["env"]) is True
        assert engine.allowed(user, VIEW_ENVIRONMENT, second_env) is True
    engine.forget(user)
    with django_assert_num_queries(1):
        assert engine.allowed(user, VIEW_ENVIRONMENT, first["env"]) is True


# --------------------------------------------------------------------------------------
# List filters
# --------------------------------------------------------------------------------------


def many_features(n: int) -> dict[str, Any]:
    """`n` features in bulk (with their default states): a third tagged `a`, a third tagged
    with the restricted `r`, a third untagged; a user with a role holding the key on `a` and
    `r`, and an untagged entry of another key."""
    env = f.EnvironmentFactory()
    project = env.project
    org = project.organisation
    tag_a = f.TagFactory(project=project, label="a")
    tag_b = f.TagFactory(project=project, label="b")
    tag_r = f.TagFactory(project=project, label="r", is_restricted=True)
    features = Feature.objects.bulk_create(
        [Feature(project=project, name=f"bulk_{i}") for i in range(n)]
    )
    FeatureState.objects.bulk_create([FeatureState(feature=ft, environment=env) for ft in features])
    through = Feature.tags.through
    links = []
    for i, ft in enumerate(features):
        if i % 3 == 0:
            links.append(through(feature_id=ft.pk, tag_id=tag_a.pk))
        elif i % 3 == 1:
            links += [
                through(feature_id=ft.pk, tag_id=tag_r.pk),
                through(feature_id=ft.pk, tag_id=tag_b.pk),
            ]
    through.objects.bulk_create(links)
    user = f.member(org)
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, env, {UPDATE_FEATURE_STATE: [tag_a, tag_r], APPROVE_CHANGE_REQUEST: []})
    f.grant(role, project, {DELETE_FEATURE: [tag_b]})
    return {"env": env, "project": project, "user": user, "features": features}


@pytest.mark.parametrize("n", [10, 1000])
def test_feature_states_allowed__10_or_1000_features__same_queries(
    django_assert_num_queries: Any, n: int
) -> None:
    world = many_features(n)
    user = fresh(world["user"])
    env = Environment.objects.select_related("project").get(pk=world["env"].pk)
    thirds = [len(range(r, n, 3)) for r in range(3)]
    # 1 for the policy + 1 for evaluating the queryset
    with django_assert_num_queries(2):
        states = list(engine.feature_states_allowed(user, UPDATE_FEATURE_STATE, env))
    assert len(states) == thirds[0] + thirds[1]  # `a` and restricted `r`, not untagged
    with django_assert_num_queries(1):
        states = list(engine.feature_states_allowed(user, APPROVE_CHANGE_REQUEST, env))
    assert len(states) == thirds[0] + thirds[2]  # untagged entry: not the restricted third


@pytest.mark.parametrize("n", [10, 1000])
def test_features_allowed__10_or_1000_features__same_queries(
    django_assert_num_queries: Any, n: int
) -> None:
    world = many_features(n)
    user = fresh(world["user"])
    with django_assert_num_queries(2):
        features = list(engine.features_allowed(user, DELETE_FEATURE, world["project"]))
    # tagged `b`, but `b` features also carry the restricted `r`, which the entry does not name
    assert features == []
    env = Environment.objects.get(pk=world["env"].pk)  # bare: the project is not loaded
    user = fresh(user)
    with django_assert_num_queries(2):
        features = list(engine.features_allowed(user, UPDATE_FEATURE_STATE, env))
    assert len(features) == len(range(0, n, 3)) + len(range(1, n, 3))


def test_keys_on_feature__page_of_features__no_query_per_feature(
    django_assert_num_queries: Any, django_assert_max_num_queries: Any
) -> None:
    world = many_features(60)
    user = fresh(world["user"])
    env = Environment.objects.select_related("project").get(pk=world["env"].pk)
    with django_assert_num_queries(2):  # the page and its tags
        page = list(Feature.objects.filter(project=world["project"]).prefetch_related("tags")[:50])
    with django_assert_num_queries(1):  # the policy, once
        engine.keys_on_feature(user, env, page[0])
    with django_assert_num_queries(0):
        keys = [engine.keys_on_feature(user, env, ft) for ft in page]
        project_keys = [engine.keys_on_feature(user, world["project"], ft) for ft in page]
        decisions = [
            [k for k in KEYS_BY_LEVEL[Level.ENVIRONMENT] if engine.allowed(user, k, env, ft)]
            for ft in page
        ]
    assert keys == [sorted(d) for d in decisions]
    assert {tuple(k) for k in keys} == {
        (APPROVE_CHANGE_REQUEST, UPDATE_FEATURE_STATE),  # `a`
        (UPDATE_FEATURE_STATE,),  # restricted `r`: the untagged entry does not reach it
        (APPROVE_CHANGE_REQUEST,),  # untagged
    }
    assert all(k == [] for k in project_keys)


def test_keys_on_features__page_of_features__same_keys_as_one_by_one_without_queries(
    django_assert_num_queries: Any,
) -> None:
    world = many_features(30)
    user = fresh(world["user"])
    env = Environment.objects.select_related("project").get(pk=world["env"].pk)
    page = list(Feature.objects.filter(project=world["project"]).prefetch_related("tags"))
    stranger = f.FeatureFactory(tags=[])  # another project's feature holds nothing here
    with django_assert_num_queries(1):  # the policy, once
        held = engine.keys_on_features(user, env, [*page, stranger])
    with django_assert_num_queries(0):
        one_by_one = [engine.keys_on_feature(user, env, ft) for ft in page]
    assert held == [*one_by_one, []]
    assert {tuple(keys) for keys in held[:-1]} == {
        (APPROVE_CHANGE_REQUEST, UPDATE_FEATURE_STATE),  # `a`
        (UPDATE_FEATURE_STATE,),  # restricted `r`
        (APPROVE_CHANGE_REQUEST,),  # untagged
    }
    held[0].append("mutated")  # each feature gets its own list
    assert "mutated" not in held[3]


def test_load_policy__narrowed_to_an_environment__decides_there_and_views_the_others(
    django_assert_num_queries: Any,
) -> None:
    world = build(6, 2, 12)
    env, project, user = world["env"], world["project"], world["user"]
    other = f.EnvironmentFactory(project=project)
    bare = f.EnvironmentFactory(project=project)  # a grant with no key and no admin there
    admin_env = f.EnvironmentFactory(project=project)
    role = f.RoleFactory(organisation=project.organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, other, {UPDATE_FEATURE_STATE: [], MANAGE_SEGMENT_OVERRIDES: []})
    f.grant(role, bare, [])
    f.grant(role, admin_env, [], admin=True)
    organisation_id = project.organisation_id
    whole = engine.load_policy(user, organisation_id, project_id=project.pk, entries=False)
    with django_assert_num_queries(1):
        narrowed = engine.load_policy(
            user, organisation_id, project_id=project.pk, entries=False, environment_id=env.pk
        )
    for key in sorted(KEYS_BY_LEVEL[Level.ENVIRONMENT]):
        scope = {"project_id": project.pk, "environment_id": env.pk}
        assert narrowed.key_state(key, **scope) == whole.key_state(key, **scope)
    for key in sorted(KEYS_BY_LEVEL[Level.PROJECT]):
        assert narrowed.key_state(key, project_id=project.pk) == whole.key_state(
            key, project_id=project.pk
        )
    # the other environments: shown (and admin where admin), their keys unread
    assert narrowed.environments[other.pk] == ScopeRights()
    assert narrowed.environments[admin_env.pk] == ScopeRights(admin=True)
    assert bare.pk not in narrowed.environments and bare.pk not in whole.environments
    assert whole.environments[other.pk].untagged == {UPDATE_FEATURE_STATE, MANAGE_SEGMENT_OVERRIDES}
    assert narrowed.can_view_environment(project.pk, other.pk)
    assert narrowed.is_environment_admin(project.pk, admin_env.pk)
    assert narrowed.viewable_project_ids() == whole.viewable_project_ids() == {project.pk}


def test_policies_for_members__constant_queries_and_agree_with_single_loads(
    django_assert_num_queries,
):
    from permissions.catalogue import UPDATE_FEATURE_STATE as KEY

    def build(n_members):
        env = f.EnvironmentFactory()
        org = env.project.organisation
        tag = f.TagFactory(project=env.project)
        feature = f.FeatureFactory(project=env.project, tags=[tag])
        group = f.UserGroupFactory(organisation=org)
        role = f.RoleFactory(organisation=org)
        f.RoleAssignmentFactory(role=role, group=group)
        f.grant(role, env, {KEY: [tag]})
        users = []
        for i in range(n_members):
            user = f.member(org, admin=i % 7 == 0)
            if i % 2:
                group.users.add(user)
            if i % 3 == 0:
                f.grant(user, env, [KEY])
            users.append(user)
        users.append(f.UserFactory())  # not a member
        return org, env, feature, users

    for n in (3, 40):
        org, env, feature, users = build(n)
        with django_assert_num_queries(4):
            policies = engine.policies_for_members(org.pk, [u.pk for u in users])
        tags = engine.feature_tags(feature)
        for user in users:
            single = engine.load_policy(user, org.pk)
            for feature_tags in (None, tags):
                assert policies[user.pk].decide(
                    KEY, project_id=env.project_id, environment_id=env.pk, feature_tags=feature_tags
                ) is single.decide(
                    KEY, project_id=env.project_id, environment_id=env.pk, feature_tags=feature_tags
                )


# --------------------------------------------------------------------------------------
# A project's scope reads only the grants that can reach it (docs/PERMISSIONS.md)
# --------------------------------------------------------------------------------------


def test_cold_decision__feature_loaded_with_its_tags__one_query(
    django_assert_max_num_queries: Any,
) -> None:
    world = build(50, 20, 100)
    user = fresh(world["user"])
    feature = Feature.objects.prefetch_related("tags").get(pk=world["feature"].pk)
    with django_assert_max_num_queries(1):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, world["env"], feature) is True


def test_project_scope_policy__grants_of_other_projects__not_read_decisions_same(
    django_assert_max_num_queries: Any,
) -> None:
    world = build(6, 3, 12)
    user = world["user"]
    org = world["project"].organisation
    other_env = f.EnvironmentFactory(project=f.ProjectFactory(organisation=org))
    f.grant(user, other_env, [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT])

    loaded = fresh(user)
    with django_assert_max_num_queries(1):
        scoped = engine.load_policy(loaded, project_id=world["project"].pk)
    whole = engine.load_policy(fresh(user), org.pk)

    assert scoped.only_project == world["project"].pk
    assert other_env.pk not in scoped.environments and other_env.pk in whole.environments
    assert {g for g, *_ in scoped.entry_rows} < {g for g, *_ in whole.entry_rows}
    feature = Feature.objects.prefetch_related("tags").get(pk=world["feature"].pk)
    tags = engine.feature_tags(feature)
    env = world["env"]
    for key in KEYS_BY_LEVEL[Level.ENVIRONMENT]:
        for feature_tags in (None, tags):
            assert scoped.decide(
                key, project_id=env.project_id, environment_id=env.pk, feature_tags=feature_tags
            ) is whole.decide(
                key, project_id=env.project_id, environment_id=env.pk, feature_tags=feature_tags
            )
    for key in KEYS_BY_LEVEL[Level.PROJECT]:
        assert scoped.decide(key, project_id=env.project_id) is whole.decide(
            key, project_id=env.project_id
        )


def test_policy_for__two_projects_of_one_organisation__one_query_each_then_none(
    django_assert_num_queries: Any,
) -> None:
    world = build(1, 0, 3)
    user = world["user"]
    org = world["project"].organisation
    other_env = f.EnvironmentFactory(project=f.ProjectFactory(organisation=org))
    f.grant(user, other_env, [VIEW_ENVIRONMENT])
    user = fresh(user)
    with django_assert_num_queries(2):
        assert engine.allowed(user, VIEW_ENVIRONMENT, world["env"]) is True
        assert engine.allowed(user, VIEW_ENVIRONMENT, other_env) is True
    with django_assert_num_queries(0):
        assert engine.allowed(user, VIEW_ENVIRONMENT, world["env"]) is True
        assert engine.allowed(user, VIEW_ENVIRONMENT, other_env) is True
        assert engine.can_view(user, other_env.project) is True


def test_policy_for_environment__other_environment_of_the_project__loads_its_own(
    django_assert_num_queries: Any,
) -> None:
    """A cold decision on an environment reads the keys of that environment (and of the
    project and the organisation) only; the project's other environments cost a query of
    their own, and the project is decided warm from either."""
    world = build(1, 0, 3)
    user = world["user"]
    other_env = f.EnvironmentFactory(project=world["project"])
    f.grant(user, other_env, [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT])
    user = fresh(user)
    env = Environment.objects.select_related("project").get(pk=world["env"].pk)
    other_env = Environment.objects.select_related("project").get(pk=other_env.pk)
    with django_assert_num_queries(1):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env) is False
        narrowed = engine.policy_for_scope(user, env)
        assert engine.can_view(user, world["project"]) is True
        assert engine.allowed(user, VIEW_PROJECT, world["project"]) is True
    assert narrowed.only_environment == env.pk
    with pytest.raises(ValueError):
        narrowed.decide(
            UPDATE_FEATURE_STATE, project_id=env.project_id, environment_id=other_env.pk
        )
    with django_assert_num_queries(1):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, other_env) is True
    with django_assert_num_queries(0):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env) is False
        assert engine.allowed(user, UPDATE_FEATURE_STATE, other_env) is True
        assert engine.can_view(user, other_env) is True


def test_policy_for_environment__narrowed__decides_as_the_whole_project() -> None:
    world = build(6, 3, 12)
    other_env = f.EnvironmentFactory(project=world["project"])
    f.grant(world["user"], other_env, [UPDATE_FEATURE_STATE])
    feature = Feature.objects.prefetch_related("tags").get(pk=world["feature"].pk)
    tags = engine.feature_tags(feature)
    for env in (world["env"], other_env):
        narrowed = engine.load_policy(
            world["user"], project_id=env.project_id, entries=False, environment_id=env.pk
        )
        whole = engine.load_policy(world["user"], project_id=env.project_id)
        assert narrowed.can_view_project(env.project_id) is whole.can_view_project(env.project_id)
        scopes = [(Level.ENVIRONMENT, env.pk), (Level.PROJECT, None)]
        decisions = [
            (policy.decide(key, project_id=env.project_id, environment_id=env_id, feature_tags=ft))
            for policy in (narrowed, whole)
            for level, env_id in scopes
            for key in KEYS_BY_LEVEL[level]
            for ft in (None, tags)
        ]
        half = len(decisions) // 2
        assert decisions[:half] == decisions[half:]
