"""`user.has_perm("<app>.<action>", obj)` answers through the engine (rules backend)."""

from __future__ import annotations

import pytest

from features.models import FeatureState
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_FEATURE,
    DELETE_FEATURE,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
)
from tests import factories as f
from tests.support.access import fresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    env = f.EnvironmentFactory()
    project = env.project
    org = project.organisation
    tag_a = f.TagFactory(project=project, label="a")
    tag_b = f.TagFactory(project=project, label="b")
    feature_a = f.FeatureFactory(project=project, tags=[tag_a])
    feature_b = f.FeatureFactory(project=project, tags=[tag_b])
    user = f.member(org)
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, user=user)
    return {
        "env": env,
        "project": project,
        "org": org,
        "tag_a": tag_a,
        "feature_a": feature_a,
        "feature_b": feature_b,
        "user": user,
        "role": role,
    }


def state_of(feature, env):
    return FeatureState.objects.get(feature=feature, environment=env, segment_override=None)


def test_change_featurestate__role_tagged_same_tag__granted(world):
    f.grant(world["role"], world["env"], {UPDATE_FEATURE_STATE: [world["tag_a"]]})
    user = fresh(world["user"])
    assert user.has_perm("features.change_featurestate", state_of(world["feature_a"], world["env"]))


def test_change_featurestate__role_tagged_other_tag__denied(world):
    f.grant(world["role"], world["env"], {UPDATE_FEATURE_STATE: [world["tag_a"]]})
    user = fresh(world["user"])
    assert not user.has_perm(
        "features.change_featurestate", state_of(world["feature_b"], world["env"])
    )


def test_change_featurestate__without_object__denied_fail_closed(world):
    f.grant(world["role"], world["env"], {UPDATE_FEATURE_STATE: [world["tag_a"]]})
    assert not fresh(world["user"]).has_perm("features.change_featurestate")


def test_delete_feature__tagged_delete_feature(world):
    f.grant(world["role"], world["project"], {DELETE_FEATURE: [world["tag_a"]]})
    user = fresh(world["user"])
    assert user.has_perm("features.delete_feature", world["feature_a"])
    assert not user.has_perm("features.delete_feature", world["feature_b"])


def test_change_feature__needs_create_feature(world):
    user = fresh(world["user"])
    assert not user.has_perm("features.change_feature", world["feature_a"])
    f.grant(world["role"], world["project"], [CREATE_FEATURE])
    assert fresh(world["user"]).has_perm("features.change_feature", world["feature_a"])


def test_segment_override_perms__tagged(world):
    f.grant(world["role"], world["env"], {MANAGE_SEGMENT_OVERRIDES: [world["tag_a"]]})
    override_a = f.SegmentOverrideFactory(feature=world["feature_a"], environment=world["env"])
    override_b = f.SegmentOverrideFactory(feature=world["feature_b"], environment=world["env"])
    user = fresh(world["user"])
    assert user.has_perm("features.change_segmentoverride", override_a)
    assert user.has_perm("features.delete_segmentoverride", override_a)
    assert not user.has_perm("features.change_segmentoverride", override_b)


@pytest.mark.parametrize(
    ("features", "expected"),
    [(("feature_a",), True), (("feature_a", "feature_b"), False), (("feature_b",), False)],
)
def test_approve_changerequest__needs_key_on_every_feature(world, features, expected):
    f.grant(world["role"], world["env"], {APPROVE_CHANGE_REQUEST: [world["tag_a"]]})
    change_request = f.ChangeRequestFactory(environment=world["env"])
    for name in features:
        f.ChangeRequestChangeFactory(change_request=change_request, feature=world[name])
    assert (
        fresh(world["user"]).has_perm("features.approve_changerequest", change_request) is expected
    )


def test_scope_perms__view_and_admin(world):
    user = fresh(world["user"])
    assert user.has_perm("organisations.view_organisation", world["org"])
    assert not user.has_perm("organisations.change_organisation", world["org"])
    assert not user.has_perm("projects.view_project", world["project"])
    f.grant(world["user"], world["project"], admin=True)
    user = fresh(world["user"])
    assert user.has_perm("projects.view_project", world["project"])
    assert user.has_perm("projects.change_project", world["project"])
    assert user.has_perm("environments.change_environment", world["env"])


def test_non_member__has_nothing_even_with_grant(world):
    outsider = f.UserFactory()
    f.grant(outsider, world["project"], admin=True)
    assert not outsider.has_perm("projects.view_project", world["project"])
    assert not outsider.has_perm("features.delete_feature", world["feature_a"])
