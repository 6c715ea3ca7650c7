"""Loading policies: one query per principal and organisation, memoised per request
(docs/PERMISSIONS.md)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.core.signals import request_started
from django.db import connection
from django.db.models import (
    Q,
)
from django.dispatch import receiver

from environments.models import Environment
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import Level
from permissions.engine.policy import (
    Policy,
    Principal,
    Scope,
    ScopeRights,
    is_superuser,
    non_member_policy,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project

_POLICY_CACHE_ATTR = "_tagwarden_policies"

# --------------------------------------------------------------------------------------
# Loading: one query per principal and organisation
# --------------------------------------------------------------------------------------


def _t(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _org_expression(organisation_id: int | None, project_id: int | None) -> tuple[str, list[Any]]:
    if organisation_id is not None:
        return "%s", [organisation_id]
    return f"(SELECT p.organisation_id FROM {_t(Project)} p WHERE p.id = %s)", [project_id]


def _load_rows(
    principal: Principal,
    organisation_id: int | None,
    project_id: int | None,
    *,
    scoped: bool = False,
) -> tuple[int | None, str | None, list[tuple[Any, ...]]]:
    """(organisation id, membership role or None, entry rows) in one SQL query.

    `scoped`: only the grants that can reach `project_id` (its own and its environments'),
    plus the organisation level; a grant on another project can decide nothing there."""
    org_sql, org_params = _org_expression(organisation_id, project_id)
    grant, entry, entry_tag = _t(Grant), _t(GrantEntry), _t(GrantEntryTag)
    columns = (
        "g.organisation_id, g.id, g.project_id, g.environment_id, g.admin, e.key, et.tag_id, "
        "g.user_id, g.group_id, g.role_id"
    )
    organisations = _t(Organisation)
    joins = (
        f"FROM {grant} g LEFT JOIN {entry} e ON e.grant_id = g.id "
        f"LEFT JOIN {entry_tag} et ON et.entry_id = e.id"
    )
    roles, assignments = _t(Role), _t(RoleAssignment)
    # Every grant has exactly one principal, so the branches below are disjoint; each is its
    # own SELECT so the database can use the (organisation, user|group|role) index of each
    # path instead of scanning the organisation's grants with an OR.
    grants_sql = f"SELECT 1, {columns} {joins} WHERE g.organisation_id = {org_sql} AND "
    if scoped:
        # Environment grants carry their project too (docs/PERMISSIONS.md), so this is every
        # grant that can reach the project; each path keeps its (organisation, holder) index.
        grants_sql += "(g.project_id = %s OR g.project_id IS NULL) AND "
    grants_params = [*org_params, project_id] if scoped else [*org_params]
    # A role counts only in its own organisation, whatever rows reference it.
    # CROSS JOIN keeps the assignments (found by their holder's index) as the outer loop on
    # SQLite, instead of a walk over every role of the organisation; PostgreSQL plans it as
    # an inner join.
    own_role = f"CROSS JOIN {roles} r WHERE r.id = ra.role_id AND r.organisation_id = {org_sql}"
    parts: list[tuple[str, list[Any]]]
    if isinstance(principal, OrganisationAPIKey):
        parts = [
            (
                f"SELECT 0, o.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
                f"FROM {organisations} o WHERE o.id = {org_sql}",
                [*org_params],
            ),
            (
                f"{grants_sql} g.role_id IN (SELECT ra.role_id FROM {assignments} ra "
                f"{own_role} AND ra.api_key_id = %s)",
                [*grants_params, *org_params, principal.pk],
            ),
        ]
    else:
        uid = principal.pk
        membership = _t(OrganisationMembership)
        group_members, groups = _t(UserGroup.users.through), _t(UserGroup)
        # The user's groups *of this organisation*: a group of another organisation never
        # counts, whatever rows reference it.
        user_groups = (
            f"SELECT gm.usergroup_id FROM {group_members} gm CROSS JOIN {groups} ug "
            f"WHERE ug.id = gm.usergroup_id AND gm.user_id = %s AND ug.organisation_id = {org_sql}"
        )
        user_groups_params = [uid, *org_params]
        parts = [
            (
                f"SELECT 0, o.id, NULL, NULL, NULL, NULL, m.role, NULL, NULL, NULL, NULL "
                f"FROM {organisations} o LEFT JOIN {membership} m "
                f"ON m.organisation_id = o.id AND m.user_id = %s WHERE o.id = {org_sql}",
                [uid, *org_params],
            ),
            (f"{grants_sql} g.user_id = %s", [*grants_params, uid]),
            (
                f"{grants_sql} g.group_id IN ({user_groups})",
                [*grants_params, *user_groups_params],
            ),
            (
                f"{grants_sql} g.role_id IN ("
                f"SELECT ra.role_id FROM {assignments} ra {own_role} AND ra.user_id = %s "
                f"UNION SELECT ra.role_id FROM {assignments} ra {own_role} "
                f"AND ra.group_id IN ({user_groups}))",
                [*grants_params, *org_params, uid, *org_params, *user_groups_params],
            ),
        ]
    sql = " UNION ALL ".join(part for part, _ in parts)
    params: list[Any] = [param for _, part_params in parts for param in part_params]
    membership_role = None
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    resolved_org: int | None = organisation_id
    for row in raw:
        if row[0] == 0:
            resolved_org = row[1]
            membership_role = row[6]
        else:
            resolved_org = row[1]
            rows.append(row[2:])
    return resolved_org, membership_role, rows


def _build_policy(
    principal: Principal,
    organisation_id: int,
    membership_role: str | None,
    rows: Iterable[tuple[Any, ...]],
    *,
    only_project: int | None = None,
) -> Policy:
    if isinstance(principal, OrganisationAPIKey):
        is_member = principal.organisation_id == organisation_id and principal.is_usable
        is_admin = is_member and principal.is_admin
    elif is_superuser(principal):
        is_member = is_admin = True
    else:
        is_member = membership_role is not None
        is_admin = membership_role == MembershipRole.ADMIN
    return policy_from_rows(
        organisation_id,
        is_member=is_member,
        is_admin=is_admin,
        rows=rows,
        only_project=only_project,
    )


def policy_from_rows(
    organisation_id: int,
    *,
    is_member: bool,
    is_admin: bool,
    rows: Iterable[tuple[Any, ...]],
    keep_entries: bool = True,
    only_project: int | None = None,
) -> Policy:
    """A policy from its applicable grant rows, each `(grant id, project id, environment id,
    admin, key, tag id, user id, group id, role id)` (one row per entry tag; `key` and `tag id`
    None where absent). The loaders above and the impact previews' snapshots build with it."""
    if not is_member:
        return non_member_policy(organisation_id)

    # Group rows (one per tag) back into entries.
    entry_tags: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for grant_id, project_id, env_id, admin, key, tag_id, user_id, group_id, role_id in rows:
        ident = (grant_id, project_id, env_id, bool(admin), key, user_id, group_id, role_id)
        tags = entry_tags[ident]
        if tag_id is not None:
            tags.add(tag_id)
    organisation_keys: set[str] = set()
    admin_scopes: set[tuple[Level, int]] = set()
    untagged: dict[tuple[Level, int], set[str]] = defaultdict(set)
    tagged: dict[tuple[Level, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    touched: set[tuple[Level, int]] = set()
    environment_projects: dict[int, int] = {}
    # The hot path of a cold decision: plain tuples, no per-entry objects.
    for (_, project_id, env_id, admin, key, _, _, _), entry_tag_ids in entry_tags.items():
        if project_id is None:  # organisation level
            if key is not None:
                organisation_keys.add(key)
            continue
        if key is None and not admin:
            continue  # a grant with no key and no admin holds nothing, and shows nothing
        scope = (Level.ENVIRONMENT, env_id) if env_id is not None else (Level.PROJECT, project_id)
        touched.add(scope)
        if env_id is not None:
            environment_projects[env_id] = project_id
        if admin:
            admin_scopes.add(scope)
        if key is None:
            continue
        if entry_tag_ids:
            tagged[scope][key] |= entry_tag_ids
        else:
            untagged[scope].add(key)

    def rights(level: Level) -> dict[int, ScopeRights]:
        return {
            scope_id: ScopeRights(
                admin=(lvl, scope_id) in admin_scopes,
                untagged=frozenset(untagged.get((lvl, scope_id), ())),
                tagged={k: frozenset(v) for k, v in tagged.get((lvl, scope_id), {}).items()},
            )
            for (lvl, scope_id) in touched
            if lvl == level
        }

    return Policy(
        organisation_id=organisation_id,
        is_member=True,
        is_organisation_admin=is_admin,
        organisation_keys=frozenset(organisation_keys),
        projects=rights(Level.PROJECT),
        environments=rights(Level.ENVIRONMENT),
        environment_projects=environment_projects,
        # Only reports (explain, details) read the entries one by one. A policy built without
        # them (impact previews: `keep_entries=False`) decides the same, and two such policies
        # compare equal whenever what they decide from is equal, whatever grants it came from.
        entry_rows=(
            {ident: frozenset(tags) for ident, tags in entry_tags.items()} if keep_entries else {}
        ),
        only_project=only_project,
    )


def load_policy(
    principal: Principal, organisation_id: int | None = None, *, project_id: int | None = None
) -> Policy:
    """Load a fresh policy (1 query, or 0 for anonymous users and foreign API keys).

    With `project_id`, the policy of that project's scope: only the grants that can reach the
    project (its own and its environments') and the organisation level are read, and the
    organisation is resolved inside the same query when `organisation_id` is not given.
    Without it, the policy of the whole organisation. Not memoised.
    """
    if organisation_id is None and project_id is None:
        raise ValueError("organisation_id or project_id is required")
    if principal is None or not getattr(principal, "is_authenticated", False):
        return non_member_policy(organisation_id or 0)
    if isinstance(principal, OrganisationAPIKey) and (
        not principal.is_usable
        or (organisation_id is not None and principal.organisation_id != organisation_id)
    ):
        return non_member_policy(organisation_id or principal.organisation_id)
    scoped = project_id is not None
    resolved_org, membership_role, rows = _load_rows(
        principal, organisation_id, project_id, scoped=scoped
    )
    if resolved_org is None:  # no such organisation or project
        return non_member_policy(organisation_id or 0)
    return _build_policy(principal, resolved_org, membership_role, rows, only_project=project_id)


# Policies are memoised per request: every request (the `request_started` signal) starts a
# new generation in its thread, and a memo of an older generation is dropped. A principal
# object reused across requests (a test client's forced user, a long-lived worker object)
# therefore never carries a policy from one request into the next.
_generation = threading.local()


def _current_generation() -> int:
    return getattr(_generation, "value", 0)


@receiver(request_started, dispatch_uid="tagwarden_engine_new_request")
def _new_request(**_: Any) -> None:
    _generation.value = _current_generation() + 1


def organisation_grant_rows(
    organisation_id: int, *, where: Q | None = None
) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    """Every grant row of an organisation (or those of its grants matching `where`) in one
    query, by holder (`("user" | "group" | "role", id)`), in the row shape of
    `policy_from_rows`. For builders of many policies at once (`policies_for_members`, impact
    snapshots)."""
    rows_of: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    grants = Grant.objects.filter(organisation_id=organisation_id)
    if where is not None:
        grants = grants.filter(where)
    for row in grants.values_list(
        "id",
        "project_id",
        "environment_id",
        "admin",
        "entries__key",
        "entries__entry_tags__tag_id",
        "user_id",
        "group_id",
        "role_id",
    ):
        if row[6] is not None:
            rows_of[("user", row[6])].append(row)
        elif row[7] is not None:
            rows_of[("group", row[7])].append(row)
        elif row[8] is not None:
            rows_of[("role", row[8])].append(row)
    return rows_of


def policies_for_members(
    organisation_id: int, user_ids: Iterable[int] | None = None
) -> dict[int, Policy]:
    """Fresh policies of many users of one organisation in 4 queries, whatever their number
    (membership, group membership, role assignments, and the organisation's grant entries).

    For pages that decide for many principals at once (the admin's permission matrix, impact
    previews). Users who are not members get a non-member policy. The per-user path logic is
    the same as `_load_rows`' SQL: own grants, grants of the user's groups of this
    organisation, and grants of roles of this organisation assigned to the user or to those
    groups.
    """
    memberships = OrganisationMembership.objects.filter(organisation_id=organisation_id)
    if user_ids is not None:
        memberships = memberships.filter(user_id__in=list(user_ids))
    roles_by_user = dict(memberships.values_list("user_id", "role"))
    wanted = list(roles_by_user) if user_ids is None else list(user_ids)

    groups_of: dict[int, set[int]] = defaultdict(set)
    for user_id, group_id in UserGroup.users.through.objects.filter(
        usergroup__organisation_id=organisation_id, user_id__in=list(roles_by_user)
    ).values_list("user_id", "usergroup_id"):
        groups_of[user_id].add(group_id)

    roles_of_user: dict[int, set[int]] = defaultdict(set)
    roles_of_group: dict[int, set[int]] = defaultdict(set)
    for role_id, user_id, group_id in RoleAssignment.objects.filter(
        Q(user__isnull=False) | Q(group__organisation_id=organisation_id),
        role__organisation_id=organisation_id,
    ).values_list("role_id", "user_id", "group_id"):
        if user_id is not None:
            roles_of_user[user_id].add(role_id)
        elif group_id is not None:
            roles_of_group[group_id].add(role_id)

    rows_of = organisation_grant_rows(organisation_id)

    policies: dict[int, Policy] = {}
    for user_id in wanted:
        membership_role = roles_by_user.get(user_id)
        if membership_role is None:
            policies[user_id] = non_member_policy(organisation_id)
            continue
        groups = groups_of.get(user_id, set())
        roles = set(roles_of_user.get(user_id, ()))
        for group_id in groups:
            roles |= roles_of_group.get(group_id, set())
        rows = [
            *rows_of.get(("user", user_id), ()),
            *(row for group_id in groups for row in rows_of.get(("group", group_id), ())),
            *(row for role_id in roles for row in rows_of.get(("role", role_id), ())),
        ]
        stub = cast(Principal, _MemberStub(user_id))
        policies[user_id] = _build_policy(stub, organisation_id, membership_role, rows)
    return policies


@dataclass(frozen=True)
class _MemberStub:
    """Stands for a user in `_build_policy` (which only tells users from API keys)."""

    pk: int


def _memo(principal: Principal) -> tuple[dict[int, Policy], dict[int, Policy]]:
    memo = getattr(principal, _POLICY_CACHE_ATTR, None)
    if memo is None or memo[0] != _current_generation():
        memo = (_current_generation(), {}, {})
        try:
            setattr(principal, _POLICY_CACHE_ATTR, memo)
        except AttributeError:  # objects that take no attributes: nothing to memoise on
            return {}, {}
    return memo[1], memo[2]


def forget(principal: Principal) -> None:
    """Drop the principal's memoised policies (after changing its grants in the same request)."""
    if hasattr(principal, _POLICY_CACHE_ATTR):
        delattr(principal, _POLICY_CACHE_ATTR)


def policy_for(
    principal: Principal, organisation_id: int | None = None, *, project_id: int | None = None
) -> Policy:
    """The principal's memoised policy: 1 query cold, 0 warm.

    With `project_id`, a policy that decides on that project (and the organisation level):
    the organisation's whole policy when it is already memoised, else the project's own,
    which reads only the grants that can reach the project. Without it, the organisation's.
    """
    organisation_policies, project_policies = _memo(principal)
    if project_id is not None:
        known = project_policies.get(project_id)
        if known is not None:
            return known
        if organisation_id is not None and organisation_id in organisation_policies:
            return organisation_policies[organisation_id]
        policy = load_policy(principal, organisation_id, project_id=project_id)
        project_policies[project_id] = policy
        return policy
    if organisation_id is not None and organisation_id in organisation_policies:
        return organisation_policies[organisation_id]
    policy = load_policy(principal, organisation_id)
    organisation_policies[policy.organisation_id] = policy
    return policy


def scope_ids(scope: Scope) -> tuple[Level, int | None, int | None, int | None]:
    """(level, organisation id if known without a query, project id, environment id)."""
    if isinstance(scope, Environment):
        organisation_id = (
            scope.project.organisation_id if Environment.project.is_cached(scope) else None
        )
        return Level.ENVIRONMENT, organisation_id, scope.project_id, scope.pk
    if isinstance(scope, Project):
        return Level.PROJECT, scope.organisation_id, scope.pk, None
    if isinstance(scope, Organisation):
        return Level.ORGANISATION, scope.pk, None, None
    raise TypeError(f"Not a scope: {scope!r}")


def policy_for_scope(principal: Principal, scope: Scope) -> Policy:
    _, organisation_id, project_id, _ = scope_ids(scope)
    return policy_for(principal, organisation_id, project_id=project_id)
