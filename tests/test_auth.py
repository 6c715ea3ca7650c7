"""Authentication (docs/API.md, Authentication): token login and logout, expiring hashed
tokens, `Token` and `Api-Key` headers, 401, login throttling (API and admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import hashers
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests import factories as f

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"
LOGOUT = "/api/v1/auth/logout/"
PROTECTED = "/api/v1/organisations/"


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_login__valid_credentials__200_with_key() -> None:
    user = f.UserFactory(username="alice")
    response = APIClient().post(LOGIN, {"username": "alice", "password": f.PASSWORD})
    assert response.status_code == 200
    assert set(response.data) == {"key"}
    assert AuthToken.objects.filter(user=user).count() == 1
    assert _token_client(response.data["key"]).get(PROTECTED).status_code == 200


def test_login__token__stored_hashed_with_expiry_of_token_ttl(settings: Any) -> None:
    user = f.UserFactory(username="alice")
    before = timezone.now()
    key = APIClient().post(LOGIN, {"username": "alice", "password": f.PASSWORD}).data["key"]
    token = AuthToken.objects.get(user=user)
    assert key not in (token.digest, token.token_key)
    assert token.expiry is not None
    ttl = timedelta(seconds=settings.TOKEN_TTL)
    assert before + ttl <= token.expiry <= timezone.now() + ttl


def test_login__expired_tokens_of_the_user__deleted() -> None:
    user = f.UserFactory(username="alice")
    expired, _ = AuthToken.objects.create(user=user, expiry=timedelta(seconds=-1))
    APIClient().post(LOGIN, {"username": "alice", "password": f.PASSWORD})
    assert not AuthToken.objects.filter(pk=expired.pk).exists()
    assert AuthToken.objects.filter(user=user).count() == 1


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
    _, key = AuthToken.objects.create(user=user)
    response = _token_client(key).get(PROTECTED)
    assert response.status_code == 200
    assert [o["id"] for o in response.data["results"]] == [organisation.pk]


def test_no_credentials__401() -> None:
    response = APIClient().get(PROTECTED)
    assert response.status_code == 401


def test_unknown_token__401() -> None:
    assert _token_client("not-a-token").get(PROTECTED).status_code == 401


def test_token_header__not_utf8__401() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token caf\xe9")
    assert client.get(PROTECTED).status_code == 401


def test_token_header__expired_token__401_and_deleted(organisation: Any) -> None:
    user = f.member(organisation)
    token, key = AuthToken.objects.create(user=user, expiry=timedelta(seconds=-1))
    assert _token_client(key).get(PROTECTED).status_code == 401
    assert not AuthToken.objects.filter(pk=token.pk).exists()


def test_token_header__inactive_user__401(organisation: Any) -> None:
    user = f.member(organisation)
    _, key = AuthToken.objects.create(user=user)
    user.is_active = False
    user.save()
    assert _token_client(key).get(PROTECTED).status_code == 401


def test_token_header__authentication__one_query(
    organisation: Any, django_assert_max_num_queries: Any
) -> None:
    from organisations.authentication import ExpiringTokenAuthentication

    user = f.member(organisation)
    _, key = AuthToken.objects.create(user=user)
    from rest_framework.test import APIRequestFactory

    http_request = APIRequestFactory().get(PROTECTED, HTTP_AUTHORIZATION=f"Token {key}")
    with django_assert_max_num_queries(1):
        authenticated, _ = ExpiringTokenAuthentication().authenticate(http_request)
    assert authenticated.pk == user.pk


# --- logout ------------------------------------------------------------------------------


def test_logout__token__204_and_the_token_stops_working(organisation: Any) -> None:
    user = f.member(organisation)
    _, key = AuthToken.objects.create(user=user)
    _, other_key = AuthToken.objects.create(user=user)
    client = _token_client(key)
    assert client.get(PROTECTED).status_code == 200
    assert client.post(LOGOUT).status_code == 204
    assert client.get(PROTECTED).status_code == 401
    # Only the caller's token is revoked: the user's other sessions go on.
    assert _token_client(other_key).get(PROTECTED).status_code == 200


def test_logout__no_credentials__401() -> None:
    assert APIClient().post(LOGOUT).status_code == 401


def test_logout__api_key__401_and_the_key_keeps_working(organisation: Any) -> None:
    api_key = f.APIKeyFactory(organisation=organisation)
    client = _key_client(api_key.plain_key)
    assert client.post(LOGOUT).status_code == 401
    assert client.get(PROTECTED).status_code == 200


def test_logout__revoked_token__401(organisation: Any) -> None:
    _, key = AuthToken.objects.create(user=f.member(organisation))
    client = _token_client(key)
    assert client.post(LOGOUT).status_code == 204
    assert client.post(LOGOUT).status_code == 401


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


# --- indistinguishable failures -----------------------------------------------------------


def _hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts password hashing (the expensive step) by the configured hasher."""
    hasher = type(hashers.get_hasher("default"))
    calls: list[str] = []
    original = hasher.encode

    def encode(self: Any, password: str, salt: str, *args: Any, **kwargs: Any) -> str:
        calls.append(password)
        return original(self, password, salt, *args, **kwargs)

    monkeypatch.setattr(hasher, "encode", encode)
    return calls


