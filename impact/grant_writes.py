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
from typing import Any

from django.db.models import Q

from audit.models import AuditLogEntry
from environments.models import Environment
from impact.changes import Impact, RawChange, cycle_collection_paused, impact_of
from impact.feature_counts import project_feature_index
from impact.reach import Pair, Reach
from impact.snapshots import ORGANISATION_LEVEL, Holder, Row
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import (
    FeatureIndex,
    Holdings,
    KeyState,
    holdings_from_rows,
    holdings_key_state,
    organisation_grant_rows,
)


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
        with cycle_collection_paused():
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
    reach = Reach(organisation_id, pairs, holder)
    compare = _Compare(pairs, old_held, new_held)
    gained: list[RawChange] = []
    lost: list[RawChange] = []
    # Principals with the same holders deciding on these pairs find the same changes.
    found: dict[frozenset[Holder], list[tuple[int, Pair, int | None]]] = {}
    for principal, holders in reach.principals():
        changes = found.get(holders)
        if changes is None:
            others = [reach.holdings[h] for h in holders if h != holder and h in reach.holdings]
            changes = found[holders] = compare.changes(others)
        for direction, (on_project, on_environment, key), features in changes:
            change = (principal, key, on_project, on_environment, features)
            (gained if direction > 0 else lost).append(change)
    # Principals come in order (users, then API keys, by id), each with its pairs in order.
    return impact_of(
        gained, lost, reach.api_key_names, user_emails=reach.user_emails, in_order=True
    )


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


class _Compare:
    """The changes of one principal on the pairs, from the state its other holders give it
    on each pair: the holder's own state before and after is worked out once per pair, a
    principal's is the join of the two (the states of holders join, `KeyState.joined`), and
    the changes are found once per distinct (pair, others' state)."""

    def __init__(self, pairs: list[Pair], old_held: Holdings, new_held: Holdings) -> None:
        self.pairs = pairs
        self.own = {
            pair: tuple(
                holdings_key_state(
                    pair[2],
                    project_id=pair[0],
                    environment_id=pair[1],
                    is_organisation_admin=False,
                    holdings=[held],
                )
                for held in (old_held, new_held)
            )
            for pair in pairs
        }
        self.counts = _Counts()
        self._found: dict[tuple[Pair, KeyState], list[tuple[int, int | None]]] = {}

    def changes(self, others: list[Holdings]) -> list[tuple[int, Pair, int | None]]:
        """(+1 gained | -1 lost, pair, features) for a member who is not an organisation
        admin, holding `others` besides the changed holder."""
        found: list[tuple[int, Pair, int | None]] = []
        for pair in self.pairs:
            project_id, environment_id, key = pair
            state = holdings_key_state(
                key,
                project_id=project_id,
                environment_id=environment_id,
                is_organisation_admin=False,
                holdings=others,
            )
            directions = self._found.get((pair, state))
            if directions is None:
                directions = self._found[(pair, state)] = self._directions(pair, state)
            found += [(direction, pair, features) for direction, features in directions]
        return found

    def _directions(self, pair: Pair, others: KeyState) -> list[tuple[int, int | None]]:
        project_id, _, key = pair
        old_own, new_own = self.own[pair]
        old_state, new_state = others.joined(old_own), others.joined(new_own)
        if old_state == new_state:
            return []
        if key not in TAG_SUPPORTED_KEYS:
            had, has = old_state.decides(key), new_state.decides(key)
            return [(1 if has else -1, None)] if had != has else []
        assert project_id is not None
        newly, no_longer = self.counts.count(project_id, old_state, new_state)
        return [(direction, n) for direction, n in ((1, newly), (-1, no_longer)) if n]


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
