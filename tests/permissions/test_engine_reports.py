"""The engine's reports (docs/API.md, "Permissions in responses"): the
my-permissions payload, the per-user detailed permissions and explain."""

from __future__ import annotations

from typing import Any

import pytest

from environments.models import Environment
from permissions import engine, reports
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_SEGMENT_OVERRIDES,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_AUDIT_LOG,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from tests import factories as f

pytestmark = pytest.mark.django_db

ENV_KEYS = list(KEYS_BY_LEVEL[Level.ENVIRONMENT])
PROJECT_KEYS = list(KEYS_BY_LEVEL[Level.PROJECT])
ORG_KEYS = list(KEYS_BY_LEVEL[Level.ORGANISATION])


def fresh(principal: Any) -> Any:
    return type(principal).objects.get(pk=principal.pk)


@pytest.fixture
def w() -> Any:
    class W:
        pass

    w = W()
    w.org = f.OrganisationFactory()
    w.project = f.ProjectFactory(organisation=w.org)
    w.env = f.EnvironmentFactory(project=w.project)
    w.env2 = f.EnvironmentFactory(project=w.project)
    w.other_project = f.ProjectFactory(organisation=w.org)
    f.TagFactory(project=w.other_project, is_restricted=True)  # not this project's
    w.a = f.TagFactory(project=w.project, label="a")
    w.b = f.TagFactory(project=w.project, label="b")
    w.c = f.TagFactory(project=w.project, label="c")
    w.r = f.TagFactory(project=w.project, label="r", is_restricted=True)
    w.s = f.TagFactory(project=w.project, label="s", is_restricted=True)
    w.user = f.member(w.org)
    return w


def role_for(w: Any, *, through_group: Any = None) -> Any:
    role = f.RoleFactory(organisation=w.org)
    if through_group is not None:
        f.RoleAssignmentFactory(role=role, group=through_group)
    else:
        f.RoleAssignmentFactory(role=role, user=w.user)
    return role


def client_decides(payload: dict[str, Any], key: str, feature_tags: set[int]) -> bool:
    """docs/PERMISSIONS.md: admin, or (R empty and K in permissions), or S contains every tag
    of R (R not empty), or S meets T (R empty)."""
    if payload["admin"]:
        return True
    restricted = feature_tags & set(payload["restricted_tags"])
    if not restricted and key in payload["permissions"]:
        return True
    held: set[int] = set()
    for item in payload["tag_based_permissions"]:
        if key in item["permissions"]:
            held |= set(item["tags"])
    return restricted <= held if restricted else bool(held & feature_tags)


# --------------------------------------------------------------------------------------
# my-permissions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["member", "api_key"])
def test_my_permissions__organisation_admin__admin_everywhere(w: Any, kind: str) -> None:
    principal = (
        fresh(f.member(w.org, admin=True))
        if kind == "member"
        else f.APIKeyFactory(organisation=w.org, is_admin=True)
    )
    assert reports.my_permissions(principal, w.org) == {
        "admin": True,
        "permissions": sorted(ORG_KEYS),
        "tag_based_permissions": [],
        "restricted_tags": [],
    }
    project = reports.my_permissions(principal, w.project)
    assert project["admin"] is True
    assert project["permissions"] == sorted(PROJECT_KEYS)
    assert project["restricted_tags"] == sorted([w.r.pk, w.s.pk])
    env = reports.my_permissions(principal, w.env)
    assert env["admin"] is True
    assert env["permissions"] == sorted(ENV_KEYS)


def test_my_permissions__organisation_level__held_keys(w: Any) -> None:
    group = f.UserGroupFactory(organisation=w.org, users=[w.user])
    f.grant(group, w.org, [MANAGE_USER_GROUPS])
    f.grant(w.user, w.org, [CREATE_PROJECT])
    assert reports.my_permissions(fresh(w.user), w.org) == {
        "admin": False,
        "permissions": [CREATE_PROJECT, MANAGE_USER_GROUPS],
        "tag_based_permissions": [],
        "restricted_tags": [],
    }
    assert reports.my_permissions(fresh(f.member(w.org)), w.org) == {
        "admin": False,
        "permissions": [],
        "tag_based_permissions": [],
        "restricted_tags": [],
    }


