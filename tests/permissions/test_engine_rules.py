"""docs/PERMISSIONS.md, "How one decision is made", rule by rule: for each rule a case that grants and a case that denies.

Rules about grant entries are parametrised over the four paths by which an entry reaches a
user: the user's own grant, a grant of one of its groups, a grant of a role assigned to it, and
a grant of a role assigned to one of its groups. Grants are written directly with `f.grant`
(the engine is tested on the rows, whatever wrote them; validation is tested elsewhere), so
tagged entries are also tried on user and group grants: the engine must decide them exactly as
on role grants even though the services only let roles carry tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import OrganisationAPIKey, OrganisationMembership
from permissions import engine, reports
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_ENVIRONMENT,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_SEGMENT_OVERRIDES,
    MANAGE_SEGMENTS,
    MANAGE_TAGS,
    MANAGE_USER_GROUPS,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_AUDIT_LOG,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from projects.models import Project
from tests import factories as f

pytestmark = pytest.mark.django_db


User = get_user_model()

PATHS = ("user", "group", "role", "role_through_group")
ENV_KEYS = KEYS_BY_LEVEL[Level.ENVIRONMENT]
PROJECT_KEYS = KEYS_BY_LEVEL[Level.PROJECT]
ORG_KEYS = KEYS_BY_LEVEL[Level.ORGANISATION]
ENV_TAG_KEYS = tuple(k for k in ENV_KEYS if k in TAG_SUPPORTED_KEYS)


def holder(path: str, user: Any, organisation: Any) -> Any:
    """The principal whose grant reaches `user` through `path` (built on the fly)."""
    if path == "user":
        return user
    if path == "group":
        return f.UserGroupFactory(organisation=organisation, users=[user])
    role = f.RoleFactory(organisation=organisation)
    if path == "role":
        f.RoleAssignmentFactory(role=role, user=user)
    elif path == "role_through_group":
        group = f.UserGroupFactory(organisation=organisation, users=[user])
        f.RoleAssignmentFactory(role=role, group=group)
    else:  # pragma: no cover
        raise AssertionError(path)
    return role


def fresh(principal: Any) -> Any:
    """A new instance of the principal: no memoised policy."""
    return type(principal).objects.get(pk=principal.pk)


@dataclass
class World:
    org: Any
    project: Project
    env: Environment
    env2: Environment
    other_project: Project
    other_env: Environment
    user: Any
    tag_a: Any
    tag_b: Any
    tag_c: Any
    tag_r: Any  # restricted
    untagged: Feature
    feat_a: Feature
    feat_ab: Feature
    feat_c: Feature
    feat_r: Feature
    feat_ra: Feature
    other_feature: Feature

    def env_fresh(self, env: Environment | None = None) -> Environment:
        return Environment.objects.select_related("project").get(pk=(env or self.env).pk)

    def features(self) -> list[Feature]:
        return [self.untagged, self.feat_a, self.feat_ab, self.feat_c, self.feat_r, self.feat_ra]


@pytest.fixture
def w() -> World:
    org = f.OrganisationFactory()
    project = f.ProjectFactory(organisation=org)
    env = f.EnvironmentFactory(project=project)
    env2 = f.EnvironmentFactory(project=project)
    other_project = f.ProjectFactory(organisation=org)
    other_env = f.EnvironmentFactory(project=other_project)
    tag_a = f.TagFactory(project=project, label="a")
    tag_b = f.TagFactory(project=project, label="b")
    tag_c = f.TagFactory(project=project, label="c")
    tag_r = f.TagFactory(project=project, label="r", is_restricted=True)
    other_tag = f.TagFactory(project=other_project, label="a")
    return World(
        org=org,
        project=project,
        env=env,
        env2=env2,
        other_project=other_project,
        other_env=other_env,
        user=f.member(org),
        tag_a=tag_a,
        tag_b=tag_b,
        tag_c=tag_c,
        tag_r=tag_r,
        untagged=f.FeatureFactory(project=project),
        feat_a=f.FeatureFactory(project=project, tags=[tag_a]),
        feat_ab=f.FeatureFactory(project=project, tags=[tag_b, tag_a]),
        feat_c=f.FeatureFactory(project=project, tags=[tag_c]),
        feat_r=f.FeatureFactory(project=project, tags=[tag_r]),
        feat_ra=f.FeatureFactory(project=project, tags=[tag_r, tag_a]),
        other_feature=f.FeatureFactory(project=other_project, tags=[other_tag]),
    )


def allowed_features(principal: Any, key: str, scope: Any) -> set[int]:
    return set(engine.features_allowed(principal, key, scope).values_list("pk", flat=True))


def allowed_state_features(principal: Any, key: str, env: Environment) -> set[int]:
    return set(
        engine.feature_states_allowed(principal, key, env).values_list("feature_id", flat=True)
    )


def check_lists_agree(principal: Any, key: str, scope: Any, features: list[Feature]) -> set[int]:
    """features_allowed (and feature_states_allowed) hold exactly the features `allowed`
    allows; returns the allowed ids."""
    expected = {ft.pk for ft in features if engine.allowed(principal, key, scope, ft)}
    assert allowed_features(principal, key, scope) == expected
    if isinstance(scope, Environment):
        assert allowed_state_features(principal, key, scope) == expected
    return expected


# --------------------------------------------------------------------------------------
# Rule 1: organisation ADMIN members and admin API keys
# --------------------------------------------------------------------------------------


def _all_checks(principal: Any, w: World) -> list[bool]:
    env, project = w.env_fresh(), w.project
    out = [engine.allowed(principal, k, w.org) for k in ORG_KEYS]
    out += [engine.allowed(principal, k, project) for k in PROJECT_KEYS]
    out += [engine.allowed(principal, k, env) for k in ENV_KEYS]
    for feature in w.features():
        out += [engine.allowed(principal, k, env, feature) for k in ENV_KEYS]
        out.append(engine.allowed(principal, DELETE_FEATURE, project, feature))
    out += [engine.allowed(principal, k, w.env2) for k in ENV_KEYS]
    out += [engine.allowed(principal, k, w.other_env) for k in ENV_KEYS]
    out += [engine.is_admin(principal, s) for s in (w.org, project, env, w.other_project)]
    out += [engine.can_view(principal, s) for s in (w.org, project, env, w.env2, w.other_env)]
    return out


@pytest.mark.parametrize("kind", ["member", "api_key"])
def test_allowed__organisation_admin__every_key_everywhere(w: World, kind: str) -> None:
    if kind == "member":
        principal = fresh(f.member(w.org, admin=True))
    else:
        principal = f.APIKeyFactory(organisation=w.org, is_admin=True)
    assert all(_all_checks(principal, w))
    # restricted and tagged features included, and the lists too
    for key in ENV_KEYS:
        assert check_lists_agree(principal, key, w.env, w.features()) == {
            ft.pk for ft in w.features()
        }
    assert reports.my_permissions(principal, w.org)["admin"] is True
    assert reports.my_permissions(principal, w.env)["permissions"] == sorted(ENV_KEYS)


@pytest.mark.parametrize("kind", ["member", "api_key", "other_org_admin", "other_org_key"])
def test_allowed__non_admin_or_foreign_admin__nothing(w: World, kind: str) -> None:
    other_org = f.OrganisationFactory()
    principal = {
        "member": lambda: fresh(w.user),
        "api_key": lambda: f.APIKeyFactory(organisation=w.org, is_admin=False),
        "other_org_admin": lambda: fresh(f.member(other_org, admin=True)),
        "other_org_key": lambda: f.APIKeyFactory(organisation=other_org, is_admin=True),
    }[kind]()
    checks = _all_checks(principal, w)
    # a plain member (or key) of the organisation still views it; nothing else
    if kind in ("member", "api_key"):
        assert checks[-5] is True
        checks = checks[:-5] + checks[-4:]
    assert not any(checks)


def test_is_admin__admin_of_another_organisation__false_here(w: World) -> None:
    user = f.member(f.OrganisationFactory(), admin=True)
    f.MembershipFactory(user=user, organisation=w.org)  # USER here
    user = fresh(user)
    assert engine.allowed(user, CREATE_PROJECT, w.org) is False
    assert engine.allowed(user, UPDATE_FEATURE_STATE, w.env) is False
    assert engine.can_view(user, w.org) is True


# --------------------------------------------------------------------------------------
# Rule 2: project admin, environment admin
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_allowed__project_admin__project_and_every_environment_key(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.project, admin=True)
    user = fresh(w.user)
    for key in PROJECT_KEYS:
        assert engine.allowed(user, key, w.project)
    for env in (w.env_fresh(), w.env2):
        for key in ENV_KEYS:
            assert engine.allowed(user, key, env)
            for feature in w.features():  # restricted tags do not affect admins
                assert engine.allowed(user, key, env, feature)
        assert engine.is_admin(user, env)
        assert engine.can_view(user, env)
    for feature in w.features():
        assert engine.allowed(user, DELETE_FEATURE, w.project, feature)
    assert engine.is_admin(user, w.project)
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, w.env, w.features()) == {
        ft.pk for ft in w.features()
    }


@pytest.mark.parametrize("path", PATHS)
def test_allowed__project_admin_on_other_project_or_organisation__denied(
    w: World, path: str
) -> None:
    f.grant(holder(path, w.user, w.org), w.project, admin=True)
    user = fresh(w.user)
    for key in PROJECT_KEYS:
        assert not engine.allowed(user, key, w.other_project)
    for key in ENV_KEYS:
        assert not engine.allowed(user, key, w.other_env)
        assert not engine.allowed(user, key, w.other_env, w.other_feature)
    for key in ORG_KEYS:
        assert not engine.allowed(user, key, w.org)
    assert not engine.is_admin(user, w.other_project)
    assert not engine.is_admin(user, w.org)
    assert not engine.can_view(user, w.other_project)
    assert not engine.can_view(user, w.other_env)


@pytest.mark.parametrize("path", PATHS)
def test_allowed__environment_admin__environment_keys(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.env, admin=True)
    user = fresh(w.user)
    env = w.env_fresh()
    for key in ENV_KEYS:
        assert engine.allowed(user, key, env)
        for feature in w.features():
            assert engine.allowed(user, key, env, feature)
    assert engine.is_admin(user, env)
    assert check_lists_agree(user, APPROVE_CHANGE_REQUEST, env, w.features()) == {
        ft.pk for ft in w.features()
    }


@pytest.mark.parametrize("path", PATHS)
def test_allowed__environment_admin_on_project_or_other_environment__denied(
    w: World, path: str
) -> None:
    f.grant(holder(path, w.user, w.org), w.env, admin=True)
    user = fresh(w.user)
    for key in PROJECT_KEYS:
        assert not engine.allowed(user, key, w.project)
    for feature in w.features():
        assert not engine.allowed(user, DELETE_FEATURE, w.project, feature)
    for key in ENV_KEYS:
        assert not engine.allowed(user, key, w.env2)
        assert not engine.allowed(user, key, w.other_env)
    assert not engine.is_admin(user, w.project)
    assert not engine.is_admin(user, w.env2)
    assert allowed_features(user, DELETE_FEATURE, w.project) == set()
    assert allowed_state_features(user, UPDATE_FEATURE_STATE, w.env2) == set()


# --------------------------------------------------------------------------------------
# Rule 3: untagged and tagged entries
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_allowed__untagged_entry__every_unrestricted_feature(w: World, path: str) -> None:
    """Flagsmith #4288: an untagged entry is not narrowed by the feature's tags."""
    f.grant(holder(path, w.user, w.org), w.env, [UPDATE_FEATURE_STATE])
    f.grant(holder(path, w.user, w.org), w.project, [DELETE_FEATURE])
    user = fresh(w.user)
    env = w.env_fresh()
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env)
    assert engine.allowed(user, DELETE_FEATURE, w.project)
    for feature in (w.untagged, w.feat_a, w.feat_ab, w.feat_c):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, env, feature)
        assert engine.allowed(user, DELETE_FEATURE, w.project, feature)
    expected = {w.untagged.pk, w.feat_a.pk, w.feat_ab.pk, w.feat_c.pk}
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, env, w.features()) == expected
    assert check_lists_agree(user, DELETE_FEATURE, w.project, w.features()) == expected


