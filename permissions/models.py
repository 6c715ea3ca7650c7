"""Grants: a principal (user, group or role) holds keys, and maybe `admin`, on one scope.

One table for every principal and scope, so that the engine loads a principal's applicable
entries for an organisation in one query. `organisation` is always set (denormalised from the
scope) and `project` is set for environment grants too, which keeps "every grant that can
reach project P" a single indexed lookup.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from environments.models import Environment
from organisations.models import Organisation, Role, UserGroup
from permissions.catalogue import CATALOGUE, Level
from projects.models import Project, Tag
from tagwarden.models import exactly_one_set, optional_fk

PRINCIPAL_FIELDS = ("user", "group", "role")


def _unique_per_principal_and_scope() -> list[models.UniqueConstraint]:
    levels = {
        "organisation": (["organisation"], models.Q(project__isnull=True)),
        "project": (["project"], models.Q(project__isnull=False, environment__isnull=True)),
        "environment": (["environment"], models.Q(environment__isnull=False)),
    }
    return [
        models.UniqueConstraint(
            fields=[principal, *scope_fields],
            condition=models.Q(**{f"{principal}__isnull": False}) & condition,
            name=f"grant_unique_{principal}_{level}",
        )
        for principal in PRINCIPAL_FIELDS
        for level, (scope_fields, condition) in levels.items()
    ]


class Grant(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="grants")
    project = optional_fk(Project, on_delete=models.CASCADE, related_name="grants")
    environment = optional_fk(Environment, on_delete=models.CASCADE, related_name="grants")
    user = optional_fk(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="permission_grants"
    )
    group = optional_fk(UserGroup, on_delete=models.CASCADE, related_name="grants")
    role = optional_fk(Role, on_delete=models.CASCADE, related_name="grants")
    # Project or environment administration; never at organisation level (membership ADMIN).
    admin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=exactly_one_set(*PRINCIPAL_FIELDS), name="grant_exactly_one_principal"
            ),
            models.CheckConstraint(
                condition=models.Q(environment__isnull=True) | models.Q(project__isnull=False),
                name="grant_environment_has_project",
            ),
            models.CheckConstraint(
                condition=models.Q(project__isnull=False) | models.Q(admin=False),
                name="grant_no_admin_at_organisation",
            ),
            *_unique_per_principal_and_scope(),
        ]
        indexes = [
            models.Index(fields=["organisation", "user"], name="grant_org_user"),
            models.Index(fields=["organisation", "group"], name="grant_org_group"),
            models.Index(fields=["organisation", "role"], name="grant_org_role"),
        ]

    def __str__(self) -> str:
        return f"{self.principal_kind} grant #{self.pk} on {self.level}"

    @property
    def level(self) -> Level:
        if self.environment_id is not None:
            return Level.ENVIRONMENT
        if self.project_id is not None:
            return Level.PROJECT
        return Level.ORGANISATION

    @property
    def principal_kind(self) -> str:
        for name in PRINCIPAL_FIELDS:
            if getattr(self, f"{name}_id") is not None:
                return name
        return "none"

    @property
    def principal(self) -> Any:
        return getattr(self, self.principal_kind, None)

    @property
    def scope(self) -> Organisation | Project | Environment:
        if self.environment_id is not None:
            return self.environment  # type: ignore[return-value]
        if self.project_id is not None:
            return self.project  # type: ignore[return-value]
        return self.organisation


class GrantEntry(models.Model):
    """One key of a grant. Only role grants' entries may carry tags (services enforce it)."""

    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="entries")
    key = models.CharField(max_length=64, choices=[(k, k) for k in CATALOGUE])
    tags: models.ManyToManyField[Tag, GrantEntryTag] = models.ManyToManyField(
        Tag, through="GrantEntryTag", blank=True, related_name="+"
    )

    class Meta:
        ordering = ["grant_id", "key"]
        verbose_name_plural = "grant entries"
        constraints = [
            models.UniqueConstraint(fields=["grant", "key"], name="grantentry_unique_key"),
        ]

    def __str__(self) -> str:
        return self.key


class GrantEntryTag(models.Model):
    entry = models.ForeignKey(GrantEntry, on_delete=models.CASCADE, related_name="entry_tags")
    # RESTRICT, not CASCADE: silently dropping the last tag of an entry would turn it into an
    # untagged entry reaching every feature (never widen). Deleting the whole project still
    # works because the entry goes with it.
    tag = models.ForeignKey(Tag, on_delete=models.RESTRICT, related_name="grant_entry_tags")

    class Meta:
        ordering = ["entry_id", "tag_id"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "tag"], name="grantentrytag_unique"),
        ]

    def __str__(self) -> str:
        return f"entry {self.entry_id} tag {self.tag_id}"


class PolicyChange(models.Model):
    """A committed change to what an organisation's policies are loaded from: written by
    database triggers on those tables (permissions/triggers.py), in the transaction of the
    change. The ids of an organisation's rows are the stamp its shared policies are kept
    under (docs/PERMISSIONS.md, "Policies kept across requests"). Not a foreign key: a
    trigger's insert must take no lock on the organisation row."""

    organisation_id = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["organisation_id", "id"], name="policychange_org_id"),
        ]

    def __str__(self) -> str:
        return f"organisation {self.organisation_id} change {self.pk}"
