"""The permission engine: the one place that decides (docs/PERMISSIONS.md).

Public API (everything else in the project calls these; nothing else decides):

    policy_for(principal, organisation_id)         memoised Policy: 1 query cold, 0 warm
    allowed(principal, key, scope, feature=None)   one decision: ≤ 2 queries cold, 0 warm
    can_view(principal, scope)                     the Viewing rule (404 when false)
    features_allowed(principal, key, scope, qs)    Feature queryset filtered in SQL
    feature_states_allowed(principal, key, env)    default FeatureState queryset, same filter
    filter_by_feature(principal, key, scope, qs, feature_ref=...)  any rows, by their feature
    viewable_projects_q(principal) / viewable_environments_q(principal)
    keys_on_feature(principal, scope, feature)     the caller's tag-supported... keys on a feature
    my_permissions(principal, scope)               the my-permissions payload of API.md
    user_detailed_permissions(user, scope)         the per-user detailed view of API.md
    explain(principal, key, environment, feature)  why a decision came out as it did
    forget(principal)                              drop the memoised policies of a principal

For many principals at once (the admin's matrix, impact previews in permissions/impact.py):

    policies_for_members(organisation_id, user_ids)  fresh policies of many users: 4 queries
    organisation_grant_rows(organisation_id)        every grant row by holder: 1 query
    policy_from_rows(organisation_id, ...)          a policy from rows already read
    Policy.key_state(key, ...) / KeyState.decides   what a decision reads, feature aside
    FeatureIndex(feature_ids, tags).reached(state)  one key state decided on every feature

A *principal* is a user or an `OrganisationAPIKey`. A *scope* is an Organisation, a Project
or an Environment. A decision on a tag-supported key for a concrete feature must pass that
feature, loaded from the database: without it, tagged entries never count (fail closed).

How: the principal's applicable grant entries in one organisation are loaded with a single
SQL query (membership row UNION ALL entry rows, every principal path resolved in SQL) into an
immutable `Policy`: admin flags, untagged keys and, per key, the union of the tags of its
tagged entries, indexed by scope. Decisions are then pure functions of (policy, key, scope,
feature tags); the list filters turn the same policy into one `Q`. For one key, the union of
its tagged entries' tags is what decides: any of them meeting an unrestricted feature's tags
is the union meeting them, and a restricted feature is reached only when the union contains
every restricted tag it carries; so the policy keeps only the union, and `explain` keeps
the entries.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.signals import request_started
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.expressions import Combinable
from django.dispatch import receiver

from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import CATALOGUE, KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag

Principal = AbstractBaseUser | OrganisationAPIKey | AnonymousUser
Scope = Organisation | Project | Environment

_EMPTY: frozenset[int] = frozenset()
_POLICY_CACHE_ATTR = "_tagwarden_policies"
_FEATURE_TAGS_ATTR = "_tagwarden_tags"


# --------------------------------------------------------------------------------------
# Policy: what one principal holds in one organisation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One applicable grant entry (or an entry-less grant, `key=None`) and where it came from."""

    grant_id: int
    project_id: int | None
    environment_id: int | None
    admin: bool
    key: str | None
    tags: frozenset[int]
    user_id: int | None
    group_id: int | None
    role_id: int | None

    @property
    def level(self) -> Level:
        if self.environment_id is not None:
            return Level.ENVIRONMENT
        if self.project_id is not None:
            return Level.PROJECT
        return Level.ORGANISATION


@dataclass(frozen=True, slots=True)
class ScopeRights:
    """What the principal holds on one project or environment."""

    admin: bool = False
    untagged: frozenset[str] = frozenset()
    # key -> union of the tags of the key's tagged entries
    tagged: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureTags:
    tags: frozenset[int]
    restricted: frozenset[int]


