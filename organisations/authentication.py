"""`Authorization: Api-Key <key>` authentication for organisation API keys."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from organisations.models import OrganisationAPIKey

KEYWORD = "Api-Key"


class OrganisationAPIKeyAuthentication(authentication.BaseAuthentication):
    """The key is the principal: `request.user` is the `OrganisationAPIKey`.

    Revoked, expired and unknown keys are refused with 401; the hash check is the library's.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, key = header.partition(" ")
        if keyword.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("No API key given.")
        try:
            api_key = OrganisationAPIKey.objects.get_from_key(key)
        except OrganisationAPIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("API key has expired.")
        return api_key, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class OrganisationAPIKeyScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Api-Key <key>` in the OpenAPI schema."""

    target_class = "organisations.authentication.OrganisationAPIKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Organisation API key: "Api-Key <key>".',
        }
