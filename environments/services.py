"""Writes for environments."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, Auditor
from environments.models import Environment
from projects.models import Project

_UNSET: Any = object()


def _validate_threshold(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValidationError(
            {"minimum_change_request_approvals": ["Must be null or an integer of at least 0."]}
        )


def environment_snapshot(environment: Environment) -> dict[str, Any]:
    return {
        "name": environment.name,
        "project": environment.project_id,
        "minimum_change_request_approvals": environment.minimum_change_request_approvals,
    }


def environment_create(
    *,
    project: Project,
    name: str,
    minimum_change_request_approvals: int | None = None,
    actor: Actor,
) -> Environment:
    """Creating an environment also creates a default state for every feature of the project
    (features.signals); the audit entry says how many.

    A creating user who is not already a project admin receives an environment grant with
    `admin: true`, as the creator of a project does for the project (and as Flagsmith does):
    otherwise CREATE_ENVIRONMENT holders would create environments they cannot see.
    """
    from permissions import engine
    from permissions.services import grant_create

    _validate_threshold(minimum_change_request_approvals)
    with transaction.atomic():
        environment = Environment.objects.create(
            project=project,
            name=name,
            minimum_change_request_approvals=minimum_change_request_approvals,
        )
        if isinstance(actor, User) and not engine.is_admin(actor, project):
            grant_create(principal=actor, scope=environment, admin=True, actor=actor)
            engine.forget(actor)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.CREATED,
            environment,
            after={
                "name": name,
                "minimum_change_request_approvals": minimum_change_request_approvals,
                "default_states_created": environment.feature_states.count(),
            },
        )
    return environment


def environment_update(
    *,
    environment: Environment,
    name: str | None = None,
    minimum_change_request_approvals: int | None = _UNSET,
    actor: Actor,
) -> Environment:
    """Rename an environment or change its change-request threshold (null switches change
    requests off). Leave an argument out to keep the value; writing back what was read
    records nothing."""
    if minimum_change_request_approvals is not _UNSET:
        _validate_threshold(minimum_change_request_approvals)
    with transaction.atomic():
        environment = (
            Environment.objects.select_for_update().select_related("project").get(pk=environment.pk)
        )
        before = environment_snapshot(environment)
        if name is not None:
            environment.name = name
        if minimum_change_request_approvals is not _UNSET:
            environment.minimum_change_request_approvals = minimum_change_request_approvals
        Auditor.in_environment(environment, actor=actor).save(
            environment,
            fields=["name", "minimum_change_request_approvals"],
            before=before,
            after=environment_snapshot(environment),
        )
    return environment


def environment_delete(*, environment: Environment, actor: Actor) -> None:
    """Delete an environment with its feature states, overrides, change requests and grants
    (foreign-key cascades); one audit entry counting them."""
    with transaction.atomic():
        before = {
            **environment_snapshot(environment),
            "api_key": environment.api_key,
            "feature_states_deleted": environment.feature_states.count(),
            "segment_overrides_deleted": environment.segment_overrides.count(),
            "change_requests_deleted": environment.change_requests.count(),
            "grants_deleted": environment.grants.count(),
        }
        Auditor.in_environment(environment, actor=actor).delete(environment, before=before)