@dataclass(frozen=True)
class Policy:
    organisation_id: int
    is_member: bool
    is_organisation_admin: bool
    organisation_keys: frozenset[str]
    projects: Mapping[int, ScopeRights]
    environments: Mapping[int, ScopeRights]
    # environment id -> project id, for every environment the principal holds anything on
    environment_projects: Mapping[int, int]
    # (grant id, project id, environment id, admin, key, user id, group id, role id) → tags;
    # turned into EntryRecords only when a report (explain, details) asks for them.
    entry_rows: Mapping[tuple[Any, ...], frozenset[int]] = field(default_factory=dict)
    # Set when the policy was loaded for one project's scope: it holds the grants of that
    # project (and its environments) and of the organisation level only, so it decides on
    # that project and the organisation, never on another project.
    only_project: int | None = None

    @cached_property
    def entries(self) -> tuple[EntryRecord, ...]:
        """The applicable entries one by one, with where they came from (for reports)."""
        return tuple(
            EntryRecord(
                grant_id=g,
                project_id=p,
                environment_id=e,
                admin=a,
                key=k,
                tags=tags,
                user_id=u,
                group_id=gr,
                role_id=r,
            )
            for (g, p, e, a, k, u, gr, r), tags in self.entry_rows.items()
        )

    # -- admin ---------------------------------------------------------------------------
    def is_project_admin(self, project_id: int | None) -> bool:
        if not self.is_member:
            return False
        if self.is_organisation_admin:
            return True
        rights = self.projects.get(project_id) if project_id is not None else None
        return rights is not None and rights.admin

    def is_environment_admin(self, project_id: int | None, environment_id: int | None) -> bool:
        if self.is_project_admin(project_id):
            return True
        rights = self.environments.get(environment_id) if environment_id is not None else None
        return self.is_member and rights is not None and rights.admin

    # -- viewing ---------------------------------------------------------------------------
    def viewable_project_ids(self) -> frozenset[int]:
        if not self.is_member:
            return _EMPTY
        return frozenset(self.projects) | frozenset(self.environment_projects.values())

    def can_view_project(self, project_id: int) -> bool:
        if not self.is_member:
            return False
        return self.is_organisation_admin or project_id in self.viewable_project_ids()

    def can_view_environment(self, project_id: int, environment_id: int) -> bool:
        if not self.is_member:
            return False
        return self.is_project_admin(project_id) or environment_id in self.environments

    # -- deciding --------------------------------------------------------------------------
    def rights_for(self, level: Level, scope_id: int | None) -> ScopeRights | None:
        if level == Level.PROJECT:
            return self.projects.get(scope_id) if scope_id is not None else None
        if level == Level.ENVIRONMENT:
            return self.environments.get(scope_id) if scope_id is not None else None
        return None

    def decide(
        self,
        key: str,
        *,
        project_id: int | None = None,
        environment_id: int | None = None,
        feature_tags: FeatureTags | None = None,
    ) -> bool:
        """docs/PERMISSIONS.md's rules for a key whose scope ids are given; pure, no queries."""
        if not self.is_member:
            return False
        if self.is_organisation_admin:
            return True
        level = CATALOGUE[key].level
        if level == Level.ORGANISATION:
            return key in self.organisation_keys
        if level == Level.PROJECT:
            if self.is_project_admin(project_id):
                return True
            rights = self.rights_for(Level.PROJECT, project_id)
        else:
            if self.is_environment_admin(project_id, environment_id):
                return True
            rights = self.rights_for(Level.ENVIRONMENT, environment_id)
        if rights is None:
            return False
        return entry_reaches(
            key,
            untagged=key in rights.untagged,
            tags=rights.tagged.get(key, _EMPTY),
            feature_tags=feature_tags,
        )

    def key_state(
        self, key: str, *, project_id: int | None = None, environment_id: int | None = None
    ) -> KeyState:
        """Everything `decide` reads for one key on one scope, feature aside.

        Two policies with equal key states decide identically on every feature of the scope;
        impact previews compare key states, and decide many features at once with
        `FeatureIndex.reached`.
        """
        if not self.is_member:
            return _NOTHING
        if self.is_organisation_admin:
            return _ADMIN
        level = CATALOGUE[key].level
        if level == Level.ORGANISATION:
            return _UNTAGGED if key in self.organisation_keys else _NOTHING
        if level == Level.PROJECT:
            admin = self.is_project_admin(project_id)
            rights = self.rights_for(Level.PROJECT, project_id)
        else:
            admin = self.is_environment_admin(project_id, environment_id)
            rights = self.rights_for(Level.ENVIRONMENT, environment_id)
        if admin:
            return _ADMIN
        if rights is None:
            return _NOTHING
        return KeyState(
            admin=False, untagged=key in rights.untagged, tags=rights.tagged.get(key, _EMPTY)
        )


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a policy holds for one key on one scope (see `Policy.key_state`)."""

    admin: bool
    untagged: bool
    tags: frozenset[int]

    def decides(self, key: str, feature_tags: FeatureTags | None = None) -> bool:
        """The same decision as `Policy.decide` for this key, scope and feature."""
        if self.admin:
            return True
        return entry_reaches(key, untagged=self.untagged, tags=self.tags, feature_tags=feature_tags)


_NOTHING = KeyState(admin=False, untagged=False, tags=_EMPTY)
_ADMIN = KeyState(admin=True, untagged=False, tags=_EMPTY)
_UNTAGGED = KeyState(admin=False, untagged=True, tags=_EMPTY)


class FeatureIndex:
    """The features of one project as bit sets, to decide a tag-supported key on all of them
    at once: bit i stands for the i-th feature of `feature_ids`.

    `reached(state)` is `entry_reaches` (rule 3 and the restricted-tag rule) applied to every
    feature with a few integer operations per tag of the key state, instead of one decision
    per feature. Indexes built over the same `feature_ids` (before and after a change) line
    up bit for bit; a feature missing from one of them is reached by nobody in it.
    """

    __slots__ = ("_memo", "all", "by_restricted_tag", "by_tag", "restricted_any")

    def __init__(self, feature_ids: Iterable[int], tags_of: Mapping[int, FeatureTags]) -> None:
        self.all = 0
        self.restricted_any = 0  # features carrying at least one restricted tag
        self.by_tag: dict[int, int] = defaultdict(int)
        self.by_restricted_tag: dict[int, int] = defaultdict(int)
        self._memo: dict[KeyState, int] = {}
        for position, feature_id in enumerate(feature_ids):
            tags = tags_of.get(feature_id)
            if tags is None:
                continue
            bit = 1 << position
            self.all |= bit
            if tags.restricted:
                self.restricted_any |= bit
            for tag_id in tags.tags:
                self.by_tag[tag_id] |= bit
            for tag_id in tags.restricted:
                self.by_restricted_tag[tag_id] |= bit

    def reached(self, state: KeyState) -> int:
        """The features (a bit set) on which a tag-supported key held as `state` is allowed."""
        cached = self._memo.get(state)
        if cached is not None:
            return cached
        if state.admin:
            result = self.all
        else:
            shares_tag = 0
            for tag_id in state.tags:
                shares_tag |= self.by_tag.get(tag_id, 0)
            # A restricted feature is reached only when the key's tags cover every restricted
            # tag it carries: it is lost as soon as one of them is outside them.
            uncovered = 0
            for tag_id, features in self.by_restricted_tag.items():
                if tag_id not in state.tags:
                    uncovered |= features
            unrestricted = self.all & ~self.restricted_any
            # Without restricted tags a feature is reached by an untagged entry or a shared
            # tag; with restricted tags, only when the key's tags name all of them
            # (docs/PERMISSIONS.md, "Restricted tags").
            result = (unrestricted if state.untagged else unrestricted & shares_tag) | (
                self.restricted_any & ~uncovered
            )
        self._memo[state] = result
        return result


def entry_reaches(
    key: str, *, untagged: bool, tags: frozenset[int], feature_tags: FeatureTags | None
) -> bool:
    """Rule 3 and the restricted-tag rule for a key on one scope: `untagged` when some entry
    holding it is untagged, `tags` the union of the tags of its tagged entries.

    A feature carrying restricted tags is reached only when `tags` contains every one of them
    (untagged entries never reach it); any other feature when an entry is untagged or `tags`
    meets its tags (docs/PERMISSIONS.md, "How one decision is made").
    """
    if key not in TAG_SUPPORTED_KEYS:
        return untagged
    if feature_tags is None:
        return untagged  # fail closed: tagged entries never count without a feature
    if feature_tags.restricted:
        return feature_tags.restricted <= tags
    return untagged or bool(tags & feature_tags.tags)


def _non_member_policy(organisation_id: int) -> Policy:
    return Policy(organisation_id, False, False, frozenset(), {}, {}, {})


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
        return _non_member_policy(organisation_id)

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
        return _non_member_policy(organisation_id or 0)
    if isinstance(principal, OrganisationAPIKey) and (
        not principal.is_usable
        or (organisation_id is not None and principal.organisation_id != organisation_id)
    ):
        return _non_member_policy(organisation_id or principal.organisation_id)
    scoped = project_id is not None
    resolved_org, membership_role, rows = _load_rows(
        principal, organisation_id, project_id, scoped=scoped
    )
    if resolved_org is None:  # no such organisation or project
        return _non_member_policy(organisation_id or 0)
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
            policies[user_id] = _non_member_policy(organisation_id)
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


def _scope_ids(scope: Scope) -> tuple[Level, int | None, int | None, int | None]:
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
    _, organisation_id, project_id, _ = _scope_ids(scope)
    return policy_for(principal, organisation_id, project_id=project_id)


# --------------------------------------------------------------------------------------
# Feature tags: 1 query cold, 0 when prefetched or already loaded
# --------------------------------------------------------------------------------------


def feature_tags(feature: Feature) -> FeatureTags:
    cached = getattr(feature, _FEATURE_TAGS_ATTR, None)
    if cached is not None:
        return cached
    prefetched = getattr(feature, "_prefetched_objects_cache", {}).get("tags")
    if prefetched is not None:
        pairs = [(t.pk, t.is_restricted) for t in prefetched]
    else:
        pairs = list(feature.tags.values_list("id", "is_restricted"))
    result = FeatureTags(
        tags=frozenset(t for t, _ in pairs), restricted=frozenset(t for t, r in pairs if r)
    )
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


def forget_feature_tags(feature: Feature) -> None:
    """Drop the memoised tags of a feature whose tags were just changed."""
    if hasattr(feature, _FEATURE_TAGS_ATTR):
        delattr(feature, _FEATURE_TAGS_ATTR)


class _TagCodes(Aggregate):
    """The tags of a feature as one string: `id` for a tag, `-id` for a restricted one."""

    function = "GROUP_CONCAT"
    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            function="STRING_AGG",
            template="%(function)s((%(expressions)s)::text, ',')",
            **extra,
        )


def feature_tags_subquery(feature_ref: str) -> Subquery:
    """An annotation carrying the tags of the feature at `feature_ref` (e.g. "feature_id"), so
    a row fetched for a write brings its feature's tags in the same query; hand its value to
    `feature_tags_remember`."""
    code = Case(
        When(tag__is_restricted=True, then=-F("tag_id")),
        default=F("tag_id"),
        output_field=IntegerField(),
    )
    return Subquery(
        Feature.tags.through.objects.filter(feature_id=OuterRef(feature_ref))  # type: ignore[misc]
        .values("feature_id")
        .annotate(codes=_TagCodes(code))
        .values("codes")[:1],
        output_field=CharField(),
    )


def feature_tags_remember(feature: Feature, codes: str | None) -> FeatureTags:
    """Memoise on `feature` the tags read with `feature_tags_subquery` (no query)."""
    ids = [int(code) for code in (codes or "").split(",") if code]
    result = FeatureTags(
        tags=frozenset(abs(code) for code in ids),
        restricted=frozenset(-code for code in ids if code < 0),
    )
    setattr(feature, _FEATURE_TAGS_ATTR, result)
    return result


# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------


def allowed(principal: Principal, key: str, scope: Scope, feature: Feature | None = None) -> bool:
    """Whether `principal` holds `key` on `scope` (for `feature`, if given).

    `key` must be of the scope's level. `feature` must be a feature of the scope's project,
    loaded from the database; a feature of another project is never allowed.
    """
    level, _, project_id, environment_id = _scope_ids(scope)
    spec = CATALOGUE.get(key)
    if spec is None:
        raise ValueError(f"Unknown permission key {key!r}")
    if spec.level != level:
        raise ValueError(f"{key} is a {spec.level} key; it was checked on a {level}")
    if feature is not None and feature.project_id != project_id:
        return False
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return False
    tags = feature_tags(feature) if feature is not None and key in TAG_SUPPORTED_KEYS else None
    return policy.decide(
        key, project_id=project_id, environment_id=environment_id, feature_tags=tags
    )


def is_admin(principal: Principal, scope: Scope) -> bool:
    """Organisation admin; project admin (rules 1–2); environment admin."""
    level, _, project_id, environment_id = _scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    if level == Level.ORGANISATION:
        return policy.is_member and policy.is_organisation_admin
    if level == Level.PROJECT:
        return policy.is_project_admin(project_id)
    return policy.is_environment_admin(project_id, environment_id)


def can_view(principal: Principal, scope: Scope) -> bool:
    """Viewing: members view their organisation; any key or admin on a scope, tagged or not,
    shows that scope and its parents."""
    level, _, project_id, environment_id = _scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    if level == Level.ORGANISATION:
        return policy.is_member
    if level == Level.PROJECT:
        assert project_id is not None
        return policy.can_view_project(project_id)
    assert project_id is not None and environment_id is not None
    return policy.can_view_environment(project_id, environment_id)


def keys_on_feature(
    principal: Principal, scope: Project | Environment, feature: Feature
) -> list[str]:
    """The keys of the scope's level that `principal` holds on `feature` (sorted).

    For lists: with the policy warm and the feature's tags prefetched this costs no query.
    """
    level, _, project_id, environment_id = _scope_ids(scope)
    if feature.project_id != project_id:
        return []
    policy = policy_for_scope(principal, scope)
    tags = feature_tags(feature)
    return sorted(
        key
        for key in KEYS_BY_LEVEL[level]
        if policy.decide(
            key, project_id=project_id, environment_id=environment_id, feature_tags=tags
        )
    )


# --------------------------------------------------------------------------------------
# Querysets: one SQL filter built from the same policy
# --------------------------------------------------------------------------------------

FeatureTagThrough = Feature.tags.through


def _feature_q(
    key: str, rights: ScopeRights | None, *, is_admin: bool, feature_ref: str
) -> Q | Combinable | None:
    """A Q over Feature (or a model reaching it through `feature_ref`) equivalent to
    `entry_reaches` for every feature; None means "every feature"."""
    if is_admin:
        return None
    if rights is None:
        return Q(pk__in=[])
    untagged = key in rights.untagged
    if key not in TAG_SUPPORTED_KEYS:
        return None if untagged else Q(pk__in=[])
    tags = rights.tagged.get(key, _EMPTY)
    through = FeatureTagThrough.objects.filter(feature_id=OuterRef(feature_ref))
    # A restricted tag of the feature that the key's tags do not name: the feature is out
    # (docs/PERMISSIONS.md, "Restricted tags"). Without one, an untagged entry reaches the
    # feature, and a tagged one when it shares a tag (always so for a restricted feature).
    restricted = through.filter(tag__is_restricted=True)
    uncovered_restricted = Exists(
        restricted.exclude(tag_id__in=sorted(tags)) if tags else restricted
    )
    if untagged:
        return ~uncovered_restricted
    if tags:
        return ~uncovered_restricted & Exists(through.filter(tag_id__in=sorted(tags)))
    return Q(pk__in=[])


def features_allowed(
    principal: Principal,
    key: str,
    scope: Project | Environment,
    queryset: QuerySet[Feature] | None = None,
) -> QuerySet[Feature]:
    """The features of the scope's project on which `principal` holds `key`: one query."""
    level, _, project_id, environment_id = _scope_ids(scope)
    if CATALOGUE[key].level != level:
        raise ValueError(f"{key} is a {CATALOGUE[key].level} key; it was checked on a {level}")
    assert project_id is not None
    qs = (queryset if queryset is not None else Feature.objects.all()).filter(project_id=project_id)
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return qs.none()
    admin = (
        policy.is_project_admin(project_id)
        if level == Level.PROJECT
        else policy.is_environment_admin(project_id, environment_id)
    )
    rights = policy.rights_for(level, project_id if level == Level.PROJECT else environment_id)
    q = _feature_q(key, rights, is_admin=admin, feature_ref="pk")
    return qs if q is None else qs.filter(q)


