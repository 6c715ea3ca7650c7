"""Issue 9: for random organisations and random single changes, the impact preview equals the
difference between a plain reference's decisions before and after actually applying the change.

Each example builds a world (`tests/support/reference.py`), draws one change that the
product can make (through its services, so that the real cascades run), and checks:
- the preview's `as_dict()` equals, row for row and in order, the difference of the reference's
  decisions over every principal (users and API keys) × scope × key × feature, from the world
  before to the world read back from the database after applying the change for real;
- the preview left the database as it was (the world read back equals the one built);
- the services did what the change means (the world read back after applying it equals the
  change applied to the world in plain Python), and a change a service refuses (the last
  ADMIN demoted or removed) is refused by the preview too, with nothing changed.

Examples: `HYPOTHESIS_EXAMPLES` in all (default 60; CI runs 500 in a step of its own), split evenly among the kinds of
change (`KINDS`, one test case each).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from features.models import Feature
from features.services import feature_update
from impact import changes, previews
from impact.feature_writes import FeatureWrite
from organisations.models import (
    MembershipRole,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from organisations.services import (
    api_key_update,
    group_update,
    membership_delete,
    membership_update,
    role_assignment_create,
    role_assignment_delete,
)
from permissions.models import Grant
from permissions.services import EntryInput, grant_create, grant_delete, grant_update
from projects.models import Tag
from projects.services import tag_update
from tests.support.reference import (
    ENV,
    ENV_KEYS,
    N_ENVS,
    ORG,
    ORG_KEYS,
    PROJECT,
    PROJECT_KEYS,
    TAG_KEYS,
    GrantSpec,
    KeySpec,
    Rows,
    World,
    build,
    canonical,
    ref_allowed,
    world_read,
    worlds,
)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "60"))

KEYS_OF = {ORG: ORG_KEYS, PROJECT: PROJECT_KEYS, ENV: ENV_KEYS}
SCOPES: list[tuple[str, int]] = [(ORG, 0), (PROJECT, 0), *((ENV, e) for e in range(N_ENVS))]

# ---------------------------------------------------------------------------------------
# Single changes: what they are, and what they do to a world (plain Python)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One change, in world indices. `kind` and `args`:
    key_add (holder, scope, key, tags) · key_remove (holder, scope, key) ·
    tag_add / tag_remove (holder, scope, key, tag) · admin_toggle (holder, scope) ·
    grant_create (holder, scope, admin, entries) · grant_delete (holder, scope) ·
    role_assign / role_unassign (role, ("user" | "group" | "key", i)) ·
    group_add / group_remove (group, user) · membership_toggle (user) · member_remove (user) ·
    tag_restrict_toggle (tag) · feature_tag_add / feature_tag_remove (feature, tag) ·
    key_revoke (key)."""

    kind: str
    args: tuple[Any, ...]


def _grant_at(w: World, holder: tuple[str, int], scope: tuple[str, int]) -> int:
    (index,) = [i for i, g in enumerate(w.grants) if (g.holder, g.scope) == (holder, scope)]
    return index


def _only_admin(w: World, user: int) -> bool:
    return bool(w.members[user]) and not any(
        admin for i, admin in enumerate(w.members) if i != user
    )


