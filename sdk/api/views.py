"""The endpoints the Flagsmith SDKs call, and server-side key management (docs/API.md
"Flags for applications").

The SDK endpoints authenticate an environment key, not a principal: they read flags of that
one environment and never grants, members or other environments. Server-side keys are
managed by environment admins (404 for whoever cannot view the environment, 403 for the
others), through `sdk.services`, which audits every change.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from environments.models import Environment
from permissions.drf import ADMIN
from sdk import selectors, services
from sdk.api import serializers
from sdk.api.authentication import (
    EnvironmentKeyAuthentication,
    HasEnvironmentKey,
    ServerKeyAuthentication,
)
from sdk.models import ServerKey
from tagwarden.api.base import BAD_REQUEST, UNAUTHENTICATED, ActionViewSet, actor_of, no_content
from tagwarden.api.schema import crud_schema

_SDK_UNAUTHENTICATED = {401: UNAUTHENTICATED}


class EnvironmentKeyView(APIView):
    """Base of the SDK endpoints: `request.auth` is the `selectors.EnvironmentKey`."""

    authentication_classes = [EnvironmentKeyAuthentication]
    permission_classes = [HasEnvironmentKey]

    def environment(self, request: Request) -> Environment:
        return cast(selectors.EnvironmentKey, request.auth).environment


class FlagsView(EnvironmentKeyView):
    @extend_schema(
        summary="The environment's flags (Flagsmith SDKs: X-Environment-Key)",
        responses={200: serializers.FlagSerializer(many=True), **_SDK_UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.environment_flags(environment=self.environment(request)))


class IdentitiesView(EnvironmentKeyView):
    @extend_schema(
        summary="An identity's flags, with segment overrides applied; stores its traits",
        request=serializers.IdentitySerializer,
        responses={
            200: serializers.IdentityFlagsSerializer,
            400: BAD_REQUEST,
            **_SDK_UNAUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = serializers.IdentitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.identity_identify(
            environment=self.environment(request),
            identifier=data["identifier"],
            traits=[services.TraitInput(**trait) for trait in data["traits"]],
            transient=data["transient"],
        )
        return Response(
            {"identifier": result.identifier, "flags": result.flags, "traits": result.traits}
        )


class EnvironmentDocumentView(EnvironmentKeyView):
    authentication_classes = [ServerKeyAuthentication]

    @extend_schema(
        summary="The environment document for local evaluation (server-side key only)",
        responses={200: dict, **_SDK_UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.environment_document(environment=self.environment(request)))


# --------------------------------------------------------------------------------------
# Server-side keys
# --------------------------------------------------------------------------------------

_API_KEY = OpenApiParameter(
    "api_key", str, OpenApiParameter.PATH, description="The environment's api_key."
)


@crud_schema(
    {"list": "The environment's server-side keys (environment admin; prefix only)"},
    bodies={
        "create": serializers.ServerKeyCreateSerializer,
        "partial_update": serializers.ServerKeyUpdateSerializer,
    },
    created=serializers.ServerKeyCreatedSerializer,
    parameters=[_API_KEY],
)
class ServerKeyViewSet(ActionViewSet, scope="environment", scope_kwarg="api_key"):
    model = ServerKey
    serializer_class = serializers.ServerKeySerializer
    filter_backends: list[Any] = []
    action_requirements = dict.fromkeys(
        ("list", "retrieve", "create", "partial_update", "destroy"), ADMIN
    )

    def rows(self) -> QuerySet[ServerKey]:
        return selectors.server_keys_of_environment(environment=self.get_scope())

    def get_object(self) -> ServerKey:
        # A key of another environment is a 404 (the route's <id:pk> bounds the id).
        server_key = (
            self.get_queryset()
            .select_related("environment__project")
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if server_key is None:
            raise Http404
        return server_key

    def create(self, request: Request, api_key: str) -> Response:
        """Create a server-side key (environment admin); the key is shown this once"""
        data = self.parse(serializers.ServerKeyCreateSerializer)
        server_key, key = services.server_key_create(
            environment=self.get_scope(), **data, actor=actor_of(request)
        )
        return Response(
            serializers.ServerKeyCreatedSerializer(server_key, context={"key": key}).data,
            status=status.HTTP_201_CREATED,
        )

    def partial_update(self, request: Request, api_key: str, pk: int) -> Response:
        """Rename or revoke a server-side key (environment admin)"""
        server_key = self.get_object()
        data = self.parse(serializers.ServerKeyUpdateSerializer, partial=True)
        server_key = services.server_key_update(
            server_key=server_key, **data, actor=actor_of(request)
        )
        return self.answer(server_key)

    def destroy(self, request: Request, api_key: str, pk: int) -> Response:
        """Delete a server-side key (environment admin)"""
        services.server_key_delete(server_key=self.get_object(), actor=actor_of(request))
        return no_content()
