"""Principal paths: which grants reach a principal in one organisation (docs/PERMISSIONS.md,
"How one decision is made", rule 3, and "Membership gates everything").

A user is reached by its own grants, the grants of its groups *of that organisation*, and the
grants of roles *of that organisation* assigned to it or to those groups; an API key by the
grants of the roles of its organisation assigned to it. A group or role of another
organisation never counts, whatever rows reference it.

This module is the one place that resolves those paths, in the three forms their readers
need:

- `grant_conditions_sql`: one SQL condition on a grant `g` per path, for one principal and
  organisation (the policy loader's single query);
- `grants_reaching`: the grants reaching a principal in every organisation, as a queryset
  (the list filters' one `Q`);
- `OrganisationPaths`: an organisation's group memberships and role assignments read in bulk
  (`organisation_paths`, 2 queries), resolved per principal in Python (the bulk loader,
  explain and detailed permissions, impact snapshots).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from django.db import connection
from django.db.models import F, Q, QuerySet

from organisations.models import OrganisationAPIKey, Role, RoleAssignment, UserGroup
from permissions.models import Grant

# ("user" | "group" | "role" | "api_key", id): who holds grants or role assignments.
Holder = tuple[str, int]

GroupMembership = UserGroup.users.through

# --------------------------------------------------------------------------------------
# SQL: one condition on a grant `g` per path (the policy loader)
# --------------------------------------------------------------------------------------


def _table(model: Any) -> str:
    return cast(str, connection.ops.quote_name(model._meta.db_table))


def grant_conditions_sql(*, api_key: bool, org_sql: str) -> list[str]:
    """For each path of a principal (a user, or an OrganisationAPIKey when `api_key`) in the
    organisation `org_sql` (an SQL expression), a condition on the grant `g` that holds when
    the grant reaches the principal through that path: disjoint conditions, each usable with
    the grant's (organisation, user | group | role) index. The principal's id is the named
    parameter `%(principal)s`."""
    roles, assignments = _table(Role), _table(RoleAssignment)
    # CROSS JOIN keeps the assignments (found by their holder's index) as the outer loop on
    # SQLite, instead of a walk over every role of the organisation; PostgreSQL plans it as
    # an inner join.
    own_role = f"CROSS JOIN {roles} r WHERE r.id = ra.role_id AND r.organisation_id = {org_sql}"
    if api_key:
        return [
            f"g.role_id IN (SELECT ra.role_id FROM {assignments} ra {own_role} "
            "AND ra.api_key_id = %(principal)s)"
        ]
    members, groups = _table(GroupMembership), _table(UserGroup)
    user_groups = (
        f"SELECT gm.usergroup_id FROM {members} gm CROSS JOIN {groups} ug WHERE "
        f"ug.id = gm.usergroup_id AND gm.user_id = %(principal)s AND ug.organisation_id = {org_sql}"
    )
    return [
        "g.user_id = %(principal)s",
        f"g.group_id IN ({user_groups})",
        f"g.role_id IN (SELECT ra.role_id FROM {assignments} ra {own_role} "
        f"AND ra.user_id = %(principal)s UNION SELECT ra.role_id FROM {assignments} ra "
        f"{own_role} AND ra.group_id IN ({user_groups}))",
    ]


# --------------------------------------------------------------------------------------
# Querysets: the grants reaching a principal in every organisation (the list filters)
# --------------------------------------------------------------------------------------


def grants_reaching(principal: Any) -> QuerySet[Grant]:
    """Every grant reaching `principal` (a user or an OrganisationAPIKey) through any path,
    in any organisation, as one lazy queryset."""
    if isinstance(principal, OrganisationAPIKey):
        return Grant.objects.filter(
            organisation_id=principal.organisation_id,
            role__organisation_id=principal.organisation_id,
            role__assignments__api_key_id=principal.pk,
        )
    group_ids = UserGroup.objects.filter(users=principal).values("id")
    role_ids = RoleAssignment.objects.filter(
        Q(user=principal)
        | Q(group_id__in=group_ids, group__organisation_id=F("role__organisation_id"))
    ).values("role_id")
    return Grant.objects.filter(
        Q(user=principal)
        | Q(group_id__in=group_ids, group__organisation_id=F("organisation_id"))
        | Q(role_id__in=role_ids, role__organisation_id=F("organisation_id"))
    )


# --------------------------------------------------------------------------------------
# Python: an organisation's memberships and assignments, resolved per principal
# --------------------------------------------------------------------------------------


def group_memberships(organisation_id: int, *where: Q) -> dict[int, set[int]]:
    """user id -> the organisation's groups the user is in (one query; `where` narrows the
    membership rows)."""
    groups_of: dict[int, set[int]] = defaultdict(set)
    for user_id, group_id in GroupMembership.objects.filter(
        *where, usergroup__organisation_id=organisation_id
    ).values_list("user_id", "usergroup_id"):
        groups_of[user_id].add(group_id)
    return groups_of


def roles_by_holder(organisation_id: int, *where: Q) -> dict[Holder, set[int]]:
    """The organisation's roles assigned to each holder (`("user" | "group" | "api_key",
    id)`) in one query, optionally narrowed by `where`. Only assignments to the
    organisation's own groups and keys count."""
    roles_of: dict[Holder, set[int]] = defaultdict(set)
    for role_id, user_id, group_id, api_key_id in RoleAssignment.objects.filter(
        *where,
        Q(user__isnull=False)
        | Q(group__organisation_id=organisation_id)
        | Q(api_key__organisation_id=organisation_id),
        role__organisation_id=organisation_id,
    ).values_list("role_id", "user_id", "group_id", "api_key_id"):
        if user_id is not None:
            roles_of[("user", user_id)].add(role_id)
        elif group_id is not None:
            roles_of[("group", group_id)].add(role_id)
        elif api_key_id is not None:
            roles_of[("api_key", api_key_id)].add(role_id)
    return roles_of


@dataclass(frozen=True)
class PrincipalPaths:
    """How one principal reaches groups and roles in one organisation."""

    group_ids: frozenset[int]
    # role id -> the groups through which it is assigned (None: assigned directly)
    role_paths: Mapping[int, frozenset[int | None]]

    def holders(self, principal: Holder) -> list[Holder]:
        """The holders whose grants reach the principal: itself (a user), its groups, its
        roles."""
        own = [principal] if principal[0] == "user" else []
        return [
            *own,
            *(("group", group_id) for group_id in sorted(self.group_ids)),
            *(("role", role_id) for role_id in sorted(self.role_paths)),
        ]


@dataclass(frozen=True)
class OrganisationPaths:
    """An organisation's group memberships and role assignments (of its own groups and
    roles), to resolve the paths of many principals without a query each."""

    groups_of: Mapping[int, Collection[int]]  # user id -> groups
    roles_of: Mapping[Holder, Collection[int]]  # ("user" | "group" | "api_key", id) -> roles

    def paths_of(self, principal: Holder) -> PrincipalPaths:
        """`principal`: ("user" | "api_key", id)."""
        kind, principal_id = principal
        group_ids = frozenset(self.groups_of.get(principal_id, ())) if kind == "user" else None
        role_paths: dict[int, set[int | None]] = defaultdict(set)
        for role_id in self.roles_of.get(principal, ()):
            role_paths[role_id].add(None)
        for group_id in group_ids or ():
            for role_id in self.roles_of.get(("group", group_id), ()):
                role_paths[role_id].add(group_id)
        return PrincipalPaths(
            group_ids or frozenset(), {r: frozenset(g) for r, g in role_paths.items()}
        )


def organisation_paths(
    organisation_id: int,
    *,
    user_ids: Iterable[int] | None = None,
    api_key_ids: Iterable[int] = (),
) -> OrganisationPaths:
    """The paths of the organisation's users (those of `user_ids` only, if given) and of
    the API keys `api_key_ids`: 2 queries, whatever their number."""
    if user_ids is None:
        groups_of = group_memberships(organisation_id)
        assigned = Q(api_key__isnull=True) | Q(api_key_id__in=list(api_key_ids))
    else:
        users = list(user_ids)
        groups_of = group_memberships(organisation_id, Q(user_id__in=users))
        all_groups = {group for groups in groups_of.values() for group in groups}
        assigned = (
            Q(user_id__in=users) | Q(group_id__in=all_groups) | Q(api_key_id__in=list(api_key_ids))
        )
    return OrganisationPaths(groups_of, roles_by_holder(organisation_id, assigned))


def principal_paths(principal: Any, organisation_id: int) -> PrincipalPaths:
    """The paths of one user or OrganisationAPIKey in one organisation (2 queries at most)."""
    if isinstance(principal, OrganisationAPIKey):
        paths = organisation_paths(organisation_id, user_ids=(), api_key_ids=[principal.pk])
        return paths.paths_of(("api_key", principal.pk))
    paths = organisation_paths(organisation_id, user_ids=[principal.pk])
    return paths.paths_of(("user", principal.pk))
