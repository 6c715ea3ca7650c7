"""Permissions as code (API.md "Permissions as code and impact preview").

The *permissions document* of an organisation names its members, groups, roles, role
assignments, grants and restricted tags, by names, in a stable order. Three operations:

    permissions_document_export(*, organisation)                 -> dict   (a selector)
    permissions_document_plan(*, organisation, document, actor)  -> Plan   (nothing saved)
    permissions_document_apply(*, organisation, document, actor) -> Plan   (one transaction)

Plan and apply go through the same three steps:

1. **Read** the document: check its shape and resolve every name (users by email,
   projects, environments, tags, groups, roles, API keys), collecting *every* error keyed by
   its path in the document (`roles[2].environments[0].permissions.VIEW_ENVIRONMENT`).
   Any error → `DocumentInvalid` (a Django `ValidationError` of `{path: [messages]}`).
2. **Diff** the desired state against the organisation's current state: an ordered list of
   operations, each a `Change` (what the plan shows) and a call of an existing service.
   Deleting a member, a group or a role cascades in its service; the diff accounts for it,
   so what a cascade removes is not listed (nor called) a second time.
3. **Execute** the operations through the services (validation, audit with the actor), under
   `impact.impact_preview` (plan: rolled back) or `impact.impact_apply` (apply). A service
   error comes back as a `DocumentInvalid` keyed by the path of the item being applied, and
   the transaction rolls back.

A document equal to the current state gives no operation: no service call, no audit entry.
The semantics chosen are written down in docs/PERMISSIONS_AS_CODE.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from audit.services import Actor
from environments.models import Environment
from organisations import services as organisation_services
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions import impact
from permissions import services as grant_services
from permissions.catalogue import CATALOGUE, Level
from permissions.models import Grant
from projects import services as project_services
from projects.models import Project, Tag
from tagwarden.errors import DomainError

User = get_user_model()

T = TypeVar("T")

#: The longest group or role name (the models' `max_length`).
NAME_MAX_LENGTH = 200

TOP_LEVEL_FIELDS = (
    "organisation",
    "members",
    "groups",
    "roles",
    "users",
    "group_grants",
    "restricted_tags",
)


# --------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------


class DocumentInvalid(DjangoValidationError):
    """An invalid document, or one the services refused: `errors` maps paths in the
    document to messages. A `ValidationError`, so the API answers 400 with that dict."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {path: list(msgs) for path, msgs in errors.items()}
        super().__init__(self.errors)


@dataclass(frozen=True)
class Change:
    """One change a document makes. `before`/`after` are in document terms (names)."""

    action: str  # create | update | delete
    object_type: str  # organisation_membership, user_group, role, role_assignment, grant, tag
    name: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "object_type": self.object_type,
            "name": self.name,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class Plan:
    """The changes a document makes (in the order they are applied) and their impact."""

    changes: tuple[Change, ...]
    impact: impact.Impact

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [change.as_dict() for change in self.changes],
            "impact": self.impact.as_dict(),
        }


# --------------------------------------------------------------------------------------
# YAML (the API's `?format=yaml` and the commands' .yaml files)
# --------------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few aliases nested in each other expand to
    an exponentially large document ("billion laughs"); a permissions document needs none."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def yaml_load(text: str) -> Any:
    """Parse a YAML document (safe types only, no aliases); `yaml.YAMLError` when invalid."""
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: safe types only


