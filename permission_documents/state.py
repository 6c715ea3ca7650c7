"""Permissions as code: the internal model. The organisation's existing objects (`World`)
and its state as a document sees it (`State`), read from the database by `_current_state`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.auth import get_user_model

from environments.models import Environment
from organisations import models
from permission_documents.base import DocumentInvalid
from permissions.models import Grant
from projects.models import Project, Tag

User = get_user_model()


# --------------------------------------------------------------------------------------
# Internal model: the state of an organisation, as the document sees it
# --------------------------------------------------------------------------------------

# ("user", user id) | ("group", folded name) | ("role", folded name)
PrincipalRef = tuple[str, Any]
# (project id, environment id): (None, None) is the organisation
ScopeRef = tuple[int | None, int | None]
GrantRef = tuple[PrincipalRef, ScopeRef]
# (role folded name, "user" | "group" | "api_key", user id | group folded name | key id)
AssignmentRef = tuple[str, str, Any]

ORGANISATION_SCOPE: ScopeRef = (None, None)


def _fold(name: str) -> str:
    """Names compare case-insensitively, as the database's unique constraints on
    `Lower(name)` do (not `casefold`, which would also equate "ß" and "ss")."""
    return name.lower()


def _name_key(name: str) -> tuple[str, str]:
    """Sort key for names: case-insensitively, then exactly (a stable total order)."""
    return (name.lower(), name)


@dataclass(frozen=True)
class GrantSpec:
    admin: bool
    # (key, tag ids), sorted by key: comparable and hashable
    entries: tuple[tuple[str, frozenset[int]], ...]

    @property
    def is_empty(self) -> bool:
        return not self.admin and not self.entries

    @classmethod
    def of(cls, admin: bool, entries: Mapping[str, Iterable[int]]) -> GrantSpec:
        return cls(
            admin=admin, entries=tuple(sorted((k, frozenset(v)) for k, v in entries.items()))
        )


@dataclass
class State:
    members: dict[int, str] = field(default_factory=dict)  # user id -> MembershipRole
    groups: dict[str, tuple[str, frozenset[int]]] = field(default_factory=dict)  # -> (name, users)
    roles: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (name, description)
    assignments: set[AssignmentRef] = field(default_factory=set)
    grants: dict[GrantRef, GrantSpec] = field(default_factory=dict)  # non-empty grants only
    restricted: set[int] = field(default_factory=set)  # tag ids


@dataclass
class World:
    """The organisation's existing objects, loaded once, with lookups by name and id."""

    organisation: models.Organisation
    projects: dict[int, Project]
    environments: dict[int, Environment]
    tags: dict[int, Tag]
    groups: dict[str, models.UserGroup]  # folded name -> group
    roles: dict[str, models.Role]  # folded name -> role
    api_keys: dict[int, models.OrganisationAPIKey]
    memberships: dict[int, models.OrganisationMembership]  # user id -> membership
    users: dict[int, Any] = field(default_factory=dict)  # user id -> user (members and listed)
    # objects behind the current state, for the services
    grant_objects: dict[GrantRef, Grant] = field(default_factory=dict)  # empty grants too
    assignment_objects: dict[AssignmentRef, models.RoleAssignment] = field(default_factory=dict)

    @classmethod
    def load(cls, organisation: models.Organisation) -> World:
        projects = {p.pk: p for p in Project.objects.filter(organisation=organisation)}
        return cls(
            organisation=organisation,
            projects=projects,
            environments={
                e.pk: e
                for e in Environment.objects.filter(project__organisation=organisation)
                .select_related("project__organisation")
                .order_by("id")
            },
            tags={
                t.pk: t
                for t in Tag.objects.filter(project__organisation=organisation)
                .select_related("project__organisation")
                .order_by("id")
            },
            groups=_unique_names(
                "groups", models.UserGroup.objects.filter(organisation=organisation)
            ),
            roles=_unique_names("roles", models.Role.objects.filter(organisation=organisation)),
            api_keys={
                k.pk: k for k in models.OrganisationAPIKey.objects.filter(organisation=organisation)
            },
            memberships={
                m.user_id: m
                for m in models.OrganisationMembership.objects.filter(organisation=organisation)
            },
        )

    # -- names -----------------------------------------------------------------------------
    def email(self, user_id: int) -> str:
        return str(getattr(self.users[user_id], "email", "") or "")

    def project_name(self, project_id: int) -> str:
        return self.projects[project_id].name

    def tag_labels(self, tag_ids: Iterable[int]) -> list[str]:
        return sorted((self.tags[t].label for t in tag_ids), key=_name_key)

    def scope_label(self, scope: ScopeRef) -> str:
        project_id, environment_id = scope
        if project_id is None:
            return "organisation"
        if environment_id is None:
            return f"project {_q(self.project_name(project_id))}"
        return (
            f"environment {_q(self.project_name(project_id))}/"
            f"{_q(self.environments[environment_id].name)}"
        )

    def scope_sort_key(self, scope: ScopeRef) -> tuple[Any, ...]:
        project_id, environment_id = scope
        level = 0 if project_id is None else 1 if environment_id is None else 2
        project = _name_key(self.project_name(project_id)) if project_id else ("", "")
        env = _name_key(self.environments[environment_id].name) if environment_id else ("", "")
        return (level, project, env, project_id or 0, environment_id or 0)