def test_my_permissions__project_level__held_keys(w: Any) -> None:
    f.grant(w.user, w.project, [VIEW_PROJECT, CREATE_FEATURE, VIEW_AUDIT_LOG])
    f.grant(role_for(w), w.project, {DELETE_FEATURE: [w.b, w.a], VIEW_PROJECT: []})
    payload = reports.my_permissions(fresh(w.user), w.project)
    assert payload == {
        "admin": False,
        "permissions": sorted([CREATE_FEATURE, VIEW_AUDIT_LOG, VIEW_PROJECT]),
        "tag_based_permissions": [{"permissions": [DELETE_FEATURE], "tags": [w.a.pk, w.b.pk]}],
        "restricted_tags": sorted([w.r.pk, w.s.pk]),
    }


@pytest.mark.parametrize("scope", ["project", "environment"])
def test_my_permissions__scope_admin__admin_true(w: Any, scope: str) -> None:
    target = w.project if scope == "project" else w.env
    f.grant(w.user, target, admin=True)
    user = fresh(w.user)
    payload = reports.my_permissions(user, w.env)
    assert payload["admin"] is True
    assert payload["permissions"] == sorted(ENV_KEYS)
    project = reports.my_permissions(user, w.project)
    assert project["admin"] is (scope == "project")
    assert project["permissions"] == (sorted(PROJECT_KEYS) if scope == "project" else [])
    assert reports.my_permissions(user, w.env2)["admin"] is (scope == "project")


def test_my_permissions__several_tag_sets__one_entry_each(w: Any) -> None:
    """Flagsmith #5233: not one flat tags x permissions blob."""
    group = f.UserGroupFactory(organisation=w.org, users=[w.user])
    f.grant(role_for(w), w.env, {UPDATE_FEATURE_STATE: [w.a, w.b], CREATE_CHANGE_REQUEST: [w.c]})
    # the same tag set, given in another order and by another role (through a group)
    f.grant(role_for(w, through_group=group), w.env, {APPROVE_CHANGE_REQUEST: [w.b, w.a]})
    # a key held by two roles with different tags: its set is their union
    f.grant(role_for(w), w.env, {MANAGE_SEGMENT_OVERRIDES: [w.a]})
    f.grant(role_for(w, through_group=group), w.env, {MANAGE_SEGMENT_OVERRIDES: [w.r]})
    f.grant(w.user, w.env, [VIEW_ENVIRONMENT])
    payload = reports.my_permissions(fresh(w.user), w.env)
    assert payload == {
        "admin": False,
        "permissions": [VIEW_ENVIRONMENT],
        "tag_based_permissions": [
            {
                "permissions": [APPROVE_CHANGE_REQUEST, UPDATE_FEATURE_STATE],
                "tags": sorted([w.a.pk, w.b.pk]),
            },
            {"permissions": [CREATE_CHANGE_REQUEST], "tags": [w.c.pk]},
            {"permissions": [MANAGE_SEGMENT_OVERRIDES], "tags": sorted([w.a.pk, w.r.pk])},
        ],
        "restricted_tags": sorted([w.r.pk, w.s.pk]),
    }
    # tagged holdings of another environment do not leak in
    assert reports.my_permissions(fresh(w.user), w.env2) == {
        "admin": False,
        "permissions": [],
        "tag_based_permissions": [],
        "restricted_tags": sorted([w.r.pk, w.s.pk]),
    }


