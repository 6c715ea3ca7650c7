"""Impact previews: who gains and who loses what when a permission change is made
(docs/PERMISSIONS.md, "Seeing a change before making it").

Public API:

    impact_preview(*, organisation_id, change)   run `change()` in a transaction that is
                                                 rolled back; return its Impact
    impact_apply(*, organisation_id, change)     run `change()` for real; return (its result,
                                                 Impact) and store the impact's summary on the
                                                 audit entries the change wrote
    snapshot_take(organisation_id)               the permission-relevant state of an organisation
    impact_between(before, after)                the Impact of going from one snapshot to another

A change that writes only one holder's grants (`grants_of=`) is compared by
`impact.grant_writes` on the (scope, key) pairs its rows changed, for the principals the
holder reaches; every other change by comparing two snapshots, as follows.

How (never a check per user × feature): a snapshot is the organisation's raw permission state
in a fixed number of queries (membership, API keys, group members, role assignments, grant
rows, projects, environments, feature tags). Comparing two snapshots tells which principals
can be affected and on which projects (a role's grants changed → everyone holding the role,
on the projects of the changed rows; a member removed → that user, everywhere; a feature's
tags changed → everyone holding anything on its project). For those principals only, a
policy before and after is built from the snapshot rows (each holder's rows aggregated once
per snapshot, a principal's policy the union of its holders', restricted to the affected
projects), the engine's `Policy.key_state` is compared per scope for the keys either policy
holds there, and for tag-supported keys the features newly reached or no longer reached are
counted with the engine's `FeatureIndex` (bit sets over the project's features;
`impact.feature_counts`): once per distinct pair of key states, and, where a principal's
policy did not change, over the features whose tags changed only.

`features` in a change counts features of the scope's project for tag-supported keys; it is
null for other keys. A tag-supported key only appears when at least one feature is gained or
lost (in a project without features nobody reaches anything either way).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import transaction

from audit.services import audit_capture, audit_entries_attach_impact
from impact.changes import Impact, RawChange, cycle_collection_paused, impact_of
from impact.feature_counts import FeatureCounts
from impact.feature_writes import FeaturesOnly, FeatureWrite
from impact.grant_writes import GrantsOnly
from impact.snapshots import (
    ORGANISATION_LEVEL,
    Holder,
    PrincipalRef,
    Snapshot,
    snapshot_take,
)
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import (
    Policy,
)

T = TypeVar("T")


# --------------------------------------------------------------------------------------
# Comparing two snapshots
# --------------------------------------------------------------------------------------


def _affected(before: Snapshot, after: Snapshot) -> dict[PrincipalRef, set[int | None]]:
    """The principals whose decisions may differ, and the projects (None: the organisation
    level) where they may. A superset: principals whose decisions turn out equal are dropped
    when the decisions are compared."""
    affected: dict[PrincipalRef, set[int | None]] = defaultdict(set)
    everywhere: set[PrincipalRef] = set()
    both = (before, after)

    def reach(holder: Holder, projects: set[int | None]) -> None:
        if not projects:
            return
        for snapshot in both:
            for principal in snapshot.principals_of(holder):
                affected[principal] |= projects

    # Membership and API keys themselves: everything may change for that principal.
    for user_id in before.member_roles.keys() | after.member_roles.keys():
        if before.member_roles.get(user_id) != after.member_roles.get(user_id):
            everywhere.add(("user", user_id))
    for key_id in before.api_keys.keys() | after.api_keys.keys():
        old, new = before.api_keys.get(key_id), after.api_keys.get(key_id)
        if (old and old[:2]) != (new and new[:2]):
            everywhere.add(("api_key", key_id))
    # Grant rows changed: everyone the holder reaches, on the projects of the changed rows.
    for holder in before.rows_of.keys() | after.rows_of.keys():
        old_rows = before.rows_of.get(holder, frozenset())
        new_rows = after.rows_of.get(holder, frozenset())
        if old_rows != new_rows:
            reach(holder, {row[1] for row in old_rows ^ new_rows})
    # Group membership changed: the user, on the projects of the group and of its roles.
    for user_id in before.groups_of.keys() | after.groups_of.keys():
        old_groups = before.groups_of.get(user_id, frozenset())
        new_groups = after.groups_of.get(user_id, frozenset())
        for group_id in old_groups ^ new_groups:
            projects: set[int | None] = set()
            role_ids: set[int] = set()
            for snapshot in both:
                projects |= snapshot.projects_of(("group", group_id))
                role_ids |= snapshot.roles_of.get(("group", group_id), frozenset())
            for role_id in role_ids:
                for snapshot in both:
                    projects |= snapshot.projects_of(("role", role_id))
            if projects:
                affected[("user", user_id)] |= projects
    # Role assignments changed: everyone the assignee reaches, on the role's projects.
    for holder in before.roles_of.keys() | after.roles_of.keys():
        old_roles = before.roles_of.get(holder, frozenset())
        new_roles = after.roles_of.get(holder, frozenset())
        for role_id in old_roles ^ new_roles:
            reach(
                holder,
                before.projects_of(("role", role_id)) | after.projects_of(("role", role_id)),
            )
    # Feature tags or tag restrictions changed: everyone holding anything on the project.
    for project_id in before.features.keys() | after.features.keys():
        if before.features.get(project_id) != after.features.get(project_id):
            for snapshot in both:
                for holder in snapshot.holders_on_project(project_id):
                    reach(holder, {project_id})

    all_projects: set[int | None] = {*before.projects, *after.projects, ORGANISATION_LEVEL}
    for principal in everywhere:
        affected[principal] = set(all_projects)
    return affected


def impact_between(before: Snapshot, after: Snapshot) -> Impact:
    """Who gains and who loses which keys (and on how many features) from `before` to
    `after`: the difference of the engine's decisions, computed from policies, not per user
    × feature."""
    with cycle_collection_paused():
        return _impact_between(before, after)


def _impact_between(before: Snapshot, after: Snapshot) -> Impact:
    affected = _affected(before, after)
    if not affected:
        return Impact()
    features_changed_in: set[int | None] = {
        changed
        for changed in before.features.keys() | after.features.keys()
        if before.features.get(changed) != after.features.get(changed)
    }
    feature_counts = FeatureCounts(before, after)
    environments_of: dict[int, set[int]] = defaultdict(set)
    for snapshot in (before, after):
        for environment_id, environment_project in snapshot.environments.items():
            environments_of[environment_project].add(environment_id)

    gained: list[RawChange] = []
    lost: list[RawChange] = []
    changed_holders = {
        holder
        for holder in before.rows_of.keys() | after.rows_of.keys()
        if before.rows_of.get(holder) != after.rows_of.get(holder)
    }
    # Membership, API keys, groups and role assignments as they were: every principal's
    # policy inputs are as they were too (tag and grant writes), so they are found once.
    same_membership = (
        before.member_roles == after.member_roles
        and before.api_keys == after.api_keys
        and before.groups_of == after.groups_of
        and before.roles_of == after.roles_of
    )
    for principal, projects in affected.items():
        old_inputs = before.policy_inputs(principal)
        new_inputs = old_inputs if same_membership else after.policy_inputs(principal)
        old_policy = before.policy(old_inputs, projects)
        # Same membership, same holders, none of whose rows changed: the same policy (feature
        # and restriction changes leave most policies as they were; build them once).
        new_policy = (
            old_policy
            if new_inputs == old_inputs and not changed_holders & new_inputs[2]
            else after.policy(new_inputs, projects)
        )
        same_policy = old_policy == new_policy
        if same_policy:
            # Equal policies decide alike on every feature whose tags did not change: only
            # tag-supported keys, on projects whose features changed, can differ.
            projects = projects & features_changed_in
        for project_id in projects:
            if project_id is None:
                scopes: list[tuple[Level, int | None, int | None]] = [
                    (Level.ORGANISATION, None, None)
                ]
            else:
                scopes = [(Level.PROJECT, project_id, None)] + [
                    (Level.ENVIRONMENT, project_id, environment_id)
                    for environment_id in sorted(environments_of.get(project_id, ()))
                ]
            features_changed = project_id in features_changed_in
            for level, scope_project, scope_environment in scopes:
                for key in _keys_to_compare(
                    level,
                    old_policy,
                    new_policy,
                    scope_project,
                    scope_environment,
                    tag_supported_only=same_policy,
                ):
                    old_state = old_policy.key_state(
                        key, project_id=scope_project, environment_id=scope_environment
                    )
                    new_state = (
                        old_state
                        if same_policy
                        else new_policy.key_state(
                            key, project_id=scope_project, environment_id=scope_environment
                        )
                    )
                    if key not in TAG_SUPPORTED_KEYS:
                        if old_state != new_state:
                            had, has = old_state.decides(key), new_state.decides(key)
                            if had != has:
                                (gained if has else lost).append(
                                    (principal, key, scope_project, scope_environment, None)
                                )
                        continue
                    if old_state == new_state and not features_changed:
                        continue
                    assert scope_project is not None
                    newly, no_longer = feature_counts.count(scope_project, old_state, new_state)
                    if newly:
                        gained.append((principal, key, scope_project, scope_environment, newly))
                    if no_longer:
                        lost.append((principal, key, scope_project, scope_environment, no_longer))
    api_key_names = {key_id: known[2] for key_id, known in before.api_keys.items()}
    api_key_names.update((key_id, known[2]) for key_id, known in after.api_keys.items())
    return impact_of(gained, lost, api_key_names)


def _keys_to_compare(
    level: Level,
    old: Policy,
    new: Policy,
    project_id: int | None,
    environment_id: int | None,
    *,
    tag_supported_only: bool,
) -> Iterable[str]:
    """The keys of `level` whose state on the scope may differ between two policies, or reach
    features differently: every key where either is an admin of the scope, else the keys
    either holds there (`tag_supported_only`: of those, the tag-supported ones). A key
    neither holds is `KeyState` nothing in both, which allows no key and reaches no feature,
    whatever the features."""
    if any(policy.is_scope_admin(level, project_id, environment_id) for policy in (old, new)):
        keys: Iterable[str] = KEYS_BY_LEVEL[level]
        return [k for k in keys if k in TAG_SUPPORTED_KEYS] if tag_supported_only else keys
    if level == Level.ORGANISATION:
        held: set[str] = set()
        for policy in (old, new):
            if policy.is_member:
                held |= policy.organisation_keys
        return sorted(held & TAG_SUPPORTED_KEYS if tag_supported_only else held)
    held = set()
    for policy in (old, new):
        rights = (
            policy.scope_rights(level, project_id, environment_id) if policy.is_member else None
        )
        if rights is not None:
            held |= rights.untagged | rights.tagged.keys()
    return sorted(held & TAG_SUPPORTED_KEYS if tag_supported_only else held)


# --------------------------------------------------------------------------------------
# Running a change with its impact
# --------------------------------------------------------------------------------------


class _RolledBack(Exception):
    def __init__(self, impact: Impact) -> None:
        self.impact = impact


def impact_preview(
    *,
    organisation_id: int,
    change: Callable[[], Any],
    grants_of: Holder | None = None,
    features_of: FeatureWrite | None = None,
) -> Impact:
    """Run `change()` (a service call, with all its validation) in a transaction that is then
    rolled back, and return what it would have changed. Errors of the change propagate
    unchanged (a 400 stays a 400); nothing is saved and no audit entry survives.

    `grants_of=("user" | "group" | "role", id)` is the caller's word that the change writes
    only grants of that holder: the snapshots then cover only the principals it reaches, on
    the projects whose rows changed (checked against the audit entries the change wrote).
    `features_of=FeatureWrite(...)` is the word that it writes only those tags and features
    of one project: only the features they can touch are compared.
    """
    scoped = _scoped(organisation_id, grants_of, features_of)
    before = None if scoped is not None else snapshot_take(organisation_id)
    try:
        with transaction.atomic(), audit_capture() as entries:
            change()
            if scoped is not None:
                raise _RolledBack(scoped.impact(entries))
            assert before is not None
            raise _RolledBack(impact_between(before, snapshot_take(organisation_id)))
    except _RolledBack as rolled_back:
        return rolled_back.impact


def _scoped(
    organisation_id: int, grants_of: Holder | None, features_of: FeatureWrite | None
) -> GrantsOnly | FeaturesOnly | None:
    if grants_of is not None and features_of is not None:
        raise ValueError("A change writes grants or features, not both")
    if grants_of is not None:
        return GrantsOnly(organisation_id, grants_of)
    if features_of is not None:
        return FeaturesOnly(organisation_id, features_of)
    return None


def impact_apply(
    *,
    organisation_id: int,
    change: Callable[[], T],
    may_move_permissions: bool = True,
    grants_of: Holder | None = None,
    features_of: FeatureWrite | None = None,
) -> tuple[T, Impact]:
    """Run `change()` for real, in one transaction, and store the summary of its impact on
    the audit entries it wrote (none written: nothing changed, nothing stored).

    `may_move_permissions=False` is the caller's word that the change decides nothing (a
    feature renamed, a tag relabelled: decisions read tag ids and restrictions, never names);
    the empty impact is then recorded without reading the organisation before and after.
    `grants_of`, `features_of`: as in `impact_preview`.
    """
    with transaction.atomic():
        scoped = None
        before = None
        if may_move_permissions:
            scoped = _scoped(organisation_id, grants_of, features_of)
            before = None if scoped is not None else snapshot_take(organisation_id)
        with audit_capture() as entries:
            result = change()
        if not entries:
            return result, Impact()
        if scoped is not None:
            impact = scoped.impact(entries)
        elif before is not None:
            impact = impact_between(before, snapshot_take(organisation_id))
        else:
            impact = Impact()
        audit_entries_attach_impact(entries=entries, impact=impact.summary())
    return result, impact
