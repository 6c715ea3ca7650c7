"""API authentication (docs/API.md, Authentication).

`Authorization: Token <key>`: a user's django-rest-knox token (hashed, expiring after
`TOKEN_TTL`, deleted by logout). `Authorization: Api-Key <key>`: an organisation API key.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from organisations.models import OrganisationAPIKey
from tagwarden.api.security import HeaderKeyScheme

KEYWORD = "Api-Key"


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox's token authentication, costing one query (the token with its user).

    knox sweeps the user's other expired tokens on every request (one more query); here an
    expired token is refused and deleted when it is presented, and login sweeps the user's
    expired tokens (`delete_expired_tokens`). A header that is not UTF-8 is a 401, not a 500.
    """

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


def delete_expired_tokens(*, user: Any) -> None:
    AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()


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


class ExpiringTokenScheme(HeaderKeyScheme):
    """Documents `Authorization: Token <key>` in the OpenAPI schema."""

    target_class = "organisations.authentication.ExpiringTokenAuthentication"
    name = "tokenAuth"
    description = 'User token from POST /api/v1/auth/login/: "Token <key>".'


class OrganisationAPIKeyScheme(HeaderKeyScheme):
    """Documents `Authorization: Api-Key <key>` in the OpenAPI schema."""

    target_class = "organisations.authentication.OrganisationAPIKeyAuthentication"
    name = "ApiKeyAuth"
    description = 'Organisation API key: "Api-Key <key>".'