def test_my_permissions__key_tagged_and_untagged__keeps_tag_set(w: Any) -> None:
    f.grant(role_for(w), w.env, {UPDATE_FEATURE_STATE: [w.r]})
    f.grant(w.user, w.env, [UPDATE_FEATURE_STATE])
    payload = reports.my_permissions(fresh(w.user), w.env)
    assert payload["permissions"] == [UPDATE_FEATURE_STATE]
    assert payload["tag_based_permissions"] == [
        {"permissions": [UPDATE_FEATURE_STATE], "tags": [w.r.pk]}
    ]
    # and the client rule then decides as the server does on restricted features
    user = fresh(w.user)
    features = {
        "plain": f.FeatureFactory(project=w.project),
        "a": f.FeatureFactory(project=w.project, tags=[w.a]),
        "r": f.FeatureFactory(project=w.project, tags=[w.r]),
        "ra": f.FeatureFactory(project=w.project, tags=[w.r, w.a]),
        "s": f.FeatureFactory(project=w.project, tags=[w.s]),
        "rs": f.FeatureFactory(project=w.project, tags=[w.r, w.s]),
    }
    decisions = {}
    for name, feature in features.items():
        tags = {t.pk for t in feature.tags.all()}
        server = engine.allowed(user, UPDATE_FEATURE_STATE, w.env, feature)
        assert client_decides(payload, UPDATE_FEATURE_STATE, tags) is server, name
        decisions[name] = server
    # rs carries two restricted tags and the key names only r: out of reach
    assert decisions == {"plain": True, "a": True, "r": True, "ra": True, "s": False, "rs": False}


def test_my_permissions__non_member__nothing(w: Any) -> None:
    outsider = f.UserFactory()
    f.grant(outsider, w.env, [UPDATE_FEATURE_STATE], admin=True)
    assert reports.my_permissions(fresh(outsider), w.org)["permissions"] == []
    assert reports.my_permissions(fresh(outsider), w.env) == {
        "admin": False,
        "permissions": [],
        "tag_based_permissions": [],
        "restricted_tags": sorted([w.r.pk, w.s.pk]),
    }


# --------------------------------------------------------------------------------------
# user_detailed_permissions
# --------------------------------------------------------------------------------------


def test_user_detailed_permissions__environment_level__derived_from(w: Any) -> None:
    g1 = f.UserGroupFactory(organisation=w.org, users=[w.user], name="G1")
    g2 = f.UserGroupFactory(organisation=w.org, users=[w.user], name="G2")
    f.grant(w.user, w.env, [UPDATE_FEATURE_STATE])
    f.grant(g1, w.env, [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT])
    r1 = role_for(w)
    f.grant(r1, w.env, {UPDATE_FEATURE_STATE: [w.b, w.a]})
    r2 = role_for(w, through_group=g2)
    f.grant(r2, w.env, {APPROVE_CHANGE_REQUEST: [w.a]}, admin=True)
    # another environment and the project do not show up here
    f.grant(r1, w.env2, [CREATE_CHANGE_REQUEST])
    f.grant(w.user, w.project, [VIEW_PROJECT])

    def group(g: Any) -> dict[str, Any]:
        return {"id": g.pk, "name": g.name}

    def role(r: Any, tags: list[Any]) -> dict[str, Any]:
        return {"id": r.pk, "name": r.name, "tags": sorted(t.pk for t in tags)}

    assert reports.user_detailed_permissions(fresh(w.user), w.env) == {
        "admin": True,
        "is_directly_granted": False,
        "derived_from": {"groups": [group(g2)], "roles": [role(r2, [])]},
        "permissions": [
            {
                "permission_key": APPROVE_CHANGE_REQUEST,
                "is_directly_granted": False,
                "derived_from": {"groups": [group(g2)], "roles": [role(r2, [w.a])]},
            },
            {
                "permission_key": UPDATE_FEATURE_STATE,
                "is_directly_granted": True,
                "derived_from": {"groups": [group(g1)], "roles": [role(r1, [w.a, w.b])]},
            },
            {
                "permission_key": VIEW_ENVIRONMENT,
                "is_directly_granted": False,
                "derived_from": {"groups": [group(g1)], "roles": []},
            },
        ],
    }