def feature_states_allowed(
    principal: Principal,
    key: str,
    environment: Environment,
    queryset: QuerySet[FeatureState] | None = None,
) -> QuerySet[FeatureState]:
    """The environment's default feature states whose feature `principal` holds `key` on."""
    if CATALOGUE[key].level != Level.ENVIRONMENT:
        raise ValueError(f"{key} is not an environment key")
    qs = (queryset if queryset is not None else FeatureState.objects.all()).filter(
        environment_id=environment.pk, segment_override__isnull=True
    )
    policy = policy_for_scope(principal, environment)
    if not policy.is_member:
        return qs.none()
    admin = policy.is_environment_admin(environment.project_id, environment.pk)
    rights = policy.rights_for(Level.ENVIRONMENT, environment.pk)
    q = _feature_q(key, rights, is_admin=admin, feature_ref="feature_id")
    return qs if q is None else qs.filter(q)


def filter_by_feature(
    principal: Principal,
    key: str,
    scope: Project | Environment,
    queryset: QuerySet[Any],
    *,
    feature_ref: str,
) -> QuerySet[Any]:
    """The rows of `queryset` whose feature (the field path `feature_ref`, "pk" for features)
    `principal` holds `key` on in `scope`: the same one `Q` as `features_allowed`. For list
    actions declared `filtered_by_feature` (permissions/drf.py)."""
    level, _, project_id, environment_id = _scope_ids(scope)
    if CATALOGUE[key].level != level:
        raise ValueError(f"{key} is a {CATALOGUE[key].level} key; it was checked on a {level}")
    # Never a row of a feature of another project than the scope's.
    project_path = (
        "project_id" if feature_ref == "pk" else f"{feature_ref.removesuffix('_id')}__project_id"
    )
    queryset = queryset.filter(**{project_path: project_id})
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return queryset.none()
    admin = (
        policy.is_project_admin(project_id)
        if level == Level.PROJECT
        else policy.is_environment_admin(project_id, environment_id)
    )
    rights = policy.rights_for(level, project_id if level == Level.PROJECT else environment_id)
    q = _feature_q(key, rights, is_admin=admin, feature_ref=feature_ref)
    return queryset if q is None else queryset.filter(q)