@pytest.mark.parametrize("path", PATHS)
def test_allowed__untagged_entry_other_key_or_scope__denied(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.env, [UPDATE_FEATURE_STATE])
    user = fresh(w.user)
    for key in set(ENV_KEYS) - {UPDATE_FEATURE_STATE}:
        assert not engine.allowed(user, key, w.env, w.untagged)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, w.env2, w.untagged)
    assert not engine.allowed(user, DELETE_FEATURE, w.project, w.untagged)
    assert not engine.allowed(user, VIEW_PROJECT, w.project)
    assert not engine.is_admin(user, w.env)
    assert check_lists_agree(user, CREATE_CHANGE_REQUEST, w.env, w.features()) == set()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("key", ENV_TAG_KEYS)
def test_allowed__tagged_entry_feature_sharing_a_tag__allowed(
    w: World, path: str, key: str
) -> None:
    f.grant(holder(path, w.user, w.org), w.env, {key: [w.tag_a, w.tag_c]})
    user = fresh(w.user)
    env = w.env_fresh()
    # any-match: one shared tag is enough, whatever else the feature carries
    for feature in (w.feat_a, w.feat_ab, w.feat_c):
        assert engine.allowed(user, key, env, feature)
    assert check_lists_agree(user, key, env, w.features()) == {
        w.feat_a.pk,
        w.feat_ab.pk,
        w.feat_c.pk,
    }
    assert engine.keys_on_feature(user, env, w.feat_a) == [key]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("key", ENV_TAG_KEYS)
