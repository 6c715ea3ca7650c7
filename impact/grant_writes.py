"""The impact of a change that writes only the grants of one holder (a user's, group's or
role's grants through the API): cost that follows the principals the holder reaches and the
keys whose rows changed, not the organisation (docs/PERFORMANCE.md, "How the costs follow
the work").

Only the holder's rows differ between before and after, and a principal's state for a key on
a scope is the union of its holders' entries for that key there (an admin of the scope
holding every key), so only the (scope, key) pairs where the holder's own rows changed can
decide differently: those where one of its entries changed, and every key of a scope whose
admin flag changed (of a project: its environments too). Those pairs are compared for the
principals the holder reaches, from the rows that decide them (the scopes' grant rows and
their projects' admin rows), with the engine's `holdings_key_state`; features are counted
with the project's `FeatureIndex`. The result is the one `impact_between` finds from two
whole snapshots (tests/permissions/test_impact_property.py holds them to each other).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Q
from django.utils import timezone

from audit.models import AuditLogEntry
from environments.models import Environment
from impact.changes import Impact, RawChange, impact_of
from impact.feature_counts import project_feature_index
from impact.snapshots import ORGANISATION_LEVEL, Holder, PrincipalRef, Row, member_roles_of
from organisations.models import MembershipRole, OrganisationAPIKey, RoleAssignment, UserGroup
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import (
    FeatureIndex,
    Holdings,
    KeyState,
    holdings_from_rows,
    holdings_key_state,
    organisation_grant_rows,
)

# A key on a scope: (project id or None, environment id or None, key).
Pair = tuple[int | None, int | None, str]


def grant_holder(grant: Any) -> Holder:
    """The holder of a grant, as `grants_of` takes it."""
    if grant.user_id is not None:
        return ("user", grant.user_id)
    if grant.group_id is not None:
        return ("group", grant.group_id)
    return ("role", grant.role_id)


def holder_rows(organisation_id: int, holder: Holder) -> frozenset[Row]:
    """Every grant row of one holder (1 query)."""
    kind, holder_id = holder
    if kind not in ("user", "group", "role"):
        raise ValueError(f"Not a grant holder: {holder!r}")
    rows_of = organisation_grant_rows(organisation_id, where=Q(**{f"{kind}_id": holder_id}))
    return frozenset(rows_of.get(holder, ()))


class GrantsOnly:
    """Runs around a change that writes only the grants of one holder: its rows are read
    before, and after; `impact` checks that the change wrote nothing else."""

    def __init__(self, organisation_id: int, holder: Holder) -> None:
        self.organisation_id, self.holder = organisation_id, holder
        self.old_rows = holder_rows(organisation_id, holder)

    def impact(self, entries: list[int]) -> Impact:
        new_rows = holder_rows(self.organisation_id, self.holder)
        grant_ids = {str(row[0]) for row in self.old_rows | new_rows}
        written = AuditLogEntry.objects.filter(pk__in=entries).values_list(
            "object_type", "object_id"
        )
        stray = [(kind, oid) for kind, oid in written if kind != "grant" or oid not in grant_ids]
        if stray:  # the caller's word was wrong: never record a partial impact
            raise RuntimeError(f"The change wrote more than grants of {self.holder}: {stray}")
        return grant_rows_impact(self.organisation_id, self.holder, self.old_rows, new_rows)


def grant_rows_impact(
    organisation_id: int, holder: Holder, old_rows: frozenset[Row], new_rows: frozenset[Row]
) -> Impact:
    """Who gains and who loses what when the grant rows of `holder` go from `old_rows` to
    `new_rows`, everything else unchanged."""
    changed_projects = {row[1] for row in old_rows ^ new_rows}
    if not changed_projects:
        return Impact()
    environments_of: dict[int, list[int]] = defaultdict(list)
    for environment_id, project_id in (
        Environment.objects.filter(project_id__in=[p for p in changed_projects if p is not None])
        .order_by("id")
        .values_list("id", "project_id")
    ):
        environments_of[project_id].append(environment_id)
    old_held, new_held = holdings_from_rows(old_rows), holdings_from_rows(new_rows)
    pairs = _changed_pairs(old_held, new_held, changed_projects, environments_of)
    if not pairs:
        return Impact()
    reach = _Reach(organisation_id, holder, pairs)
    counts = _Counts()
    gained: list[RawChange] = []
    lost: list[RawChange] = []
    # Principals with the same holders deciding on these pairs find the same changes.
    found: dict[frozenset[Holder], list[tuple[int, Pair, int | None]]] = {}
    for principal, holders in reach.principals():
        changes = found.get(holders)
        if changes is None:
            others = [reach.holdings[h] for h in holders if h != holder and h in reach.holdings]
            changes = found[holders] = _compare(pairs, others, old_held, new_held, counts)
        for direction, (on_project, on_environment, key), features in changes:
            change = (principal, key, on_project, on_environment, features)
            (gained if direction > 0 else lost).append(change)
    return impact_of(gained, lost, reach.api_key_names)


def _changed_pairs(
    old: Holdings,
    new: Holdings,
    projects: set[int | None],
    environments_of: dict[int, list[int]],
) -> list[Pair]:
    """The (scope, key) pairs where the holder's rows decide differently: a key whose entry
    changed, every key of a scope whose admin flag changed (of a project: of its
    environments too), organisation keys gained or dropped."""
    pairs: set[Pair] = set()
    if ORGANISATION_LEVEL in projects:
        for key in old.organisation_keys ^ new.organisation_keys:
            pairs.add((None, None, key))
    nothing: tuple[bool, frozenset[str], dict[str, frozenset[int]]] = (False, frozenset(), {})
    environment_keys = KEYS_BY_LEVEL[Level.ENVIRONMENT]
    for scope in old.by_scope.keys() | new.by_scope.keys():
        was, now = old.by_scope.get(scope, nothing), new.by_scope.get(scope, nothing)
        if was == now:
            continue
        is_environment, scope_id = scope
        project_id = (
            (old.environment_projects | new.environment_projects)[scope_id]
            if is_environment
            else scope_id
        )
        environment_id = scope_id if is_environment else None
        if was[0] != now[0]:
            level_keys = environment_keys if is_environment else KEYS_BY_LEVEL[Level.PROJECT]
            pairs.update((project_id, environment_id, key) for key in level_keys)
            if not is_environment:
                for environment in environments_of.get(project_id, ()):
                    pairs.update((project_id, environment, key) for key in environment_keys)
            continue
        keys = was[1] ^ now[1]
        keys |= {k for k in was[2].keys() | now[2].keys() if was[2].get(k) != now[2].get(k)}
        pairs.update((project_id, environment_id, key) for key in keys)
    return sorted(pairs, key=lambda pair: (pair[0] or 0, pair[1] or 0, pair[2]))


def _compare(
    pairs: list[Pair],
    others: list[Holdings],
    old_held: Holdings,
    new_held: Holdings,
    counts: _Counts,
) -> list[tuple[int, Pair, int | None]]:
    """(+1 gained | -1 lost, pair, features) for one member who is not an organisation
    admin, holding `others` besides the changed holder."""
    found: list[tuple[int, Pair, int | None]] = []
    for pair in pairs:
        project_id, environment_id, key = pair
        old_state, new_state = (
            holdings_key_state(
                key,
                project_id=project_id,
                environment_id=environment_id,
                is_organisation_admin=False,
                holdings=[*others, held],
            )
            for held in (old_held, new_held)
        )
        if old_state == new_state:
            continue
        if key not in TAG_SUPPORTED_KEYS:
            had, has = old_state.decides(key), new_state.decides(key)
            if had != has:
                found.append((1 if has else -1, pair, None))
            continue
        assert project_id is not None
        newly, no_longer = counts.count(project_id, old_state, new_state)
        if newly:
            found.append((1, pair, newly))
        if no_longer:
            found.append((-1, pair, no_longer))
    return found


class _Counts:
    """Features newly and no longer reached by a key state change, per project (its features
    are the same before and after a grant write), once per distinct pair of states."""

    def __init__(self) -> None:
        self._indexes: dict[int, FeatureIndex] = {}
        self._counts: dict[tuple[int, KeyState, KeyState], tuple[int, int]] = {}

    def count(self, project_id: int, old: KeyState, new: KeyState) -> tuple[int, int]:
        found = self._counts.get((project_id, old, new))
        if found is None:
            index = self._indexes.get(project_id)
            if index is None:
                index = self._indexes[project_id] = project_feature_index(project_id)
            old_reach, new_reach = index.reached(old), index.reached(new)
            found = ((new_reach & ~old_reach).bit_count(), (old_reach & ~new_reach).bit_count())
            self._counts[(project_id, old, new)] = found
        return found


class _Reach:
    """The principals a holder reaches and, for each, its holders that hold anything on the
    scopes of `pairs` (with their `Holdings` there), in a fixed number of queries."""

    def __init__(self, organisation_id: int, holder: Holder, pairs: list[Pair]) -> None:
        self.organisation_id, self.holder = organisation_id, holder
        environments = {e for _, e, _ in pairs if e is not None}
        projects_all = {p for p, e, key in pairs if p is not None and e is None}
        projects_admin = {p for p, e, _ in pairs if p is not None and e is not None}
        on_scopes = Q(environment_id__in=environments) | Q(
            environment__isnull=True, project_id__in=projects_all
        )
        on_scopes |= Q(environment__isnull=True, admin=True, project_id__in=projects_admin)
        if any(p is None for p, _, _ in pairs):
            on_scopes |= Q(project__isnull=True)
        rows_of = organisation_grant_rows(organisation_id, where=on_scopes)
        self.holdings: dict[Holder, Holdings] = {
            h: holdings_from_rows(rows) for h, rows in rows_of.items()
        }
        # Role assignments of the roles that matter: those with rows there, and the holder.
        roles = {h[1] for h in self.holdings if h[0] == "role"}
        if holder[0] == "role":
            roles.add(holder[1])
        self.roles_of: dict[Holder, set[int]] = defaultdict(set)
        for role_id, user_id, group_id, api_key_id in RoleAssignment.objects.filter(
            Q(user__isnull=False)
            | Q(group__organisation_id=organisation_id)
            | Q(api_key__organisation_id=organisation_id),
            role_id__in=roles,
            role__organisation_id=organisation_id,
        ).values_list("role_id", "user_id", "group_id", "api_key_id"):
            if user_id is not None:
                self.roles_of[("user", user_id)].add(role_id)
            elif group_id is not None:
                self.roles_of[("group", group_id)].add(role_id)
            else:
                self.roles_of[("api_key", api_key_id)].add(role_id)
        # The groups through which the holder reaches users, and its direct users and keys.
        kind, holder_id = holder
        holder_groups = {holder_id} if kind == "group" else set()
        users = {holder_id} if kind == "user" else set()
        api_keys: set[int] = set()
        if kind == "role":
            for (assignee_kind, assignee), assigned in self.roles_of.items():
                if holder_id in assigned:
                    if assignee_kind == "user":
                        users.add(assignee)
                    elif assignee_kind == "group":
                        holder_groups.add(assignee)
                    else:
                        api_keys.add(assignee)
        # The memberships of the users reached (directly or through those groups) in the
        # groups that matter: with rows there, holding one of those roles, or reaching the
        # holder.
        groups = {h[1] for h in self.holdings if h[0] == "group"}
        groups |= {h[1] for h in self.roles_of if h[0] == "group"} | holder_groups
        # (Kept to those groups here, all of the organisation's, not in SQL: the planner then
        # walks the users reached, not every group.)
        memberships = UserGroup.users.through.objects
        self.groups_of: dict[int, set[int]] = defaultdict(set)
        for user_id, group_id in memberships.filter(
            Q(user_id__in=memberships.filter(usergroup_id__in=holder_groups).values("user_id"))
            | Q(user_id__in=users)
        ).values_list("user_id", "usergroup_id"):
            if group_id in groups:
                self.groups_of[user_id].add(group_id)
        users |= {user for user, of in self.groups_of.items() if of & holder_groups}
        self._reached_users, self._reached_api_keys = users, api_keys
        self.member_roles = member_roles_of(organisation_id, self._reached_users)
        now = timezone.now()
        self.api_keys: dict[int, tuple[bool, bool]] = {}
        self.api_key_names: dict[int, str] = {}
        reached_keys = OrganisationAPIKey.objects.filter(
            organisation_id=organisation_id, pk__in=self._reached_api_keys
        )
        for key_id, revoked, expires, is_admin, name in (
            reached_keys.values_list("id", "revoked", "expiry_date", "is_admin", "name")
            if self._reached_api_keys
            else ()
        ):
            self.api_keys[key_id] = (not revoked and (expires is None or expires >= now), is_admin)
            self.api_key_names[key_id] = name

    def principals(self) -> Iterable[tuple[PrincipalRef, frozenset[Holder]]]:
        """Each principal reached that is a member and no organisation admin (their states
        are the same before and after), with its holders among those that matter."""
        for user_id in sorted(self._reached_users):
            role = self.member_roles.get(user_id)
            if role is None or role == MembershipRole.ADMIN:
                continue
            holders: set[Holder] = {("user", user_id)}
            holders |= {("group", group) for group in self.groups_of.get(user_id, ())}
            roles = set(self.roles_of.get(("user", user_id), ()))
            for group in self.groups_of.get(user_id, ()):
                roles |= self.roles_of.get(("group", group), set())
            holders |= {("role", role_id) for role_id in roles}
            yield ("user", user_id), frozenset(h for h in holders if self._matters(h))
        for key_id in sorted(self._reached_api_keys):
            usable, is_admin = self.api_keys.get(key_id, (False, False))
            if not usable or is_admin:
                continue
            roles = self.roles_of.get(("api_key", key_id), set())
            holders = {("role", role_id) for role_id in roles}
            yield ("api_key", key_id), frozenset(h for h in holders if self._matters(h))

    def _matters(self, holder: Holder) -> bool:
        return holder == self.holder or holder in self.holdings
