"""The generated organisations of the permission property tests and the plain-Python
reference of the rules of docs/PERMISSIONS.md they are held to (`test_engine_property`,
`test_impact_property`).

The reference is written from the rules alone: it imports nothing from the engine (nor the
catalogue: the catalogue table is spelled out here, and `test_engine_property` checks it
against the catalogue), and it decides from the generated entries themselves: entry by entry,
except on a feature with restricted tags, which the key's entries reach only together (their
tags, taken together, name every restricted tag of the feature). `build` writes a `World` as
rows; `world_read` reads it back (after a service changed the rows, for the impact property).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.utils import timezone
from hypothesis import strategies as st

from environments.models import Environment
from features.models import Feature
from organisations.models import (
    MembershipRole,
    OrganisationAPIKey,
    OrganisationMembership,
    RoleAssignment,
    UserGroup,
)
from permissions.models import Grant
from projects.models import Project, Tag
from tests import factories as f

# ---------------------------------------------------------------------------------------
# The catalogue of docs/PERMISSIONS.md, spelled out: key -> (level, supports_tag)
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
    # is ADMIN, or None for a user who is not (or no longer) a member; users 0..n-1 are
    # these, user n is never a member
    members: tuple[bool | None, ...]
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
# The reference: docs/PERMISSIONS.md, "How one decision is made"
# ---------------------------------------------------------------------------------------

# A principal: ("user", i) or ("key", i).


def ref_is_member(w: World, p: tuple[str, int]) -> bool:
    kind, i = p
    if kind == "user":
        return i < len(w.members) and w.members[i] is not None
    return w.api_keys[i].state == "ok"


def ref_is_org_admin(w: World, p: tuple[str, int]) -> bool:
    if not ref_is_member(w, p):
        return False
    kind, i = p
    return bool(w.members[i]) if kind == "user" else w.api_keys[i].is_admin


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


def ref_restricted(w: World, key: str, feature: int | None) -> frozenset[int]:
    """The restricted tags of the feature that narrow `key` (none for keys without tags)."""
    if feature is None or not TABLE[key][1]:
        return frozenset()
    return frozenset(t for t in w.features[feature] if w.tags[t])


def ref_entry_reaches(w: World, key: str, entry_tags: frozenset[int], feature: int | None) -> bool:
    """Rule 3 and fail-closed, for one entry on a feature without restricted tags."""
    assert not ref_restricted(w, key, feature)
    if not TABLE[key][1]:
        return not entry_tags
    if feature is None:
        return not entry_tags
    return not entry_tags or bool(entry_tags & w.features[feature])


def ref_key_entries(
    w: World, p: tuple[str, int], key: str, scope: tuple[str, int]
) -> list[frozenset[int]]:
    """The tags of each applicable entry holding `key` on `scope`."""
    return [
        tags
        for g in ref_applicable(w, p)
        if g.scope == scope
        for entry_key, tags in g.entries
        if entry_key == key
    ]


def ref_entries_reach(
    w: World, key: str, entries: list[frozenset[int]], feature: int | None
) -> list[bool]:
    """For each entry holding `key` (in order): does it reach the feature? On a feature with
    restricted tags R, an entry reaches it when it names a tag of R and the tagged entries,
    taken together, name every tag of R; otherwise entry by entry (rule 3)."""
    restricted = ref_restricted(w, key, feature)
    if not restricted:
        return [ref_entry_reaches(w, key, tags, feature) for tags in entries]
    together: set[int] = set()
    for tags in entries:
        together |= tags
    covered = restricted <= together
    return [covered and bool(tags & restricted) for tags in entries]


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
    return any(ref_entries_reach(w, key, ref_key_entries(w, p, key, scope), feature))


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
    """(entry tags, why) of the applicable entries holding `key` that miss the feature: why is
    `restricted_tag` when the feature's restricted tags are not all named by the entries
    together and the entry names a tag of the feature, else `tag_mismatch`."""
    feature_tags = w.features[feature]
    restricted = ref_restricted(w, key, feature)
    entries = ref_key_entries(w, p, key, (ENV, e))
    together: set[int] = set()
    for tags in entries:
        together |= tags
    uncovered = not restricted <= together
    return {
        (tags, "restricted_tag" if uncovered and tags & feature_tags else "tag_mismatch")
        for tags, reaches in zip(entries, ref_entries_reach(w, key, entries, feature), strict=True)
        if not reaches
    }


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
    groups: list[Any]
    roles: list[Any]


def build(w: World) -> Rows:
    org = f.OrganisationFactory()
    project = f.ProjectFactory(organisation=org)
    envs = [f.EnvironmentFactory(project=project) for _ in range(N_ENVS)]
    users = [
        f.UserFactory() if is_admin is None else f.member(org, admin=is_admin)
        for is_admin in w.members
    ] + [f.UserFactory()]
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
    return Rows(org, project, envs, users, keys, tags, features, groups, roles)


def world_read(rows: Rows) -> World:
    """The world the database holds now, in the indices of `rows`: the inverse of `build`,
    to read what a service did. Grants come in `canonical` order."""
    user_at = {u.pk: i for i, u in enumerate(rows.users)}
    key_at = {k.pk: i for i, k in enumerate(rows.keys)}
    tag_at = {t.pk: i for i, t in enumerate(rows.tags)}
    feature_at = {ft.pk: i for i, ft in enumerate(rows.features)}
    group_at = {g.pk: i for i, g in enumerate(rows.groups)}
    role_at = {r.pk: i for i, r in enumerate(rows.roles)}
    env_at = {e.pk: i for i, e in enumerate(rows.envs)}

    role_of = dict(
        OrganisationMembership.objects.filter(organisation=rows.org).values_list("user_id", "role")
    )
    assert rows.users[-1].pk not in role_of, "the last user is never a member"
    members = tuple(
        None if u.pk not in role_of else role_of[u.pk] == MembershipRole.ADMIN
        for u in rows.users[:-1]
    )
    now = timezone.now()
    keys: dict[int, KeySpec] = {}
    for pk, is_admin, revoked, expiry in OrganisationAPIKey.objects.filter(
        pk__in=key_at
    ).values_list("pk", "is_admin", "revoked", "expiry_date"):
        expired = expiry is not None and expiry < now
        keys[key_at[pk]] = KeySpec(
            is_admin, "revoked" if revoked else "expired" if expired else "ok"
        )
    restricted = dict(Tag.objects.filter(pk__in=tag_at).values_list("pk", "is_restricted"))
    feature_tags: list[set[int]] = [set() for _ in rows.features]
    for feature_id, tag_id in Feature.tags.through.objects.filter(
        feature_id__in=feature_at
    ).values_list("feature_id", "tag_id"):
        feature_tags[feature_at[feature_id]].add(tag_at[tag_id])
    group_users: list[set[int]] = [set() for _ in rows.groups]
    for group_id, user_id in UserGroup.users.through.objects.filter(
        usergroup_id__in=group_at
    ).values_list("usergroup_id", "user_id"):
        group_users[group_at[group_id]].add(user_at[user_id])
    assigned: list[tuple[set[int], set[int], set[int]]] = [
        (set(), set(), set()) for _ in rows.roles
    ]
    for role_id, user_id, group_id, key_id in RoleAssignment.objects.filter(
        role_id__in=role_at
    ).values_list("role_id", "user_id", "group_id", "api_key_id"):
        users, groups, api_keys = assigned[role_at[role_id]]
        if user_id is not None:
            users.add(user_at[user_id])
        elif group_id is not None:
            groups.add(group_at[group_id])
        else:
            api_keys.add(key_at[key_id])
    grants = []
    for grant in Grant.objects.filter(organisation=rows.org).prefetch_related(
        "entries__entry_tags"
    ):
        if grant.user_id is not None:
            holder = ("user", user_at[grant.user_id])
        elif grant.group_id is not None:
            holder = ("group", group_at[grant.group_id])
        else:
            holder = ("role", role_at[grant.role_id])
        if grant.environment_id is not None:
            scope = (ENV, env_at[grant.environment_id])
        elif grant.project_id is not None:
            scope = (PROJECT, 0)
        else:
            scope = (ORG, 0)
        entries = sorted(
            (entry.key, frozenset(tag_at[et.tag_id] for et in entry.entry_tags.all()))
            for entry in grant.entries.all()
        )
        grants.append(GrantSpec(holder, scope, grant.admin, tuple(entries)))
    return World(
        members=members,
        api_keys=tuple(keys[i] for i in range(len(rows.keys))),
        tags=tuple(restricted[t.pk] for t in rows.tags),
        features=tuple(frozenset(tags) for tags in feature_tags),
        groups=tuple(frozenset(users) for users in group_users),
        roles=tuple(
            RoleSpec(frozenset(users), frozenset(groups), frozenset(api_keys))
            for users, groups, api_keys in assigned
        ),
        grants=canonical_grants(grants),
    )


def canonical_grants(grants: Iterable[GrantSpec]) -> tuple[GrantSpec, ...]:
    """Grants in one order (by holder, then scope), so that worlds compare equal whatever
    order their grants were written in."""
    return tuple(sorted(grants, key=lambda g: (g.holder, g.scope)))


def canonical(w: World) -> World:
    return replace(w, grants=canonical_grants(w.grants))
