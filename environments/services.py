"""Writes for environments."""

from __future__ import annotations

from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, audit_record
from environments.models import Environment
from projects.models import Project


def environment_create(
    *,
    project: Project,
    name: str,
    minimum_change_request_approvals: int | None = None,
    actor: Actor,
) -> Environment:
    """Creating an environment also creates a default state for every feature of the project
    (features.signals); the audit entry says how many."""
    with transaction.atomic():
        environment = Environment.objects.create(
            project=project,
            name=name,
            minimum_change_request_approvals=minimum_change_request_approvals,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=environment,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            environment_id=environment.pk,
            after={
                "name": name,
                "minimum_change_request_approvals": minimum_change_request_approvals,
                "default_states_created": environment.feature_states.count(),
            },
        )
    return environment