def world_apply(w: World, c: Change) -> World | None:
    """What the change means, docs/PERMISSIONS.md read in plain Python; None when the services
    must refuse it (an organisation keeps at least one ADMIN)."""
    a = c.args
    grants = list(w.grants)
    if c.kind in ("key_add", "key_remove", "tag_add", "tag_remove", "admin_toggle"):
        at = _grant_at(w, a[0], a[1])
        grant = grants[at]
        entries = dict(grant.entries)
        admin = grant.admin
        if c.kind == "key_add":
            entries[a[2]] = a[3]
        elif c.kind == "key_remove":
            del entries[a[2]]
        elif c.kind == "tag_add":
            entries[a[2]] = entries[a[2]] | {a[3]}
        elif c.kind == "tag_remove":
            entries[a[2]] = entries[a[2]] - {a[3]}
        else:
            admin = not admin
        grants[at] = replace(grant, admin=admin, entries=tuple(sorted(entries.items())))
        return replace(w, grants=tuple(grants))
    if c.kind == "grant_create":
        return replace(w, grants=(*grants, GrantSpec(a[0], a[1], a[2], a[3])))
    if c.kind == "grant_delete":
        del grants[_grant_at(w, a[0], a[1])]
        return replace(w, grants=tuple(grants))
    if c.kind in ("role_assign", "role_unassign"):
        roles = list(w.roles)
        (kind, i), role = a[1], roles[a[0]]
        field = {"user": "users", "group": "groups", "key": "keys"}[kind]
        held: frozenset[int] = getattr(role, field)
        roles[a[0]] = replace(
            role, **{field: held | {i} if c.kind == "role_assign" else held - {i}}
        )
        return replace(w, roles=tuple(roles))
    if c.kind in ("group_add", "group_remove"):
        groups = list(w.groups)
        groups[a[0]] = groups[a[0]] | {a[1]} if c.kind == "group_add" else groups[a[0]] - {a[1]}
        return replace(w, groups=tuple(groups))
    if c.kind == "membership_toggle":
        if _only_admin(w, a[0]):
            return None
        members = list(w.members)
        members[a[0]] = not members[a[0]]
        return replace(w, members=tuple(members))
    if c.kind == "member_remove":
        # docs/PERMISSIONS.md: their grants, group memberships and role assignments go with them.
        user = a[0]
        if _only_admin(w, user):
            return None
        members = list(w.members)
        members[user] = None
        return replace(
            w,
            members=tuple(members),
            groups=tuple(g - {user} for g in w.groups),
            roles=tuple(replace(r, users=r.users - {user}) for r in w.roles),
            grants=tuple(g for g in grants if g.holder != ("user", user)),
        )
    if c.kind == "tag_restrict_toggle":
        tags = list(w.tags)
        tags[a[0]] = not tags[a[0]]
        return replace(w, tags=tuple(tags))
    if c.kind in ("feature_tag_add", "feature_tag_remove"):
        features = list(w.features)
        feature, tag = a
        features[feature] = (
            features[feature] | {tag} if c.kind == "feature_tag_add" else features[feature] - {tag}
        )
        return replace(w, features=tuple(features))
    if c.kind == "key_revoke":
        keys = list(w.api_keys)
        keys[a[0]] = KeySpec(is_admin=keys[a[0]].is_admin, state="revoked")
        return replace(w, api_keys=tuple(keys))
    raise AssertionError(c.kind)


# ---------------------------------------------------------------------------------------
# Drawing a change the product can make
# ---------------------------------------------------------------------------------------


KINDS = (
    "key_add",
    "key_remove",
    "tag_add",
    "tag_remove",
    "admin_toggle",
    "grant_create",
    "grant_delete",
    "role_assign",
    "role_unassign",
    "group_add",
    "group_remove",
    "membership_toggle",
    "member_remove",
    "tag_restrict_toggle",
    "feature_tag_add",
    "feature_tag_remove",
    "key_revoke",
)