# A grant with neither a key nor admin holds nothing and shows nothing (as in the policy).
_HOLDS_SOMETHING = Q(admin=True) | Q(entries__isnull=False)


def viewable_projects_q(principal: Principal) -> Q:
    """Projects the principal may view, across its organisations: one Q, evaluated in SQL.

    Computed from the grant tables directly (not per-organisation policies) so a project list
    spanning many organisations stays one query; the semantics are those of `can_view`.
    """
    if isinstance(principal, OrganisationAPIKey):
        if not principal.is_usable:
            return Q(pk__in=[])
        if principal.is_admin:
            return Q(organisation_id=principal.organisation_id)
        grants = Grant.objects.filter(
            _HOLDS_SOMETHING,
            organisation_id=principal.organisation_id,
            role__organisation_id=principal.organisation_id,
            role__assignments__api_key_id=principal.pk,
            project__isnull=False,
        )
        return Q(organisation_id=principal.organisation_id) & Q(pk__in=grants.values("project_id"))
    if not getattr(principal, "is_authenticated", False):
        return Q(pk__in=[])
    memberships = OrganisationMembership.objects.filter(user_id=cast(int, principal.pk))
    admin_orgs = memberships.filter(role=MembershipRole.ADMIN).values("organisation_id")
    member_orgs = memberships.values("organisation_id")
    return Q(organisation_id__in=admin_orgs) | (
        Q(organisation_id__in=member_orgs)
        & Q(pk__in=_user_grants(principal).filter(project__isnull=False).values("project_id"))
    )


