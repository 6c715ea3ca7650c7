"""`/api/v1/organisations/{id}/api-keys/` (docs/API.md: organisation admins; the full key is
returned once, on creation; revoking cannot be undone)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import OrganisationAPIKey, RoleAssignment
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()
FIELDS = {"id", "name", "prefix", "is_admin", "expires_at", "revoked"}


def url(organisation: Any, key: Any | None = None) -> str:
    base = f"/api/v1/organisations/{organisation.pk}/api-keys/"
    return base if key is None else f"{base}{key.pk}/"


def key_audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(
        AuditLogEntry.objects.filter(object_type="organisation_api_key", **kwargs).order_by("id")
    )


@pytest.fixture
def api_key(organisation: Any) -> Any:
    return f.APIKeyFactory(organisation=organisation, name="ci")


def key_client(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


# -- list and retrieve ------------------------------------------------------------------


def test_list__admin__keys_without_secrets(organisation: Any, org_admin: Any, api_key: Any) -> None:
    f.APIKeyFactory()  # another organisation's
    response = client_for(org_admin).get(url(organisation))
    assert response.status_code == 200
    (item,) = response.data["results"]
    assert set(item) == FIELDS
    assert item["id"] == api_key.pk and item["prefix"] == api_key.prefix
    assert item["revoked"] is False and item["expires_at"] is None


def test_list__member__403(organisation: Any, org_user: Any) -> None:
    assert client_for(org_user).get(url(organisation)).status_code == 403


def test_list__non_admin_key__403(organisation: Any, api_key: Any) -> None:
    assert client_for(api_key).get(url(organisation)).status_code == 403


def test_list__non_member__404(organisation: Any) -> None:
    assert client_for(f.UserFactory()).get(url(organisation)).status_code == 404


def test_list__no_credentials__401(organisation: Any) -> None:
    assert APIClient().get(url(organisation)).status_code == 401


def test_list__query_count__constant(organisation: Any, org_admin: Any) -> None:
    def add(n: int) -> None:
        for _ in range(n):
            f.APIKeyFactory(organisation=organisation)

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=org_admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url(organisation), {"page_size": 1000})
        return len(captured.captured_queries), response.data["count"]

    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


def test_retrieve__admin__no_key(organisation: Any, org_admin: Any, api_key: Any) -> None:
    response = client_for(org_admin).get(url(organisation, api_key))
    assert response.status_code == 200
    assert set(response.data) == FIELDS


def test_retrieve__key_of_another_organisation__404(organisation: Any, org_admin: Any) -> None:
    assert client_for(org_admin).get(url(organisation, f.APIKeyFactory())).status_code == 404


# -- create -----------------------------------------------------------------------------


def test_create__admin__201_key_once_and_it_works(organisation: Any, org_admin: Any) -> None:
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = client_for(org_admin).post(
        url(organisation), {"name": "deploy", "is_admin": True, "expires_at": expires.isoformat()}
    )
    assert response.status_code == 201, response.data
    assert set(response.data) == FIELDS | {"key"}
    created = OrganisationAPIKey.objects.get(pk=response.data["id"])
    assert created.is_admin and created.expiry_date == expires
    assert response.data["key"].startswith(created.prefix)
    assert key_client(response.data["key"]).get(url(organisation)).status_code == 200
    # Never shown again.
    again = client_for(org_admin).get(url(organisation, created))
    assert "key" not in again.data
    (entry,) = key_audit(action="created")
    assert response.data["key"] not in str(entry.after)


def test_create__defaults(organisation: Any, org_admin: Any) -> None:
    response = client_for(org_admin).post(url(organisation), {"name": "ro"})
    assert response.status_code == 201
    assert response.data["is_admin"] is False
    assert response.data["expires_at"] is None
    assert response.data["revoked"] is False


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "x" * 51},
        {"name": "k", "is_admin": "maybe"},
        {"name": "k", "expires_at": "tomorrow"},
        {"name": "k", "revoked": True},
    ],
)
def test_create__bad_payload__400(
    organisation: Any, org_admin: Any, payload: dict[str, Any]
) -> None:
    response = client_for(org_admin).post(url(organisation), payload, format="json")
    assert response.status_code == 400
    assert not OrganisationAPIKey.objects.exists()


def test_create__member__403(organisation: Any, org_user: Any) -> None:
    assert client_for(org_user).post(url(organisation), {"name": "k"}).status_code == 403
    assert not OrganisationAPIKey.objects.exists()


def test_create__admin_api_key__201(organisation: Any) -> None:
    admin_key = f.APIKeyFactory(organisation=organisation, is_admin=True)
    assert client_for(admin_key).post(url(organisation), {"name": "k"}).status_code == 201


# -- update -----------------------------------------------------------------------------


def test_patch__revoke__key_stops_working_and_audit(
    organisation: Any, org_admin: Any, api_key: Any
) -> None:
    assert key_client(api_key.plain_key).get("/api/v1/organisations/").status_code == 200
    response = client_for(org_admin).patch(url(organisation, api_key), {"revoked": True})
    assert response.status_code == 200
    assert response.data["revoked"] is True
    assert key_client(api_key.plain_key).get("/api/v1/organisations/").status_code == 401
    (entry,) = key_audit(action="updated")
    assert (entry.before["revoked"], entry.after["revoked"]) == (False, True)


def test_patch__unrevoke__400(organisation: Any, org_admin: Any) -> None:
    key = f.APIKeyFactory(organisation=organisation, revoked=True)
    response = client_for(org_admin).patch(url(organisation, key), {"revoked": False})
    assert response.status_code == 400
    assert "revoked" in response.data
    key.refresh_from_db()
    assert key.revoked is True
    assert key_audit() == []


def test_patch__name_and_expiry(organisation: Any, org_admin: Any, api_key: Any) -> None:
    past = timezone.now() - timedelta(minutes=1)
    response = client_for(org_admin).patch(
        url(organisation, api_key), {"name": "renamed", "expires_at": past.isoformat()}
    )
    assert response.status_code == 200
    assert response.data["name"] == "renamed"
    assert key_client(api_key.plain_key).get("/api/v1/organisations/").status_code == 401
    response = client_for(org_admin).patch(url(organisation, api_key), {"expires_at": None})
    assert response.data["expires_at"] is None
    assert key_client(api_key.plain_key).get("/api/v1/organisations/").status_code == 200


def test_patch__what_was_read__no_audit(organisation: Any, org_admin: Any, api_key: Any) -> None:
    client = client_for(org_admin)
    read = client.get(url(organisation, api_key)).data
    response = client.patch(url(organisation, api_key), read)
    assert response.status_code == 200, response.data
    assert key_audit() == []


@pytest.mark.parametrize("payload", [{"is_admin": True}, {"prefix": "x"}, {"key": "x"}])
def test_patch__read_only_fields__400(
    organisation: Any, org_admin: Any, api_key: Any, payload: dict[str, Any]
) -> None:
    response = client_for(org_admin).patch(url(organisation, api_key), payload)
    assert response.status_code == 400
    assert set(payload) <= set(response.data)
    api_key.refresh_from_db()
    assert api_key.is_admin is False


def test_patch__member__403(organisation: Any, org_user: Any, api_key: Any) -> None:
    response = client_for(org_user).patch(url(organisation, api_key), {"revoked": True})
    assert response.status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked is False


def test_patch__key_cannot_make_itself_admin__403(organisation: Any, api_key: Any) -> None:
    response = client_for(api_key).patch(url(organisation, api_key), {"name": "x"})
    assert response.status_code == 403


# -- delete -----------------------------------------------------------------------------


def test_delete__admin__204_assignments_go_and_audit(
    organisation: Any, org_admin: Any, api_key: Any
) -> None:
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=api_key)
    response = client_for(org_admin).delete(url(organisation, api_key))
    assert response.status_code == 204
    assert not OrganisationAPIKey.objects.filter(pk=api_key.pk).exists()
    assert not RoleAssignment.objects.exists()
    (entry,) = key_audit(action="deleted")
    assert entry.before["roles"] == [role.pk]
    assert key_client(api_key.plain_key).get("/api/v1/organisations/").status_code == 401


def test_delete__member__403(organisation: Any, org_user: Any, api_key: Any) -> None:
    assert client_for(org_user).delete(url(organisation, api_key)).status_code == 403
    assert OrganisationAPIKey.objects.filter(pk=api_key.pk).exists()


def test_delete__admin_key_deleting_itself__audit_keeps_its_name(organisation: Any) -> None:
    admin_key = f.APIKeyFactory(organisation=organisation, is_admin=True, name="robot")
    assert client_for(admin_key).delete(url(organisation, admin_key)).status_code == 204
    (entry,) = key_audit(action="deleted")
    assert entry.actor_api_key_id is None  # the key is gone
    assert "robot" in entry.actor_name
