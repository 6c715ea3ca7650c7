"""The audit log (read-only): `GET /organisations/{id}/audit-log/` (organisation admin) and
`GET /projects/{id}/audit-log/` (VIEW_AUDIT_LOG on the project)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from audit import selectors
from audit.api.filters import AuditLogFilter
from audit.api.serializers import AuditLogEntrySerializer
from audit.models import AuditLogEntry
from permissions import catalogue as keys
from permissions.drf import ADMIN, organisation_or_404, project_or_404
from tagwarden.api.base import ADMIN_LIST_ERRORS, ActionViewSet


class AuditLogViewSet(ActionViewSet):
    serializer_class = AuditLogEntrySerializer
    filterset_class = AuditLogFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def list(self, request: Request, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(AuditLogEntrySerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="The organisation's audit log, newest first (organisation admin)",
        responses={200: AuditLogEntrySerializer, **ADMIN_LIST_ERRORS},
    )
)
class OrganisationAuditLogViewSet(AuditLogViewSet):
    action_requirements = {"list": ADMIN}

    scope_kwarg = "organisation_pk"

    def load_scope(self) -> Any:
        return organisation_or_404(self.request, self.kwargs[self.scope_kwarg])

    def get_queryset(self) -> QuerySet[AuditLogEntry]:
        if self.schema_only:
            return AuditLogEntry.objects.none()
        return selectors.entries_of_organisation(organisation=self.get_scope())


@extend_schema_view(
    list=extend_schema(
        summary="The project's audit log, newest first (VIEW_AUDIT_LOG)",
        responses={200: AuditLogEntrySerializer, **ADMIN_LIST_ERRORS},
    )
)
class ProjectAuditLogViewSet(AuditLogViewSet):
    action_requirements = {"list": keys.VIEW_AUDIT_LOG}

    scope_kwarg = "project_pk"

    def load_scope(self) -> Any:
        return project_or_404(self.request, self.kwargs[self.scope_kwarg])

    def get_queryset(self) -> QuerySet[AuditLogEntry]:
        if self.schema_only:
            return AuditLogEntry.objects.none()
        return selectors.entries_of_project(project=self.get_scope())