def test_user_detailed_permissions__project_level__derived_from(w: Any) -> None:
    group = f.UserGroupFactory(organisation=w.org, users=[w.user], name="G")
    f.grant(w.user, w.project, [VIEW_PROJECT], admin=True)
    role = role_for(w)
    f.grant(role, w.project, {DELETE_FEATURE: [w.r], VIEW_PROJECT: []})
    f.grant(group, w.project, [CREATE_FEATURE])
    assert reports.user_detailed_permissions(fresh(w.user), w.project) == {
        "admin": True,
        "is_directly_granted": True,
        "derived_from": {"groups": [], "roles": []},
        "permissions": [
            {
                "permission_key": CREATE_FEATURE,
                "is_directly_granted": False,
                "derived_from": {"groups": [{"id": group.pk, "name": "G"}], "roles": []},
            },
            {
                "permission_key": DELETE_FEATURE,
                "is_directly_granted": False,
                "derived_from": {
                    "groups": [],
                    "roles": [{"id": role.pk, "name": role.name, "tags": [w.r.pk]}],
                },
            },
            {
                "permission_key": VIEW_PROJECT,
                "is_directly_granted": True,
                "derived_from": {
                    "groups": [],
                    "roles": [{"id": role.pk, "name": role.name, "tags": []}],
                },
            },
        ],
    }


def test_user_detailed_permissions__role_through_two_paths__both_listed(w: Any) -> None:
    group = f.UserGroupFactory(organisation=w.org, users=[w.user], name="G")
    role = role_for(w)
    f.RoleAssignmentFactory(role=role, group=group)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.a]})
    detail = reports.user_detailed_permissions(fresh(w.user), w.env)
    assert detail["admin"] is False
    assert detail["permissions"] == [
        {
            "permission_key": UPDATE_FEATURE_STATE,
            "is_directly_granted": False,
            "derived_from": {
                "groups": [{"id": group.pk, "name": "G"}],
                "roles": [{"id": role.pk, "name": role.name, "tags": [w.a.pk]}],
            },
        }
    ]


def test_user_detailed_permissions__org_admin_and_non_member__admin_or_nothing(w: Any) -> None:
    admin = fresh(f.member(w.org, admin=True))
    detail = reports.user_detailed_permissions(admin, w.env)
    assert detail["admin"] is True
    assert detail["is_directly_granted"] is False
    outsider = f.UserFactory()
    f.grant(outsider, w.env, [UPDATE_FEATURE_STATE], admin=True)
    assert reports.user_detailed_permissions(fresh(outsider), w.env) == {
        "admin": False,
        "is_directly_granted": False,
        "derived_from": {"groups": [], "roles": []},
        "permissions": [],
    }


# --------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------


def granted(via: str, scope: str, *, group: Any = None, role: Any = None, tags: Any = ()) -> Any:
    return {
        "via": via,
        "group": group.pk if group is not None else None,
        "role": role.pk if role is not None else None,
        "scope": scope,
        "tags_matched": sorted(t.pk for t in tags),
    }


def blocked(via: str, why: str, *, group: Any = None, role: Any = None, tags: Any = ()) -> Any:
    return {
        "via": via,
        "group": group.pk if group is not None else None,
        "role": role.pk if role is not None else None,
        "tags": sorted(t.pk for t in tags),
        "why": why,
    }


def check_reason(result: dict[str, Any]) -> None:
    reason = result["reason"]
    assert isinstance(reason, str) and reason.strip()
    assert reason.rstrip().endswith(".")
    assert "\n" not in reason


@pytest.mark.parametrize("kind", ["member", "api_key"])
def test_explain__organisation_admin__admin_reason(w: Any, kind: str) -> None:
    principal = (
        fresh(f.member(w.org, admin=True))
        if kind == "member"
        else f.APIKeyFactory(organisation=w.org, is_admin=True)
    )
    feature = f.FeatureFactory(project=w.project, tags=[w.r])
    result = reports.explain(principal, UPDATE_FEATURE_STATE, w.env, feature)
    assert result["permission"] == UPDATE_FEATURE_STATE
    assert result["allowed"] is True
    assert result["granted_by"] == [granted("organisation_admin", "organisation")]
    assert result["blocked_by"] == []
    check_reason(result)


