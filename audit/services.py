"""Writing audit entries. Called by every service inside its transaction."""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import models

from audit.models import AuditAction, AuditLogEntry
from organisations.models import OrganisationAPIKey
from tagwarden.services import unique_write

if TYPE_CHECKING:
    from environments.models import Environment
    from projects.models import Project

Actor = AbstractBaseUser | OrganisationAPIKey | None

# Word boundaries of a CamelCase name, keeping acronyms whole: OrganisationAPIKey → organisation_api_key
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def object_type_of(model: type[models.Model] | models.Model) -> str:
    """The model name in snake_case: `RoleAssignment` → `role_assignment`."""
    name = model.__name__ if isinstance(model, type) else type(model).__name__
    return _CAMEL.sub("_", name).lower()


def audit_record(
    *,
    actor: Actor,
    action: AuditAction | str,
    obj: models.Model,
    organisation_id: int,
    project_id: int | None = None,
    environment_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_type: str | None = None,
) -> AuditLogEntry | None:
    """Record one change. An update whose before and after are equal records nothing."""
    if action == AuditAction.UPDATED and before == after:
        return None
    actor_user = actor if isinstance(actor, User) else None
    actor_api_key = actor if isinstance(actor, OrganisationAPIKey) else None
    entry = AuditLogEntry.objects.create(
        organisation_id=organisation_id,
        project_id=project_id,
        environment_id=environment_id,
        actor_user=actor_user,
        actor_api_key=actor_api_key,
        actor_type="user" if actor_user else "api_key" if actor_api_key else "",
        actor_name=actor_user.get_username() if actor_user else str(actor or ""),
        action=str(action),
        object_type=object_type or object_type_of(obj),
        object_id=str(obj.pk),
        before=before,
        after=after,
    )
    captured = _captured.get()
    if captured is not None:
        captured.append(entry.pk)
    return entry


@dataclass(frozen=True)
class Auditor:
    """Records the changes one actor makes to objects of one scope: an organisation, and a
    project and environment when the objects live in one (docs/API.md, "Audit")."""

    actor: Actor
    organisation_id: int
    project_id: int | None = None
    environment_id: int | None = None

    @classmethod
    def in_project(cls, project: Project, *, actor: Actor) -> Auditor:
        return cls(actor=actor, organisation_id=project.organisation_id, project_id=project.pk)

    @classmethod
    def in_environment(cls, environment: Environment, *, actor: Actor) -> Auditor:
        return cls(
            actor=actor,
            organisation_id=environment.project.organisation_id,
            project_id=environment.project_id,
            environment_id=environment.pk,
        )

    def record(
        self,
        action: AuditAction,
        obj: models.Model,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        audit_record(
            actor=self.actor,
            action=action,
            obj=obj,
            organisation_id=self.organisation_id,
            project_id=self.project_id,
            environment_id=self.environment_id,
            before=before,
            after=after,
        )

    def save(
        self,
        obj: models.Model,
        *,
        fields: list[str],
        before: dict[str, Any],
        after: dict[str, Any],
        unique: tuple[str, str] | None = None,
    ) -> bool:
        """Save `fields` and record the update; writing back what was read saves and records
        nothing (False). With `unique=(field, message)`, a concurrent write that took the
        unique value meanwhile is a 400 on `field` (`unique_write`)."""
        if after == before:
            return False
        if unique is None:
            obj.save(update_fields=fields)
        else:
            with unique_write(field=unique[0], message=unique[1]):
                obj.save(update_fields=fields)
        self.record(AuditAction.UPDATED, obj, before=before, after=after)
        return True

    def delete(self, obj: models.Model, *, before: dict[str, Any]) -> None:
        """Record the deletion (`before` lists what goes with the object), then delete."""
        self.record(AuditAction.DELETED, obj, before=before)
        obj.delete()


# The ids of the entries written inside `audit_capture()` (per thread and task).
_captured: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "tagwarden_audit_captured", default=None
)


@contextlib.contextmanager
def audit_capture() -> Iterator[list[int]]:
    """Collect the ids of the audit entries written inside the block (impact previews attach
    the change's impact to them)."""
    entries: list[int] = []
    token = _captured.set(entries)
    try:
        yield entries
    finally:
        _captured.reset(token)


def audit_entries_attach_impact(*, entries: list[int], impact: dict[str, Any]) -> None:
    """Store the impact summary of a change on the entries it wrote.

    Only in the transaction that wrote them: completing an entry is part of writing it, so
    the append-only guard (which refuses every later update) is bypassed here and nowhere else.
    """
    queryset = AuditLogEntry.objects.filter(pk__in=entries, impact__isnull=True)
    models.QuerySet.update(queryset, impact=impact)