def yaml_dump(data: Any) -> str:
    """JSON-compatible data as block YAML, keys in the order given (documents come sorted).
    Long strings stay on one line, so that editing one word changes one line of a diff."""
    return yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000
    )


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
KIND_ORDER = {"user": 0, "group": 1, "api_key": 2}


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

    organisation: Organisation
    projects: dict[int, Project]
    environments: dict[int, Environment]
    tags: dict[int, Tag]
    groups: dict[str, UserGroup]  # folded name -> group
    roles: dict[str, Role]  # folded name -> role
    api_keys: dict[int, OrganisationAPIKey]
    memberships: dict[int, OrganisationMembership]  # user id -> membership
    users: dict[int, Any] = field(default_factory=dict)  # user id -> user (members and listed)
    # objects behind the current state, for the services
    grant_objects: dict[GrantRef, Grant] = field(default_factory=dict)  # empty grants too
    assignment_objects: dict[AssignmentRef, RoleAssignment] = field(default_factory=dict)

    @classmethod
    def load(cls, organisation: Organisation) -> World:
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
            groups=_unique_names("groups", UserGroup.objects.filter(organisation=organisation)),
            roles=_unique_names("roles", Role.objects.filter(organisation=organisation)),
            api_keys={
                k.pk: k for k in OrganisationAPIKey.objects.filter(organisation=organisation)
            },
            memberships={
                m.user_id: m
                for m in OrganisationMembership.objects.filter(organisation=organisation)
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


N = TypeVar("N", UserGroup, Role)


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
    for group_id, user_id in UserGroup.users.through.objects.filter(
        usergroup__organisation=organisation, user_id__in=list(user_ids)
    ).values_list("usergroup_id", "user_id"):
        members_of[group_ids[group_id]].add(user_id)
    state.groups = {
        lname: (g.name, frozenset(members_of.get(lname, ()))) for lname, g in world.groups.items()
    }
    state.roles = {lname: (r.name, r.description) for lname, r in world.roles.items()}

    for assignment in RoleAssignment.objects.filter(role__organisation=organisation):
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


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def _sorted_keys(value: Any) -> Any:
    """Every dict with its keys in sorted order (JSON and YAML render them as built)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _grant_lists(
    world: World, state: State, principal: PrincipalRef
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(organisation keys, project grants, environment grants) of one principal."""
    organisation_keys: list[str] = []
    projects: list[tuple[Any, dict[str, Any]]] = []
    environments: list[tuple[Any, dict[str, Any]]] = []
    for (ref_principal, scope), spec in state.grants.items():
        if ref_principal != principal:
            continue
        project_id, environment_id = scope
        permissions = {key: world.tag_labels(tags) for key, tags in spec.entries}
        if project_id is None:
            organisation_keys = sorted(permissions)
        elif environment_id is None:
            projects.append(
                (
                    world.scope_sort_key(scope),
                    {
                        "project": world.project_name(project_id),
                        "admin": spec.admin,
                        "permissions": permissions,
                    },
                )
            )
        else:
            environments.append(
                (
                    world.scope_sort_key(scope),
                    {
                        "project": world.project_name(project_id),
                        "environment": world.environments[environment_id].name,
                        "admin": spec.admin,
                        "permissions": permissions,
                    },
                )
            )
    return (
        organisation_keys,
        [item for _, item in sorted(projects, key=lambda p: p[0])],
        [item for _, item in sorted(environments, key=lambda e: e[0])],
    )


def _document_of(world: World, state: State) -> dict[str, Any]:
    emails = {uid: world.email(uid) for uid in state.members}
    by_email = sorted(state.members, key=lambda uid: (*_name_key(emails[uid]), uid))
    groups = sorted(state.groups.items(), key=lambda item: _name_key(item[1][0]))
    roles = sorted(state.roles.items(), key=lambda item: _name_key(item[1][0]))
    group_names = {lname: name for lname, (name, _) in state.groups.items()}
    role_names = {lname: name for lname, (name, _) in state.roles.items()}

    def assigned(role: str, kind: str) -> list[Any]:
        return [ref for r, k, ref in state.assignments if r == role and k == kind]

    def sorted_emails(user_ids: Iterable[int]) -> list[str]:
        return sorted((emails[u] for u in user_ids), key=_name_key)

    document_roles: list[dict[str, Any]] = []
    for lname, (name, description) in roles:
        organisation_keys, projects, environments = _grant_lists(world, state, ("role", lname))
        document_roles.append(
            {
                "name": name,
                "description": description,
                "users": sorted_emails(assigned(lname, "user")),
                "groups": sorted(
                    [str(group_names[g]) for g in assigned(lname, "group")], key=_name_key
                ),
                "api_keys": sorted(
                    [str(world.api_keys[k].name) for k in assigned(lname, "api_key")],
                    key=_name_key,
                ),
                "organisation": organisation_keys,
                "projects": projects,
                "environments": environments,
            }
        )

    users = []
    for uid in by_email:
        organisation_keys, projects, environments = _grant_lists(world, state, ("user", uid))
        if organisation_keys or projects or environments:
            users.append(
                {
                    "email": emails[uid],
                    "organisation": organisation_keys,
                    "projects": projects,
                    "environments": environments,
                }
            )
    group_grants = []
    for lname, (name, _) in groups:
        organisation_keys, projects, environments = _grant_lists(world, state, ("group", lname))
        if organisation_keys or projects or environments:
            group_grants.append(
                {
                    "group": name,
                    "organisation": organisation_keys,
                    "projects": projects,
                    "environments": environments,
                }
            )

    restricted_by_project: dict[int, list[str]] = defaultdict(list)
    for tag_id in state.restricted:
        tag = world.tags[tag_id]
        restricted_by_project[tag.project_id].append(tag.label)
    restricted_tags = [
        {"project": world.project_name(pid), "tags": sorted(labels, key=_name_key)}
        for pid, labels in sorted(
            restricted_by_project.items(),
            key=lambda item: (*_name_key(world.project_name(item[0])), item[0]),
        )
    ]

    return _sorted_keys(
        {
            "organisation": world.organisation.name,
            "members": [{"email": emails[uid], "role": state.members[uid]} for uid in by_email],
            "groups": [
                {
                    "name": name,
                    "members": sorted_emails(users_),
                    "roles": sorted(
                        (
                            role_names[r]
                            for r, kind, ref in state.assignments
                            if kind == "group" and ref == lname
                        ),
                        key=_name_key,
                    ),
                }
                for lname, (name, users_) in groups
            ],
            "roles": document_roles,
            "users": users,
            "group_grants": group_grants,
            "restricted_tags": restricted_tags,
        }
    )


def permissions_document_export(*, organisation: Organisation) -> dict[str, Any]:
    """The organisation's permissions document: every list sorted, every dict's keys
    sorted; only non-empty grants (a grant without `admin` and without keys holds nothing)."""
    world = World.load(organisation)
    member_ids = set(world.memberships)
    world.users = _load_users(member_ids)
    state = _current_state(world, member_ids)
    return _document_of(world, state)


# --------------------------------------------------------------------------------------
# Reading a document: shape, then names. Every error is collected, keyed by its path.
# --------------------------------------------------------------------------------------


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class _Errors:
    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        messages = self.by_path.setdefault(path, [])
        if message not in messages:
            messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.by_path)