def test_allowed__tagged_entry_other_feature_or_no_feature__denied(
    w: World, path: str, key: str
) -> None:
    """Flagsmith #4287: a tagged entry never counts when no feature is given."""
    f.grant(holder(path, w.user, w.org), w.env, {key: [w.tag_b]})
    user = fresh(w.user)
    env = w.env_fresh()
    assert not engine.allowed(user, key, env)
    assert not engine.allowed(user, key, env, None)
    for feature in (w.untagged, w.feat_a, w.feat_c):
        assert not engine.allowed(user, key, env, feature)
    assert engine.allowed(user, key, env, w.feat_ab)
    assert not engine.allowed(user, key, w.env2, w.feat_ab)
    # a tagged entry is not an untagged one: my-permissions keeps it apart
    payload = reports.my_permissions(user, env)
    assert key not in payload["permissions"]
    assert payload["tag_based_permissions"] == [{"permissions": [key], "tags": [w.tag_b.pk]}]


@pytest.mark.parametrize("path", PATHS)
def test_allowed__tagged_project_entry_delete_feature__only_tagged(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.project, {DELETE_FEATURE: [w.tag_a]})
    user = fresh(w.user)
    assert engine.allowed(user, DELETE_FEATURE, w.project, w.feat_a)
    assert engine.allowed(user, DELETE_FEATURE, w.project, w.feat_ab)
    assert not engine.allowed(user, DELETE_FEATURE, w.project, w.feat_c)
    assert not engine.allowed(user, DELETE_FEATURE, w.project, w.untagged)
    assert not engine.allowed(user, DELETE_FEATURE, w.project)
    assert check_lists_agree(user, DELETE_FEATURE, w.project, w.features()) == {
        w.feat_a.pk,
        w.feat_ab.pk,
    }


