"""Shared API building blocks: the base viewset, the actor of a request, and the error
responses every view documents in the OpenAPI schema."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request

from audit.services import Actor
from permissions.drf import ScopedActionPermission


class ErrorResponseSerializer(serializers.Serializer):
    """`{"detail", "code"}`: every error that is not a 400 (API.md Conventions)."""

    detail = serializers.CharField()
    code = serializers.CharField()


def actor_of(request: Request) -> Actor:
    """The authenticated principal (a user or an organisation API key) as a service actor."""
    return cast(Actor, request.user)


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


BAD_REQUEST = OpenApiResponse(OpenApiTypes.OBJECT, description='Invalid input: {"field": [...]}')
UNAUTHENTICATED = error_response("No credentials.")
FORBIDDEN = error_response("The caller may view the scope but not do this.")
NOT_FOUND = error_response("Not found, or the caller may not view it.")
READ_ERRORS = {401: UNAUTHENTICATED, 404: NOT_FOUND}
LIST_ERRORS = {400: BAD_REQUEST, **READ_ERRORS}
WRITE_ERRORS = {400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}
DELETE_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}


# Base of every API viewset: actions map to requirements (`action_requirements`, checked by
# the engine through ScopedActionPermission); a method the route does not map is a 405 (not a
# 403 from the permission class, which denies unmapped actions); OPTIONS only needs
# authentication. (A comment, not a docstring: drf-spectacular would publish a docstring as
# the description of every operation that has none.)
class ActionViewSet(viewsets.GenericViewSet):
    action_requirements: dict[str, str] = {}
    #: actions checked by authentication alone (their handlers check what they need)
    authenticated_actions: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        method = (request.method or "").lower()
        if method != "options" and method not in getattr(self, "action_map", {}):
            raise MethodNotAllowed(request.method or "")
        super().initial(request, *args, **kwargs)

    def get_permissions(self) -> list[Any]:
        if self.action is None or self.action in self.authenticated_actions:
            return [permissions.IsAuthenticated()]
        return [ScopedActionPermission()]
