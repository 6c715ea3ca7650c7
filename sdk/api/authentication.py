"""`X-Environment-Key` authentication for the SDK endpoints (docs/API.md "Flags for
applications"). The key names an environment; it is no principal: `request.user` stays
anonymous and `request.auth` is the `EnvironmentKey`. An unknown, revoked or foreign key (an
organisation API key, a token) is a JSON 401 that says nothing about what exists."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from sdk import selectors
from tagwarden.api.security import HeaderKeyScheme

HEADER = "X-Environment-Key"


class EnvironmentKeyAuthentication(authentication.BaseAuthentication):
    #: Only server-side keys (`ser.`…) are accepted (the environment document).
    server_keys_only = False

    def authenticate(self, request: Request) -> tuple[Any, Any]:
        key = request.META.get("HTTP_X_ENVIRONMENT_KEY", "").strip()
        if not key:
            raise exceptions.NotAuthenticated(f"The {HEADER} header is required.")
        resolved = selectors.environment_key_resolve(key=key)
        if resolved is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked environment key.")
        if self.server_keys_only and not resolved.is_server_key:
            raise exceptions.AuthenticationFailed(
                "This endpoint needs a server-side environment key (ser.…)."
            )
        return AnonymousUser(), resolved

    def authenticate_header(self, request: Request) -> str:
        return HEADER


class ServerKeyAuthentication(EnvironmentKeyAuthentication):
    server_keys_only = True


class HasEnvironmentKey(permissions.BasePermission):
    """Whatever else authenticated the request (a forced user in tests, a future
    authenticator), only an environment key reads flags: anything else is a 401."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, selectors.EnvironmentKey):
            raise exceptions.NotAuthenticated(f"The {HEADER} header is required.")
        return True


class EnvironmentKeyScheme(HeaderKeyScheme):
    target_class = "sdk.api.authentication.EnvironmentKeyAuthentication"
    name = "EnvironmentKey"
    header = HEADER
    description = "An environment's api_key, or a server-side key (ser.…)."


class ServerKeyScheme(EnvironmentKeyScheme):
    target_class = "sdk.api.authentication.ServerKeyAuthentication"
    name = "ServerKey"
    description = "A server-side environment key (ser.…)."