N = TypeVar("N", models.UserGroup, models.Role)


def _unique_names(section: str, objects: Iterable[N]) -> dict[str, N]:
    """Groups or roles by folded name. The database keeps those names unique under its own
    `LOWER`, which may differ from Python's for non-ASCII letters (SQLite lowers ASCII
    only): two names the document cannot tell apart are refused, never merged."""
    by_name: dict[str, N] = {}
    for obj in objects:
        other = by_name.setdefault(_fold(obj.name), obj)
        if other is not obj:
            raise DocumentInvalid(
                {
                    section: [
                        f"{_q(other.name)} and {_q(obj.name)} differ only in case: a document "
                        "cannot tell them apart; rename one of them first."
                    ]
                }
            )
    return by_name


def _q(name: str) -> str:
    """A name in a change's `name`: double-quoted, like JSON."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _load_users(user_ids: Iterable[int]) -> dict[int, Any]:
    return {u.pk: u for u in User.objects.filter(pk__in=list(user_ids))}


def _current_state(world: World, user_ids: set[int]) -> State:
    """The organisation's state as a document sees it. Users other than `user_ids` (the
    members, plus the users a document lists) are invisible: what only they hold is
    neither exported nor changed (membership gates every decision anyway)."""
    state = State()
    organisation = world.organisation
    state.members = {uid: m.role for uid, m in world.memberships.items() if uid in user_ids}
    group_ids = {g.pk: lname for lname, g in world.groups.items()}
    role_ids = {r.pk: lname for lname, r in world.roles.items()}
    members_of: dict[str, set[int]] = defaultdict(set)
    for group_id, user_id in models.UserGroup.users.through.objects.filter(
        usergroup__organisation=organisation, user_id__in=list(user_ids)
    ).values_list("usergroup_id", "user_id"):
        members_of[group_ids[group_id]].add(user_id)
    state.groups = {
        lname: (g.name, frozenset(members_of.get(lname, ()))) for lname, g in world.groups.items()
    }
    state.roles = {lname: (r.name, r.description) for lname, r in world.roles.items()}

    for assignment in models.RoleAssignment.objects.filter(role__organisation=organisation):
        role = role_ids.get(assignment.role_id)
        ref: AssignmentRef | None = None
        if role is None:
            continue
        if assignment.user_id is not None and assignment.user_id in user_ids:
            ref = (role, "user", assignment.user_id)
        elif assignment.group_id is not None and assignment.group_id in group_ids:
            ref = (role, "group", group_ids[assignment.group_id])
        elif assignment.api_key_id is not None and assignment.api_key_id in world.api_keys:
            ref = (role, "api_key", assignment.api_key_id)
        if ref is not None:
            state.assignments.add(ref)
            world.assignment_objects[ref] = assignment

    grants = Grant.objects.filter(organisation=organisation).prefetch_related("entries__entry_tags")
    for grant in grants:
        principal: PrincipalRef | None = None
        if grant.user_id is not None and grant.user_id in user_ids:
            principal = ("user", grant.user_id)
        elif grant.group_id is not None and grant.group_id in group_ids:
            principal = ("group", group_ids[grant.group_id])
        elif grant.role_id is not None and grant.role_id in role_ids:
            principal = ("role", role_ids[grant.role_id])
        if principal is None:
            continue
        if grant.project_id is not None and grant.project_id not in world.projects:
            continue
        if grant.environment_id is not None and grant.environment_id not in world.environments:
            continue
        ref_g: GrantRef = (principal, (grant.project_id, grant.environment_id))
        spec = GrantSpec.of(
            grant.admin,
            {e.key: {et.tag_id for et in e.entry_tags.all()} for e in grant.entries.all()},
        )
        world.grant_objects[ref_g] = grant
        if not spec.is_empty:
            state.grants[ref_g] = spec
    state.restricted = {t.pk for t in world.tags.values() if t.is_restricted}
    return state