def test_allowed__untagged_and_tagged_entries_of_one_key__combine(w: World) -> None:
    """One path holds the key untagged, another tagged: the union of both."""
    role = holder("role", w.user, w.org)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.tag_r]})
    f.grant(w.user, w.env, [UPDATE_FEATURE_STATE])
    user = fresh(w.user)
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, w.env, w.features()) == {
        ft.pk for ft in w.features()
    }


def test_allowed__non_tag_key_with_feature__feature_ignored(w: World) -> None:
    f.grant(w.user, w.env, [VIEW_ENVIRONMENT])
    f.grant(w.user, w.project, [VIEW_PROJECT, CREATE_FEATURE])
    user = fresh(w.user)
    for feature in w.features():
        assert engine.allowed(user, VIEW_ENVIRONMENT, w.env, feature)
        assert engine.allowed(user, CREATE_FEATURE, w.project, feature)
    assert check_lists_agree(user, VIEW_ENVIRONMENT, w.env, w.features()) == {
        ft.pk for ft in w.features()
    }
    assert check_lists_agree(user, MANAGE_TAGS, w.project, w.features()) == set()


# --------------------------------------------------------------------------------------
# Restricted tags
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_allowed__restricted_feature_entry_names_restricted_tag__allowed(
    w: World, path: str
) -> None:
    f.grant(holder(path, w.user, w.org), w.env, {UPDATE_FEATURE_STATE: [w.tag_r]})
    f.grant(holder(path, w.user, w.org), w.project, {DELETE_FEATURE: [w.tag_r, w.tag_c]})
    user = fresh(w.user)
    env = w.env_fresh()
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_r)
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_ra)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_a)
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, env, w.features()) == {
        w.feat_r.pk,
        w.feat_ra.pk,
    }
    assert check_lists_agree(user, DELETE_FEATURE, w.project, w.features()) == {
        w.feat_c.pk,
        w.feat_r.pk,
        w.feat_ra.pk,
    }


@pytest.mark.parametrize("path", PATHS)
def test_allowed__restricted_feature_untagged_entry__denied(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.env, [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT])
    user = fresh(w.user)
    env = w.env_fresh()
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_r)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_ra)
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_a)
    # without a feature the untagged entry counts (no feature, no restricted tag)
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env)
    # keys that do not support tags are unaffected
    assert engine.allowed(user, VIEW_ENVIRONMENT, env, w.feat_r)
    assert check_lists_agree(user, VIEW_ENVIRONMENT, env, w.features()) == {
        ft.pk for ft in w.features()
    }
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, env, w.features()) == {
        w.untagged.pk,
        w.feat_a.pk,
        w.feat_ab.pk,
        w.feat_c.pk,
    }