@pytest.mark.parametrize(
    "username, password, active",
    [("alice", "wrong-password", True), ("nobody", f.PASSWORD, True), ("alice", f.PASSWORD, False)],
    ids=["wrong_password", "unknown_user", "inactive_user"],
)
def test_login__failure__same_400_body_after_hashing_the_password(
    monkeypatch: pytest.MonkeyPatch, username: str, password: str, active: bool
) -> None:
    f.UserFactory(username="alice", is_active=active)
    calls = _hash_calls(monkeypatch)
    response = APIClient().post(LOGIN, {"username": username, "password": password})
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    assert calls == [password]


# --- throttling ---------------------------------------------------------------------------


@pytest.fixture
def login_rates(settings: Any) -> dict[str, str]:
    rates = {"login_username": "3/min", "login_address": "5/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    return rates


def _login(username: str, password: str, address: str = "10.0.0.1") -> Any:
    return APIClient(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def test_login__over_the_username_rate__429_with_retry_after(login_rates: Any) -> None:
    f.UserFactory(username="alice")
    for n in range(3):
        assert _login("alice", "wrong", address=f"10.0.0.{n}").status_code == 400
    # From yet another address, with the right password: the username is locked for a while.
    response = _login("alice", f.PASSWORD, address="10.0.0.9")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "throttled"


def test_login__under_the_username_rate__200(login_rates: Any) -> None:
    f.UserFactory(username="alice")
    for _ in range(2):
        assert _login("alice", "wrong").status_code == 400
    assert _login("alice", f.PASSWORD).status_code == 200


def test_login__username_rate__counts_case_variants_together(login_rates: Any) -> None:
    f.UserFactory(username="alice")
    for name in ("alice", "ALICE", "Alice"):
        _login(name, "wrong", address="10.0.1.1")
    assert _login("alice", f.PASSWORD, address="10.0.1.2").status_code == 429


def test_login__over_the_address_rate__429_for_any_username(login_rates: Any) -> None:
    f.UserFactory(username="alice")
    for n in range(5):
        assert _login(f"user{n}", "wrong", address="10.0.0.7").status_code == 400
    response = _login("alice", f.PASSWORD, address="10.0.0.7")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # Another address is not affected.
    assert _login("alice", f.PASSWORD, address="10.0.0.8").status_code == 200


def test_login__forged_x_forwarded_for__does_not_escape_the_address_rate(login_rates: Any) -> None:
    f.UserFactory(username="alice")
    for n in range(5):
        client = APIClient(REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        client.post(LOGIN, {"username": f"user{n}", "password": "wrong"})
    client = APIClient(REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert client.post(LOGIN, {"username": "alice", "password": f.PASSWORD}).status_code == 429


def _admin_login(username: str, password: str, address: str) -> Any:
    client = Client(REMOTE_ADDR=address)
    return client.post("/admin/login/", {"username": username, "password": password})


def test_admin_login__over_the_username_rate__429_with_retry_after(login_rates: Any) -> None:
    f.UserFactory(username="root", is_staff=True, is_superuser=True)
    for n in range(3):
        assert _admin_login("root", "wrong", address=f"10.0.2.{n}").status_code == 200
    response = _admin_login("root", f.PASSWORD, address="10.0.2.9")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_admin_login__over_the_address_rate__429(login_rates: Any) -> None:
    f.UserFactory(username="root", is_staff=True, is_superuser=True)
    for n in range(5):
        _admin_login(f"user{n}", "wrong", address="10.0.3.1")
    assert _admin_login("root", f.PASSWORD, address="10.0.3.1").status_code == 429


def test_admin_login__under_the_rates__signs_in(login_rates: Any) -> None:
    f.UserFactory(username="root", is_staff=True, is_superuser=True)
    assert _admin_login("root", "wrong", address="10.0.4.1").status_code == 200
    response = _admin_login("root", f.PASSWORD, address="10.0.4.1")
    assert response.status_code == 302


def test_admin_login__form_shown__not_counted(login_rates: Any) -> None:
    f.UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="10.0.5.1")
    for _ in range(10):
        assert client.get("/admin/login/").status_code == 200
    assert _admin_login("root", f.PASSWORD, address="10.0.5.1").status_code == 302


def test_login_and_the_api_login__share_the_username_count(login_rates: Any) -> None:
    f.UserFactory(username="root", is_staff=True, is_superuser=True)
    for n in range(3):
        _admin_login("root", "wrong", address=f"10.0.6.{n}")
    assert _login("root", f.PASSWORD, address="10.0.6.9").status_code == 429
