"""Authentication (API.md Conventions): token login, `Token` and `Api-Key` headers, 401."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import factories as f

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"
PROTECTED = "/api/v1/organisations/"


def test_login__valid_credentials__200_with_key() -> None:
    user = f.UserFactory(username="alice")
    response = APIClient().post(LOGIN, {"username": "alice", "password": f.PASSWORD})
    assert response.status_code == 200
    assert set(response.data) == {"key"}
    assert user.auth_token.key == response.data["key"]


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": f.PASSWORD},
        {"username": "alice"},
        {},
    ],
)
def test_login__bad_credentials__400(payload: dict[str, str]) -> None:
    f.UserFactory(username="alice")
    response = APIClient().post(LOGIN, payload)
    assert response.status_code == 400


def test_login__valid_credentials__200() -> None:
    f.UserFactory(username="alice")
    response = APIClient().post(LOGIN, {"username": "alice", "password": f.PASSWORD})
    assert response.status_code == 200


def test_token_header__authenticates_the_user(organisation: Any) -> None:
    user = f.member(organisation)
    key = Token.objects.create(user=user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get(PROTECTED)
    assert response.status_code == 200
    assert [o["id"] for o in response.data["results"]] == [organisation.pk]


def test_no_credentials__401() -> None:
    response = APIClient().get(PROTECTED)
    assert response.status_code == 401


def test_unknown_token__401() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get(PROTECTED).status_code == 401


def _key_client(plain_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
    return client


def test_api_key_header__authenticates_the_key(organisation: Any) -> None:
    api_key = f.APIKeyFactory(organisation=organisation)
    response = _key_client(api_key.plain_key).get(PROTECTED)
    assert response.status_code == 200
    assert [o["id"] for o in response.data["results"]] == [organisation.pk]


def test_api_key_header__revoked_key__401(organisation: Any) -> None:
    api_key = f.APIKeyFactory(organisation=organisation, revoked=True)
    assert _key_client(api_key.plain_key).get(PROTECTED).status_code == 401


def test_api_key_header__expired_key__401(organisation: Any) -> None:
    api_key = f.APIKeyFactory(
        organisation=organisation, expiry_date=timezone.now() - timedelta(seconds=1)
    )
    assert _key_client(api_key.plain_key).get(PROTECTED).status_code == 401


def test_api_key_header__not_yet_expired_key__200(organisation: Any) -> None:
    api_key = f.APIKeyFactory(
        organisation=organisation, expiry_date=timezone.now() + timedelta(days=1)
    )
    assert _key_client(api_key.plain_key).get(PROTECTED).status_code == 200


@pytest.mark.parametrize("header", ["Api-Key unknown.key", "Api-Key ", "Api-Key abcdefgh"])
def test_api_key_header__unknown_or_empty_key__401(organisation: Any, header: str) -> None:
    f.APIKeyFactory(organisation=organisation)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(PROTECTED).status_code == 401


def test_api_key_header__right_prefix_wrong_secret__401(organisation: Any) -> None:
    api_key = f.APIKeyFactory(organisation=organisation)
    prefix = api_key.plain_key.partition(".")[0]
    assert _key_client(f"{prefix}.wrong-secret").get(PROTECTED).status_code == 401


def test_api_key_revoked_through_the_api__stops_working(organisation: Any) -> None:
    admin = f.member(organisation, admin=True)
    api_key = f.APIKeyFactory(organisation=organisation)
    client = _key_client(api_key.plain_key)
    assert client.get(PROTECTED).status_code == 200
    admin_client = APIClient()
    admin_client.force_authenticate(admin)
    url = f"/api/v1/organisations/{organisation.pk}/api-keys/{api_key.pk}/"
    assert admin_client.patch(url, {"revoked": True}).status_code == 200
    assert client.get(PROTECTED).status_code == 401


def test_unauthenticated_response__names_a_scheme() -> None:
    response = APIClient().get(PROTECTED)
    assert response.status_code == 401
    assert response.has_header("WWW-Authenticate")
