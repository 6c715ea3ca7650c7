"""Permissions as code: the operations a diff is made of. Each calls one existing
service with what the `_Context` holds (created groups and roles join its maps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audit.services import Actor
from environments.models import Environment
from organisations import services as organisation_services
from organisations.models import Organisation
from permission_documents.base import Change
from permission_documents.state import (
    ORGANISATION_SCOPE,
    AssignmentRef,
    GrantRef,
    GrantSpec,
    World,
)
from permissions import services as grant_services
from projects import services as project_services
from projects.models import Project

# --------------------------------------------------------------------------------------
# The context the operations run in, and an operation
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