@pytest.mark.parametrize("path", PATHS)
def test_allowed__restricted_feature_entry_names_only_unrestricted_tags__denied(
    w: World, path: str
) -> None:
    f.grant(holder(path, w.user, w.org), w.env, {UPDATE_FEATURE_STATE: [w.tag_a]})
    user = fresh(w.user)
    env = w.env_fresh()
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_ra)  # shares tag a
    assert engine.allowed(user, UPDATE_FEATURE_STATE, env, w.feat_a)
    assert check_lists_agree(user, UPDATE_FEATURE_STATE, env, w.features()) == {
        w.feat_a.pk,
        w.feat_ab.pk,
    }


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scope", ["project", "environment"])
def test_allowed__admin_on_restricted_feature__allowed(w: World, path: str, scope: str) -> None:
    f.grant(holder(path, w.user, w.org), w.project if scope == "project" else w.env, admin=True)
    user = fresh(w.user)
    for key in ENV_TAG_KEYS:
        assert engine.allowed(user, key, w.env, w.feat_r)
        assert engine.allowed(user, key, w.env, w.feat_ra)
    assert engine.allowed(user, DELETE_FEATURE, w.project, w.feat_r) is (scope == "project")


def test_allowed__tag_restricted_after_policy_built__denied(w: World) -> None:
    role = holder("role", w.user, w.org)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.tag_b]})
    other = f.member(w.org)
    f.grant(other, w.env, [UPDATE_FEATURE_STATE])
    assert engine.allowed(fresh(other), UPDATE_FEATURE_STATE, w.env, w.feat_ab)
    w.tag_b.is_restricted = True
    w.tag_b.save()
    feature = Feature.objects.get(pk=w.feat_ab.pk)
    assert engine.allowed(fresh(w.user), UPDATE_FEATURE_STATE, w.env, feature)
    assert not engine.allowed(fresh(other), UPDATE_FEATURE_STATE, w.env, feature)


# --------------------------------------------------------------------------------------
# Membership gates everything
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_allowed__member_through_path__allowed(w: World, path: str) -> None:
    """The granting counterpart of the membership cases below."""
    f.grant(holder(path, w.user, w.org), w.env, [UPDATE_FEATURE_STATE])
    assert engine.allowed(fresh(w.user), UPDATE_FEATURE_STATE, w.env, w.untagged)


@pytest.mark.parametrize("path", PATHS)
def test_allowed__non_member_through_any_path__denied(w: World, path: str) -> None:
    outsider = f.UserFactory()
    f.grant(holder(path, outsider, w.org), w.env, [UPDATE_FEATURE_STATE], admin=True)
    f.grant(holder(path, outsider, w.org), w.project, [DELETE_FEATURE], admin=True)
    outsider = fresh(outsider)
    assert not any(_all_checks(outsider, w))
    assert _listed(outsider) == (set(), set())
    assert allowed_features(outsider, DELETE_FEATURE, w.project) == set()
    assert allowed_state_features(outsider, UPDATE_FEATURE_STATE, w.env) == set()
    assert reports.my_permissions(outsider, w.env) == {
        "admin": False,
        "permissions": [],
        "tag_based_permissions": [],
        "restricted_tags": [w.tag_r.pk],
    }
    assert reports.explain(outsider, UPDATE_FEATURE_STATE, w.env, w.untagged)["granted_by"] == []


@pytest.mark.parametrize("path", PATHS)
def test_allowed__removed_member__denied(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.env, [UPDATE_FEATURE_STATE], admin=True)
    assert engine.allowed(fresh(w.user), UPDATE_FEATURE_STATE, w.env, w.untagged)
    OrganisationMembership.objects.filter(user=w.user, organisation=w.org).delete()
    user = fresh(w.user)
    assert not any(_all_checks(user, w))
    assert _listed(user) == (set(), set())


def test_allowed__group_of_another_organisation__denied(w: World) -> None:
    other_org = f.OrganisationFactory()
    f.MembershipFactory(user=w.user, organisation=other_org)
    foreign_group = f.UserGroupFactory(organisation=other_org, users=[w.user])
    f.grant(foreign_group, w.env, [UPDATE_FEATURE_STATE], admin=True)
    f.grant(foreign_group, w.project, [VIEW_PROJECT])
    user = fresh(w.user)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, w.env)
    assert not engine.is_admin(user, w.env)
    assert not engine.can_view(user, w.env)
    assert not engine.can_view(user, w.project)
    assert not Project.objects.filter(engine.viewable_projects_q(user)).exists()
    assert not Environment.objects.filter(engine.viewable_environments_q(user)).exists()


