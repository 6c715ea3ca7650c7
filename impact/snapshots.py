"""Snapshots: an organisation's permission-relevant state in a fixed number of queries, the
raw material of impact previews (docs/PERMISSIONS.md, impact previews)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db.models import FilteredRelation, Q
from django.utils import timezone

from environments.models import Environment
from features.models import Feature
from organisations.models import (
    MembershipRole,
    OrganisationAPIKey,
)
from permissions.engine import (
    FeatureTags,
    Holdings,
    Policy,
    group_memberships,
    holdings_from_rows,
    organisation_grant_rows,
    policy_from_holdings,
    roles_by_holder,
)
from permissions.engine.policy import non_member_policy
from projects.models import Project

PrincipalType = Literal["user", "api_key"]
PrincipalRef = tuple[PrincipalType, int]
# Who holds grants and roles: ("user" | "group" | "role" | "api_key", id).
Holder = tuple[str, int]
# A grant row as the engine reads it: (grant id, project id, environment id, admin, key,
# tag id, user id, group id, role id).
Row = tuple[Any, ...]
ORGANISATION_LEVEL = None  # the "project" of organisation-level keys and rows

# --------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """An organisation's permission-relevant state, read in 8 queries."""

    organisation_id: int
    member_roles: dict[int, str]
    # API key id -> (usable, is_admin, name)
    api_keys: dict[int, tuple[bool, bool, str]]
    groups_of: dict[int, frozenset[int]]  # user id -> the organisation's groups they are in
    roles_of: dict[Holder, frozenset[int]]  # ("user"|"group"|"api_key", id) -> role ids
    rows_of: dict[Holder, frozenset[Row]]  # ("user"|"group"|"role", id) -> grant rows
    projects: frozenset[int]
    environments: dict[int, int]  # environment id -> project id
    features: dict[int, dict[int, FeatureTags]]  # project id -> feature id -> tags
    _held: dict[Holder, dict[int | None, Holdings]] | None = None
    _members_of: dict[int, set[int]] | None = None
    _holders_of_role: dict[int, set[Holder]] | None = None
    _holders_by_project: dict[int | None, set[Holder]] | None = None
    _principals_of: dict[Holder, frozenset[PrincipalRef]] = field(default_factory=dict)

    # -- derived indexes, built on first use -------------------------------------------
    def members_of(self, group_id: int) -> set[int]:
        if self._members_of is None:
            self._members_of = defaultdict(set)
            for user_id, groups in self.groups_of.items():
                for group in groups:
                    self._members_of[group].add(user_id)
        return self._members_of.get(group_id, set())

    def holders_of_role(self, role_id: int) -> set[Holder]:
        if self._holders_of_role is None:
            self._holders_of_role = defaultdict(set)
            for holder, roles in self.roles_of.items():
                for role in roles:
                    self._holders_of_role[role].add(holder)
        return self._holders_of_role.get(role_id, set())

    def holders_on_project(self, project_id: int) -> set[Holder]:
        if self._holders_by_project is None:
            self._holders_by_project = defaultdict(set)
            for holder, rows in self.rows_of.items():
                for row in rows:
                    self._holders_by_project[row[1]].add(holder)
        return self._holders_by_project.get(project_id, set())

    def projects_of(self, holder: Holder) -> set[int | None]:
        return {row[1] for row in self.rows_of.get(holder, ())}

    def principals_of(self, holder: Holder) -> frozenset[PrincipalRef]:
        """The users and API keys a holder's grants reach (found once per holder)."""
        known = self._principals_of.get(holder)
        if known is not None:
            return known
        kind, holder_id = holder
        found: frozenset[PrincipalRef]
        if kind == "user":
            found = frozenset({("user", holder_id)})
        elif kind == "api_key":
            found = frozenset({("api_key", holder_id)})
        elif kind == "group":
            found = frozenset(("user", user_id) for user_id in self.members_of(holder_id))
        else:
            reached: set[PrincipalRef] = set()
            for role_holder in self.holders_of_role(holder_id):
                reached |= self.principals_of(role_holder)
            found = frozenset(reached)
        self._principals_of[holder] = found
        return found

    def roles_reaching(self, principal: PrincipalRef) -> set[int]:
        kind, principal_id = principal
        roles = set(self.roles_of.get((kind, principal_id), ()))
        if kind == "user":
            for group in self.groups_of.get(principal_id, ()):
                roles |= self.roles_of.get(("group", group), frozenset())
        return roles

    def policy_inputs(self, principal: PrincipalRef) -> tuple[bool, bool, frozenset[Holder]]:
        """(member, organisation admin, the holders whose grants apply): what a policy is
        built from, besides the holders' rows."""
        kind, principal_id = principal
        if kind == "user":
            role = self.member_roles.get(principal_id)
            is_member, is_admin = role is not None, role == MembershipRole.ADMIN
            holders: list[Holder] = [
                ("user", principal_id),
                *(("group", group) for group in self.groups_of.get(principal_id, ())),
            ]
        else:
            usable, admin, _ = self.api_keys.get(principal_id, (False, False, ""))
            is_member, is_admin = usable, usable and admin
            holders = []
        holders += [("role", role_id) for role_id in self.roles_reaching(principal)]
        return is_member, is_admin, frozenset(holders)

    def policy(
        self,
        inputs: tuple[bool, bool, frozenset[Holder]],
        projects: set[int | None],
    ) -> Policy:
        """The engine's policy built from `policy_inputs`, with the rows on `projects` only
        (decisions on other projects are not to be read from it). The same policy as
        `policy_from_rows` builds from those rows (`keep_entries=False`), made from what each
        holder holds per project, aggregated once per holder: the cost per principal follows
        its holders' distinct entries, not their rows one by one."""
        is_member, is_admin, holders = inputs
        if not is_member:
            return non_member_policy(self.organisation_id)
        held_by_holder = self._held_by_holder()
        return policy_from_holdings(
            self.organisation_id,
            is_organisation_admin=is_admin,
            holdings=[
                held
                for holder in holders
                if (by_project := held_by_holder.get(holder)) is not None
                for project in projects
                if (held := by_project.get(project)) is not None
            ],
        )

    def _held_by_holder(self) -> dict[Holder, dict[int | None, Holdings]]:
        """What each holder holds on each project (None: the organisation level), built once
        from the snapshot's rows."""
        if self._held is None:
            self._held = {}
            for holder, rows in self.rows_of.items():
                rows_by_project: dict[int | None, list[Row]] = defaultdict(list)
                for row in rows:
                    rows_by_project[row[1]].append(row)
                self._held[holder] = {
                    project: holdings_from_rows(on_project)
                    for project, on_project in rows_by_project.items()
                }
        return self._held


