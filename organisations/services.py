"""Writes for organisations, membership, groups, roles, role assignments and API keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, audit_record
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)


def organisation_create(*, name: str, creator: AbstractBaseUser | None) -> Organisation:
    """The creator becomes the organisation's ADMIN member."""
    with transaction.atomic():
        organisation = Organisation.objects.create(name=name)
        audit_record(
            actor=creator,
            action=AuditAction.CREATED,
            obj=organisation,
            organisation_id=organisation.pk,
            after={"name": organisation.name},
        )
        if creator is not None:
            membership_create(
                organisation=organisation, user=creator, role=MembershipRole.ADMIN, actor=creator
            )
    return organisation


def membership_create(
    *,
    organisation: Organisation,
    user: AbstractBaseUser,
    role: str = MembershipRole.USER,
    actor: Actor,
) -> OrganisationMembership:
    if role not in MembershipRole.values:
        raise ValidationError({"role": [f"Must be one of {', '.join(MembershipRole.values)}."]})
    with transaction.atomic():
        if OrganisationMembership.objects.filter(
            organisation=organisation, user_id=user.pk
        ).exists():
            raise ValidationError({"user": ["This user is already a member."]})
        membership = OrganisationMembership.objects.create(
            organisation=organisation, user_id=user.pk, role=role
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=membership,
            organisation_id=organisation.pk,
            after={"user": user.pk, "role": role},
        )
    return membership


def group_create(
    *,
    organisation: Organisation,
    name: str,
    users: Iterable[AbstractBaseUser] = (),
    actor: Actor,
) -> UserGroup:
    users = list(users)
    member_ids = set(
        OrganisationMembership.objects.filter(
            organisation=organisation, user_id__in=[u.pk for u in users]
        ).values_list("user_id", flat=True)
    )
    outsiders = sorted(u.pk for u in users if u.pk not in member_ids)
    if outsiders:
        raise ValidationError(
            {"users": [f"Not members of this organisation: {', '.join(map(str, outsiders))}."]}
        )
    if UserGroup.objects.filter(organisation=organisation, name__iexact=name).exists():
        raise ValidationError({"name": ["A group with this name already exists."]})
    with transaction.atomic():
        group = UserGroup.objects.create(organisation=organisation, name=name)
        group.users.set(users)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=group,
            organisation_id=organisation.pk,
            after={"name": name, "users": sorted(u.pk for u in users)},
        )
    return group


def role_create(
    *, organisation: Organisation, name: str, description: str = "", actor: Actor
) -> Role:
    if Role.objects.filter(organisation=organisation, name__iexact=name).exists():
        raise ValidationError({"name": ["A role with this name already exists."]})
    with transaction.atomic():
        role = Role.objects.create(organisation=organisation, name=name, description=description)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=role,
            organisation_id=organisation.pk,
            after={"name": name, "description": description},
        )
    return role


def role_assignment_create(
    *,
    role: Role,
    user: AbstractBaseUser | None = None,
    group: UserGroup | None = None,
    api_key: OrganisationAPIKey | None = None,
    actor: Actor,
) -> RoleAssignment:
    """Assign `role` to exactly one principal of the role's organisation."""
    given = {
        name: value
        for name, value in (("user", user), ("group", group), ("api_key", api_key))
        if value is not None
    }
    if len(given) != 1:
        raise ValidationError({"non_field_errors": ["Give exactly one of user, group, api_key."]})
    ((field_name, principal),) = given.items()
    organisation_id = role.organisation_id
    if field_name == "user":
        in_org = OrganisationMembership.objects.filter(
            organisation_id=organisation_id, user_id=principal.pk
        ).exists()
    else:
        in_org = principal.organisation_id == organisation_id
    if not in_org:
        raise ValidationError(
            {field_name: [f"This {field_name} is not in the role's organisation."]}
        )
    lookup: dict[str, Any] = {"role": role, f"{field_name}_id": principal.pk}
    with transaction.atomic():
        if RoleAssignment.objects.filter(**lookup).exists():
            raise ValidationError(
                {field_name: [f"The role is already assigned to this {field_name}."]}
            )
        assignment = RoleAssignment.objects.create(**lookup)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=assignment,
            organisation_id=organisation_id,
            after={"role": role.pk, field_name: principal.pk},
        )
    return assignment


def api_key_create(
    *,
    organisation: Organisation,
    name: str,
    is_admin: bool = False,
    expires_at: datetime | None = None,
    actor: Actor,
) -> tuple[OrganisationAPIKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    with transaction.atomic():
        api_key, key = OrganisationAPIKey.objects.create_key(
            organisation=organisation, name=name, is_admin=is_admin, expiry_date=expires_at
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=api_key,
            organisation_id=organisation.pk,
            object_type="api_key",
            after={
                "name": name,
                "prefix": api_key.prefix,
                "is_admin": is_admin,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return api_key, key