def _user_grants(user: Any) -> QuerySet[Grant]:
    """Every grant reaching `user` through any path. As in the policy, a group or role counts
    only in its own organisation: for the grant's organisation, and through groups of it."""
    group_ids = UserGroup.objects.filter(users=user).values("id")
    role_ids = RoleAssignment.objects.filter(
        Q(user=user) | Q(group_id__in=group_ids, group__organisation_id=F("role__organisation_id"))
    ).values("role_id")
    return Grant.objects.filter(
        Q(user=user)
        | Q(group_id__in=group_ids, group__organisation_id=F("organisation_id"))
        | Q(role_id__in=role_ids, role__organisation_id=F("organisation_id"))
    ).filter(_HOLDS_SOMETHING)


def viewable_environments_q(principal: Principal) -> Q:
    """Environments the principal may view: project admins see all of a project's, others
    those they hold anything on. One Q."""
    if isinstance(principal, OrganisationAPIKey):
        if not principal.is_usable:
            return Q(pk__in=[])
        if principal.is_admin:
            return Q(project__organisation_id=principal.organisation_id)
        grants = Grant.objects.filter(
            _HOLDS_SOMETHING,
            organisation_id=principal.organisation_id,
            role__organisation_id=principal.organisation_id,
            role__assignments__api_key_id=principal.pk,
        )
        return Q(project__organisation_id=principal.organisation_id) & (
            Q(pk__in=grants.filter(environment__isnull=False).values("environment_id"))
            | Q(
                project_id__in=grants.filter(environment__isnull=True, admin=True).values(
                    "project_id"
                )
            )
        )
    if not getattr(principal, "is_authenticated", False):
        return Q(pk__in=[])
    memberships = OrganisationMembership.objects.filter(user_id=cast(int, principal.pk))
    admin_orgs = memberships.filter(role=MembershipRole.ADMIN).values("organisation_id")
    member_orgs = memberships.values("organisation_id")
    grants = _user_grants(principal)
    return Q(project__organisation_id__in=admin_orgs) | (
        Q(project__organisation_id__in=member_orgs)
        & (
            Q(pk__in=grants.filter(environment__isnull=False).values("environment_id"))
            | Q(
                project_id__in=grants.filter(
                    project__isnull=False, environment__isnull=True, admin=True
                ).values("project_id")
            )
        )
    )