def test_allowed__role_through_group_of_another_organisation__denied(w: World) -> None:
    other_org = f.OrganisationFactory()
    foreign_group = f.UserGroupFactory(organisation=other_org, users=[w.user])
    role = f.RoleFactory(organisation=w.org)
    f.RoleAssignmentFactory(role=role, group=foreign_group)
    f.grant(role, w.env, [UPDATE_FEATURE_STATE], admin=True)
    user = fresh(w.user)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, w.env)
    assert not engine.can_view(user, w.env)
    assert not Environment.objects.filter(engine.viewable_environments_q(user)).exists()


@pytest.mark.parametrize("assigned_to", ["user", "group"])
def test_allowed__role_of_another_organisation__denied(w: World, assigned_to: str) -> None:
    """Even when rows (wrongly) grant a foreign role on this organisation's scopes."""
    other_org = f.OrganisationFactory()
    f.MembershipFactory(user=w.user, organisation=other_org)
    foreign_role = f.RoleFactory(organisation=other_org)
    if assigned_to == "user":
        f.RoleAssignmentFactory(role=foreign_role, user=w.user)
    else:
        group = f.UserGroupFactory(organisation=w.org, users=[w.user])
        f.RoleAssignmentFactory(role=foreign_role, group=group)
    f.grant(foreign_role, w.env, [UPDATE_FEATURE_STATE], admin=True)
    user = fresh(w.user)
    assert not engine.allowed(user, UPDATE_FEATURE_STATE, w.env)
    assert not engine.can_view(user, w.env)
    assert not Environment.objects.filter(engine.viewable_environments_q(user)).exists()


def test_allowed__member_of_another_organisation_only__denied(w: World) -> None:
    outsider = f.member(f.OrganisationFactory(), admin=True)
    f.grant(outsider, w.env, [UPDATE_FEATURE_STATE])
    assert not engine.allowed(fresh(outsider), UPDATE_FEATURE_STATE, w.env)


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


def test_allowed__api_key_through_its_roles__allowed(w: World) -> None:
    key = f.APIKeyFactory(organisation=w.org)
    role = f.RoleFactory(organisation=w.org)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.tag_a], VIEW_ENVIRONMENT: []})
    f.grant(role, w.project, [VIEW_PROJECT])
    key = fresh(key)
    assert engine.allowed(key, VIEW_ENVIRONMENT, w.env)
    assert engine.allowed(key, VIEW_PROJECT, w.project)
    assert engine.allowed(key, UPDATE_FEATURE_STATE, w.env, w.feat_a)
    assert not engine.allowed(key, UPDATE_FEATURE_STATE, w.env, w.feat_c)
    assert not engine.allowed(key, UPDATE_FEATURE_STATE, w.env)
    assert not engine.allowed(key, CREATE_PROJECT, w.org)
    assert not engine.is_admin(key, w.org)
    assert engine.can_view(key, w.env) and engine.can_view(key, w.project)
    assert not engine.can_view(key, w.env2)
    assert check_lists_agree(key, UPDATE_FEATURE_STATE, w.env, w.features()) == {
        w.feat_a.pk,
        w.feat_ab.pk,
    }


def test_allowed__api_key_without_roles__denied(w: World) -> None:
    key = f.APIKeyFactory(organisation=w.org)
    # a role of a group or user does not reach a key
    role = holder("role", w.user, w.org)
    f.grant(role, w.env, [UPDATE_FEATURE_STATE])
    assert not engine.allowed(key, UPDATE_FEATURE_STATE, w.env)
    assert not engine.can_view(key, w.env)
    assert engine.can_view(key, w.org)


@pytest.mark.parametrize("state", ["revoked", "expired"])
@pytest.mark.parametrize("is_admin", [False, True])
def test_allowed__revoked_or_expired_api_key__denied(w: World, state: str, is_admin: bool) -> None:
    key = f.APIKeyFactory(organisation=w.org, is_admin=is_admin)
    role = f.RoleFactory(organisation=w.org)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, w.env, [UPDATE_FEATURE_STATE], admin=True)
    f.grant(role, w.project, [VIEW_PROJECT], admin=True)
    assert engine.allowed(fresh(key), UPDATE_FEATURE_STATE, w.env)
    if state == "revoked":
        OrganisationAPIKey.objects.filter(pk=key.pk).update(revoked=True)
    else:
        OrganisationAPIKey.objects.filter(pk=key.pk).update(
            expiry_date=timezone.now() - timedelta(seconds=1)
        )
    key = fresh(key)
    assert not any(_all_checks(key, w))
    assert not Project.objects.filter(engine.viewable_projects_q(key)).exists()
    assert not Environment.objects.filter(engine.viewable_environments_q(key)).exists()
    assert allowed_state_features(key, UPDATE_FEATURE_STATE, w.env) == set()