def _bad_characters(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


class _Reader:
    """Shape checks with path-keyed errors. Each method returns None for a bad value."""

    def __init__(self, errors: _Errors) -> None:
        self.errors = errors

    def obj(
        self, value: Any, path: str, *, required: Sequence[str], optional: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.errors.add(path or "non_field_errors", "Expected an object.")
            return None
        allowed = {*required, *optional}
        for key in value:
            if key not in allowed:
                self.errors.add(_join(path, key), "Unknown field.")
        for key in required:
            if key not in value:
                self.errors.add(_join(path, key), "This field is required.")
        return value

    def string(
        self, value: Any, path: str, *, blank: bool = False, max_length: int | None = None
    ) -> str | None:
        if not isinstance(value, str):
            self.errors.add(path, "Expected a string.")
            return None
        if _bad_characters(value):
            self.errors.add(path, "Null characters and lone surrogates are not allowed.")
            return None
        if not blank and not value.strip():
            self.errors.add(path, "This field may not be blank.")
            return None
        if max_length is not None and len(value) > max_length:
            self.errors.add(path, f"Ensure this field has no more than {max_length} characters.")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.errors.add(path, "Expected true or false.")
            return None
        return value

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """(path, item) of each element of a list."""
        if not isinstance(value, list):
            self.errors.add(path, "Expected a list.")
            return []
        return [(_join(path, i), item) for i, item in enumerate(value)]

    def strings(self, value: Any, path: str) -> list[tuple[str, str]]:
        """(path, string) of each element of a list of strings; a string listed twice
        (case-insensitively) is an error at its second place."""
        seen: dict[str, str] = {}
        result = []
        for item_path, item in self.items(value, path):
            text = self.string(item, item_path)
            if text is None:
                continue
            first = seen.get(_fold(text))
            if first is not None:
                self.errors.add(item_path, f"Listed more than once (also at {first}).")
                continue
            seen[_fold(text)] = item_path
            result.append((item_path, text))
        return result


@dataclass
class _Named:
    """Finds existing objects by name: case-insensitively; among several, the one whose
    name matches exactly; several still → ambiguous."""

    kind: str
    by_fold: dict[str, list[Any]]

    @classmethod
    def of(cls, kind: str, objects: Iterable[T], name_of: Callable[[T], str]) -> _Named:
        by_fold: dict[str, list[Any]] = defaultdict(list)
        for obj in objects:
            by_fold[_fold(name_of(obj))].append((name_of(obj), obj))
        return cls(kind, by_fold)

    def find(self, name: str, path: str, errors: _Errors, where: str = "") -> Any | None:
        candidates = self.by_fold.get(_fold(name), [])
        if len(candidates) > 1:
            exact = [obj for n, obj in candidates if n == name]
            if len(exact) == 1:
                return exact[0]
            errors.add(
                path,
                f"{len(candidates)} {self.kind}s{where} are named {_q(name)}: the document "
                "cannot tell them apart; rename one of them first.",
            )
            return None
        if not candidates:
            errors.add(path, f"No {self.kind}{where} is named {_q(name)}.")
            return None
        return candidates[0][1]


@dataclass
class _Desired:
    """The state a document asks for, with the path of each item (for errors)."""

    state: State = field(default_factory=State)
    member_paths: dict[int, str] = field(default_factory=dict)
    group_paths: dict[str, str] = field(default_factory=dict)
    role_paths: dict[str, str] = field(default_factory=dict)
    assignment_paths: dict[AssignmentRef, str] = field(default_factory=dict)
    grant_paths: dict[GrantRef, str] = field(default_factory=dict)
    # where each principal's grant list lives: ("user", id) -> "users[3]"
    grant_owner_paths: dict[PrincipalRef, str] = field(default_factory=dict)
    restricted_paths: dict[int, str] = field(default_factory=dict)
    project_restricted_paths: dict[int, str] = field(default_factory=dict)


class _DocumentReader:
    """Reads a document against the organisation's `world` into a `_Desired` state."""

    def __init__(self, world: World, actor: Actor) -> None:
        self.world = world
        self.actor = actor
        self.errors = _Errors()
        self.read = _Reader(self.errors)
        self.desired = _Desired()
        self.projects = _Named.of("project", world.projects.values(), lambda p: p.name)
        self.environments: dict[int, _Named] = {
            pid: _Named.of(
                "environment",
                (e for e in world.environments.values() if e.project_id == pid),
                lambda e: e.name,
            )
            for pid in world.projects
        }
        self.tags: dict[int, _Named] = {
            pid: _Named.of(
                "tag", (t for t in world.tags.values() if t.project_id == pid), lambda t: t.label
            )
            for pid in world.projects
        }
        self.api_keys = _Named.of("API key", world.api_keys.values(), lambda k: k.name)
        self.users_by_email: dict[str, list[Any]] = {}
        # listed names, for cross-references: folded name -> path where defined
        self.doc_groups: dict[str, str] = {}
        self.doc_roles: dict[str, str] = {}
        # (group fold, role fold) -> path, from both sides of the assignment
        self.group_side: dict[tuple[str, str], str] = {}
        self.role_side: dict[tuple[str, str], str] = {}

    # -- users -------------------------------------------------------------------------------
    def _load_users(self, document: dict[str, Any]) -> None:
        """Every user a document names by email, in one query."""
        emails: set[str] = set()
        written: set[str] = set()

        def collect(value: Any) -> None:
            if isinstance(value, str) and not _bad_characters(value):
                emails.add(_fold(value))
                written.add(value)

        def items(section: str) -> list[Any]:
            value = document.get(section)
            return (
                [item for item in value if isinstance(item, dict)]
                if isinstance(value, list)
                else []
            )

        for section in ("members", "users"):
            for item in items(section):
                collect(item.get("email"))
        for section, subfield in (("groups", "members"), ("roles", "users")):
            for item in items(section):
                if isinstance(item.get(subfield), list):
                    for value in item[subfield]:
                        collect(value)
        emails.discard("")
        found: dict[str, list[Any]] = defaultdict(list)
        if emails:
            # SQLite's LOWER folds ASCII only: the emails as written match too, and Python
            # groups what the database returned.
            for user in (
                User.objects.annotate(email_folded=Lower("email"))
                .filter(Q(email_folded__in=sorted(emails)) | Q(email__in=sorted(written)))
                .order_by("pk")
            ):
                found[_fold(user.email)].append(user)
        self.users_by_email = found

    def user(self, email: str, path: str) -> Any | None:
        candidates = self.users_by_email.get(_fold(email), [])
        if len(candidates) > 1:
            members = [u for u in candidates if u.pk in self.world.memberships]
            if len(members) == 1:
                return members[0]
            self.errors.add(
                path,
                f"{len(candidates)} users have the email {_q(email)}: the document cannot "
                "tell them apart.",
            )
            return None
        if not candidates:
            self.errors.add(path, f"No user has the email {_q(email)}.")
            return None
        return candidates[0]

    def member(self, email: str, path: str) -> int | None:
        """A user the document lists as a member."""
        user = self.user(email, path)
        if user is None:
            return None
        if user.pk not in self.desired.state.members:
            self.errors.add(path, f"{_q(email)} is not listed in `members`.")
            return None
        return int(user.pk)

    # -- the document ----------------------------------------------------------------------------
    def run(self, document: Any) -> _Desired:
        top = self.read.obj(document, "", required=TOP_LEVEL_FIELDS)
        if top is None:
            raise DocumentInvalid(self.errors.by_path)
        self._load_users(top)
        if "organisation" in top:
            self._organisation(top["organisation"])
        self._members(top.get("members", []))
        self._groups(top.get("groups", []))
        self._roles(top.get("roles", []))
        self._group_role_agreement()
        self._principal_grants(top.get("users", []), "users", "email")
        self._principal_grants(top.get("group_grants", []), "group_grants", "group")
        self._restricted(top.get("restricted_tags", []))
        if self.errors:
            raise DocumentInvalid(self.errors.by_path)
        self._lockout()
        if self.errors:
            raise DocumentInvalid(self.errors.by_path)
        return self.desired

    def _organisation(self, value: Any) -> None:
        name = self.read.string(value, "organisation")
        if name is not None and name != self.world.organisation.name:
            self.errors.add(
                "organisation",
                f"This document is for organisation {_q(name)}, not "
                f"{_q(self.world.organisation.name)}; change this field to apply it here.",
            )

    def _members(self, value: Any) -> None:
        seen: dict[int, str] = {}
        for path, item in self.read.items(value, "members"):
            obj = self.read.obj(item, path, required=("email",), optional=("role",))
            if obj is None or "email" not in obj:
                continue
            email = self.read.string(obj["email"], _join(path, "email"))
            role: str | None = MembershipRole.USER
            if "role" in obj:
                role = obj["role"]
                if role not in MembershipRole.values:
                    self.errors.add(
                        _join(path, "role"), f"Must be one of {', '.join(MembershipRole.values)}."
                    )
                    role = None
            if email is None:
                continue
            user = self.user(email, _join(path, "email"))
            if user is None or role is None:
                continue
            if user.pk in seen:
                self.errors.add(
                    _join(path, "email"), f"Listed more than once (also at {seen[user.pk]})."
                )
                continue
            seen[user.pk] = path
            self.world.users[user.pk] = user
            self.desired.state.members[user.pk] = role
            self.desired.member_paths[user.pk] = path

    def _groups(self, value: Any) -> None:
        for path, item in self.read.items(value, "groups"):
            obj = self.read.obj(item, path, required=("name",), optional=("members", "roles"))
            if obj is None or "name" not in obj:
                continue
            name = self.read.string(obj["name"], _join(path, "name"), max_length=NAME_MAX_LENGTH)
            members = [
                (p, self.member(email, p))
                for p, email in self.read.strings(obj.get("members", []), _join(path, "members"))
            ]
            roles = self.read.strings(obj.get("roles", []), _join(path, "roles"))
            if name is None:
                continue
            lname = _fold(name)
            if lname in self.doc_groups:
                self.errors.add(
                    _join(path, "name"),
                    f"Listed more than once (also at {self.doc_groups[lname]}).",
                )
                continue
            self.doc_groups[lname] = path
            self.desired.state.groups[lname] = (
                name,
                frozenset(uid for _, uid in members if uid is not None),
            )
            self.desired.group_paths[lname] = path
            for role_path, role in roles:
                self.group_side[(lname, _fold(role))] = role_path

    def _roles(self, value: Any) -> None:
        for path, item in self.read.items(value, "roles"):
            obj = self.read.obj(
                item,
                path,
                required=("name",),
                optional=(
                    "description",
                    "users",
                    "groups",
                    "api_keys",
                    "organisation",
                    "projects",
                    "environments",
                ),
            )
            if obj is None or "name" not in obj:
                continue
            name = self.read.string(obj["name"], _join(path, "name"), max_length=NAME_MAX_LENGTH)
            description = self.read.string(
                obj.get("description", ""), _join(path, "description"), blank=True
            )
            lname = _fold(name) if name is not None else None
            if lname is not None and lname in self.doc_roles:
                self.errors.add(
                    _join(path, "name"), f"Listed more than once (also at {self.doc_roles[lname]})."
                )
                lname = None
            if lname is not None and name is not None:
                self.doc_roles[lname] = path
                self.desired.state.roles[lname] = (name, description or "")
                self.desired.role_paths[lname] = path
            users_path = _join(path, "users")
            for p, email in self.read.strings(obj.get("users", []), users_path):
                uid = self.member(email, p)
                if uid is not None and lname is not None:
                    self._assign((lname, "user", uid), p)
            for p, group in self.read.strings(obj.get("groups", []), _join(path, "groups")):
                if _fold(group) not in self.doc_groups:
                    self.errors.add(p, f"Group {_q(group)} is not listed in `groups`.")
                elif lname is not None:
                    self.role_side[(_fold(group), lname)] = p
                    self._assign((lname, "group", _fold(group)), p)
            for p, key_name in self.read.strings(obj.get("api_keys", []), _join(path, "api_keys")):
                api_key = self.api_keys.find(key_name, p, self.errors)
                if api_key is not None and lname is not None:
                    self._assign((lname, "api_key", api_key.pk), p)
            self._grants(obj, path, ("role", lname) if lname is not None else None, is_role=True)

    def _assign(self, ref: AssignmentRef, path: str) -> None:
        self.desired.state.assignments.add(ref)
        self.desired.assignment_paths[ref] = path

    def _group_role_agreement(self) -> None:
        """A group's roles are listed on both sides (`groups[].roles`, `roles[].groups`);
        the two must agree, so that an edit on one side only is not silently ignored."""
        for (group, role), path in self.group_side.items():
            if role not in self.doc_roles:
                self.errors.add(path, "This role is not listed in `roles`.")
            elif (group, role) not in self.role_side:
                self.errors.add(
                    path,
                    f"{self.doc_roles[role]}.groups does not list this group: list the "
                    "assignment on both sides or on neither.",
                )
        for (group, role), path in self.role_side.items():
            if (group, role) not in self.group_side:
                self.errors.add(
                    path,
                    f"{self.doc_groups[group]}.roles does not list this role: list the "
                    "assignment on both sides or on neither.",
                )

    def _principal_grants(self, value: Any, section: str, field_name: str) -> None:
        seen: dict[PrincipalRef, str] = {}
        for path, item in self.read.items(value, section):
            obj = self.read.obj(
                item,
                path,
                required=(field_name,),
                optional=("organisation", "projects", "environments"),
            )
            if obj is None or field_name not in obj:
                continue
            name_path = _join(path, field_name)
            name = self.read.string(obj[field_name], name_path)
            principal: PrincipalRef | None = None
            if name is not None and field_name == "email":
                uid = self.member(name, name_path)
                principal = ("user", uid) if uid is not None else None
            elif name is not None:
                if _fold(name) not in self.doc_groups:
                    self.errors.add(name_path, f"Group {_q(name)} is not listed in `groups`.")
                else:
                    principal = ("group", _fold(name))
            if principal is not None and principal in seen:
                self.errors.add(name_path, f"Listed more than once (also at {seen[principal]}).")
                principal = None
            if principal is not None:
                seen[principal] = path
            self._grants(obj, path, principal, is_role=False)

    # -- grants --------------------------------------------------------------------------------
    def _grants(
        self, obj: dict[str, Any], path: str, principal: PrincipalRef | None, *, is_role: bool
    ) -> None:
        """`organisation`, `projects` and `environments` of a role, user or group entry
        (`principal` None: an entry in error, still checked for its own errors)."""
        if principal is not None:
            self.desired.grant_owner_paths[principal] = path
        keys_path = _join(path, "organisation")
        keys = self.read.strings(obj.get("organisation", []), keys_path)
        entries: dict[str, frozenset[int]] = {}
        for key_path, key in keys:
            if self._entry_ok(Level.ORGANISATION, None, key, (), key_path, tags_allowed=False):
                entries[key] = frozenset()
        if principal is not None and entries:
            self._set_grant(principal, ORGANISATION_SCOPE, GrantSpec.of(False, entries), keys_path)

        seen: dict[ScopeRef, str] = {}
        for level, section in ((Level.PROJECT, "projects"), (Level.ENVIRONMENT, "environments")):
            for item_path, item in self.read.items(obj.get(section, []), _join(path, section)):
                scope_fields = (
                    ("project",) if level == Level.PROJECT else ("project", "environment")
                )
                grant = self.read.obj(
                    item, item_path, required=scope_fields, optional=("admin", "permissions")
                )
                if grant is None:
                    continue
                scope = self._scope(grant, item_path, level)
                admin = self.read.boolean(grant.get("admin", False), _join(item_path, "admin"))
                resolved = self._permissions(
                    grant.get("permissions", {}),
                    _join(item_path, "permissions"),
                    level,
                    scope[0] if scope else None,
                    tags_allowed=is_role,
                )
                if scope is None or admin is None or resolved is None:
                    continue
                last = scope_fields[-1]
                if scope in seen:
                    self.errors.add(
                        _join(item_path, last), f"Listed more than once (also at {seen[scope]})."
                    )
                    continue
                seen[scope] = item_path
                spec = GrantSpec.of(admin, resolved)
                if principal is not None and not spec.is_empty:
                    self._set_grant(principal, scope, spec, item_path)

    def _set_grant(
        self, principal: PrincipalRef, scope: ScopeRef, spec: GrantSpec, path: str
    ) -> None:
        self.desired.state.grants[(principal, scope)] = spec
        self.desired.grant_paths[(principal, scope)] = path

    def _scope(self, grant: dict[str, Any], path: str, level: Level) -> ScopeRef | None:
        if "project" not in grant:
            return None
        project_name = self.read.string(grant["project"], _join(path, "project"))
        project = (
            self.projects.find(project_name, _join(path, "project"), self.errors)
            if project_name is not None
            else None
        )
        if level == Level.PROJECT:
            return (project.pk, None) if project is not None else None
        if "environment" not in grant:
            return None
        env_path = _join(path, "environment")
        env_name = self.read.string(grant["environment"], env_path)
        if project is None or env_name is None:
            return None
        environment = self.environments[project.pk].find(
            env_name, env_path, self.errors, where=f" of project {_q(project.name)}"
        )
        return (project.pk, environment.pk) if environment is not None else None

    def _permissions(
        self, value: Any, path: str, level: Level, project_id: int | None, *, tags_allowed: bool
    ) -> dict[str, frozenset[int]] | None:
        if not isinstance(value, dict):
            self.errors.add(path, "Expected an object mapping permission keys to tag labels.")
            return None
        resolved: dict[str, frozenset[int]] = {}
        ok = True
        for key, labels in value.items():
            key_path = _join(path, key)
            if not isinstance(key, str) or _bad_characters(key):
                self.errors.add(key_path, "Expected a permission key.")
                ok = False
                continue
            tag_ids: list[int] = []
            label_items = self.read.strings(labels, key_path) if labels is not None else []
            if labels is None:
                self.errors.add(key_path, "Expected a list of tag labels ([] for untagged).")
                ok = False
            if label_items and tags_allowed and project_id is not None:
                for label_path, label in label_items:
                    tag = self.tags[project_id].find(
                        label,
                        label_path,
                        self.errors,
                        where=f" of project {_q(self.world.project_name(project_id))}",
                    )
                    if tag is None:
                        ok = False
                    else:
                        tag_ids.append(tag.pk)
            if not self._entry_ok(
                level,
                project_id,
                key,
                tag_ids,
                key_path,
                tags_allowed=tags_allowed,
                tagged=bool(label_items),
            ):
                ok = False
                continue
            resolved[key] = frozenset(tag_ids)
        return resolved if ok else None

    def _entry_ok(
        self,
        level: Level,
        project_id: int | None,
        key: str,
        tag_ids: Sequence[int],
        path: str,
        *,
        tags_allowed: bool,
        tagged: bool = False,
    ) -> bool:
        """The grant services' own checks (`grant_entries_validate`), so a document gets the
        API's messages: unknown keys, keys of another level, tags on keys that do not
        support them, tags on user and group grants."""
        if tagged and not tags_allowed:
            # The services' message (grant_entries_validate) for a tagged user or group entry.
            self.errors.add(path, f"Only role grants may carry tags; remove the tags of: {key}.")
            return False
        project = self.world.projects.get(project_id) if project_id is not None else None
        spec = CATALOGUE.get(key)
        if tagged and not tag_ids and spec is not None and not spec.supports_tag:
            # No label resolved (their errors are reported): the services' message for a
            # tagged entry of a key that does not support tags, all the same.
            self.errors.add(path, f"{key} does not support tags.")
            return False
        try:
            grant_services.grant_entries_validate(
                level=level,
                project=project,
                entries=[grant_services.EntryInput(key=key, tags=tuple(tag_ids))],
                tags_allowed=tags_allowed,
            )
        except DjangoValidationError as exc:
            for message in _messages(exc):
                self.errors.add(path, message)
            return False
        return True

    # -- restricted tags --------------------------------------------------------------------------
    def _restricted(self, value: Any) -> None:
        seen: dict[int, str] = {}
        for path, item in self.read.items(value, "restricted_tags"):
            obj = self.read.obj(item, path, required=("project",), optional=("tags",))
            if obj is None or "project" not in obj:
                continue
            project_path = _join(path, "project")
            name = self.read.string(obj["project"], project_path)
            project = (
                self.projects.find(name, project_path, self.errors) if name is not None else None
            )
            labels = self.read.strings(obj.get("tags", []), _join(path, "tags"))
            if project is None:
                continue
            if project.pk in seen:
                self.errors.add(
                    project_path, f"Listed more than once (also at {seen[project.pk]})."
                )
                continue
            seen[project.pk] = path
            self.desired.project_restricted_paths[project.pk] = path
            for label_path, label in labels:
                tag = self.tags[project.pk].find(
                    label, label_path, self.errors, where=f" of project {_q(project.name)}"
                )
                if tag is not None:
                    self.desired.state.restricted.add(tag.pk)
                    self.desired.restricted_paths[tag.pk] = label_path

    # -- the acting user -----------------------------------------------------------------------------
    def _lockout(self) -> None:
        """The acting user may not remove or demote their own ADMIN membership through a
        document: one wrong file (another organisation's export, a member list edited by
        hand) would lock them out of the organisation they are editing. (The services'
        "last ADMIN" rule still holds for everyone else.)"""
        actor = self.actor
        if actor is None or isinstance(actor, OrganisationAPIKey):
            return
        membership = self.world.memberships.get(actor.pk)
        if membership is None or not membership.is_admin:
            return
        wanted = self.desired.state.members.get(actor.pk)
        why = (
            "you would lose the administration of this organisation through your own "
            "document; have another ADMIN member make this change."
        )
        if wanted is None:
            email = getattr(actor, "email", "") or actor.get_username()
            self.errors.add("members", f"You ({email}) are not listed: {why}")
        elif wanted != MembershipRole.ADMIN:
            self.errors.add(
                _join(self.desired.member_paths[actor.pk], "role"), f"You are an ADMIN: {why}"
            )


def _messages(exc: Exception) -> list[str]:
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return [str(m) for messages in exc.message_dict.values() for m in messages]
        return [str(m) for m in exc.messages]
    if isinstance(exc, DomainError):
        return [exc.detail]
    return [str(exc) or "Refused."]


# --------------------------------------------------------------------------------------
# Diff: the operations that turn the current state into the desired one
# --------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What the operations need while they run: created groups and roles join the maps."""

    world: World
    actor: Actor


@dataclass(frozen=True)
class _Operation:
    change: Change
    path: str  # where in the document (errors of the service are keyed by it)
    run: Callable[[_Context], Any]


class _Differ:
    def __init__(self, world: World, current: State, desired: _Desired) -> None:
        self.world = world
        self.current = current
        self.desired = desired
        self.want = desired.state
        self.ops: list[_Operation] = []

    def op(
        self,
        action: str,
        object_type: str,
        name: str,
        before: Any,
        after: Any,
        path: str,
        run: Callable[[_Context], Any],
    ) -> None:
        self.ops.append(_Operation(Change(action, object_type, name, before, after), path, run))

    def run(self) -> list[_Operation]:
        removed_members = set(self.current.members) - set(self.want.members)
        removed_groups = set(self.current.groups) - set(self.want.groups)
        removed_roles = set(self.current.roles) - set(self.want.roles)
        self._strip_cascades(removed_members, removed_groups, removed_roles)
        self._members(removed_members)
        self._groups(removed_groups)
        self._roles(removed_roles)
        self._assignments()
        self._grants()
        self._restricted()
        return self.ops

    def _strip_cascades(self, members: set[int], groups: set[str], roles: set[str]) -> None:
        """What the services delete along with a member, a group or a role (DESIGN.md §4)
        is gone from the current state before the rest is compared."""
        cur = self.current
        cur.groups = {
            lname: (name, frozenset(u for u in users if u not in members))
            for lname, (name, users) in cur.groups.items()
        }
        cur.assignments = {
            (role, kind, ref)
            for role, kind, ref in cur.assignments
            if role not in roles
            and not (kind == "user" and ref in members)
            and not (kind == "group" and ref in groups)
        }

        def survives(principal: PrincipalRef) -> bool:
            kind, ref = principal
            return not (
                (kind == "user" and ref in members)
                or (kind == "group" and ref in groups)
                or (kind == "role" and ref in roles)
            )

        cur.grants = {ref: spec for ref, spec in cur.grants.items() if survives(ref[0])}

    # -- members ------------------------------------------------------------------------------
    def _members(self, removed: set[int]) -> None:
        """Creations and promotions first, then demotions and removals: the services'
        "last ADMIN" rule then only refuses a document that leaves no ADMIN at all."""
        world, cur, want = self.world, self.current, self.want

        def sort_key(uid: int) -> tuple[str, str]:
            return _name_key(world.email(uid))

        def value(uid: int, role: str) -> dict[str, Any]:
            return {"email": world.email(uid), "role": role}

        ordered = sorted(want.members, key=sort_key)
        for uid in ordered:
            role, path = want.members[uid], self.desired.member_paths[uid]
            name = f"member {_q(world.email(uid))}"
            if uid not in cur.members:
                self.op(
                    "create",
                    "organisation_membership",
                    name,
                    None,
                    value(uid, role),
                    path,
                    _membership_create(uid, role),
                )
            elif cur.members[uid] != role and role == MembershipRole.ADMIN:
                self.op(
                    "update",
                    "organisation_membership",
                    name,
                    value(uid, cur.members[uid]),
                    value(uid, role),
                    _join(path, "role"),
                    _membership_update(uid, role),
                )
        for uid in ordered:
            role, path = want.members[uid], self.desired.member_paths[uid]
            if uid in cur.members and cur.members[uid] != role and role != MembershipRole.ADMIN:
                self.op(
                    "update",
                    "organisation_membership",
                    f"member {_q(world.email(uid))}",
                    value(uid, cur.members[uid]),
                    value(uid, role),
                    _join(path, "role"),
                    _membership_update(uid, role),
                )
        for uid in sorted(removed, key=sort_key):
            self.op(
                "delete",
                "organisation_membership",
                f"member {_q(world.email(uid))}",
                value(uid, cur.members[uid]),
                None,
                "members",
                _membership_delete(uid),
            )

    # -- groups and roles ----------------------------------------------------------------------
    def _group_value(self, name: str, users: frozenset[int]) -> dict[str, Any]:
        return {
            "name": name,
            "members": sorted((self.world.email(u) for u in users), key=_name_key),
        }

    def _groups(self, removed: set[str]) -> None:
        cur, want = self.current.groups, self.want.groups
        for lname in sorted(want, key=lambda g: _name_key(want[g][0])):
            name, users = want[lname]
            path = self.desired.group_paths[lname]
            after = self._group_value(name, users)
            if lname not in cur:
                self.op(
                    "create",
                    "user_group",
                    f"group {_q(name)}",
                    None,
                    after,
                    path,
                    _group_create(lname, name, users),
                )
            elif cur[lname] != (name, users):
                old_name, old_users = cur[lname]
                self.op(
                    "update",
                    "user_group",
                    f"group {_q(name)}",
                    self._group_value(old_name, old_users),
                    after,
                    path,
                    _group_update(
                        lname,
                        name if name != old_name else None,
                        users if users != old_users else None,
                    ),
                )
        for lname in sorted(removed, key=lambda g: _name_key(cur[g][0])):
            name, users = cur[lname]
            self.op(
                "delete",
                "user_group",
                f"group {_q(name)}",
                self._group_value(name, users),
                None,
                "groups",
                _group_delete(lname),
            )

    def _roles(self, removed: set[str]) -> None:
        cur, want = self.current.roles, self.want.roles
        for lname in sorted(want, key=lambda r: _name_key(want[r][0])):
            name, description = want[lname]
            path = self.desired.role_paths[lname]
            after = {"name": name, "description": description}
            if lname not in cur:
                self.op(
                    "create",
                    "role",
                    f"role {_q(name)}",
                    None,
                    after,
                    path,
                    _role_create(lname, name, description),
                )
            elif cur[lname] != (name, description):
                old_name, old_description = cur[lname]
                self.op(
                    "update",
                    "role",
                    f"role {_q(name)}",
                    {"name": old_name, "description": old_description},
                    after,
                    path,
                    _role_update(
                        lname,
                        name if name != old_name else None,
                        description if description != old_description else None,
                    ),
                )
        for lname in sorted(removed, key=lambda r: _name_key(cur[r][0])):
            name, description = cur[lname]
            self.op(
                "delete",
                "role",
                f"role {_q(name)}",
                {"name": name, "description": description},
                None,
                "roles",
                _role_delete(lname),
            )

    # -- role assignments ---------------------------------------------------------------------
    def _role_name(self, lname: str) -> str:
        entry = self.want.roles.get(lname) or self.current.roles[lname]
        return entry[0]

    def _group_name(self, lname: str) -> str:
        entry = self.want.groups.get(lname) or self.current.groups[lname]
        return entry[0]

    def _principal_label(self, kind: str, ref: Any) -> tuple[str, str]:
        """(kind label, name) of a role assignment's principal."""
        if kind == "user":
            return "user", self.world.email(ref)
        if kind == "group":
            return "group", self._group_name(ref)
        return "api key", self.world.api_keys[ref].name

    def _assignment_sort_key(self, ref: AssignmentRef) -> tuple[Any, ...]:
        role, kind, principal = ref
        return (
            _name_key(self._role_name(role)),
            KIND_ORDER[kind],
            self._principal_label(kind, principal)[1],
        )

    def _assignments(self) -> None:
        cur, want = self.current.assignments, self.want.assignments
        for ref in sorted(cur - want, key=self._assignment_sort_key):
            role, kind, principal = ref
            label, name = self._principal_label(kind, principal)
            role_name = self._role_name(role)
            self.op(
                "delete",
                "role_assignment",
                f"role {_q(role_name)} / {label} {_q(name)}",
                {"role": role_name, kind: name},
                None,
                _join(self.desired.role_paths[role], _ASSIGNMENT_FIELDS[kind])
                if role in self.desired.role_paths
                else "roles",
                _assignment_delete(ref),
            )
        for ref in sorted(want - cur, key=self._assignment_sort_key):
            role, kind, principal = ref
            label, name = self._principal_label(kind, principal)
            role_name = self._role_name(role)
            self.op(
                "create",
                "role_assignment",
                f"role {_q(role_name)} / {label} {_q(name)}",
                None,
                {"role": role_name, kind: name},
                self.desired.assignment_paths[ref],
                _assignment_create(ref),
            )

    # -- grants -------------------------------------------------------------------------------
    def _grant_value(self, scope: ScopeRef, spec: GrantSpec | None) -> dict[str, Any] | None:
        if spec is None:
            return None
        if scope == ORGANISATION_SCOPE:
            return {"permissions": [key for key, _ in spec.entries]}
        return {
            "admin": spec.admin,
            "permissions": {key: self.world.tag_labels(tags) for key, tags in spec.entries},
        }

    def _grant_name(self, ref: GrantRef) -> str:
        (kind, principal), scope = ref
        if kind == "user":
            who = f"user {_q(self.world.email(principal))}"
        elif kind == "group":
            who = f"group {_q(self._group_name(principal))}"
        else:
            who = f"role {_q(self._role_name(principal))}"
        return f"{who} / {self.world.scope_label(scope)}"

    def _grant_sort_key(self, ref: GrantRef) -> tuple[Any, ...]:
        (kind, principal), scope = ref
        if kind == "user":
            name = self.world.email(principal)
        elif kind == "group":
            name = self._group_name(principal)
        else:
            name = self._role_name(principal)
        return (
            {"role": 0, "user": 1, "group": 2}[kind],
            _name_key(name),
            self.world.scope_sort_key(scope),
        )

    def _grant_path(self, ref: GrantRef) -> str:
        path = self.desired.grant_paths.get(ref)
        if path is not None:
            return path
        principal, scope = ref
        owner = self.desired.grant_owner_paths.get(principal)
        section = {"role": "roles", "user": "users", "group": "group_grants"}[principal[0]]
        if owner is None:
            return section
        project_id, environment_id = scope
        if project_id is None:
            return _join(owner, "organisation")
        return _join(owner, "projects" if environment_id is None else "environments")

    def _grants(self) -> None:
        cur, want = self.current.grants, self.want.grants
        refs = sorted(set(cur) | set(want), key=self._grant_sort_key)
        for ref in refs:
            before, after = cur.get(ref), want.get(ref)
            if before == after:
                continue
            action = "create" if before is None else "delete" if after is None else "update"
            self.op(
                action,
                "grant",
                self._grant_name(ref),
                self._grant_value(ref[1], before),
                self._grant_value(ref[1], after),
                self._grant_path(ref),
                _grant_write(ref, after),
            )

    # -- restricted tags ----------------------------------------------------------------------
    def _restricted(self) -> None:
        world = self.world
        cur, want = self.current.restricted, self.want.restricted

        def sort_key(tag_id: int) -> tuple[Any, ...]:
            tag = world.tags[tag_id]
            return (_name_key(world.project_name(tag.project_id)), _name_key(tag.label), tag_id)

        for tag_id in sorted(cur ^ want, key=sort_key):
            tag = world.tags[tag_id]
            restricted = tag_id in want
            path = (
                self.desired.restricted_paths[tag_id]
                if restricted
                else self.desired.project_restricted_paths.get(tag.project_id, "restricted_tags")
            )
            self.op(
                "update",
                "tag",
                f"tag {_q(world.project_name(tag.project_id))}/{_q(tag.label)}",
                {"is_restricted": not restricted},
                {"is_restricted": restricted},
                path,
                _tag_restrict(tag_id, restricted),
            )


_ASSIGNMENT_FIELDS = {"user": "users", "group": "groups", "api_key": "api_keys"}


# --------------------------------------------------------------------------------------
# Operations: each calls one existing service
# --------------------------------------------------------------------------------------


def _membership_create(uid: int, role: str) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        ctx.world.memberships[uid] = organisation_services.membership_create(
            organisation=ctx.world.organisation,
            user=ctx.world.users[uid],
            role=role,
            actor=ctx.actor,
        )

    return run


def _membership_update(uid: int, role: str) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        organisation_services.membership_update(
            membership=ctx.world.memberships[uid], role=role, actor=ctx.actor
        )

    return run


def _membership_delete(uid: int) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        organisation_services.membership_delete(
            membership=ctx.world.memberships[uid], actor=ctx.actor
        )

    return run


def _group_create(lname: str, name: str, users: frozenset[int]) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        ctx.world.groups[lname] = organisation_services.group_create(
            organisation=ctx.world.organisation,
            name=name,
            users=[ctx.world.users[u] for u in sorted(users)],
            actor=ctx.actor,
        )

    return run


def _group_update(
    lname: str, name: str | None, users: frozenset[int] | None
) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        ctx.world.groups[lname] = organisation_services.group_update(
            group=ctx.world.groups[lname],
            name=name,
            users=[ctx.world.users[u] for u in sorted(users)] if users is not None else None,
            actor=ctx.actor,
        )

    return run


def _group_delete(lname: str) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        organisation_services.group_delete(group=ctx.world.groups[lname], actor=ctx.actor)

    return run


def _role_create(lname: str, name: str, description: str) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        ctx.world.roles[lname] = organisation_services.role_create(
            organisation=ctx.world.organisation,
            name=name,
            description=description,
            actor=ctx.actor,
        )

    return run


def _role_update(
    lname: str, name: str | None, description: str | None
) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        ctx.world.roles[lname] = organisation_services.role_update(
            role=ctx.world.roles[lname], name=name, description=description, actor=ctx.actor
        )

    return run


def _role_delete(lname: str) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        organisation_services.role_delete(role=ctx.world.roles[lname], actor=ctx.actor)

    return run


def _assignment_create(ref: AssignmentRef) -> Callable[[_Context], Any]:
    role, kind, principal = ref

    def run(ctx: _Context) -> Any:
        world = ctx.world
        targets: dict[str, dict[str, Any]] = {
            "user": {"user": world.users.get(principal)},
            "group": {"group": world.groups.get(principal)},
            "api_key": {"api_key": world.api_keys.get(principal)},
        }
        target = targets[kind]
        organisation_services.role_assignment_create(
            role=world.roles[role], **target, actor=ctx.actor
        )

    return run


def _assignment_delete(ref: AssignmentRef) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        organisation_services.role_assignment_delete(
            assignment=ctx.world.assignment_objects[ref], actor=ctx.actor
        )

    return run


def _grant_write(ref: GrantRef, spec: GrantSpec | None) -> Callable[[_Context], Any]:
    """Create, update or delete the grant of a principal on a scope (`spec=None`: delete).
    A role's organisation keys go through `role_organisation_permissions_set`, like the
    API's PUT."""
    (kind, principal_ref), scope = ref

    def run(ctx: _Context) -> Any:
        world = ctx.world
        principal: Any
        if kind == "user":
            principal = world.users[principal_ref]
        elif kind == "group":
            principal = world.groups[principal_ref]
        else:
            principal = world.roles[principal_ref]
        if kind == "role" and scope == ORGANISATION_SCOPE:
            grant_services.role_organisation_permissions_set(
                role=principal,
                keys=[key for key, _ in spec.entries] if spec is not None else [],
                actor=ctx.actor,
            )
            return
        existing = world.grant_objects.get(ref)
        if spec is None:
            if existing is not None:
                grant_services.grant_delete(grant=existing, actor=ctx.actor)
            return
        entries = [
            grant_services.EntryInput(key=key, tags=tuple(sorted(tags)))
            for key, tags in spec.entries
        ]
        if existing is not None:  # an existing grant, maybe an empty one
            grant_services.grant_update(
                grant=existing, entries=entries, admin=spec.admin, actor=ctx.actor
            )
            return
        project_id, environment_id = scope
        target: Organisation | Project | Environment
        if environment_id is not None:
            target = world.environments[environment_id]
        elif project_id is not None:
            target = world.projects[project_id]
        else:
            target = world.organisation
        grant_services.grant_create(
            principal=principal, scope=target, entries=entries, admin=spec.admin, actor=ctx.actor
        )

    return run


def _tag_restrict(tag_id: int, restricted: bool) -> Callable[[_Context], Any]:
    def run(ctx: _Context) -> Any:
        project_services.tag_update(
            tag=ctx.world.tags[tag_id], is_restricted=restricted, actor=ctx.actor
        )

    return run


def _execute(ops: Sequence[_Operation], ctx: _Context) -> None:
    """Run the operations in order; a refusal of a service → `DocumentInvalid` at the path
    of the item being applied (the caller's transaction rolls everything back)."""
    for op in ops:
        try:
            op.run(ctx)
        except (DjangoValidationError, DomainError, DjangoPermissionDenied) as exc:
            raise DocumentInvalid({op.path: _messages(exc)}) from exc
        except (ObjectDoesNotExist, IntegrityError) as exc:
            raise DocumentInvalid(
                {
                    op.path: [
                        "The organisation changed while this document was being applied; "
                        "plan it again."
                    ]
                }
            ) from exc


# --------------------------------------------------------------------------------------
# Plan and apply
# --------------------------------------------------------------------------------------


def _prepare(
    organisation: Organisation, document: Any, actor: Actor
) -> tuple[list[_Operation], _Context]:
    world = World.load(organisation)
    reader = _DocumentReader(world, actor)
    desired = reader.run(document)
    relevant = set(world.memberships) | set(desired.state.members)
    world.users.update(_load_users(relevant - set(world.users)))
    current = _current_state(world, relevant)
    ops = _Differ(world, current, desired).run()
    return ops, _Context(world=world, actor=actor)


def permissions_document_plan(*, organisation: Organisation, document: Any, actor: Actor) -> Plan:
    """The changes `document` would make and their impact; nothing is saved. The changes
    are executed through the services inside a transaction that is rolled back, so a plan
    finds every error an apply would."""
    ops, ctx = _prepare(organisation, document, actor)
    if not ops:
        return Plan(changes=(), impact=impact.Impact())
    result = impact.impact_preview(
        organisation_id=organisation.pk, change=lambda: _execute(ops, ctx)
    )
    return Plan(changes=tuple(op.change for op in ops), impact=result)


def permissions_document_apply(*, organisation: Organisation, document: Any, actor: Actor) -> Plan:
    """Make the organisation match `document`, in one transaction, through the services
    (validation, audit entries with the actor). Nothing is applied when anything is wrong."""
    with transaction.atomic():
        # One document at a time per organisation: a second apply waits, then diffs
        # against what the first one left.
        organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
        ops, ctx = _prepare(organisation, document, actor)
        _, result = impact.impact_apply(
            organisation_id=organisation.pk, change=lambda: _execute(ops, ctx)
        )
    return Plan(changes=tuple(op.change for op in ops), impact=result)
