"""Reads for organisations, members, groups, roles, role assignments, API keys, and the
grants of principals and scopes. Every list is one query plus a constant number of
prefetches, whatever the number of rows."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet

from environments.models import Environment
from organisations.models import (
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import Level
from permissions.models import Grant, GrantEntry
from projects.models import Project

User = get_user_model()

Scope = Organisation | Project | Environment


# --------------------------------------------------------------------------------------
# Organisations and members
# --------------------------------------------------------------------------------------


def organisations_of(*, principal: Any) -> QuerySet[Organisation]:
    """The organisations `principal` is a member of (an API key: its own, while usable)."""
    if isinstance(principal, OrganisationAPIKey):
        if not principal.is_usable:
            return Organisation.objects.none()
        return Organisation.objects.filter(pk=principal.organisation_id)
    if not getattr(principal, "is_authenticated", False):
        return Organisation.objects.none()
    return Organisation.objects.filter(memberships__user_id=principal.pk).order_by("name", "id")


def members_of(*, organisation: Organisation) -> QuerySet[OrganisationMembership]:
    return (
        OrganisationMembership.objects.filter(organisation=organisation)
        .select_related("user")
        .order_by("user_id")
    )


def membership_get(*, organisation: Organisation, user_id: Any) -> OrganisationMembership | None:
    return members_of(organisation=organisation).filter(user_id=user_id).first()


def is_member(*, organisation: Organisation | int, user_id: Any) -> bool:
    organisation_id = organisation if isinstance(organisation, int) else organisation.pk
    return OrganisationMembership.objects.filter(
        organisation_id=organisation_id, user_id=user_id
    ).exists()


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


def groups_of(*, organisation: Organisation) -> QuerySet[UserGroup]:
    """The organisation's groups with their members' ids prefetched (one extra query)."""
    return (
        UserGroup.objects.filter(organisation=organisation)
        .prefetch_related(Prefetch("users", queryset=User.objects.only("id").order_by("id")))
        .order_by("name", "id")
    )


def group_is_bare(*, group: UserGroup) -> bool:
    """A group holding no grant and no role (MANAGE_USER_GROUPS holders may manage it)."""
    return not (
        Grant.objects.filter(group_id=group.pk).exists()
        or RoleAssignment.objects.filter(group_id=group.pk).exists()
    )


# --------------------------------------------------------------------------------------
# Roles and role assignments
# --------------------------------------------------------------------------------------


def roles_of(*, organisation: Organisation) -> QuerySet[Role]:
    return Role.objects.filter(organisation=organisation).order_by("name", "id")


def role_assignments_of(*, role: Role, kind: str) -> QuerySet[RoleAssignment]:
    """A role's assignments to principals of one kind: `user`, `group` or `api_key`."""
    if kind not in ("user", "group", "api_key"):
        raise ValueError(f"Unknown principal kind {kind!r}")
    return RoleAssignment.objects.filter(role=role, **{f"{kind}__isnull": False}).order_by("id")


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


def api_keys_of(*, organisation: Organisation) -> QuerySet[OrganisationAPIKey]:
    return OrganisationAPIKey.objects.filter(organisation=organisation).order_by("id")


# --------------------------------------------------------------------------------------
# Grants
# --------------------------------------------------------------------------------------


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
