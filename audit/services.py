"""Writing audit entries. Called by every service inside its transaction."""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import models

from audit.models import AuditAction, AuditLogEntry
from organisations.models import OrganisationAPIKey

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