# --------------------------------------------------------------------------------------
# Reports: my-permissions, per-user details, explain
# --------------------------------------------------------------------------------------


def _tag_based(rights: ScopeRights | None) -> list[dict[str, list[Any]]]:
    if rights is None:
        return []
    by_tags: dict[frozenset[int], list[str]] = defaultdict(list)
    for key, tags in rights.tagged.items():
        if tags:
            by_tags[tags].append(key)
    return sorted(
        ({"permissions": sorted(keys), "tags": sorted(tags)} for tags, keys in by_tags.items()),
        key=lambda item: (item["permissions"], item["tags"]),
    )


def my_permissions(principal: Principal, scope: Scope) -> dict[str, Any]:
    """The my-permissions payload of API.md for one scope."""
    level, _, project_id, environment_id = _scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    if level == Level.ORGANISATION:
        admin = policy.is_member and policy.is_organisation_admin
        keys = (
            set(KEYS_BY_LEVEL[level])
            if admin
            else set(policy.organisation_keys if policy.is_member else ())
        )
        return {
            "admin": admin,
            "permissions": sorted(keys),
            "tag_based_permissions": [],
            "restricted_tags": [],
        }
    if level == Level.PROJECT:
        admin = policy.is_project_admin(project_id)
        rights = policy.rights_for(level, project_id) if policy.is_member else None
    else:
        admin = policy.is_environment_admin(project_id, environment_id)
        rights = policy.rights_for(level, environment_id) if policy.is_member else None
    keys = set(KEYS_BY_LEVEL[level]) if admin else set(rights.untagged if rights else ())
    restricted = sorted(
        Tag.objects.filter(project_id=int(project_id or 0), is_restricted=True).values_list(
            "id", flat=True
        )
    )
    return {
        "admin": admin,
        "permissions": sorted(keys),
        "tag_based_permissions": _tag_based(rights),
        "restricted_tags": restricted,
    }


