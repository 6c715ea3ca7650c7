"""Permissions as code, step 2: the diff of the organisation's current state into the
desired one, as an ordered list of operations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from organisations.models import MembershipRole
from permission_documents import state
from permission_documents.base import Change
from permission_documents.operations import (
    _assignment_create,
    _assignment_delete,
    _Context,
    _grant_write,
    _group_create,
    _group_delete,
    _group_update,
    _membership_create,
    _membership_delete,
    _membership_update,
    _Operation,
    _role_create,
    _role_delete,
    _role_update,
    _tag_restrict,
)
from permission_documents.reader import _Desired
from permission_documents.shape import join_path
from permission_documents.state import _name_key, _q

# --------------------------------------------------------------------------------------
# Diff: the operations that turn the current state into the desired one
# --------------------------------------------------------------------------------------

KIND_ORDER = {"user": 0, "group": 1, "api_key": 2}


@dataclass(frozen=True)
class _NamedKind:
    """Groups or roles, for `_Differ._named`: rows keyed by their folded name."""

    object_type: str
    label: str  # and, plural, the document's list of them
    create: Callable[..., Any]
    update: Callable[..., Any]
    delete: Callable[..., Any]


_GROUPS = _NamedKind("user_group", "group", _group_create, _group_update, _group_delete)
_ROLES = _NamedKind("role", "role", _role_create, _role_update, _role_delete)


def _role_value(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "description": description}


class _Differ:
    def __init__(self, world: state.World, current: state.State, desired: _Desired) -> None:
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
        """What the services delete along with a member, a group or a role (docs/API.md, "Organisations and members")
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

        def survives(principal: state.PrincipalRef) -> bool:
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
                    join_path(path, "role"),
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
                    join_path(path, "role"),
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
        cur, want, paths = self.current.groups, self.want.groups, self.desired.group_paths
        self._named(_GROUPS, removed, cur, want, paths, self._group_value)

    def _roles(self, removed: set[str]) -> None:
        cur, want, paths = self.current.roles, self.want.roles, self.desired.role_paths
        self._named(_ROLES, removed, cur, want, paths, _role_value)

    def _named(
        self,
        kind: _NamedKind,
        removed: set[str],
        current: dict[str, tuple[str, Any]],
        wanted: dict[str, tuple[str, Any]],
        paths: dict[str, str],
        value: Callable[[str, Any], dict[str, Any]],
    ) -> None:
        """Groups and roles alike: rows keyed by their folded name, each a name and one more
        value (a group's members, a role's description), created, updated or deleted."""
        object_type, label = kind.object_type, kind.label
        for lname in sorted(wanted, key=lambda k: _name_key(wanted[k][0])):
            name, extra = wanted[lname]
            path = paths[lname]
            after = value(name, extra)
            if lname not in current:
                run = kind.create(lname, name, extra)
                self.op("create", object_type, f"{label} {_q(name)}", None, after, path, run)
            elif current[lname] != (name, extra):
                old_name, old_extra = current[lname]
                run = kind.update(
                    lname,
                    name if name != old_name else None,
                    extra if extra != old_extra else None,
                )
                before = value(old_name, old_extra)
                self.op("update", object_type, f"{label} {_q(name)}", before, after, path, run)
        for lname in sorted(removed, key=lambda k: _name_key(current[k][0])):
            name, extra = current[lname]
            before, run = value(name, extra), kind.delete(lname)
            self.op("delete", object_type, f"{label} {_q(name)}", before, None, f"{label}s", run)

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

    def _assignment_sort_key(self, ref: state.AssignmentRef) -> tuple[Any, ...]:
        role, kind, principal = ref
        return (
            _name_key(self._role_name(role)),
            KIND_ORDER[kind],
            self._principal_label(kind, principal)[1],
        )

    def _assignments(self) -> None:
        cur, want = self.current.assignments, self.want.assignments
        role_paths = self.desired.role_paths
        for ref in sorted(cur - want, key=self._assignment_sort_key):
            name, value = self._assignment_described(ref)
            role, kind, _principal = ref
            path = (
                join_path(role_paths[role], _ASSIGNMENT_FIELDS[kind])
                if role in role_paths
                else "roles"
            )
            run = _assignment_delete(ref)
            self.op("delete", "role_assignment", name, value, None, path, run)
        for ref in sorted(want - cur, key=self._assignment_sort_key):
            name, value = self._assignment_described(ref)
            path, run = self.desired.assignment_paths[ref], _assignment_create(ref)
            self.op("create", "role_assignment", name, None, value, path, run)

    def _assignment_described(self, ref: state.AssignmentRef) -> tuple[str, dict[str, Any]]:
        """The name of an assignment in the plan, and its value (`before` or `after`)."""
        role, kind, principal = ref
        label, name = self._principal_label(kind, principal)
        role_name = self._role_name(role)
        return f"role {_q(role_name)} / {label} {_q(name)}", {"role": role_name, kind: name}

    # -- grants -------------------------------------------------------------------------------
    def _grant_value(
        self, scope: state.ScopeRef, spec: state.GrantSpec | None
    ) -> dict[str, Any] | None:
        if spec is None:
            return None
        if scope == state.ORGANISATION_SCOPE:
            return {"permissions": [key for key, _ in spec.entries]}
        return {
            "admin": spec.admin,
            "permissions": {key: self.world.tag_labels(tags) for key, tags in spec.entries},
        }

    def _grant_name(self, ref: state.GrantRef) -> str:
        (kind, principal), scope = ref
        if kind == "user":
            who = f"user {_q(self.world.email(principal))}"
        elif kind == "group":
            who = f"group {_q(self._group_name(principal))}"
        else:
            who = f"role {_q(self._role_name(principal))}"
        return f"{who} / {self.world.scope_label(scope)}"

    def _grant_sort_key(self, ref: state.GrantRef) -> tuple[Any, ...]:
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

    def _grant_path(self, ref: state.GrantRef) -> str:
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
            return join_path(owner, "organisation")
        return join_path(owner, "projects" if environment_id is None else "environments")

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
