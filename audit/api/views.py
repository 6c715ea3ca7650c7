"""The audit log (read-only): `GET /organisations/{id}/audit-log/` (organisation admin) and
`GET /projects/{id}/audit-log/` (VIEW_AUDIT_LOG on the project)."""

from __future__ import annotations

from django.db.models import QuerySet

from audit import selectors
from audit.api.filters import AuditLogFilter
from audit.api.serializers import AuditLogEntrySerializer
from audit.models import AuditLogEntry
from permissions import catalogue as keys
from permissions.drf import ADMIN
from tagwarden.api.base import ActionViewSet
from tagwarden.api.schema import crud_schema


class AuditLogViewSet(ActionViewSet):
    model = AuditLogEntry
    serializer_class = AuditLogEntrySerializer
    filterset_class = AuditLogFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]


@crud_schema({"list": "The organisation's audit log, newest first (organisation admin)"})
class OrganisationAuditLogViewSet(AuditLogViewSet, scope="organisation"):
    action_requirements = {"list": ADMIN}

    def rows(self) -> QuerySet[AuditLogEntry]:
        return selectors.entries_of_organisation(organisation=self.get_scope())


@crud_schema({"list": "The project's audit log, newest first (VIEW_AUDIT_LOG)"})
class ProjectAuditLogViewSet(AuditLogViewSet, scope="project"):
    action_requirements = {"list": keys.VIEW_AUDIT_LOG}

    def rows(self) -> QuerySet[AuditLogEntry]:
        return selectors.entries_of_project(project=self.get_scope())
