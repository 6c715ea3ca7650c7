"""Reads for organisations, members, groups, roles, role assignments and API keys (the
grants of principals and scopes: permissions/selectors.py). Every list is one query plus a constant number of
prefetches, whatever the number of rows."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from environments.models import Environment
from organisations import models
from permissions.models import Grant
from projects.models import Project

User = get_user_model()

Scope = models.Organisation | Project | Environment


# --------------------------------------------------------------------------------------
# Organisations and members
# --------------------------------------------------------------------------------------


def organisations_of(*, principal: Any) -> QuerySet[models.Organisation]:
    """The organisations `principal` is a member of (an API key: its own, while usable)."""
    if isinstance(principal, models.OrganisationAPIKey):
        if not principal.is_usable:
            return models.Organisation.objects.none()
        return models.Organisation.objects.filter(pk=principal.organisation_id)
    if not getattr(principal, "is_authenticated", False):
        return models.Organisation.objects.none()
    return models.Organisation.objects.filter(memberships__user_id=principal.pk).order_by(
        "name", "id"
    )


def members_of(*, organisation: models.Organisation) -> QuerySet[models.OrganisationMembership]:
    return (
        models.OrganisationMembership.objects.filter(organisation=organisation)
        .select_related("user")
        .order_by("user_id")
    )


def membership_get(
    *, organisation: models.Organisation, user_id: Any
) -> models.OrganisationMembership | None:
    return members_of(organisation=organisation).filter(user_id=user_id).first()


def is_member(*, organisation: models.Organisation | int, user_id: Any) -> bool:
    organisation_id = organisation if isinstance(organisation, int) else organisation.pk
    return models.OrganisationMembership.objects.filter(
        organisation_id=organisation_id, user_id=user_id
    ).exists()


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


def groups_of(*, organisation: models.Organisation) -> QuerySet[models.UserGroup]:
    """The organisation's groups with their members' ids prefetched (one extra query)."""
    return (
        models.UserGroup.objects.filter(organisation=organisation)
        .prefetch_related(Prefetch("users", queryset=User.objects.only("id").order_by("id")))
        .order_by("name", "id")
    )


def group_is_bare(*, group: models.UserGroup) -> bool:
    """A group holding no grant and no role (MANAGE_USER_GROUPS holders may manage it)."""
    return not (
        Grant.objects.filter(group_id=group.pk).exists()
        or models.RoleAssignment.objects.filter(group_id=group.pk).exists()
    )


# --------------------------------------------------------------------------------------
# Roles and role assignments
# --------------------------------------------------------------------------------------


def roles_of(*, organisation: models.Organisation) -> QuerySet[models.Role]:
    return models.Role.objects.filter(organisation=organisation).order_by("name", "id")


def role_assignments_of(*, role: models.Role, kind: str) -> QuerySet[models.RoleAssignment]:
    """A role's assignments to principals of one kind: `user`, `group` or `api_key`."""
    if kind not in ("user", "group", "api_key"):
        raise ValueError(f"Unknown principal kind {kind!r}")
    return models.RoleAssignment.objects.filter(role=role, **{f"{kind}__isnull": False}).order_by(
        "id"
    )


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


def api_keys_of(*, organisation: models.Organisation) -> QuerySet[models.OrganisationAPIKey]:
    return models.OrganisationAPIKey.objects.filter(organisation=organisation).order_by("id")