@dataclass(frozen=True)
class _Paths:
    """How a user reaches roles and groups in one organisation (for explanations)."""

    group_ids: frozenset[int]
    # role id -> groups through which it is assigned (None = assigned directly)
    role_paths: Mapping[int, frozenset[int | None]]


def _paths(principal: Principal, organisation_id: int) -> _Paths:
    if isinstance(principal, OrganisationAPIKey):
        roles = RoleAssignment.objects.filter(
            api_key=principal, role__organisation_id=organisation_id
        ).values_list("role_id", flat=True)
        return _Paths(_EMPTY, {r: frozenset([None]) for r in roles})
    group_ids = frozenset(
        UserGroup.objects.filter(
            users__pk=cast(int, principal.pk), organisation_id=organisation_id
        ).values_list("id", flat=True)
    )
    role_paths: dict[int, set[int | None]] = defaultdict(set)
    for role_id, group_id in RoleAssignment.objects.filter(
        Q(user=principal) | Q(group_id__in=group_ids), role__organisation_id=organisation_id
    ).values_list("role_id", "group_id"):
        role_paths[role_id].add(group_id)
    return _Paths(group_ids, {r: frozenset(g) for r, g in role_paths.items()})


Via = Literal["user", "group", "role"]


def _vias(entry: EntryRecord, paths: _Paths) -> list[tuple[Via, int | None, int | None]]:
    """(via, group id, role id) for each way the entry reaches the principal."""
    if entry.user_id is not None:
        return [("user", None, None)]
    if entry.group_id is not None:
        return [("group", entry.group_id, None)]
    assert entry.role_id is not None
    return [
        ("role", group_id, entry.role_id)
        for group_id in sorted(
            paths.role_paths.get(entry.role_id, ()), key=lambda g: (g is not None, g or 0)
        )
    ] or [("role", None, entry.role_id)]


def explain(
    principal: Principal, key: str, environment: Environment, feature: Feature
) -> dict[str, Any]:
    """Why `principal` may or may not use `key` on `feature` in `environment`
    (docs/PERMISSIONS.md: the worked example's explain, `blocked_by` and `granted_by`)."""
    if CATALOGUE[key].level != Level.ENVIRONMENT:
        raise ValueError(f"{key} is not an environment key")
    if feature.project_id != environment.project_id:
        raise ValueError("The feature is not in the environment's project")
    policy = policy_for_scope(principal, environment)
    project_id, environment_id = environment.project_id, environment.pk
    decision = allowed(principal, key, environment, feature)
    ftags = feature_tags(feature)
    granted: list[dict[str, Any]] = []
    blocked: list[dict[str, Any]] = []
    # Restricted tags narrow tag-supported keys only.
    restricted = ftags.restricted if key in TAG_SUPPORTED_KEYS else _EMPTY
    restricted_uncovered = bool(restricted)
    if policy.is_member:
        paths = _paths(principal, policy.organisation_id)
        if policy.is_organisation_admin:
            granted.append(_granted("organisation_admin", None, None, "organisation", []))
        for entry in policy.entries:
            reaches_env = entry.environment_id == environment_id or (
                entry.level == Level.PROJECT and entry.project_id == project_id
            )
            if not reaches_env or not entry.admin:
                continue
            via = "project_admin" if entry.level == Level.PROJECT else "environment_admin"
            for _, group_id, role_id in _vias(entry, paths):
                granted.append(_granted(via, group_id, role_id, str(entry.level), []))
        key_entries = [
            e for e in policy.entries if e.environment_id == environment_id and e.key == key
        ]
        # The key's tagged entries decide together (docs/PERMISSIONS.md, "Restricted tags").
        held_tags = frozenset(t for e in key_entries for t in e.tags)
        covered = restricted <= held_tags
        restricted_uncovered = not covered
        for entry in key_entries:
            if restricted:
                # Only entries naming a restricted tag count, and only when together they
                # name every one.
                reached = covered and bool(entry.tags & restricted)
            else:
                reached = entry_reaches(
                    key, untagged=not entry.tags, tags=entry.tags, feature_tags=ftags
                )
            for via, group_id, role_id in _vias(entry, paths):
                if reached:
                    matched = entry.tags & (restricted or ftags.tags)
                    granted.append(_granted(via, group_id, role_id, "environment", sorted(matched)))
                else:
                    blocked.append(
                        {
                            "via": via,
                            "group": group_id,
                            "role": role_id,
                            "tags": sorted(entry.tags),
                            "why": "restricted_tag"
                            if not covered and bool(entry.tags & ftags.tags)
                            else "tag_mismatch",
                        }
                    )
    return {
        "permission": key,
        "allowed": decision,
        "reason": _reason(
            decision,
            policy,
            granted,
            blocked,
            key,
            restricted_uncovered=restricted_uncovered,
        ),
        "granted_by": granted,
        "blocked_by": blocked,
    }