@st.composite
def single_changes(draw: Any, w: World, wanted: str) -> Change:
    """A change of kind `wanted` to `w` (of another kind if `w` offers none of that kind)."""
    members = [i for i, admin in enumerate(w.members) if admin is not None]
    holders = [("role", r) for r in range(len(w.roles))]
    holders += [("user", u) for u in members] + [("group", g) for g in range(len(w.groups))]
    held = {(g.holder, g.scope) for g in w.grants}
    any_tags = st.frozensets(st.integers(0, len(w.tags) - 1), min_size=1, max_size=2)

    def tags_for(holder: tuple[str, int], scope: tuple[str, int], key: str) -> frozenset[int]:
        # Only role grants' entries of tag-supported keys may carry tags (docs/PERMISSIONS.md).
        if holder[0] == "role" and key in TAG_KEYS and scope[0] != ORG:
            return draw(st.one_of(st.just(frozenset()), any_tags))
        return frozenset()

    def taggable(g: GrantSpec) -> bool:
        return g.holder[0] == "role" and g.scope[0] != ORG

    candidates: dict[str, list[tuple[Any, ...]]] = {
        "key_add": [
            (g.holder, g.scope, key)
            for g in w.grants
            for key in KEYS_OF[g.scope[0]]
            if key not in dict(g.entries)
        ],
        "key_remove": [(g.holder, g.scope, key) for g in w.grants for key, _ in g.entries],
        "tag_add": [
            (g.holder, g.scope, key, t)
            for g in w.grants
            if taggable(g)
            for key, tags in g.entries
            if key in TAG_KEYS
            for t in range(len(w.tags))
            if t not in tags
        ],
        "tag_remove": [
            (g.holder, g.scope, key, t)
            for g in w.grants
            if taggable(g)
            for key, tags in g.entries
            for t in sorted(tags)
        ],
        "admin_toggle": [(g.holder, g.scope) for g in w.grants if g.scope[0] != ORG],
        "grant_create": [(h, s) for h in holders for s in SCOPES if (h, s) not in held],
        "grant_delete": [(g.holder, g.scope) for g in w.grants],
        "role_assign": [
            (r, p)
            for r, role in enumerate(w.roles)
            for p in [
                *(("user", u) for u in members if u not in role.users),
                *(("group", g) for g in range(len(w.groups)) if g not in role.groups),
                *(("key", k) for k in range(len(w.api_keys)) if k not in role.keys),
            ]
        ],
        "role_unassign": [
            (r, p)
            for r, role in enumerate(w.roles)
            for p in [
                *(("user", u) for u in sorted(role.users)),
                *(("group", g) for g in sorted(role.groups)),
                *(("key", k) for k in sorted(role.keys)),
            ]
        ],
        "group_add": [
            (g, u) for g, users in enumerate(w.groups) for u in members if u not in users
        ],
        "group_remove": [(g, u) for g, users in enumerate(w.groups) for u in sorted(users)],
        "membership_toggle": [(u,) for u in members],
        "member_remove": [(u,) for u in members],
        "tag_restrict_toggle": [(t,) for t in range(len(w.tags))],
        "feature_tag_add": [
            (ft, t)
            for ft, tags in enumerate(w.features)
            for t in range(len(w.tags))
            if t not in tags
        ],
        "feature_tag_remove": [(ft, t) for ft, tags in enumerate(w.features) for t in sorted(tags)],
        "key_revoke": [(k,) for k in range(len(w.api_keys))],
    }
    assert tuple(candidates) == KINDS
    kind = (
        wanted if candidates[wanted] else draw(st.sampled_from([k for k in KINDS if candidates[k]]))
    )
    args = draw(st.sampled_from(candidates[kind]))
    if kind == "key_add":
        args = (*args, tags_for(*args))
    elif kind == "grant_create":
        holder, scope = args
        keys = draw(st.lists(st.sampled_from(KEYS_OF[scope[0]]), unique=True, max_size=3))
        entries = tuple((key, tags_for(holder, scope, key)) for key in sorted(keys))
        admin = scope[0] != ORG and draw(st.booleans())
        args = (holder, scope, admin, entries)
    return Change(kind, args)


# ---------------------------------------------------------------------------------------
# Making the change in the database, through the services
# ---------------------------------------------------------------------------------------


def _holder(rows: Rows, holder: tuple[str, int]) -> Any:
    kind, i = holder
    return {"user": rows.users, "group": rows.groups, "role": rows.roles}[kind][i]


def _scope(rows: Rows, scope: tuple[str, int]) -> Any:
    return {ORG: rows.org, PROJECT: rows.project}.get(scope[0]) or rows.envs[scope[1]]


def _grant(rows: Rows, holder: tuple[str, int], scope: tuple[str, int]) -> Grant:
    grants = Grant.objects.filter(
        organisation=rows.org, **{f"{holder[0]}_id": _holder(rows, holder).pk}
    )
    if scope[0] == ENV:
        grants = grants.filter(environment=rows.envs[scope[1]])
    elif scope[0] == PROJECT:
        grants = grants.filter(project=rows.project, environment__isnull=True)
    else:
        grants = grants.filter(project__isnull=True)
    return grants.get()


def _entries(rows: Rows, entries: dict[str, frozenset[int]]) -> list[EntryInput]:
    return [
        EntryInput(key=key, tags=tuple(sorted(rows.tags[t].pk for t in tags)))
        for key, tags in sorted(entries.items())
    ]


def _assignee(rows: Rows, principal: tuple[str, int]) -> dict[str, Any]:
    kind, i = principal
    if kind == "user":
        return {"user": rows.users[i]}
    if kind == "group":
        return {"group": UserGroup.objects.get(pk=rows.groups[i].pk)}
    return {"api_key": OrganisationAPIKey.objects.get(pk=rows.keys[i].pk)}


def _membership(rows: Rows, user: int) -> OrganisationMembership:
    return OrganisationMembership.objects.get(organisation=rows.org, user=rows.users[user])


