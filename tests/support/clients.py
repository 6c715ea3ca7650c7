"""API clients for tests: one authenticated the quick way, one the way production does."""

from __future__ import annotations

from typing import Any

from knox.models import AuthToken
from rest_framework.test import APIClient


def client_for(principal: Any) -> APIClient:
    """An API client authenticated as a user (force_authenticate) or an API key (header)."""
    client = APIClient()
    plain_key = getattr(principal, "plain_key", None)
    if plain_key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
    else:
        client.force_authenticate(principal)
    return client


def token_client(principal: Any) -> APIClient:
    """A client that authenticates on every request like production does: `Token` for users,
    `Api-Key` for organisation API keys (the factory leaves the plain key on `plain_key`)."""
    client = APIClient()
    plain_key = getattr(principal, "plain_key", None)
    if plain_key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
    else:
        _, key = AuthToken.objects.create(user=principal)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client
