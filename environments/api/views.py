"""Environments (the environment CRUD; docs/API.md
and the OpenAPI schema). Addressed by `api_key` in URLs, by integer id in payloads."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from environments import services
from environments.api.filters import EnvironmentFilter
from environments.api.serializers import (
    EnvironmentCreateSerializer,
    EnvironmentSerializer,
    EnvironmentUpdateSerializer,
)
from environments.models import Environment
from permissions import catalogue as keys
from permissions import engine
from permissions.drf import ADMIN, VIEW, environment_or_404, require
from tagwarden.api.base import (
    BAD_REQUEST,
    DELETE_ERRORS,
    FORBIDDEN,
    LIST_ERRORS,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ActionViewSet,
    actor_of,
)


@extend_schema_view(
    list=extend_schema(
        summary="Environments the caller may view",
        responses={200: EnvironmentSerializer, **LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Create an environment (CREATE_ENVIRONMENT on the project)",
        request=EnvironmentCreateSerializer,
        responses={
            201: EnvironmentSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    ),
    retrieve=extend_schema(responses={200: EnvironmentSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Edit an environment (environment admin)",
        request=EnvironmentUpdateSerializer,
        responses={200: EnvironmentSerializer, **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete an environment (environment admin)",
        responses={204: None, **DELETE_ERRORS},
    ),
)
class EnvironmentViewSet(ActionViewSet):
    serializer_class = EnvironmentSerializer
    filterset_class = EnvironmentFilter
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    lookup_field = "api_key"
    action_requirements = {"retrieve": VIEW, "partial_update": ADMIN, "destroy": ADMIN}
    authenticated_actions = ("list", "create")

    scope_kwarg = "api_key"

    def load_scope(self) -> Environment:
        return environment_or_404(self.request, self.kwargs[self.scope_kwarg])

    def get_queryset(self) -> QuerySet[Environment]:
        if self.schema_only:
            return Environment.objects.none()
        return Environment.objects.filter(engine.viewable_environments_q(self.request.user))

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(EnvironmentSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        serializer = EnvironmentCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = data.pop("project")
        require(request, keys.CREATE_ENVIRONMENT, project)
        environment = services.environment_create(project=project, **data, actor=actor_of(request))
        return Response(EnvironmentSerializer(environment).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, api_key: str) -> Response:
        return Response(EnvironmentSerializer(self.get_scope()).data)

    def partial_update(self, request: Request, api_key: str) -> Response:
        environment = self.get_scope()
        serializer = EnvironmentUpdateSerializer(
            data=request.data,
            partial=True,
            context={"request": request, "environment": environment},
        )
        serializer.is_valid(raise_exception=True)
        environment = services.environment_update(
            environment=environment, **serializer.validated_data, actor=actor_of(request)
        )
        return Response(EnvironmentSerializer(environment).data)

    def destroy(self, request: Request, api_key: str) -> Response:
        services.environment_delete(environment=self.get_scope(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
