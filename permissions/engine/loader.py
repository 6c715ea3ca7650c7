"""Loading policies: one query per principal and organisation, memoised per request, and kept
across requests under the organisation's stamp (`sharing`; docs/PERMISSIONS.md)."""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from django.contrib.auth import get_user_model
from django.core.signals import request_started
from django.db import connection
from django.db.models import OuterRef, Q, Subquery
from django.dispatch import receiver

from environments.models import Environment
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
)
from permissions.catalogue import Level
from permissions.engine import sharing
from permissions.engine.paths import grant_conditions_sql, organisation_paths
from permissions.engine.policy import (
    Policy,
    Principal,
    Scope,
    ScopeRights,
    is_superuser,
    non_member_policy,
)
from permissions.engine.sharing import Stamp, stamp_of
from permissions.models import Grant, GrantEntry, GrantEntryTag, PolicyChange
from projects.models import Project

_POLICY_CACHE_ATTR = "_tagwarden_policies"

# --------------------------------------------------------------------------------------
# Loading: one query per principal and organisation
# --------------------------------------------------------------------------------------


def _t(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _org_expression(organisation_known: bool) -> str:
    if organisation_known:
        return "%(organisation)s"
    return f"(SELECT p.organisation_id FROM {_t(Project)} p WHERE p.id = %(project)s)"


# One row per entry tag (`entries=True`, for reports), in the row shape of
# `policy_from_rows`; or one row per scope and key (what decisions read), with the tags of
# its entries as one string: a principal with hundreds of tagged entries on a project then
# costs tens of rows, not thousands (docs/PERMISSIONS.md, "How it is fast").
_ENTRY_COLUMNS = (
    "g.organisation_id, g.id, g.project_id, g.environment_id, g.admin, e.key, et.tag_id, "
    "g.user_id, g.group_id, g.role_id"
)
_SCOPE_KEY_COLUMNS = (
    "NULL, g.project_id, g.environment_id, e.key, "
    "MAX(CASE WHEN g.admin THEN 1 ELSE 0 END), "
    "MAX(CASE WHEN e.id IS NOT NULL AND et.tag_id IS NULL THEN 1 ELSE 0 END), {tags}, "
    # whether some grant of the scope holds a key, its entries read or not: one probe of the
    # grant's entries (PostgreSQL turned an EXISTS into a hash of every entry of the table)
    "MAX(CASE WHEN e.id IS NOT NULL THEN 1 "
    "WHEN (SELECT x.id FROM {entry} x WHERE x.grant_id = g.id LIMIT 1) IS NOT NULL THEN 1 "
    "ELSE 0 END)"
)
# where `e.key` stands in each row shape (after the leading row kind)
_KEY_COLUMN = {True: 5, False: 3}
_SCOPE_KEY_GROUPS = " GROUP BY g.project_id, g.environment_id, e.key"


# where the organisation's row of the scope-key shape carries its stamp (the tags' column)
_STAMP_COLUMN = 6


def _stamp_sql(vendor: str, organisation_sql: str) -> str:
    """The organisation's stamp (permissions/triggers.py) as one string of ids."""
    ids = "STRING_AGG(CAST(c.id AS TEXT), ',')" if vendor == "postgresql" else "GROUP_CONCAT(c.id)"
    return f"(SELECT {ids} FROM {_t(PolicyChange)} c WHERE c.organisation_id = {organisation_sql})"


def _tag_list_sql() -> str:
    if connection.vendor == "postgresql":
        return "STRING_AGG(CAST(et.tag_id AS TEXT), ',')"
    return "GROUP_CONCAT(et.tag_id)"


@functools.cache
def _policy_sql(
    vendor: str,
    *,
    api_key: bool,
    organisation_known: bool,
    scoped: bool,
    entries: bool,
    narrowed: bool,
) -> str:
    """The policy query of one shape, with named parameters (`organisation` or `project`,
    `principal`, `environment`): built once per shape and database vendor, since a cold
    decision pays for every microsecond spent composing it."""
    org_sql = _org_expression(organisation_known)
    grant, entry, entry_tag = _t(Grant), _t(GrantEntry), _t(GrantEntryTag)
    columns = (
        _ENTRY_COLUMNS if entries else _SCOPE_KEY_COLUMNS.format(tags=_tag_list_sql(), entry=entry)
    )
    width = 10 if entries else 8
    groups = "" if entries else _SCOPE_KEY_GROUPS
    entry_grant = "g.id"
    if narrowed:
        # The entries of the project's other environments are not joined at all: their grant
        # stands for no grant (NULL matches no entry), so the database does not walk them.
        entry_grant = (
            "CASE WHEN g.environment_id IS NULL OR g.environment_id = %(environment)s THEN g.id END"
        )
    joins = (
        f"FROM {grant} g LEFT JOIN {entry} e ON e.grant_id = {entry_grant} "
        f"LEFT JOIN {entry_tag} et ON et.entry_id = e.id"
    )
    # Every grant has exactly one principal, so the paths are disjoint; each is its own
    # SELECT so the database can use the (organisation, user|group|role) index of each path
    # instead of scanning the organisation's grants with an OR.
    grants_sql = f"SELECT 1, {columns} {joins} WHERE g.organisation_id = {org_sql} AND "
    if scoped:
        # Environment grants carry their project too (docs/PERMISSIONS.md), so this is every
        # grant that can reach the project; each path keeps its (organisation, holder) index.
        grants_sql += "(g.project_id = %(project)s OR g.project_id IS NULL) AND "
    membership = "NULL"
    header_joins = ""
    if not api_key:
        membership = "m.role"
        header_joins = (
            f"LEFT JOIN {_t(OrganisationMembership)} m "
            "ON m.organisation_id = o.id AND m.user_id = %(principal)s "
        )
    # The organisation's own row: its id, and the membership role in the key's column (both
    # text, as PostgreSQL's UNION requires of a column).
    header = ["o.id", *["NULL"] * (width - 1)]
    header[_KEY_COLUMN[entries]] = membership
    if not entries:  # the organisation's stamp, read with the rows (in the tags' text column)
        header[_STAMP_COLUMN] = _stamp_sql(vendor, "o.id")
    parts = [
        f"SELECT 0, {', '.join(header)} FROM {_t(Organisation)} o {header_joins}"
        f"WHERE o.id = {org_sql}"
    ]
    parts += [
        f"{grants_sql} {condition}{groups}"
        for condition in grant_conditions_sql(api_key=api_key, org_sql=org_sql)
    ]
    return " UNION ALL ".join(parts)


def _load_rows(
    principal: Principal,
    organisation_id: int | None,
    project_id: int | None,
    *,
    scoped: bool = False,
    entries: bool = True,
    environment_id: int | None = None,
) -> tuple[int | None, str | None, Stamp | None, list[tuple[Any, ...]]]:
    """(organisation id, membership role or None, the organisation's stamp (scope-key rows
    only), rows) in one SQL query: entry rows
    (`entries`), else scope-key rows `(project id, environment id, key, admin, untagged,
    tag ids as "1,2", holds a key)`.

    `scoped`: only the grants that can reach `project_id` (its own and its environments'),
    plus the organisation level; a grant on another project can decide nothing there.
    `environment_id` (scope-key rows only): the entries of the project's other environments
    are not read, only whether their grants hold anything (what Viewing needs)."""
    narrowed = environment_id is not None and scoped and not entries
    sql = _policy_sql(
        connection.vendor,
        api_key=isinstance(principal, OrganisationAPIKey),
        organisation_known=organisation_id is not None,
        scoped=scoped,
        entries=entries,
        narrowed=narrowed,
    )
    params: dict[str, Any] = {"principal": principal.pk}
    if organisation_id is not None:
        params["organisation"] = organisation_id
    if project_id is not None:
        params["project"] = project_id
    if narrowed:
        params["environment"] = environment_id
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    resolved_org: int | None = organisation_id
    membership_role = None
    stamp: Stamp | None = None
    key_column = 1 + _KEY_COLUMN[entries]
    for row in raw:
        if row[0] == 0:  # the organisation's own row (absent: no such organisation)
            resolved_org, membership_role = row[1], row[key_column]
            if not entries:
                stamp = stamp_of(row[1 + _STAMP_COLUMN])
        else:
            rows.append(row[2:])
    return resolved_org, membership_role, stamp, rows


def _membership(
    principal: Principal, organisation_id: int, membership_role: str | None
) -> tuple[bool, bool]:
    """(member, organisation admin) of a principal whose membership role is known."""
    if isinstance(principal, OrganisationAPIKey):
        is_member = principal.organisation_id == organisation_id and principal.is_usable
        return is_member, is_member and principal.is_admin
    return _user_membership(membership_role, superuser=is_superuser(principal))


def _user_membership(membership_role: str | None, *, superuser: bool) -> tuple[bool, bool]:
    """(member, organisation admin) of a user: an active superuser counts as an ADMIN member
    of every organisation (docs/PERMISSIONS.md, "Superusers")."""
    if superuser:
        return True, True
    return membership_role is not None, membership_role == MembershipRole.ADMIN


# (project id, environment id, key, admin, untagged, tag ids, holds a key): what one
# scope-key holds.
ScopeKeyRow = tuple[int | None, int | None, str | None, bool, bool, Iterable[int], bool]


def _policy_from_scope_keys(
    organisation_id: int,
    *,
    is_admin: bool,
    scope_keys: Iterable[ScopeKeyRow],
    entry_rows: dict[tuple[Any, ...], frozenset[int]],
    only_project: int | None,
    only_environment: int | None = None,
) -> Policy:
    organisation_keys: set[str] = set()
    admin_scopes: set[tuple[Level, int]] = set()
    untagged: dict[tuple[Level, int], set[str]] = defaultdict(set)
    tagged: dict[tuple[Level, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    touched: set[tuple[Level, int]] = set()
    environment_projects: dict[int, int] = {}
    # The hot path of a cold decision: plain tuples, no per-entry objects.
    for project_id, env_id, key, admin, is_untagged, tag_ids, holds in scope_keys:
        if project_id is None:  # organisation level
            if key is not None:
                organisation_keys.add(key)
            continue
        if not holds and not admin:
            continue  # a grant with no key and no admin holds nothing, and shows nothing
        scope = (Level.ENVIRONMENT, env_id) if env_id is not None else (Level.PROJECT, project_id)
        touched.add(scope)
        if env_id is not None:
            environment_projects[env_id] = project_id
        if admin:
            admin_scopes.add(scope)
        if key is None:
            continue
        if is_untagged:
            untagged[scope].add(key)
        if tag_ids:
            tagged[scope][key].update(tag_ids)

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
        entry_rows=entry_rows,
        only_project=only_project,
        only_environment=only_environment,
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
    return _policy_from_scope_keys(
        organisation_id,
        is_admin=is_admin,
        scope_keys=(
            (project_id, env_id, key, admin, key is not None and not tags, tags, key is not None)
            for (_, project_id, env_id, admin, key, _, _, _), tags in entry_tags.items()
        ),
        # Only reports (explain, details) read the entries one by one. A policy built without
        # them (decisions, impact previews) decides the same, and two such policies compare
        # equal whenever what they decide from is equal, whatever grants it came from.
        entry_rows=(
            {ident: frozenset(tags) for ident, tags in entry_tags.items()} if keep_entries else {}
        ),
        only_project=only_project,
    )


def _policy_from_scope_key_rows(
    organisation_id: int,
    *,
    is_admin: bool,
    rows: Iterable[tuple[Any, ...]],
    only_project: int | None,
    only_environment: int | None,
) -> Policy:
    """A policy from the scope-key rows of `_load_rows(entries=False)`."""
    return _policy_from_scope_keys(
        organisation_id,
        is_admin=is_admin,
        scope_keys=(
            (project_id, env_id, key, bool(admin), bool(untagged), _tag_ids(tags), bool(holds))
            for project_id, env_id, key, admin, untagged, tags, holds in rows
        ),
        entry_rows={},
        only_project=only_project,
        only_environment=only_environment,
    )


def _tag_ids(tag_list: str | None) -> Iterable[int]:
    return map(int, tag_list.split(",")) if tag_list else ()


def load_policy(
    principal: Principal,
    organisation_id: int | None = None,
    *,
    project_id: int | None = None,
    entries: bool = True,
    environment_id: int | None = None,
) -> Policy:
    """Load a fresh policy (1 query, or 0 for anonymous users and foreign API keys).

    With `project_id`, the policy of that project's scope: only the grants that can reach the
    project (its own and its environments') and the organisation level are read, and the
    organisation is resolved inside the same query when `organisation_id` is not given.
    Without it, the policy of the whole organisation. Not memoised. `entries=False`: without
    the entries one by one (what decisions read, in far fewer rows; reports need them); and
    with `environment_id` too, a policy that decides on that environment, the project and
    the organisation only (`Policy.only_environment`): the keys held on the project's other
    environments are not read, only whether anything is held there (Viewing).
    """
    return _load_stamped_policy(
        principal,
        organisation_id,
        project_id=project_id,
        entries=entries,
        environment_id=environment_id,
    )[0]


def _load_stamped_policy(
    principal: Principal,
    organisation_id: int | None = None,
    *,
    project_id: int | None = None,
    entries: bool = True,
    environment_id: int | None = None,
) -> tuple[Policy, Stamp | None]:
    """`load_policy`, with the organisation's stamp read in the same query (scope-key rows,
    `entries=False`, only; None otherwise)."""
    if organisation_id is None and project_id is None:
        raise ValueError("organisation_id or project_id is required")
    if principal is None or not getattr(principal, "is_authenticated", False):
        return non_member_policy(organisation_id or 0), None
    if isinstance(principal, OrganisationAPIKey) and (
        not principal.is_usable
        or (organisation_id is not None and principal.organisation_id != organisation_id)
    ):
        return non_member_policy(organisation_id or principal.organisation_id), None
    scoped = project_id is not None
    narrowed = environment_id if scoped and not entries else None
    resolved_org, membership_role, stamp, rows = _load_rows(
        principal,
        organisation_id,
        project_id,
        scoped=scoped,
        entries=entries,
        environment_id=narrowed,
    )
    if resolved_org is None:  # no such organisation or project
        return non_member_policy(organisation_id or 0), None
    is_member, is_admin = _membership(principal, resolved_org, membership_role)
    if not is_member:
        return non_member_policy(resolved_org), stamp
    if entries:
        policy = policy_from_rows(
            resolved_org, is_member=True, is_admin=is_admin, rows=rows, only_project=project_id
        )
        return policy, stamp
    policy = _policy_from_scope_key_rows(
        resolved_org,
        is_admin=is_admin,
        rows=rows,
        only_project=project_id,
        only_environment=narrowed,
    )
    return policy, stamp


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
    (the users with their membership, their paths (`organisation_paths`), and the
    organisation's grant entries).

    For pages that decide for many principals at once (the admin's permission matrix, impact
    previews). Users who are not members get a non-member policy, but an active superuser
    counts as an organisation admin, member or not (docs/PERMISSIONS.md, "Superusers").
    Without `user_ids`, the organisation's members.
    """
    membership_role = OrganisationMembership.objects.filter(
        organisation_id=organisation_id, user_id=OuterRef("pk")
    ).values("role")[:1]
    users = get_user_model().objects.annotate(membership_role=Subquery(membership_role))
    if user_ids is None:
        users = users.filter(organisation_memberships__organisation_id=organisation_id)
    else:
        users = users.filter(pk__in=list(user_ids))
    found = {
        user_id: _user_membership(
            role,
            superuser=is_superuser(
                SimpleNamespace(is_superuser=superuser, is_active=active, is_authenticated=True)
            ),
        )
        for user_id, role, superuser, active in users.values_list(
            "pk", "membership_role", "is_superuser", "is_active"
        )
    }
    paths = organisation_paths(organisation_id, user_ids=found)
    rows_of = organisation_grant_rows(organisation_id)
    policies: dict[int, Policy] = {}
    wanted = list(found) if user_ids is None else list(user_ids)
    for user_id in wanted:
        is_member, is_admin = found.get(user_id, (False, False))
        holders = paths.paths_of(("user", user_id)).holders(("user", user_id))
        policies[user_id] = policy_from_rows(
            organisation_id,
            is_member=is_member,
            is_admin=is_admin,
            rows=[row for holder in holders for row in rows_of.get(holder, ())],
        )
    return policies


def _memo(
    principal: Principal,
) -> tuple[dict[int, Policy], dict[int, dict[int | None, Policy]]]:
    memo = getattr(principal, _POLICY_CACHE_ATTR, None)
    if memo is None or memo[0] != _current_generation():
        fresh: tuple[dict[int, Policy], dict[int, dict[int | None, Policy]]] = (
            {},
            defaultdict(dict),
        )
        memo = (_current_generation(), *fresh)
        try:
            setattr(principal, _POLICY_CACHE_ATTR, memo)
        except AttributeError:  # objects that take no attributes: nothing to memoise on
            return fresh
    return memo[1], memo[2]


def forget(principal: Principal) -> None:
    """Drop the principal's memoised policies (after changing its grants in the same request)."""
    if hasattr(principal, _POLICY_CACHE_ATTR):
        delattr(principal, _POLICY_CACHE_ATTR)


def policy_for(
    principal: Principal,
    organisation_id: int | None = None,
    *,
    project_id: int | None = None,
    environment_id: int | None = None,
) -> Policy:
    """The principal's memoised policy: 1 query cold, 0 warm; without the entries one by one
    (reports load their own with `load_policy`).

    With `project_id`, a policy that decides on that project (and the organisation level):
    the organisation's whole policy when it is already memoised, else the project's own,
    which reads only the grants that can reach the project. With `environment_id` too, one
    that decides on that environment: cold, the project's policy narrowed to it (the keys of
    the project's other environments unread), which also decides on the project. Without
    `project_id`, the organisation's.
    """
    organisation_policies, project_policies = _memo(principal)
    if project_id is not None:
        # None: the whole project's; an environment id: narrowed to that environment
        known = project_policies[project_id]
        if None in known:
            return known[None]
        if environment_id is None and known:
            return next(iter(known.values()))  # any of them decides on the project
        if environment_id is not None and environment_id in known:
            return known[environment_id]
        if organisation_id is not None and organisation_id in organisation_policies:
            return organisation_policies[organisation_id]
        policy = _decision_policy(principal, organisation_id, project_id, environment_id)
        known[environment_id] = policy
        return policy
    if organisation_id is not None and organisation_id in organisation_policies:
        return organisation_policies[organisation_id]
    policy = _decision_policy(principal, organisation_id, None, None)
    organisation_policies[policy.organisation_id] = policy
    return policy


def _decision_policy(
    principal: Principal,
    organisation_id: int | None,
    project_id: int | None,
    environment_id: int | None,
) -> Policy:
    """A policy without its entries: the one kept across requests if the organisation's
    stamp is unchanged (1 query), else loaded (1 query; 2 when a kept one was stale) and kept
    (`sharing`)."""
    key = sharing.sharing_key(principal, organisation_id, project_id, environment_id)
    if key is not None:
        assert organisation_id is not None
        kept = sharing.shared_policy(key, organisation_id)
        if kept is not None:
            return kept
    policy, stamp = _load_stamped_policy(
        principal,
        organisation_id,
        project_id=project_id,
        entries=False,
        environment_id=environment_id,
    )
    if key is not None:
        sharing.share_policy(key, stamp, policy)
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
    _, organisation_id, project_id, environment_id = scope_ids(scope)
    return policy_for(
        principal, organisation_id, project_id=project_id, environment_id=environment_id
    )