def features_of(where: Q) -> dict[int, dict[int, FeatureTags]]:
    """project id -> feature id -> tags, for the features matching `where` (one query)."""
    feature_tag_pairs: dict[int, dict[int, list[tuple[int, bool]]]] = defaultdict(dict)
    for feature_id, project_id, tag_id, restricted in Feature.objects.filter(where).values_list(
        "id", "project_id", "tags__id", "tags__is_restricted"
    ):
        pairs = feature_tag_pairs[project_id].setdefault(feature_id, [])
        if tag_id is not None:
            pairs.append((tag_id, bool(restricted)))
    return {
        project_id: {
            feature_id: FeatureTags(
                tags=frozenset(t for t, _ in pairs),
                restricted=frozenset(t for t, r in pairs if r),
            )
            for feature_id, pairs in by_feature.items()
        }
        for project_id, by_feature in feature_tag_pairs.items()
    }


def members_of(organisation_id: int, users: Q | None = None) -> dict[int, tuple[str, str]]:
    """user id -> (membership role in the organisation, email), of the users that meet
    `users` (a condition on the user) only, when given.
    An active superuser is an ADMIN member of every organisation, with or without a
    membership (docs/PERMISSIONS.md, "Superusers"), as the engine decides: one query."""
    rows = (
        get_user_model()
        .objects.annotate(
            membership=FilteredRelation(
                "organisation_memberships",
                condition=Q(organisation_memberships__organisation_id=organisation_id),
            )
        )
        .filter(Q(membership__isnull=False) | Q(is_superuser=True, is_active=True))
    )
    if users is not None:
        rows = rows.filter(users)
    return {
        user_id: (MembershipRole.ADMIN if superuser and active else role, email)
        for user_id, role, superuser, active, email in rows.values_list(
            "pk", "membership__role", "is_superuser", "is_active", "email"
        )
    }


def snapshot_take(organisation_id: int) -> Snapshot:
    """Read the organisation's permission-relevant state (8 queries, whatever its size)."""
    member_roles = {user_id: role for user_id, (role, _) in members_of(organisation_id).items()}
    now = timezone.now()
    api_keys = {
        key_id: (not revoked and (expires is None or expires >= now), is_admin, name)
        for key_id, revoked, expires, is_admin, name in OrganisationAPIKey.objects.filter(
            organisation_id=organisation_id
        ).values_list("id", "revoked", "expiry_date", "is_admin", "name")
    }
    groups_of = group_memberships(organisation_id)
    roles_of = roles_by_holder(organisation_id)
    rows_of = organisation_grant_rows(organisation_id)
    projects = frozenset(
        Project.objects.filter(organisation_id=organisation_id).values_list("id", flat=True)
    )
    environments = dict(
        Environment.objects.filter(project__organisation_id=organisation_id).values_list(
            "id", "project_id"
        )
    )
    features = features_of(Q(project__organisation_id=organisation_id))
    return Snapshot(
        organisation_id=organisation_id,
        member_roles=member_roles,
        api_keys=api_keys,
        groups_of={user: frozenset(groups) for user, groups in groups_of.items()},
        roles_of={holder: frozenset(roles) for holder, roles in roles_of.items()},
        rows_of={holder: frozenset(rows) for holder, rows in rows_of.items()},
        projects=projects,
        environments=environments,
        features=features,
    )