def apply_change(rows: Rows, c: Change) -> None:
    """Make `c` with the services (actor None: the system), reading the current state from
    the database, never from the world."""
    a = c.args
    if c.kind in ("key_add", "key_remove", "tag_add", "tag_remove"):
        grant = _grant(rows, a[0], a[1])
        tag_at = {t.pk: i for i, t in enumerate(rows.tags)}
        entries = {
            entry.key: frozenset(tag_at[et.tag_id] for et in entry.entry_tags.all())
            for entry in grant.entries.prefetch_related("entry_tags")
        }
        if c.kind == "key_add":
            entries[a[2]] = a[3]
        elif c.kind == "key_remove":
            del entries[a[2]]
        elif c.kind == "tag_add":
            entries[a[2]] |= {a[3]}
        else:
            entries[a[2]] -= {a[3]}
        grant_update(grant=grant, entries=_entries(rows, entries), actor=None)
    elif c.kind == "admin_toggle":
        grant = _grant(rows, a[0], a[1])
        grant_update(grant=grant, admin=not grant.admin, actor=None)
    elif c.kind == "grant_create":
        grant_create(
            principal=_holder(rows, a[0]),
            scope=_scope(rows, a[1]),
            admin=a[2],
            entries=_entries(rows, dict(a[3])),
            actor=None,
        )
    elif c.kind == "grant_delete":
        grant_delete(grant=_grant(rows, a[0], a[1]), actor=None)
    elif c.kind == "role_assign":
        role = Role.objects.get(pk=rows.roles[a[0]].pk)
        role_assignment_create(role=role, **_assignee(rows, a[1]), actor=None)
    elif c.kind == "role_unassign":
        assignment = RoleAssignment.objects.get(role=rows.roles[a[0]], **_assignee(rows, a[1]))
        role_assignment_delete(assignment=assignment, actor=None)
    elif c.kind in ("group_add", "group_remove"):
        group = UserGroup.objects.get(pk=rows.groups[a[0]].pk)
        users = set(group.users.all())
        users = users | {rows.users[a[1]]} if c.kind == "group_add" else users - {rows.users[a[1]]}
        member_ids = set(
            OrganisationMembership.objects.filter(organisation=rows.org).values_list(
                "user_id", flat=True
            )
        )
        if {u.pk for u in users} <= member_ids:
            group_update(group=group, users=sorted(users, key=lambda u: u.pk), actor=None)
        else:
            # The generator puts a non-member in some groups, which the service (rightly)
            # refuses to write: change the link itself.
            group.users.set(users)
    elif c.kind == "membership_toggle":
        membership = _membership(rows, a[0])
        role = MembershipRole.USER if membership.is_admin else MembershipRole.ADMIN
        membership_update(membership=membership, role=role, actor=None)
    elif c.kind == "member_remove":
        membership_delete(membership=_membership(rows, a[0]), actor=None)
    elif c.kind == "tag_restrict_toggle":
        tag = Tag.objects.get(pk=rows.tags[a[0]].pk)
        tag_update(tag=tag, is_restricted=not tag.is_restricted, actor=None)
    elif c.kind in ("feature_tag_add", "feature_tag_remove"):
        feature = Feature.objects.get(pk=rows.features[a[0]].pk)
        tags = set(feature.tags.all())
        tag = Tag.objects.get(pk=rows.tags[a[1]].pk)
        tags = tags | {tag} if c.kind == "feature_tag_add" else tags - {tag}
        feature_update(feature=feature, tags=sorted(tags, key=lambda t: t.pk), actor=None)
    elif c.kind == "key_revoke":
        api_key = OrganisationAPIKey.objects.get(pk=rows.keys[a[0]].pk)
        api_key_update(api_key=api_key, revoked=True, actor=None)
    else:
        raise AssertionError(c.kind)


# ---------------------------------------------------------------------------------------
# The reference's decisions, and the impact they imply
# ---------------------------------------------------------------------------------------

Decisions = dict[tuple[tuple[str, int], str, tuple[str, int]], Any]


def decisions(w: World) -> Decisions:
    """Every principal × scope × key: a bool for keys without tags (no feature), the set of
    features reached for tag-supported keys."""
    principals = [("user", i) for i in range(w.n_users)]
    principals += [("key", i) for i in range(len(w.api_keys))]
    out: Decisions = {}
    for p in principals:
        for scope in SCOPES:
            for key in KEYS_OF[scope[0]]:
                if key in TAG_KEYS:
                    out[p, key, scope] = frozenset(
                        i for i in range(len(w.features)) if ref_allowed(w, p, key, scope, i)
                    )
                else:
                    out[p, key, scope] = ref_allowed(w, p, key, scope, None)
    return out


