"""Organisations, their members, user groups, roles and API keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from tagwarden.models import NamedModel, exactly_one_set, optional_fk, unique_when_set


class Organisation(NamedModel):
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)


class MembershipRole(models.TextChoices):
    ADMIN = "ADMIN", "Admin"
    USER = "USER", "User"


class OrganisationMembership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organisation_memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(
        max_length=8, choices=MembershipRole.choices, default=MembershipRole.USER
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=models.Q(role__in=MembershipRole.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == MembershipRole.ADMIN


class UserGroup(NamedModel):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=200)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="user_groups")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(NamedModel.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), "organisation", name="usergroup_unique_name"),
        ]


class Role(NamedModel):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(NamedModel.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), "organisation", name="role_unique_name"),
        ]


class OrganisationAPIKeyManager(BaseAPIKeyManager):
    def assign_key(self, obj: AbstractAPIKey) -> str:
        key = super().assign_key(obj)
        # The library uses "prefix.hash" as primary key; ours is an integer (docs/API.md,
        # "Conventions": ids are integers), so only the prefix and the hash are kept from what
        # it generated.
        obj.id = None  # type: ignore[assignment]
        return key


class OrganisationAPIKey(AbstractAPIKey):
    """A principal for API clients. `is_admin` counts as an organisation ADMIN; any other key
    acts only through its roles. The key itself is never stored: only its prefix and hash."""

    id = models.BigAutoField(primary_key=True)  # type: ignore[assignment]
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="api_keys"
    )
    is_admin = models.BooleanField(default=False)

    objects = OrganisationAPIKeyManager()  # type: ignore[assignment,misc]

    class Meta(AbstractAPIKey.Meta):
        abstract = False
        verbose_name = "organisation API key"
        verbose_name_plural = "organisation API keys"

    # A key authenticates as itself: DRF puts it in request.user.
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def is_usable(self) -> bool:
        return not self.revoked and not self.has_expired

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"


class RoleAssignment(models.Model):
    """A role assigned to exactly one user, group or API key of the role's organisation."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="assignments")
    user = optional_fk(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments"
    )
    group = optional_fk(UserGroup, on_delete=models.CASCADE, related_name="role_assignments")
    api_key = optional_fk(
        OrganisationAPIKey, on_delete=models.CASCADE, related_name="role_assignments"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=exactly_one_set("user", "group", "api_key"),
                name="roleassignment_exactly_one_principal",
            ),
            unique_when_set("role", "user", name="roleassignment_unique_user"),
            unique_when_set("role", "group", name="roleassignment_unique_group"),
            unique_when_set("role", "api_key", name="roleassignment_unique_api_key"),
        ]

    def __str__(self) -> str:
        return f"{self.role} → {self.principal}"

    @property
    def principal(self) -> Any:
        return self.user or self.group or self.api_key
