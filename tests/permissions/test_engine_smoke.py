"""A first end-to-end check of the engine's main paths (the full suite is in test_engine*)."""

from __future__ import annotations

from permissions import engine, reports
from permissions.catalogue import DELETE_FEATURE, UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from tests import factories as f


def test_allowed__role_through_group_tagged_entry__only_tagged_feature(
    db, django_assert_num_queries
):
    env = f.EnvironmentFactory()
    org = env.project.organisation
    user = f.member(org)
    group = f.UserGroupFactory(organisation=org, users=[user])
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, group=group)
    tag_a = f.TagFactory(project=env.project)
    tag_b = f.TagFactory(project=env.project)
    f.grant(role, env, {UPDATE_FEATURE_STATE: [tag_a], VIEW_ENVIRONMENT: []})
    feature_a = f.FeatureFactory(project=env.project, tags=[tag_a])
    feature_b = f.FeatureFactory(project=env.project, tags=[tag_b])
    user = type(user).objects.get(pk=user.pk)
    env = type(env).objects.select_related("project").get(pk=env.pk)

    with django_assert_num_queries(2):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env, feature_a) is True
    with django_assert_num_queries(1):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env, feature_b) is False
    with django_assert_num_queries(0):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env, feature_a) is True
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env) is False
        assert engine.allowed(user, VIEW_ENVIRONMENT, env) is True
        assert engine.can_view(user, env) and engine.can_view(user, env.project)
    assert list(engine.features_allowed(user, UPDATE_FEATURE_STATE, env)) == [feature_a]
    assert reports.my_permissions(user, env)["tag_based_permissions"] == [
        {"permissions": [UPDATE_FEATURE_STATE], "tags": [tag_a.pk]}
    ]
    explanation = reports.explain(user, UPDATE_FEATURE_STATE, env, feature_b)
    assert explanation["allowed"] is False
    assert explanation["blocked_by"] == [
        {
            "via": "role",
            "group": group.pk,
            "role": role.pk,
            "tags": [tag_a.pk],
            "why": "tag_mismatch",
        }
    ]
    assert engine.allowed(user, DELETE_FEATURE, env.project, feature_a) is False


def test_allowed__non_member_through_group__denied(db):
    env = f.EnvironmentFactory()
    org = env.project.organisation
    outsider = f.UserFactory()
    group = f.UserGroupFactory(organisation=org, users=[outsider])
    f.grant(group, env, [UPDATE_FEATURE_STATE])
    assert engine.allowed(outsider, UPDATE_FEATURE_STATE, env) is False
    assert engine.can_view(outsider, env) is False
