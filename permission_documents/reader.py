"""Permissions as code, step 1: reading a document against the organisation's objects
into the desired state, every error collected and keyed by its path in the document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.db.models.functions import Lower

from audit.services import Actor
from organisations.models import MembershipRole, OrganisationAPIKey
from permission_documents.base import DocumentInvalid, _messages
from permission_documents.shape import PathErrors, ShapeReader, bad_characters, join_path
from permission_documents.state import (
    ORGANISATION_SCOPE,
    AssignmentRef,
    GrantRef,
    GrantSpec,
    PrincipalRef,
    ScopeRef,
    State,
    User,
    World,
    _fold,
    _q,
)
from permissions import services as grant_services
from permissions.catalogue import CATALOGUE, Level

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
# Reading a document: names (shapes: permission_documents/shape.py). Every error is
# collected, keyed by its path.
# --------------------------------------------------------------------------------------


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

    def find(self, name: str, path: str, errors: PathErrors, where: str = "") -> Any | None:
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
        self.errors = PathErrors()
        self.read = ShapeReader(self.errors)
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
            if isinstance(value, str) and not bad_characters(value):
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
            email = self.read.string(obj["email"], join_path(path, "email"))
            role: str | None = MembershipRole.USER
            if "role" in obj:
                role = obj["role"]
                if role not in MembershipRole.values:
                    self.errors.add(
                        join_path(path, "role"),
                        f"Must be one of {', '.join(MembershipRole.values)}.",
                    )
                    role = None
            if email is None:
                continue
            user = self.user(email, join_path(path, "email"))
            if user is None or role is None:
                continue
            if user.pk in seen:
                self.errors.add(
                    join_path(path, "email"), f"Listed more than once (also at {seen[user.pk]})."
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
            name = self.read.string(
                obj["name"], join_path(path, "name"), max_length=NAME_MAX_LENGTH
            )
            members = [
                (p, self.member(email, p))
                for p, email in self.read.strings(
                    obj.get("members", []), join_path(path, "members")
                )
            ]
            roles = self.read.strings(obj.get("roles", []), join_path(path, "roles"))
            if name is None:
                continue
            lname = _fold(name)
            if lname in self.doc_groups:
                self.errors.add(
                    join_path(path, "name"),
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
            name = self.read.string(
                obj["name"], join_path(path, "name"), max_length=NAME_MAX_LENGTH
            )
            description = self.read.string(
                obj.get("description", ""), join_path(path, "description"), blank=True
            )
            lname = _fold(name) if name is not None else None
            if lname is not None and lname in self.doc_roles:
                self.errors.add(
                    join_path(path, "name"),
                    f"Listed more than once (also at {self.doc_roles[lname]}).",
                )
                lname = None
            if lname is not None and name is not None:
                self.doc_roles[lname] = path
                self.desired.state.roles[lname] = (name, description or "")
                self.desired.role_paths[lname] = path
            users_path = join_path(path, "users")
            for p, email in self.read.strings(obj.get("users", []), users_path):
                uid = self.member(email, p)
                if uid is not None and lname is not None:
                    self._assign((lname, "user", uid), p)
            for p, group in self.read.strings(obj.get("groups", []), join_path(path, "groups")):
                if _fold(group) not in self.doc_groups:
                    self.errors.add(p, f"Group {_q(group)} is not listed in `groups`.")
                elif lname is not None:
                    self.role_side[(_fold(group), lname)] = p
                    self._assign((lname, "group", _fold(group)), p)
            for p, key_name in self.read.strings(
                obj.get("api_keys", []), join_path(path, "api_keys")
            ):
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
            name_path = join_path(path, field_name)
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
        keys_path = join_path(path, "organisation")
        keys = self.read.strings(obj.get("organisation", []), keys_path)
        entries: dict[str, frozenset[int]] = {}
        for key_path, key in keys:
            if self._entry_ok(Level.ORGANISATION, None, key, (), key_path, tags_allowed=False):
                entries[key] = frozenset()
        if principal is not None and entries:
            self._set_grant(principal, ORGANISATION_SCOPE, GrantSpec.of(False, entries), keys_path)

        seen: dict[ScopeRef, str] = {}
        for level, section in ((Level.PROJECT, "projects"), (Level.ENVIRONMENT, "environments")):
            for item_path, item in self.read.items(obj.get(section, []), join_path(path, section)):
                scope_fields = (
                    ("project",) if level == Level.PROJECT else ("project", "environment")
                )
                grant = self.read.obj(
                    item, item_path, required=scope_fields, optional=("admin", "permissions")
                )
                if grant is None:
                    continue
                scope = self._scope(grant, item_path, level)
                admin = self.read.boolean(grant.get("admin", False), join_path(item_path, "admin"))
                resolved = self._permissions(
                    grant.get("permissions", {}),
                    join_path(item_path, "permissions"),
                    level,
                    scope[0] if scope else None,
                    tags_allowed=is_role,
                )
                if scope is None or admin is None or resolved is None:
                    continue
                last = scope_fields[-1]
                if scope in seen:
                    self.errors.add(
                        join_path(item_path, last),
                        f"Listed more than once (also at {seen[scope]}).",
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
        project_name = self.read.string(grant["project"], join_path(path, "project"))
        project = (
            self.projects.find(project_name, join_path(path, "project"), self.errors)
            if project_name is not None
            else None
        )
        if level == Level.PROJECT:
            return (project.pk, None) if project is not None else None
        if "environment" not in grant:
            return None
        env_path = join_path(path, "environment")
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
            key_path = join_path(path, key)
            if not isinstance(key, str) or bad_characters(key):
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
            project_path = join_path(path, "project")
            name = self.read.string(obj["project"], project_path)
            project = (
                self.projects.find(name, project_path, self.errors) if name is not None else None
            )
            labels = self.read.strings(obj.get("tags", []), join_path(path, "tags"))
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
                join_path(self.desired.member_paths[actor.pk], "role"), f"You are an ADMIN: {why}"
            )
