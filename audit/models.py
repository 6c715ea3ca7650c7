"""The append-only audit log (docs/AUDIT.md)."""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models

from organisations.models import Organisation, OrganisationAPIKey
from tagwarden.models import optional_fk


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"


class AuditLogQuerySet(models.QuerySet["AuditLogEntry"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise TypeError("The audit log is append-only")

    def delete(self) -> NoReturn:
        raise TypeError("The audit log is append-only")


class AuditLogEntry(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="audit_log_entries"
    )
    # Plain ids, not foreign keys: the history of a deleted project must survive it.
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    environment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_user = optional_fk(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, related_name="+")
    actor_api_key = optional_fk(OrganisationAPIKey, on_delete=models.SET_NULL, related_name="+")
    # Kept after the actor is deleted (its foreign key becomes null): "user", "api_key", or
    # "" for the system (management commands).
    actor_type = models.CharField(max_length=16, blank=True, default="")
    actor_name = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    object_type = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # Who gained and who lost which keys through this change (impact.previews summary);
    # null for changes that cannot move permissions, or made before impacts were recorded.
    impact = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"
        indexes = [
            models.Index(fields=["organisation", "-created_at"], name="audit_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} #{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("The audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("The audit log is append-only")
