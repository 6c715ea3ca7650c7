"""Writing audit entries. Called by every service inside its transaction."""

from __future__ import annotations

import re
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
    return AuditLogEntry.objects.create(
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
