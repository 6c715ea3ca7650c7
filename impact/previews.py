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
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditLogEntry
from audit.services import audit_capture, audit_entries_attach_impact
from environments.models import Environment
from impact.feature_counts import FeatureCounts
from impact.snapshots import (
    ORGANISATION_LEVEL,
    Holder,
    PrincipalRef,
    PrincipalType,
    Row,
    Snapshot,
    features_of,
    member_roles_of,
    snapshot_take,
)
from organisations.models import (
    OrganisationAPIKey,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import (
    Policy,
    group_memberships,
    organisation_grant_rows,
    roles_by_holder,
)

T = TypeVar("T")


#: How many changes of each direction an audit entry keeps (the totals are always kept).
AUDIT_SUMMARY_LIMIT = 200
#: How many changes of each direction an IMPACT answer lists by default (`?impact_limit=`),
#: and at most; its `summary` is always complete (docs/PERMISSIONS.md, impact previews).
IMPACT_LIMIT_DEFAULT = 1000
IMPACT_LIMIT_MAX = 10000


# --------------------------------------------------------------------------------------
# Impact
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImpactChange:
    principal_type: PrincipalType
    principal_id: int
    name: str  # the user's email, or the API key's name
    permission: str
    project_id: int | None
    environment_id: int | None
    features: int | None

    def as_dict(self) -> dict[str, Any]:
        who: dict[str, Any] = (
            {"user": self.principal_id, "email": self.name}
            if self.principal_type == "user"
            else {"api_key": self.principal_id, "email": None, "name": self.name}
        )
        return {
            **who,
            "permission": self.permission,
            "project": self.project_id,
            "environment": self.environment_id,
            "features": self.features,
        }


@dataclass(frozen=True)
class Impact:
    gained: tuple[ImpactChange, ...] = ()
    lost: tuple[ImpactChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.gained or self.lost)

    def as_dict(self, limit: int = IMPACT_LIMIT_DEFAULT) -> dict[str, Any]:
        """IMPACT: at most `limit` changes each way, `truncated` when some were left out, and
        the complete `summary` (how many principals gain or lose each key on each scope)."""
        return {
            "gained": [change.as_dict() for change in self.gained[:limit]],
            "lost": [change.as_dict() for change in self.lost[:limit]],
            "summary": self.counts(),
            "truncated": len(self.gained) > limit or len(self.lost) > limit,
        }

    def counts(self) -> list[dict[str, Any]]:
        """Per key and scope, how many principals gain it and how many lose it."""
        totals: dict[tuple[str, int | None, int | None], list[int]] = defaultdict(lambda: [0, 0])
        for direction, changes in enumerate((self.gained, self.lost)):
            for change in changes:
                totals[(change.permission, change.project_id, change.environment_id)][
                    direction
                ] += 1
        return [
            {
                "permission": permission,
                "project": project,
                "environment": environment,
                "gained": gained,
                "lost": lost,
            }
            for (permission, project, environment), (gained, lost) in sorted(
                totals.items(), key=lambda item: (item[0][1] or 0, item[0][2] or 0, item[0][0])
            )
        ]

    def summary(self, limit: int = AUDIT_SUMMARY_LIMIT) -> dict[str, Any]:
        """What an audit entry keeps: the first `limit` changes each way, and the totals."""
        principals = {(c.principal_type, c.principal_id) for c in (*self.gained, *self.lost)}
        return {
            "gained": [change.as_dict() for change in self.gained[:limit]],
            "lost": [change.as_dict() for change in self.lost[:limit]],
            "gained_total": len(self.gained),
            "lost_total": len(self.lost),
            "principals": len(principals),
            "truncated": len(self.gained) > limit or len(self.lost) > limit,
        }


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

    gained: list[tuple[PrincipalRef, str, int | None, int | None, int | None]] = []
    lost: list[tuple[PrincipalRef, str, int | None, int | None, int | None]] = []
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
    names = _names(before, after, {change[0] for change in (*gained, *lost)})
    return Impact(gained=_changes(gained, names), lost=_changes(lost, names))


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


def _names(before: Snapshot, after: Snapshot, principals: set[PrincipalRef]) -> dict[Any, str]:
    user_ids = [principal_id for kind, principal_id in principals if kind == "user"]
    names: dict[Any, str] = {}
    if user_ids:
        user_model = get_user_model()
        for user_id, email in user_model._default_manager.filter(pk__in=user_ids).values_list(
            "pk", "email"
        ):
            names[("user", user_id)] = email
    for kind, principal_id in principals:
        if kind == "api_key":
            known = after.api_keys.get(principal_id) or before.api_keys.get(principal_id)
            names[(kind, principal_id)] = known[2] if known else ""
    return names


def _changes(
    raw: Iterable[tuple[PrincipalRef, str, int | None, int | None, int | None]],
    names: dict[Any, str],
) -> tuple[ImpactChange, ...]:
    def order(item: tuple[PrincipalRef, str, int | None, int | None, int | None]) -> tuple:
        (kind, principal_id), key, project, environment, _ = item
        return (kind != "user", principal_id, project or 0, environment or 0, key)

    return tuple(
        ImpactChange(
            principal_type=kind,
            principal_id=principal_id,
            name=names.get((kind, principal_id), ""),
            permission=key,
            project_id=project,
            environment_id=environment,
            features=count,
        )
        for (kind, principal_id), key, project, environment, count in sorted(raw, key=order)
    )


# --------------------------------------------------------------------------------------
# Grant writes: snapshots of the principals the holder reaches, on the changed projects
# --------------------------------------------------------------------------------------


def grant_holder(grant: Any) -> Holder:
    """The holder of a grant, as `grants_of` takes it."""
    if grant.user_id is not None:
        return ("user", grant.user_id)
    if grant.group_id is not None:
        return ("group", grant.group_id)
    return ("role", grant.role_id)


def _holder_filter(holder: Holder) -> Q:
    kind, holder_id = holder
    if kind not in ("user", "group", "role"):
        raise ValueError(f"Not a grant holder: {holder!r}")
    return Q(**{f"{kind}_id": holder_id})


def _holder_rows(organisation_id: int, holder: Holder) -> frozenset[Row]:
    rows_of = organisation_grant_rows(organisation_id, where=_holder_filter(holder))
    return frozenset(rows_of.get(holder, ()))


def _snapshots_around_grants(
    organisation_id: int, holder: Holder, old_rows: frozenset[Row], new_rows: frozenset[Row]
) -> tuple[Snapshot, Snapshot]:
    """The two snapshots of a change that wrote only the grants of `holder` (its rows
    `old_rows`, then `new_rows`), restricted to what that change can reach: the principals
    the holder reaches, and the projects of the rows that changed. Everything else is the
    same before and after (membership, groups and role assignments are not grants), so it is
    read once; the cost follows the principals reached, not the organisation's size."""
    changed_projects = {row[1] for row in old_rows ^ new_rows}
    kind, holder_id = holder
    users: set[int] = set()
    api_keys: set[int] = set()
    if kind == "user":
        users.add(holder_id)
    elif kind == "group":
        users |= set(
            UserGroup.users.through.objects.filter(
                usergroup_id=holder_id, usergroup__organisation_id=organisation_id
            ).values_list("user_id", flat=True)
        )
    elif changed_projects:
        groups: set[int] = set()
        for user_id, group_id, api_key_id in RoleAssignment.objects.filter(
            Q(user__isnull=False)
            | Q(group__organisation_id=organisation_id)
            | Q(api_key__organisation_id=organisation_id),
            role_id=holder_id,
            role__organisation_id=organisation_id,
        ).values_list("user_id", "group_id", "api_key_id"):
            if user_id is not None:
                users.add(user_id)
            elif group_id is not None:
                groups.add(group_id)
            elif api_key_id is not None:
                api_keys.add(api_key_id)
        users |= set(
            UserGroup.users.through.objects.filter(usergroup_id__in=groups).values_list(
                "user_id", flat=True
            )
        )
    if not changed_projects:
        users, api_keys = set(), set()
    member_roles = member_roles_of(organisation_id, users)
    users &= member_roles.keys()  # others hold nothing here, before or after
    now = timezone.now()
    api_key_rows = {
        key_id: (not revoked and (expires is None or expires >= now), is_admin, name)
        for key_id, revoked, expires, is_admin, name in OrganisationAPIKey.objects.filter(
            organisation_id=organisation_id, pk__in=api_keys
        ).values_list("id", "revoked", "expiry_date", "is_admin", "name")
    }
    groups_of = group_memberships(organisation_id, Q(user_id__in=users))
    all_groups = {group for groups in groups_of.values() for group in groups}
    roles_of = roles_by_holder(
        organisation_id,
        Q(user_id__in=users) | Q(group_id__in=all_groups) | Q(api_key_id__in=api_key_rows),
    )
    all_roles = {role for roles in roles_of.values() for role in roles}
    # Where only environment rows changed (the common role grant edit), nothing but those
    # environments can decide differently: their own rows and their project's admin rows
    # (project admin) are all their decisions read, so only they are read and compared (the
    # project's other rows are the same before and after, and decide nothing there).
    changed_rows = old_rows ^ new_rows
    environments_only = all(row[2] is not None for row in changed_rows)
    changed_environments = {row[2] for row in changed_rows if row[2] is not None}
    on_projects = Q(project_id__in=[p for p in changed_projects if p is not None])
    if environments_only:
        on_projects &= Q(environment__isnull=True, admin=True) | Q(
            environment_id__in=changed_environments
        )
    if ORGANISATION_LEVEL in changed_projects:
        on_projects |= Q(project__isnull=True)
    rows_of = organisation_grant_rows(
        organisation_id,
        where=(Q(user_id__in=users) | Q(group_id__in=all_groups) | Q(role_id__in=all_roles))
        & on_projects,
    )
    projects = frozenset(p for p in changed_projects if p is not None)
    in_projects = Environment.objects.filter(project_id__in=projects)
    if environments_only:
        in_projects = in_projects.filter(pk__in=changed_environments)
    environments = dict(in_projects.values_list("id", "project_id"))
    features = features_of(Q(project_id__in=projects))

    def snapshot(holder_rows: frozenset[Row]) -> Snapshot:
        return Snapshot(
            organisation_id=organisation_id,
            member_roles=member_roles,
            api_keys=api_key_rows,
            groups_of={user: frozenset(groups) for user, groups in groups_of.items()},
            roles_of={h: frozenset(roles) for h, roles in roles_of.items()},
            rows_of={
                **{h: frozenset(rows) for h, rows in rows_of.items() if h != holder},
                holder: holder_rows,
            },
            projects=projects,
            environments=environments,
            features=features,
        )

    return snapshot(old_rows), snapshot(new_rows)


class _GrantsOnly:
    """Runs a change that writes only the grants of one holder, and checks that it did."""

    def __init__(self, organisation_id: int, holder: Holder) -> None:
        self.organisation_id, self.holder = organisation_id, holder
        self.old_rows = _holder_rows(organisation_id, holder)

    def after(self, entries: list[int]) -> tuple[Snapshot, Snapshot]:
        new_rows = _holder_rows(self.organisation_id, self.holder)
        grant_ids = {str(row[0]) for row in self.old_rows | new_rows}
        written = AuditLogEntry.objects.filter(pk__in=entries).values_list(
            "object_type", "object_id"
        )
        stray = [(kind, oid) for kind, oid in written if kind != "grant" or oid not in grant_ids]
        if stray:  # the caller's word was wrong: never record a partial impact
            raise RuntimeError(f"The change wrote more than grants of {self.holder}: {stray}")
        return _snapshots_around_grants(self.organisation_id, self.holder, self.old_rows, new_rows)


# --------------------------------------------------------------------------------------
# Running a change with its impact
# --------------------------------------------------------------------------------------


class _RolledBack(Exception):
    def __init__(self, snapshots: tuple[Snapshot, Snapshot]) -> None:
        self.snapshots = snapshots


def impact_preview(
    *, organisation_id: int, change: Callable[[], Any], grants_of: Holder | None = None
) -> Impact:
    """Run `change()` (a service call, with all its validation) in a transaction that is then
    rolled back, and return what it would have changed. Errors of the change propagate
    unchanged (a 400 stays a 400); nothing is saved and no audit entry survives.

    `grants_of=("user" | "group" | "role", id)` is the caller's word that the change writes
    only grants of that holder: the snapshots then cover only the principals it reaches, on
    the projects whose rows changed (checked against the audit entries the change wrote).
    """
    grants_only = _GrantsOnly(organisation_id, grants_of) if grants_of is not None else None
    before = None if grants_only is not None else snapshot_take(organisation_id)
    try:
        with transaction.atomic(), audit_capture() as entries:
            change()
            if grants_only is not None:
                raise _RolledBack(grants_only.after(entries))
            assert before is not None
            raise _RolledBack((before, snapshot_take(organisation_id)))
    except _RolledBack as rolled_back:
        old, new = rolled_back.snapshots
    return impact_between(old, new)


def impact_apply(
    *,
    organisation_id: int,
    change: Callable[[], T],
    may_move_permissions: bool = True,
    grants_of: Holder | None = None,
) -> tuple[T, Impact]:
    """Run `change()` for real, in one transaction, and store the summary of its impact on
    the audit entries it wrote (none written: nothing changed, nothing stored).

    `may_move_permissions=False` is the caller's word that the change decides nothing (a
    feature renamed, a tag relabelled: decisions read tag ids and restrictions, never names);
    the empty impact is then recorded without reading the organisation before and after.
    `grants_of`: as in `impact_preview`.
    """
    with transaction.atomic():
        grants_only = None
        before = None
        if may_move_permissions and grants_of is not None:
            grants_only = _GrantsOnly(organisation_id, grants_of)
        elif may_move_permissions:
            before = snapshot_take(organisation_id)
        with audit_capture() as entries:
            result = change()
        if not entries:
            return result, Impact()
        if grants_only is not None:
            impact = impact_between(*grants_only.after(entries))
        elif before is not None:
            impact = impact_between(before, snapshot_take(organisation_id))
        else:
            impact = Impact()
        audit_entries_attach_impact(entries=entries, impact=impact.summary())
    return result, impact