def test_allowed__api_key_expiring_later__allowed(w: World) -> None:
    key = f.APIKeyFactory(organisation=w.org, is_admin=True)
    OrganisationAPIKey.objects.filter(pk=key.pk).update(
        expiry_date=timezone.now() + timedelta(days=1)
    )
    assert engine.allowed(fresh(key), UPDATE_FEATURE_STATE, w.env, w.feat_r)


# --------------------------------------------------------------------------------------
# Viewing
# --------------------------------------------------------------------------------------


def _views(user: Any, w: World) -> dict[str, bool]:
    return {
        "org": engine.can_view(user, w.org),
        "project": engine.can_view(user, w.project),
        "env": engine.can_view(user, w.env_fresh()),
        "env2": engine.can_view(user, w.env2),
        "other_project": engine.can_view(user, w.other_project),
        "other_env": engine.can_view(user, w.other_env),
    }


def _listed(user: Any) -> tuple[set[int], set[int]]:
    projects = set(
        Project.objects.filter(engine.viewable_projects_q(user)).values_list("pk", flat=True)
    )
    envs = set(
        Environment.objects.filter(engine.viewable_environments_q(user)).values_list(
            "pk", flat=True
        )
    )
    return projects, envs


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "entries",
    [
        [VIEW_ENVIRONMENT],
        [UPDATE_FEATURE_STATE],
        "tagged",
        "restricted",
        "admin",
    ],
)
def test_can_view__environment_key_or_admin__environment_and_parents(
    w: World, path: str, entries: Any
) -> None:
    if entries == "tagged":
        f.grant(holder(path, w.user, w.org), w.env, {MANAGE_SEGMENT_OVERRIDES: [w.tag_c]})
    elif entries == "restricted":
        f.grant(holder(path, w.user, w.org), w.env, {APPROVE_CHANGE_REQUEST: [w.tag_r]})
    elif entries == "admin":
        f.grant(holder(path, w.user, w.org), w.env, admin=True)
    else:
        f.grant(holder(path, w.user, w.org), w.env, entries)
    user = fresh(w.user)
    assert _views(user, w) == {
        "org": True,
        "project": True,
        "env": True,
        "env2": False,  # an environment grant does not show sibling environments
        "other_project": False,
        "other_env": False,
    }
    assert _listed(user) == ({w.project.pk}, {w.env.pk})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("entries", [[MANAGE_SEGMENTS], {DELETE_FEATURE: "tag"}])
def test_can_view__project_key__project_not_its_environments(
    w: World, path: str, entries: Any
) -> None:
    if isinstance(entries, dict):
        entries = {DELETE_FEATURE: [w.tag_a]}
    f.grant(holder(path, w.user, w.org), w.project, entries)
    user = fresh(w.user)
    views = _views(user, w)
    assert views == {
        "org": True,
        "project": True,
        "env": False,
        "env2": False,
        "other_project": False,
        "other_env": False,
    }
    assert _listed(user) == ({w.project.pk}, set())


@pytest.mark.parametrize("path", PATHS)
def test_can_view__project_admin__every_environment(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.project, admin=True)
    user = fresh(w.user)
    assert _views(user, w) == {
        "org": True,
        "project": True,
        "env": True,
        "env2": True,
        "other_project": False,
        "other_env": False,
    }
    assert _listed(user) == ({w.project.pk}, {w.env.pk, w.env2.pk})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scope", ["project", "environment"])
def test_can_view__empty_grant__nothing(w: World, path: str, scope: str) -> None:
    f.grant(holder(path, w.user, w.org), w.project if scope == "project" else w.env, [])
    user = fresh(w.user)
    assert _views(user, w) == {
        "org": True,
        "project": False,
        "env": False,
        "env2": False,
        "other_project": False,
        "other_env": False,
    }
    assert _listed(user) == (set(), set())


def test_can_view__organisation_key__only_the_organisation(w: World) -> None:
    f.grant(w.user, w.org, [CREATE_PROJECT, MANAGE_USER_GROUPS])
    user = fresh(w.user)
    assert engine.allowed(user, CREATE_PROJECT, w.org)
    assert engine.allowed(user, MANAGE_USER_GROUPS, w.org)
    assert _views(user, w)["project"] is False
    assert _listed(user) == (set(), set())