def expected_impact(rows: Rows, before: Decisions, after: Decisions) -> dict[str, list[Any]]:
    """The impact answer of docs/API.md, in the module's order: users first, then by id, project, environment
    and key."""
    gained: list[dict[str, Any]] = []
    lost: list[dict[str, Any]] = []
    for (p, key, scope), old in before.items():
        new = after[p, key, scope]
        kind, i = p
        who = (
            {"user": rows.users[i].pk, "email": rows.users[i].email}
            if kind == "user"
            else {"api_key": rows.keys[i].pk, "email": None, "name": rows.keys[i].name}
        )
        where = {
            "permission": key,
            "project": None if scope[0] == ORG else rows.project.pk,
            "environment": rows.envs[scope[1]].pk if scope[0] == ENV else None,
        }
        if key in TAG_KEYS:
            if new - old:
                gained.append({**who, **where, "features": len(new - old)})
            if old - new:
                lost.append({**who, **where, "features": len(old - new)})
        elif old != new:
            (gained if new else lost).append({**who, **where, "features": None})

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        return (
            "user" not in row,
            row.get("user", row.get("api_key")),
            row["project"] or 0,
            row["environment"] or 0,
            row["permission"],
        )

    return {"gained": sorted(gained, key=order), "lost": sorted(lost, key=order)}


# ---------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
@settings(
    # Split among the kinds, so that each is drawn as often as the others.
    max_examples=max(3, math.ceil(EXAMPLES / len(KINDS))),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), w=worlds())
def test_impact_preview__equals_the_reference_difference_of_the_applied_change(
    kind: str, data: st.DataObject, w: World
) -> None:
    change = data.draw(single_changes(w, kind), label="change")
    event(change.kind)  # --hypothesis-show-statistics: a world without `kind` draws another
    with transaction.atomic():
        rows = build(w)
        organisation_id = rows.org.pk
        expected_world = world_apply(w, change)

        def make() -> None:
            apply_change(rows, change)

        if expected_world is None:  # the services must refuse it, in the preview too
            event("refused")
            with pytest.raises(ValidationError):
                previews.impact_preview(organisation_id=organisation_id, change=make)
            assert world_read(rows) == canonical(w)
            transaction.set_rollback(True)
            return

        preview = previews.impact_preview(organisation_id=organisation_id, change=make)
        event("someone gains or loses" if preview else "nobody gains or loses")
        # (this also shows that the world read back is the one built)
        assert world_read(rows) == canonical(w), "the preview changed the database"

        grant_kinds = ("key_add", "key_remove", "tag_add", "tag_remove", "admin_toggle")
        if change.kind in (*grant_kinds, "grant_create", "grant_delete"):
            # A grant write previewed on the snapshots of the principals its holder reaches
            # only: the same impact as from the whole organisation's.
            holder = (change.args[0][0], _holder(rows, change.args[0]).pk)
            scoped = previews.impact_preview(
                organisation_id=organisation_id, change=make, grants_of=holder
            )
            assert scoped == preview, "the scoped snapshots disagree with the organisation's"
        if change.kind in ("tag_restrict_toggle", "feature_tag_add", "feature_tag_remove"):
            # A tag or feature write previewed on the features it can touch only: the same.
            write = (
                FeatureWrite(project_id=rows.project.pk, tag_ids=(rows.tags[change.args[0]].pk,))
                if change.kind == "tag_restrict_toggle"
                else FeatureWrite(
                    project_id=rows.project.pk, feature_ids=(rows.features[change.args[0]].pk,)
                )
            )
            scoped = previews.impact_preview(
                organisation_id=organisation_id, change=make, features_of=write
            )
            assert scoped == preview, "the feature-scoped preview disagrees with the whole one"

        make()  # for real
        after = world_read(rows)
        assert after == canonical(expected_world), "the services did not do what the change means"
        listed = preview.as_dict(limit=changes.IMPACT_LIMIT_MAX)
        assert {"gained": listed["gained"], "lost": listed["lost"]} == expected_impact(
            rows, decisions(w), decisions(after)
        )
        transaction.set_rollback(True)
