"""`/api/v1/environments/{api_key}/server-keys/`: environment admins only; the key is shown
once, stored hashed; revoking cannot be undone; every change audited (docs/API.md "Flags
for applications")."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditLogEntry
from permissions.catalogue import VIEW_ENVIRONMENT
from sdk.models import ServerKey
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def url(environment: Any, server_key: Any = None) -> str:
    base = f"/api/v1/environments/{environment.api_key}/server-keys/"
    return base if server_key is None else f"{base}{server_key.pk}/"


def environment_admin(organisation: Any, environment: Any) -> Any:
    user = f.member(organisation)
    f.grant(user, environment, [], admin=True)
    return user


def project_admin(organisation: Any, environment: Any) -> Any:
    user = f.member(organisation)
    f.grant(user, environment.project, [], admin=True)
    return user


def plain_viewer(organisation: Any, environment: Any) -> Any:
    user = f.member(organisation)
    f.grant(user, environment, [VIEW_ENVIRONMENT])
    return user


def created(client: Any, environment: Any, name: str = "backend") -> dict[str, Any]:
    response = client.post(url(environment), {"name": name}, format="json")
    assert response.status_code == 201, response.data
    return response.json()


@pytest.mark.parametrize("who", ["environment_admin", "project_admin", "org_admin"])
def test_server_keys__admins__create_list_revoke_delete(who, organisation, environment) -> None:
    # Given
    user = {
        "environment_admin": lambda: environment_admin(organisation, environment),
        "project_admin": lambda: project_admin(organisation, environment),
        "org_admin": lambda: f.member(organisation, admin=True),
    }[who]()
    client = client_for(user)
    # When / Then: the key is shown once, on creation
    body = created(client, environment)
    assert set(body) == {"id", "name", "prefix", "created_at", "revoked", "key"}
    assert body["key"].startswith("ser.") and body["key"].startswith(body["prefix"] + ".")
    stored = ServerKey.objects.get(pk=body["id"])
    assert body["key"][4:] not in (stored.hashed_key, stored.prefix)
    listed = client.get(url(environment)).json()["results"]
    assert listed == [{k: v for k, v in body.items() if k != "key"}]
    assert "key" not in client.get(url(environment, stored)).json()
    revoked = client.patch(
        url(environment, stored), {"revoked": True, "name": "old"}, format="json"
    )
    assert revoked.status_code == 200
    assert (revoked.json()["revoked"], revoked.json()["name"]) == (True, "old")
    assert client.delete(url(environment, stored)).status_code == 204
    assert not ServerKey.objects.exists()


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_server_keys__viewer_with_view_environment__403(method, organisation, environment) -> None:
    server_key, _ = ServerKey.objects.create_key(environment=environment, name="k")
    target = url(environment) if method in ("get", "post") else url(environment, server_key)
    response = getattr(client_for(plain_viewer(organisation, environment)), method)(
        target, {"name": "x", "revoked": True}, format="json"
    )
    assert response.status_code == 403
    assert ServerKey.objects.get().revoked is False
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_server_keys__non_member__404(method, environment) -> None:
    server_key, _ = ServerKey.objects.create_key(environment=environment, name="k")
    outsider = f.member(f.OrganisationFactory(), admin=True)
    target = url(environment) if method in ("get", "post") else url(environment, server_key)
    response = getattr(client_for(outsider), method)(target, {"name": "x"}, format="json")
    assert response.status_code == 404
    assert ServerKey.objects.count() == 1


def test_server_keys__key_of_other_environment__404(organisation, environment) -> None:
    admin = f.member(organisation, admin=True)
    other = f.EnvironmentFactory(project=environment.project)
    server_key, _ = ServerKey.objects.create_key(environment=other, name="k")
    client = client_for(admin)
    assert client.get(url(environment, server_key)).status_code == 404
    assert (
        client.patch(url(environment, server_key), {"revoked": True}, format="json").status_code
        == 404
    )
    assert client.delete(url(environment, server_key)).status_code == 404
    assert client.get(f"{url(environment)}{2**70}/").status_code == 404
    assert ServerKey.objects.get().revoked is False


def test_server_keys__changes__audited(organisation, environment) -> None:
    admin = f.member(organisation, admin=True)
    client = client_for(admin)
    body = created(client, environment)
    client.patch(url(environment, ServerKey.objects.get()), {"revoked": True}, format="json")
    client.patch(url(environment, ServerKey.objects.get()), {"revoked": True}, format="json")
    client.delete(url(environment, ServerKey.objects.get()))
    entries = AuditLogEntry.objects.filter(object_type="server_key").order_by("pk")
    assert [e.action for e in entries] == ["created", "updated", "deleted"]
    assert all(e.environment_id == environment.pk and e.actor_user_id == admin.pk for e in entries)
    assert entries[0].after == {"name": "backend", "prefix": body["prefix"], "revoked": False}
    assert (entries[1].before["revoked"], entries[1].after["revoked"]) == (False, True)
    assert body["key"] not in str([e.after for e in entries])


def test_server_keys__unrevoke__400_nothing_changed(organisation, environment) -> None:
    admin = f.member(organisation, admin=True)
    server_key, _ = ServerKey.objects.create_key(environment=environment, name="k", revoked=True)
    response = client_for(admin).patch(
        url(environment, server_key), {"revoked": False}, format="json"
    )
    assert response.status_code == 400
    assert "revoked" in response.json()
    assert ServerKey.objects.get().revoked is True
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"name": "a\u0000"}, "name"),
    ],
)
def test_server_keys__bad_name__400_nothing_stored(body, field, organisation, environment) -> None:
    response = client_for(f.member(organisation, admin=True)).post(
        url(environment), body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not ServerKey.objects.exists()
    assert not AuditLogEntry.objects.exists()
