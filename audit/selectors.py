"""Reads of the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditLogEntry
from organisations.models import Organisation
from projects.models import Project


def entries_of_organisation(*, organisation: Organisation) -> QuerySet[AuditLogEntry]:
    """Every entry of an organisation, newest first (one query; actors are denormalised)."""
    return AuditLogEntry.objects.filter(organisation=organisation).order_by("-created_at", "-id")


def entries_of_project(*, project: Project) -> QuerySet[AuditLogEntry]:
    """The entries about a project and what is in it, newest first."""
    return AuditLogEntry.objects.filter(
        organisation_id=project.organisation_id, project_id=project.pk
    ).order_by("-created_at", "-id")