@pytest.mark.parametrize("path", ["user", "group", "role", "role_through_group"])
@pytest.mark.parametrize("scope", ["project", "environment"])
def test_explain__scope_admin_through_each_path__names_path(w: Any, path: str, scope: str) -> None:
    group = role = None
    holder = w.user
    if path in ("group", "role_through_group"):
        group = f.UserGroupFactory(organisation=w.org, users=[w.user])
        holder = group
    if path in ("role", "role_through_group"):
        role = role_for(w, through_group=group)
        holder = role
    f.grant(holder, w.project if scope == "project" else w.env, admin=True)
    feature = f.FeatureFactory(project=w.project, tags=[w.r])
    result = reports.explain(fresh(w.user), APPROVE_CHANGE_REQUEST, w.env, feature)
    assert result["allowed"] is True
    assert result["granted_by"] == [granted(f"{scope}_admin", scope, group=group, role=role)]
    assert result["blocked_by"] == []
    check_reason(result)


def test_explain__entries_through_each_path__names_paths(w: Any) -> None:
    g1 = f.UserGroupFactory(organisation=w.org, users=[w.user])
    g2 = f.UserGroupFactory(organisation=w.org, users=[w.user])
    r1 = role_for(w)
    r2 = role_for(w, through_group=g2)
    f.grant(w.user, w.env, [UPDATE_FEATURE_STATE])
    f.grant(g1, w.env, [UPDATE_FEATURE_STATE])
    f.grant(r1, w.env, {UPDATE_FEATURE_STATE: [w.a, w.c]})
    f.grant(r2, w.env, {UPDATE_FEATURE_STATE: [w.b]})
    # not applicable: another environment, another key, another member's role
    f.grant(r1, w.env2, {UPDATE_FEATURE_STATE: [w.b]})
    other = f.RoleFactory(organisation=w.org)
    f.RoleAssignmentFactory(role=other, user=f.member(w.org))
    f.grant(other, w.env, {UPDATE_FEATURE_STATE: [w.a]})

    feature = f.FeatureFactory(project=w.project, tags=[w.a])
    result = reports.explain(fresh(w.user), UPDATE_FEATURE_STATE, w.env, feature)
    assert result["allowed"] is True
    key = lambda item: (item["via"], item["group"] or 0, item["role"] or 0)  # noqa: E731
    assert sorted(result["granted_by"], key=key) == sorted(
        [
            granted("user", "environment"),
            granted("group", "environment", group=g1),
            granted("role", "environment", role=r1, tags=[w.a]),
        ],
        key=key,
    )
    assert result["blocked_by"] == [blocked("role", "tag_mismatch", group=g2, role=r2, tags=[w.b])]
    check_reason(result)


def test_explain__restricted_tag_not_covered__blocked(w: Any) -> None:
    group = f.UserGroupFactory(organisation=w.org, users=[w.user])
    r_a = role_for(w)
    r_c = role_for(w, through_group=group)
    # untagged: names no tag of the feature, so `tag_mismatch` (docs/PERMISSIONS.md)
    f.grant(w.user, w.env, [UPDATE_FEATURE_STATE])
    f.grant(r_a, w.env, {UPDATE_FEATURE_STATE: [w.a]})  # names only the unrestricted tag
    f.grant(r_c, w.env, {UPDATE_FEATURE_STATE: [w.c]})  # would not reach anyway
    feature = f.FeatureFactory(project=w.project, tags=[w.r, w.a])
    result = reports.explain(fresh(w.user), UPDATE_FEATURE_STATE, w.env, feature)
    assert result["allowed"] is False
    assert result["granted_by"] == []
    key = lambda item: (item["via"], item["role"] or 0)  # noqa: E731
    assert sorted(result["blocked_by"], key=key) == sorted(
        [
            blocked("user", "tag_mismatch"),
            blocked("role", "restricted_tag", role=r_a, tags=[w.a]),
            blocked("role", "tag_mismatch", group=group, role=r_c, tags=[w.c]),
        ],
        key=key,
    )
    check_reason(result)
    assert "restrict" in result["reason"].lower()


