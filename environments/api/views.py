"""Environments (the environment CRUD; docs/API.md
and the OpenAPI schema). Addressed by `api_key` in URLs, by integer id in payloads."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response

from environments import services
from environments.api import serializers
from environments.api.filters import EnvironmentFilter
from environments.models import Environment
from permissions import catalogue as keys
from permissions import engine
from permissions.drf import require
from tagwarden.api.base import NOT_FOUND, ScopeViewSet, actor_of, no_content
from tagwarden.api.schema import crud_schema


@crud_schema(
    {"list": "Environments the caller may view"},
    bodies={
        "create": serializers.EnvironmentCreateSerializer,
        "partial_update": serializers.EnvironmentUpdateSerializer,
    },
    list={"responses": {404: NOT_FOUND}},
)
class EnvironmentViewSet(ScopeViewSet, scope="environment", scope_kwarg="api_key"):
    model = Environment
    serializer_class = serializers.EnvironmentSerializer
    filterset_class = EnvironmentFilter
    lookup_field = "api_key"

    def rows(self) -> QuerySet[Environment]:
        return Environment.objects.filter(engine.viewable_environments_q(self.request.user))

    def create(self, request: Request) -> Response:
        """Create an environment (CREATE_ENVIRONMENT on the project)"""
        data = self.parse(serializers.EnvironmentCreateSerializer)
        project = data.pop("project")
        require(request, keys.CREATE_ENVIRONMENT, project)
        environment = services.environment_create(project=project, **data, actor=actor_of(request))
        return self.created(environment)

    def partial_update(self, request: Request, api_key: str) -> Response:
        """Edit an environment (environment admin)"""
        data = self.parse(serializers.EnvironmentUpdateSerializer, partial=True)
        environment = services.environment_update(
            environment=self.get_scope(), **data, actor=actor_of(request)
        )
        return self.answer(environment)

    def destroy(self, request: Request, api_key: str) -> Response:
        """Delete an environment (environment admin)"""
        services.environment_delete(environment=self.get_scope(), actor=actor_of(request))
        return no_content()
