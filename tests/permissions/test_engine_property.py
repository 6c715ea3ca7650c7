"""DESIGN.md §6: the per-object check, the queryset filters, the my-permissions payload (read
with the client rule of API.md) and explain all agree with a plain-Python reference of §5.

The reference below is written from DESIGN.md alone: it imports nothing from the engine (nor
the catalogue: the table of §3 is spelled out here and checked against the catalogue), and it
decides entry by entry from the generated data, never from a union of tags.

Examples: `HYPOTHESIS_EXAMPLES` (default 100; CI sets 500). Each example builds its own
organisation inside a savepoint that is rolled back at the end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments.models import Environment
from features.models import Feature
from organisations.models import OrganisationAPIKey
from permissions import catalogue, engine
from projects.models import Project
from tests import factories as f

User = get_user_model()

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "100"))

# ---------------------------------------------------------------------------------------
# DESIGN.md §3, spelled out: key -> (level, supports_tag)
# ---------------------------------------------------------------------------------------

ORG, PROJECT, ENV = "organisation", "project", "environment"
TABLE: dict[str, tuple[str, bool]] = {
    "CREATE_PROJECT": (ORG, False),
    "MANAGE_USER_GROUPS": (ORG, False),
    "VIEW_PROJECT": (PROJECT, False),
    "CREATE_ENVIRONMENT": (PROJECT, False),
    "CREATE_FEATURE": (PROJECT, False),
    "MANAGE_SEGMENTS": (PROJECT, False),
    "MANAGE_TAGS": (PROJECT, False),
    "VIEW_AUDIT_LOG": (PROJECT, False),
    "DELETE_FEATURE": (PROJECT, True),
    "VIEW_ENVIRONMENT": (ENV, False),
    "UPDATE_FEATURE_STATE": (ENV, True),
    "CREATE_CHANGE_REQUEST": (ENV, True),
    "APPROVE_CHANGE_REQUEST": (ENV, True),
    "MANAGE_SEGMENT_OVERRIDES": (ENV, True),
}
ORG_KEYS = sorted(k for k, (lvl, _) in TABLE.items() if lvl == ORG)
PROJECT_KEYS = sorted(k for k, (lvl, _) in TABLE.items() if lvl == PROJECT)
ENV_KEYS = sorted(k for k, (lvl, _) in TABLE.items() if lvl == ENV)
TAG_KEYS = frozenset(k for k, (_, tagged) in TABLE.items() if tagged)
N_ENVS = 2


def test_reference_table_is_the_catalogue() -> None:
    assert {k: (str(s.level), s.supports_tag) for k, s in catalogue.CATALOGUE.items()} == TABLE


# ---------------------------------------------------------------------------------------
# The generated world, as plain data (indices, not rows)
# ---------------------------------------------------------------------------------------

# A principal of a grant: ("user", i) | ("group", i) | ("role", i).
# A scope: ("organisation", 0) | ("project", 0) | ("environment", e).


@dataclass(frozen=True)
class GrantSpec:
    holder: tuple[str, int]
    scope: tuple[str, int]
    admin: bool
    entries: tuple[tuple[str, frozenset[int]], ...]  # (key, tag indices); empty = untagged


@dataclass(frozen=True)
class KeySpec:
    is_admin: bool
    state: str  # "ok" | "revoked" | "expired"


@dataclass(frozen=True)
class RoleSpec:
    users: frozenset[int]
    groups: frozenset[int]
    keys: frozenset[int]


@dataclass(frozen=True)
class World:
    members: tuple[bool, ...]  # is ADMIN; users 0..n-1 are members, user n is not
    api_keys: tuple[KeySpec, ...]
    tags: tuple[bool, ...]  # is_restricted
    features: tuple[frozenset[int], ...]
    groups: tuple[frozenset[int], ...]  # user indices (the non-member included)
    roles: tuple[RoleSpec, ...]
    grants: tuple[GrantSpec, ...]

    @property
    def n_users(self) -> int:
        return len(self.members) + 1  # the last one is the non-member


def subset(n: int, max_size: int | None = None) -> st.SearchStrategy[frozenset[int]]:
    if n == 0:
        return st.just(frozenset())
    return st.frozensets(st.integers(0, n - 1), max_size=max_size if max_size else n)


@st.composite
def worlds(draw: Any) -> World:
    # true 1 time in n; shrinks towards false
    one_in = lambda n: st.integers(0, n - 1).map(lambda x: x == n - 1)  # noqa: E731
    members = tuple(draw(st.lists(one_in(4), min_size=1, max_size=4)))  # 1 in 4 is ADMIN
    n_users = len(members) + 1
    api_keys = tuple(
        draw(
            st.lists(
                st.builds(
                    KeySpec,
                    is_admin=one_in(3),
                    state=st.sampled_from(["ok", "ok", "revoked", "expired"]),
                ),
                min_size=1,
                max_size=2,
            )
        )
    )
    tags = tuple(draw(st.lists(st.booleans(), min_size=1, max_size=5)))
    features = tuple(draw(st.lists(subset(len(tags), 3), min_size=1, max_size=6)))
    groups = tuple(draw(st.lists(subset(n_users), max_size=3)))
    roles = tuple(
        draw(
            st.lists(
                st.builds(
                    RoleSpec,
                    users=st.frozensets(st.integers(0, n_users - 1), min_size=1, max_size=2),
                    groups=subset(len(groups), 2),
                    keys=subset(len(api_keys)),
                ),
                min_size=1,
                max_size=3,
            )
        )
    )

    # Every (holder, scope) pair may hold a grant; roles more often than users and groups, since
    # tagged entries (role grants of tag-supported keys) are what most of the rules are about.
    keys_of = {ORG: ORG_KEYS, PROJECT: PROJECT_KEYS, ENV: ENV_KEYS}
    some_tags = st.frozensets(st.integers(0, len(tags) - 1), min_size=1, max_size=2)
    holders = [("role", i) for i in range(len(roles))]
    holders += [("user", i) for i in range(n_users)]
    holders += [("group", i) for i in range(len(groups))]
    scopes = [(ENV, e) for e in range(N_ENVS)] + [(PROJECT, 0), (ORG, 0)]
    grants = []
    for holder in holders:
        for scope in scopes:
            if not draw(one_in(2 if holder[0] == "role" and scope[0] != ORG else 5)):
                continue
            level = scope[0]
            empty = draw(one_in(8))  # now and then a grant with no key
            keys = (
                []
                if empty
                else draw(
                    st.lists(st.sampled_from(keys_of[level]), unique=True, min_size=1, max_size=3)
                )
            )
            entries = []
            for key in sorted(keys):
                if holder[0] == "role" and key in TAG_KEYS:
                    entry_tags = draw(st.one_of(some_tags, some_tags, st.just(frozenset())))
                else:
                    entry_tags = frozenset()
                entries.append((key, entry_tags))
            admin = level != ORG and draw(one_in(6))
            grants.append(GrantSpec(holder, scope, admin, tuple(entries)))
    return World(members, api_keys, tags, features, groups, roles, tuple(grants))


# ---------------------------------------------------------------------------------------
# The reference: DESIGN.md §5, entry by entry
# ---------------------------------------------------------------------------------------

# A principal: ("user", i) or ("key", i).


def ref_is_member(w: World, p: tuple[str, int]) -> bool:
    kind, i = p
    if kind == "user":
        return i < len(w.members)
    return w.api_keys[i].state == "ok"


def ref_is_org_admin(w: World, p: tuple[str, int]) -> bool:
    if not ref_is_member(w, p):
        return False
    kind, i = p
    return w.members[i] if kind == "user" else w.api_keys[i].is_admin


def ref_applicable(w: World, p: tuple[str, int]) -> list[GrantSpec]:
    """The grants reaching the principal: its own, its groups', its roles' (directly or
    through its groups). None for a non-member (membership gates everything)."""
    if not ref_is_member(w, p):
        return []
    kind, i = p
    if kind == "user":
        groups = {g for g, users in enumerate(w.groups) if i in users}
        roles = {r for r, role in enumerate(w.roles) if i in role.users or role.groups & groups}
        holders = {("user", i)} | {("group", g) for g in groups} | {("role", r) for r in roles}
    else:
        holders = {("role", r) for r, role in enumerate(w.roles) if i in role.keys}
    return [g for g in w.grants if g.holder in holders]


def ref_entry_reaches(w: World, key: str, entry_tags: frozenset[int], feature: int | None) -> bool:
    """Rule 3, fail-closed and restricted tags, for one entry."""
    if not TABLE[key][1]:
        return not entry_tags
    if feature is None:
        return not entry_tags
    feature_tags = w.features[feature]
    restricted = {t for t in feature_tags if w.tags[t]}
    if restricted:
        return bool(entry_tags & restricted)
    return not entry_tags or bool(entry_tags & feature_tags)


def ref_is_project_admin(w: World, p: tuple[str, int]) -> bool:
    return ref_is_org_admin(w, p) or any(
        g.admin and g.scope == (PROJECT, 0) for g in ref_applicable(w, p)
    )


def ref_is_env_admin(w: World, p: tuple[str, int], e: int) -> bool:
    return ref_is_project_admin(w, p) or any(
        g.admin and g.scope == (ENV, e) for g in ref_applicable(w, p)
    )


def ref_allowed(
    w: World, p: tuple[str, int], key: str, scope: tuple[str, int], feature: int | None
) -> bool:
    if not ref_is_member(w, p):
        return False
    if ref_is_org_admin(w, p):
        return True
    level = TABLE[key][0]
    assert level == scope[0]
    if level == PROJECT and ref_is_project_admin(w, p):
        return True
    if level == ENV and ref_is_env_admin(w, p, scope[1]):
        return True
    return any(
        entry_key == key and ref_entry_reaches(w, key, tags, feature)
        for g in ref_applicable(w, p)
        if g.scope == scope
        for entry_key, tags in g.entries
    )


def ref_can_view(w: World, p: tuple[str, int], scope: tuple[str, int]) -> bool:
    if not ref_is_member(w, p):
        return False
    holds = [g for g in ref_applicable(w, p) if g.admin or g.entries]
    if scope[0] == ORG:
        return True
    if scope[0] == PROJECT:
        return ref_is_org_admin(w, p) or any(g.scope[0] in (PROJECT, ENV) for g in holds)
    return ref_is_project_admin(w, p) or any(g.scope == scope for g in holds)


def ref_blocked(
    w: World, p: tuple[str, int], key: str, e: int, feature: int
) -> set[tuple[frozenset[int], str]]:
    """(entry tags, why) of the applicable entries holding `key` that miss the feature."""
    out = set()
    feature_tags = w.features[feature]
    restricted = {t for t in feature_tags if w.tags[t]}
    for g in ref_applicable(w, p):
        if g.scope != (ENV, e):
            continue
        for entry_key, tags in g.entries:
            if entry_key != key or ref_entry_reaches(w, key, tags, feature):
                continue
            would = not tags or bool(tags & feature_tags)
            out.add((tags, "restricted_tag" if restricted and would else "tag_mismatch"))
    return out


# ---------------------------------------------------------------------------------------
# The client rule of API.md for the my-permissions payload
# ---------------------------------------------------------------------------------------


def client_decides(payload: dict[str, Any], key: str, feature_tags: set[int] | None) -> bool:
    if payload["admin"]:
        return True
    if feature_tags is None or key not in TAG_KEYS:
        # No feature (or a key without tags): only untagged holdings count.
        return key in payload["permissions"]
    restricted = feature_tags & set(payload["restricted_tags"])
    held = set()
    for item in payload["tag_based_permissions"]:
        if key in item["permissions"]:
            held |= set(item["tags"])
    if not restricted and key in payload["permissions"]:
        return True
    return bool(held & restricted) if restricted else bool(held & feature_tags)


def check_payload_shape(payload: dict[str, Any]) -> None:
    assert payload["permissions"] == sorted(set(payload["permissions"]))
    seen_keys: set[str] = set()
    seen_sets: set[tuple[int, ...]] = set()
    for item in payload["tag_based_permissions"]:
        assert item["permissions"] == sorted(set(item["permissions"]))
        assert item["tags"] == sorted(set(item["tags"])) and item["tags"]
        assert not seen_keys & set(item["permissions"]), "a key in two tag sets"
        assert tuple(item["tags"]) not in seen_sets, "two entries with one tag set"
        seen_keys |= set(item["permissions"])
        seen_sets.add(tuple(item["tags"]))


# ---------------------------------------------------------------------------------------
# Building the rows
# ---------------------------------------------------------------------------------------


@dataclass
class Rows:
    org: Any
    project: Project
    envs: list[Environment]
    users: list[Any]
    keys: list[Any]
    tags: list[Any]
    features: list[Feature]


def build(w: World) -> Rows:
    org = f.OrganisationFactory()
    project = f.ProjectFactory(organisation=org)
    envs = [f.EnvironmentFactory(project=project) for _ in range(N_ENVS)]
    users = [f.member(org, admin=is_admin) for is_admin in w.members] + [f.UserFactory()]
    past = timezone.now() - timedelta(days=1)
    keys = [
        f.APIKeyFactory(
            organisation=org,
            is_admin=k.is_admin,
            revoked=k.state == "revoked",
            expiry_date=past if k.state == "expired" else None,
        )
        for k in w.api_keys
    ]
    tags = [f.TagFactory(project=project, is_restricted=r) for r in w.tags]
    features = [
        f.FeatureFactory(project=project, tags=[tags[t] for t in sorted(ft)]) for ft in w.features
    ]
    groups = [
        f.UserGroupFactory(organisation=org, users=[users[u] for u in sorted(members)])
        for members in w.groups
    ]
    roles = []
    for spec in w.roles:
        role = f.RoleFactory(organisation=org)
        for u in spec.users:
            f.RoleAssignmentFactory(role=role, user=users[u])
        for g in spec.groups:
            f.RoleAssignmentFactory(role=role, group=groups[g])
        for k in spec.keys:
            f.RoleAssignmentFactory(role=role, api_key=keys[k])
        roles.append(role)
    holders = {"user": users, "group": groups, "role": roles}
    for g in w.grants:
        kind, i = g.scope
        scope = org if kind == ORG else project if kind == PROJECT else envs[i]
        f.grant(
            holders[g.holder[0]][g.holder[1]],
            scope,
            {key: [tags[t] for t in sorted(ts)] for key, ts in g.entries},
            admin=g.admin,
        )
    return Rows(org, project, envs, users, keys, tags, features)


# ---------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------


def check_principal(w: World, rows: Rows, p: tuple[str, int], principal: Any) -> None:
    org, project = rows.org, rows.project
    envs = [Environment.objects.select_related("project").get(pk=e.pk) for e in rows.envs]
    features = rows.features
    tag_index = {t.pk: i for i, t in enumerate(rows.tags)}
    feature_tag_ids = [{rows.tags[t].pk for t in ft} for ft in w.features]
    restricted_ids = sorted(t.pk for t, r in zip(rows.tags, w.tags, strict=True) if r)
    ctx = f"principal {p}"
    # the bulk loader (admin matrix, impact previews) must decide exactly as the per-user one
    bulk = (
        engine.policies_for_members(org.pk, [principal.pk])[principal.pk]
        if p[0] == "user"
        else None
    )

    # organisation
    org_payload = engine.my_permissions(principal, org)
    check_payload_shape(org_payload)
    assert org_payload["admin"] is ref_is_org_admin(w, p), ctx
    assert org_payload["restricted_tags"] == []
    for key in ORG_KEYS:
        expected = ref_allowed(w, p, key, (ORG, 0), None)
        assert engine.allowed(principal, key, org) is expected, (ctx, key)
        assert bulk is None or bulk.decide(key) is expected, (ctx, key, "bulk")
        assert client_decides(org_payload, key, None) is expected, (ctx, key)

    # viewing, and the list filters for projects and environments
    assert engine.can_view(principal, org) is ref_can_view(w, p, (ORG, 0)), ctx
    assert engine.can_view(principal, project) is ref_can_view(w, p, (PROJECT, 0)), ctx
    listed = set(Project.objects.filter(engine.viewable_projects_q(principal)).values_list("pk"))
    assert listed == ({(project.pk,)} if ref_can_view(w, p, (PROJECT, 0)) else set()), ctx
    listed_envs = {
        pk
        for (pk,) in Environment.objects.filter(
            engine.viewable_environments_q(principal)
        ).values_list("pk")
    }
    expected_envs = set()
    for e, env in enumerate(envs):
        view = ref_can_view(w, p, (ENV, e))
        assert engine.can_view(principal, env) is view, (ctx, e)
        if view:
            expected_envs.add(env.pk)
    assert listed_envs == expected_envs, ctx

    scopes: list[tuple[tuple[str, int], Any, list[str]]] = [((PROJECT, 0), project, PROJECT_KEYS)]
    scopes += [((ENV, e), env, ENV_KEYS) for e, env in enumerate(envs)]
    for ref_scope, scope, keys in scopes:
        sctx = (ctx, ref_scope)
        admin = (
            ref_is_project_admin(w, p)
            if ref_scope[0] == PROJECT
            else ref_is_env_admin(w, p, ref_scope[1])
        )
        assert engine.is_admin(principal, scope) is admin, sctx
        payload = engine.my_permissions(principal, scope)
        check_payload_shape(payload)
        assert payload["admin"] is admin, sctx
        assert payload["restricted_tags"] == restricted_ids, sctx
        for item in payload["tag_based_permissions"]:
            assert set(item["tags"]) <= set(tag_index), sctx
        on_feature = [engine.keys_on_feature(principal, scope, ft) for ft in features]
        for key in keys:
            kctx = (sctx, key)
            expected = ref_allowed(w, p, key, ref_scope, None)
            assert engine.allowed(principal, key, scope) is expected, kctx
            assert client_decides(payload, key, None) is expected, kctx
            listed_features = set(
                engine.features_allowed(principal, key, scope).values_list("pk", flat=True)
            )
            if ref_scope[0] == ENV:
                listed_states = set(
                    engine.feature_states_allowed(principal, key, scope).values_list(
                        "feature_id", flat=True
                    )
                )
            for i, feature in enumerate(features):
                fctx = (kctx, f"feature {i} tags {sorted(w.features[i])}")
                expected = ref_allowed(w, p, key, ref_scope, i)
                assert engine.allowed(principal, key, scope, feature) is expected, fctx
                if bulk is not None:
                    bulk_decision = bulk.decide(
                        key,
                        project_id=project.pk,
                        environment_id=scope.pk if ref_scope[0] == ENV else None,
                        feature_tags=engine.feature_tags(feature),
                    )
                    assert bulk_decision is expected, (fctx, "bulk")
                assert (feature.pk in listed_features) is expected, fctx
                if ref_scope[0] == ENV:
                    assert (feature.pk in listed_states) is expected, fctx
                assert client_decides(payload, key, feature_tag_ids[i]) is expected, fctx
                assert (key in on_feature[i]) is expected, fctx
                if ref_scope == (ENV, 0):  # explain costs queries: one environment is enough
                    explained = engine.explain(principal, key, scope, feature)
                    assert explained["allowed"] is expected, (fctx, explained)
                    assert bool(explained["granted_by"]) is expected, (fctx, explained)
                    assert explained["reason"], fctx
                    blocked = {
                        (frozenset(tag_index[t] for t in b["tags"]), b["why"])
                        for b in explained["blocked_by"]
                    }
                    assert blocked == ref_blocked(w, p, key, ref_scope[1], i), (fctx, explained)


@pytest.mark.django_db
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(w=worlds())
def test_engine_agrees_with_reference(w: World) -> None:
    with transaction.atomic():
        rows = build(w)
        features = list(
            Feature.objects.filter(pk__in=[ft.pk for ft in rows.features])
            .prefetch_related("tags")
            .order_by("pk")
        )
        assert [ft.pk for ft in features] == [ft.pk for ft in rows.features]
        rows.features = features
        for i, user in enumerate(rows.users):
            check_principal(w, rows, ("user", i), User.objects.get(pk=user.pk))
        for i, key in enumerate(rows.keys):
            check_principal(w, rows, ("key", i), OrganisationAPIKey.objects.get(pk=key.pk))
        transaction.set_rollback(True)