def test_explain__restricted_tag_covered__granted_by(w: Any) -> None:
    role = role_for(w)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.r, w.c]})
    feature = f.FeatureFactory(project=w.project, tags=[w.r, w.a])
    result = reports.explain(fresh(w.user), UPDATE_FEATURE_STATE, w.env, feature)
    assert result["allowed"] is True
    assert len(result["granted_by"]) == 1
    item = result["granted_by"][0]
    assert (item["via"], item["role"], item["group"], item["scope"]) == (
        "role",
        role.pk,
        None,
        "environment",
    )
    assert w.r.pk in item["tags_matched"] and w.c.pk not in item["tags_matched"]


def test_explain__nothing_held__denied(w: Any) -> None:
    f.grant(w.user, w.env, [VIEW_ENVIRONMENT])
    feature = f.FeatureFactory(project=w.project)
    result = reports.explain(fresh(w.user), UPDATE_FEATURE_STATE, w.env, feature)
    assert result == {
        "permission": UPDATE_FEATURE_STATE,
        "allowed": False,
        "reason": result["reason"],
        "granted_by": [],
        "blocked_by": [],
    }
    check_reason(result)
    view = reports.explain(fresh(w.user), VIEW_ENVIRONMENT, w.env, feature)
    assert view["allowed"] is True
    assert view["granted_by"] == [granted("user", "environment")]


def test_explain__non_member__denied(w: Any) -> None:
    outsider = f.UserFactory()
    f.grant(outsider, w.env, [UPDATE_FEATURE_STATE], admin=True)
    feature = f.FeatureFactory(project=w.project)
    result = reports.explain(fresh(outsider), UPDATE_FEATURE_STATE, w.env, feature)
    assert result["allowed"] is False
    assert result["granted_by"] == [] and result["blocked_by"] == []
    check_reason(result)
    assert "member" in result["reason"].lower()


def test_explain__api_key_through_role__names_role(w: Any) -> None:
    key = f.APIKeyFactory(organisation=w.org)
    role = f.RoleFactory(organisation=w.org)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, w.env, {UPDATE_FEATURE_STATE: [w.a]})
    yes = f.FeatureFactory(project=w.project, tags=[w.a])
    no = f.FeatureFactory(project=w.project, tags=[w.b])
    assert reports.explain(key, UPDATE_FEATURE_STATE, w.env, yes)["granted_by"] == [
        granted("role", "environment", role=role, tags=[w.a])
    ]
    assert reports.explain(key, UPDATE_FEATURE_STATE, w.env, no)["blocked_by"] == [
        blocked("role", "tag_mismatch", role=role, tags=[w.a])
    ]


def test_explain_all__every_key__and_errors(w: Any) -> None:
    f.grant(w.user, w.env, [VIEW_ENVIRONMENT])
    feature = f.FeatureFactory(project=w.project)
    user = fresh(w.user)
    env = Environment.objects.get(pk=w.env.pk)
    results = reports.explain_all(user, env, feature)
    assert [r["permission"] for r in results] == ENV_KEYS
    assert [r["allowed"] for r in results] == [k == VIEW_ENVIRONMENT for k in ENV_KEYS]
    with pytest.raises(ValueError):
        reports.explain(user, DELETE_FEATURE, env, feature)
    other_feature = f.FeatureFactory(project=w.other_project)
    with pytest.raises(ValueError):
        reports.explain(user, UPDATE_FEATURE_STATE, env, other_feature)
