"""Reads of grants: of a scope, of a role, naming a principal. Every list is one query plus a
constant number of prefetches, whatever the number of rows."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from environments.models import Environment
from organisations.models import Organisation, Role
from permissions.catalogue import Level
from permissions.engine import Scope
from permissions.models import Grant, GrantEntry
from projects.models import Project


def _with_entries(queryset: QuerySet[Grant]) -> QuerySet[Grant]:
    """Entries and their tag ids prefetched: two extra queries for any number of grants."""
    return queryset.prefetch_related(
        Prefetch(
            "entries",
            queryset=GrantEntry.objects.order_by("key").prefetch_related("entry_tags"),
        )
    ).order_by("id")


def _level_q(level: Level) -> Q:
    if level == Level.ORGANISATION:
        return Q(project__isnull=True)
    if level == Level.PROJECT:
        return Q(project__isnull=False, environment__isnull=True)
    return Q(environment__isnull=False)


def grants_of_scope(*, scope: Scope, principal_kind: str) -> QuerySet[Grant]:
    """The grants of one principal kind (`user` or `group`) on exactly `scope`."""
    if principal_kind not in ("user", "group", "role"):
        raise ValueError(f"Unknown principal kind {principal_kind!r}")
    if isinstance(scope, Environment):
        lookup: dict[str, Any] = {"environment_id": scope.pk}
        level = Level.ENVIRONMENT
    elif isinstance(scope, Project):
        lookup = {"project_id": scope.pk}
        level = Level.PROJECT
    else:
        lookup = {"organisation_id": scope.pk}
        level = Level.ORGANISATION
    return _with_entries(
        Grant.objects.filter(_level_q(level), **lookup, **{f"{principal_kind}__isnull": False})
    )


def role_grants(
    *,
    role: Role,
    level: Level,
    project_id: int | None = None,
    environment_id: int | None = None,
) -> QuerySet[Grant]:
    """A role's grants of one level, optionally on one project or environment."""
    qs = Grant.objects.filter(_level_q(level), role=role, organisation_id=role.organisation_id)
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    if environment_id is not None:
        qs = qs.filter(environment_id=environment_id)
    return _with_entries(qs)


def role_organisation_keys(*, role: Role) -> list[str]:
    """The keys of a role's organisation-level grant (sorted; empty without a grant)."""
    return sorted(
        GrantEntry.objects.filter(
            grant__role=role,
            grant__organisation_id=role.organisation_id,
            grant__project__isnull=True,
        ).values_list("key", flat=True)
    )


def grants_naming_principal(*, organisation: Organisation, **principal: Any) -> QuerySet[Grant]:
    """Every grant of one principal in an organisation (for cascade descriptions)."""
    return _with_entries(Grant.objects.filter(organisation=organisation, **principal))