@pytest.mark.parametrize("path", PATHS)
def test_can_view__organisation_key_through_path__organisation(w: World, path: str) -> None:
    f.grant(holder(path, w.user, w.org), w.org, [CREATE_PROJECT])
    user = fresh(w.user)
    assert engine.allowed(user, CREATE_PROJECT, w.org)
    assert not engine.allowed(user, MANAGE_USER_GROUPS, w.org)
    assert reports.my_permissions(user, w.org)["permissions"] == [CREATE_PROJECT]


def test_can_view__organisation_admin__everything(w: World) -> None:
    admin = fresh(f.member(w.org, admin=True))
    assert all(_views(admin, w).values())
    projects, envs = _listed(admin)
    assert projects == {w.project.pk, w.other_project.pk}
    assert envs == {w.env.pk, w.env2.pk, w.other_env.pk}


def test_can_view__non_member__nothing(w: World) -> None:
    outsider = f.UserFactory()
    assert not any(_views(outsider, w).values())
    assert _listed(outsider) == (set(), set())


# --------------------------------------------------------------------------------------
# A feature of another project is never allowed
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["org_admin", "project_admin", "untagged", "api_key_admin"])
def test_allowed__feature_of_another_project__denied(w: World, kind: str) -> None:
    if kind == "org_admin":
        principal = fresh(f.member(w.org, admin=True))
    elif kind == "api_key_admin":
        principal = f.APIKeyFactory(organisation=w.org, is_admin=True)
    else:
        f.grant(w.user, w.project, [DELETE_FEATURE], admin=kind == "project_admin")
        f.grant(w.user, w.other_project, [DELETE_FEATURE], admin=kind == "project_admin")
        f.grant(w.user, w.env, list(ENV_KEYS))
        principal = fresh(w.user)
    for key in ENV_KEYS:
        assert not engine.allowed(principal, key, w.env, w.other_feature)
    assert not engine.allowed(principal, DELETE_FEATURE, w.project, w.other_feature)
    assert engine.keys_on_feature(principal, w.env, w.other_feature) == []
    # the lists only ever hold the scope's own project's features
    qs = Feature.objects.all()
    assert w.other_feature.pk not in set(
        engine.features_allowed(principal, DELETE_FEATURE, w.project, qs).values_list(
            "pk", flat=True
        )
    )
    states = FeatureState.objects.all()
    assert (
        not engine.feature_states_allowed(principal, UPDATE_FEATURE_STATE, w.env, states)
        .filter(feature=w.other_feature)
        .exists()
    )


def test_allowed__key_of_wrong_level__error(w: World) -> None:
    user = fresh(w.user)
    with pytest.raises(ValueError):
        engine.allowed(user, UPDATE_FEATURE_STATE, w.project)
    with pytest.raises(ValueError):
        engine.allowed(user, DELETE_FEATURE, w.env)
    with pytest.raises(ValueError):
        engine.allowed(user, "NOT_A_KEY", w.env)
    with pytest.raises(ValueError):
        engine.features_allowed(user, UPDATE_FEATURE_STATE, w.project)


# --------------------------------------------------------------------------------------
# features_allowed / feature_states_allowed agree with allowed, across a mix
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_filters__every_key__agree_with_decisions(w: World, path: str) -> None:
    h = holder(path, w.user, w.org)
    f.grant(
        h,
        w.env,
        {
            UPDATE_FEATURE_STATE: [w.tag_a],
            CREATE_CHANGE_REQUEST: [],
            APPROVE_CHANGE_REQUEST: [w.tag_r, w.tag_c],
            VIEW_ENVIRONMENT: [],
        },
    )
    f.grant(h, w.project, {DELETE_FEATURE: [w.tag_b], CREATE_ENVIRONMENT: [], VIEW_AUDIT_LOG: []})
    user = fresh(w.user)
    env = w.env_fresh()
    for key in ENV_KEYS:
        check_lists_agree(user, key, env, w.features())
        check_lists_agree(user, key, w.env2, w.features())
    for key in PROJECT_KEYS:
        check_lists_agree(user, key, w.project, w.features())
    # a queryset passed in is narrowed, not replaced
    narrowed = engine.features_allowed(
        user, APPROVE_CHANGE_REQUEST, env, Feature.objects.filter(pk__in=[w.feat_r.pk, w.feat_a.pk])
    )
    assert list(narrowed) == [w.feat_r]