def _granted(
    via: str, group_id: int | None, role_id: int | None, scope: str, tags_matched: list[int]
) -> dict[str, Any]:
    return {
        "via": via,
        "group": group_id,
        "role": role_id,
        "scope": scope,
        "tags_matched": tags_matched,
    }


def _reason(
    decision: bool,
    policy: Policy,
    granted: list[Any],
    blocked: list[Any],
    key: str,
    *,
    restricted_uncovered: bool,
) -> str:
    if not policy.is_member:
        return "Not a member of the organisation: no permission applies."
    if decision:
        first = granted[0]["via"].replace("_", " ")
        return f"Allowed: {key} is held through {first}" + (
            f" and {len(granted) - 1} more path(s)." if len(granted) > 1 else "."
        )
    if restricted_uncovered and blocked:
        return (
            f"Denied: the feature carries restricted tags that the entries holding {key}, "
            "taken together, do not all name."
        )
    if blocked:
        return f"Denied: every entry holding {key} is tagged with tags the feature does not carry."
    return f"Denied: no grant holds {key} on this environment."


def explain_all(
    principal: Principal, environment: Environment, feature: Feature
) -> list[dict[str, Any]]:
    """`explain` for every environment key, in catalogue order."""
    return [
        explain(principal, key, environment, feature) for key in KEYS_BY_LEVEL[Level.ENVIRONMENT]
    ]


def user_detailed_permissions(user: Any, scope: Project | Environment) -> dict[str, Any]:
    """Where each of a user's keys on a project or environment, and admin, come from
    (docs/API.md, "Permissions in responses")."""
    level, _, project_id, environment_id = _scope_ids(scope)
    policy = policy_for_scope(user, scope)
    admin = (
        policy.is_project_admin(project_id)
        if level == Level.PROJECT
        else policy.is_environment_admin(project_id, environment_id)
    )
    if not policy.is_member:
        return {
            "admin": False,
            "is_directly_granted": False,
            "derived_from": {"groups": [], "roles": []},
            "permissions": [],
        }
    paths = _paths(user, policy.organisation_id)
    scope_id = project_id if level == Level.PROJECT else environment_id

    def in_scope(entry: EntryRecord) -> bool:
        if level == Level.PROJECT:
            return entry.level == Level.PROJECT and entry.project_id == scope_id
        return entry.level == Level.ENVIRONMENT and entry.environment_id == scope_id

    def makes_admin(entry: EntryRecord) -> bool:
        """An admin grant on the scope, or, for an environment, on its project (which makes
        the user admin of every environment of it)."""
        if not entry.admin:
            return False
        return in_scope(entry) or (
            level == Level.ENVIRONMENT
            and entry.level == Level.PROJECT
            and entry.project_id == project_id
        )

    entries = [e for e in policy.entries if in_scope(e)]
    admin_entries = [e for e in policy.entries if makes_admin(e)]
    named = [*entries, *admin_entries]
    group_names = dict(
        UserGroup.objects.filter(
            pk__in={g for e in named for _, g, _ in _vias(e, paths) if g is not None}
        ).values_list("id", "name")
    )
    role_names = dict(
        Role.objects.filter(pk__in={e.role_id for e in named if e.role_id}).values_list(
            "id", "name"
        )
    )

    def derived(selected: list[EntryRecord], with_tags: bool) -> tuple[bool, dict[str, Any]]:
        direct = False
        groups: dict[int, dict[str, Any]] = {}
        roles: dict[int, dict[str, Any]] = {}
        for entry in selected:
            for via, group_id, role_id in _vias(entry, paths):
                if via == "user":
                    direct = True
                if group_id is not None:
                    groups[group_id] = {"id": group_id, "name": group_names.get(group_id, "")}
                if role_id is not None:
                    tags = sorted(entry.tags) if with_tags else []
                    known = roles.get(role_id)
                    merged = sorted(set(tags) | set(known["tags"])) if known else tags
                    roles[role_id] = {
                        "id": role_id,
                        "name": role_names.get(role_id, ""),
                        "tags": merged,
                    }
        return direct, {
            "groups": [groups[g] for g in sorted(groups)],
            "roles": [roles[r] for r in sorted(roles)],
        }

    admin_direct, admin_from = derived(admin_entries, with_tags=False)
    by_key: dict[str, list[EntryRecord]] = defaultdict(list)
    for entry in entries:
        if entry.key is not None:
            by_key[entry.key].append(entry)
    permissions = []
    for key in sorted(by_key):
        direct, from_ = derived(by_key[key], with_tags=True)
        permissions.append(
            {"permission_key": key, "is_directly_granted": direct, "derived_from": from_}
        )
    return {
        "admin": admin,
        "is_directly_granted": admin_direct,
        "derived_from": admin_from,
        "permissions": permissions,
    }
