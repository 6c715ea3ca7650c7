"""Permissions as code over HTTP: `GET .../permissions-document/`, `POST .../plan/` and
`POST .../apply/` (docs/PERMISSIONS_AS_CODE.md, "HTTP"): organisation admins
only, JSON or YAML both ways, path-keyed 400s, nothing saved by a plan or a rejected apply."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from audit.models import AuditLogEntry
from organisations.models import Role
from permission_documents import documents
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from tests import factories as f
from tests.support.clients import client_for
from tests.support.documents_setup import Acme, build_acme

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(db: Any) -> Acme:
    return build_acme()


def url(acme: Acme, suffix: str = "") -> str:
    return f"/api/v1/organisations/{acme.organisation.pk}/permissions-document/{suffix}"


def exported(acme: Acme) -> dict[str, Any]:
    return documents.permissions_document_export(organisation=acme.organisation)


def with_new_role(acme: Acme) -> dict[str, Any]:
    document = exported(acme)
    document["roles"].append({"name": "QA", "description": "Testers"})
    return document


# --------------------------------------------------------------------------------------
# Who may
# --------------------------------------------------------------------------------------


def test_get__organisation_admin__200_the_document(acme: Acme) -> None:
    response = client_for(acme.alice).get(url(acme))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == exported(acme)


def test_get__member_not_admin__403(acme: Acme) -> None:
    assert client_for(acme.bob).get(url(acme)).status_code == 403


def test_get__not_a_member__404(acme: Acme) -> None:
    assert client_for(acme.erin).get(url(acme)).status_code == 404


def test_get__unknown_organisation__404(acme: Acme) -> None:
    response = client_for(acme.alice).get("/api/v1/organisations/999999/permissions-document/")

    assert response.status_code == 404


def test_get__no_credentials__401(acme: Acme, api_client: Any) -> None:
    assert api_client.get(url(acme)).status_code == 401


def test_get__admin_api_key__200(acme: Acme) -> None:
    key = f.APIKeyFactory(organisation=acme.organisation, is_admin=True, name="deploy")

    assert client_for(key).get(url(acme)).status_code == 200


@pytest.mark.parametrize("action", ["plan/", "apply/"])
def test_write__member_not_admin__403_and_nothing_applied(acme: Acme, action: str) -> None:
    response = client_for(acme.bob).post(url(acme, action), with_new_role(acme), format="json")

    assert response.status_code == 403
    assert not Role.objects.filter(name="QA").exists()


@pytest.mark.parametrize("action", ["plan/", "apply/"])
def test_write__not_a_member__404(acme: Acme, action: str) -> None:
    response = client_for(acme.erin).post(url(acme, action), with_new_role(acme), format="json")

    assert response.status_code == 404


def test_get__unmapped_method__405(acme: Acme) -> None:
    assert client_for(acme.alice).delete(url(acme)).status_code == 405


# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------


def test_get__format_yaml__the_same_document_in_yaml(acme: Acme) -> None:
    response = client_for(acme.alice).get(url(acme), {"format": "yaml"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    assert text.startswith("group_grants:\n")  # keys sorted, block style
    assert yaml.safe_load(text) == exported(acme)


def test_apply__yaml_body__applied(acme: Acme) -> None:
    body = documents.yaml_dump(with_new_role(acme))

    response = client_for(acme.alice).post(
        url(acme, "apply/"), body, content_type="application/yaml"
    )

    assert response.status_code == 200, response.content
    assert Role.objects.get(organisation=acme.organisation, name="QA").description == "Testers"


def test_plan__format_yaml__answer_in_yaml(acme: Acme) -> None:
    response = client_for(acme.alice).post(
        f"{url(acme, 'plan/')}?format=yaml", with_new_role(acme), format="json"
    )

    assert response.status_code == 200
    assert yaml.safe_load(response.content)["changes"][0]["name"] == 'role "QA"'


def test_apply__invalid_yaml__400_and_nothing_applied(acme: Acme) -> None:
    entries = AuditLogEntry.objects.count()

    response = client_for(acme.alice).post(
        url(acme, "apply/"), "roles: [unclosed", content_type="application/yaml"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert AuditLogEntry.objects.count() == entries


def test_apply__yaml_aliases__400(acme: Acme) -> None:
    body = "a: &x [1]\nb: *x\n"

    response = client_for(acme.alice).post(
        url(acme, "apply/"), body, content_type="application/yaml"
    )

    assert response.status_code == 400
    assert "aliases are not allowed" in response.json()["detail"]


# --------------------------------------------------------------------------------------
# Plan and apply
# --------------------------------------------------------------------------------------


def test_plan__admin__changes_and_impact_nothing_saved(acme: Acme) -> None:
    document = exported(acme)
    document["roles"][1]["users"] = ["dave@example.com"]  # Viewers to dave, directly
    document["groups"][1]["members"] = []  # Readers without dave
    entries = AuditLogEntry.objects.count()

    response = client_for(acme.alice).post(url(acme, "plan/"), document, format="json")

    assert response.status_code == 200
    body = response.json()
    assert [(c["action"], c["object_type"], c["name"]) for c in body["changes"]] == [
        ("update", "user_group", 'group "Readers"'),
        ("create", "role_assignment", 'role "Viewers" / user "dave@example.com"'),
    ]
    assert body["impact"] == {
        "gained": [],
        "lost": [],
        "summary": [],
        "truncated": False,
    }  # dave keeps Viewers' rights
    assert AuditLogEntry.objects.count() == entries
    assert client_for(acme.alice).get(url(acme)).json() != document


def test_plan__impact_names_who_gains_what(acme: Acme) -> None:
    document = exported(acme)
    # Payments' UPDATE_FEATURE_STATE in Web/Production: tagged payments+ui → untagged
    document["roles"][0]["environments"][0]["permissions"][UPDATE_FEATURE_STATE] = []

    body = client_for(acme.alice).post(url(acme, "plan/"), document, format="json").json()

    assert [c["object_type"] for c in body["changes"]] == ["grant"]
    rows = {
        (direction, c.get("email") or c.get("name"), c["permission"], c["features"])
        for direction in ("gained", "lost")
        for c in body["impact"][direction]
    }
    # untagged reaches the unrestricted "plain" (gained) but no longer the features
    # restricted to "payments", checkout and checkout_ui (lost): for every holder of the role
    assert rows == {
        (direction, who, UPDATE_FEATURE_STATE, count)
        for who in ("bob@example.com", "carol@example.com", "ci")
        for direction, count in (("gained", 1), ("lost", 2))
    }


def test_apply__admin__applied_audited_and_answered_like_plan(acme: Acme) -> None:
    document = with_new_role(acme)
    planned = client_for(acme.alice).post(url(acme, "plan/"), document, format="json").json()

    response = client_for(acme.alice).post(url(acme, "apply/"), document, format="json")

    assert response.status_code == 200
    assert response.json() == planned
    role = Role.objects.get(organisation=acme.organisation, name="QA")
    entry = AuditLogEntry.objects.get(object_type="role", object_id=str(role.pk))
    assert entry.actor_user == acme.alice


def test_apply__read_then_applied__no_change_no_audit(acme: Acme) -> None:
    client = client_for(acme.alice)
    document = client.get(url(acme)).json()
    entries = AuditLogEntry.objects.count()

    response = client.post(url(acme, "apply/"), document, format="json")

    assert response.json() == {
        "changes": [],
        "impact": {"gained": [], "lost": [], "summary": [], "truncated": False},
    }
    assert AuditLogEntry.objects.count() == entries


def test_apply__tagged_unsupported_key__400_path_keyed_with_the_apis_message(acme: Acme) -> None:
    """The same refusal, in the same words, as the role-grant endpoint gives."""
    role = Role.objects.get(organisation=acme.organisation, name="Payments")
    ui = acme.tags["ui"]
    through_api = client_for(acme.alice).post(
        f"/api/v1/organisations/{acme.organisation.pk}/roles/{role.pk}/environments-permissions/",
        {
            "environment": acme.staging.pk,
            "permissions": [{"permission_key": VIEW_ENVIRONMENT, "tags": [ui.pk]}],
        },
        format="json",
    )
    document = with_new_role(acme)
    document["roles"][0]["environments"][0]["permissions"][VIEW_ENVIRONMENT] = ["ui"]

    response = client_for(acme.alice).post(url(acme, "apply/"), document, format="json")

    assert through_api.status_code == 400
    assert response.status_code == 400
    assert response.json() == {
        "roles[0].environments[0].permissions.VIEW_ENVIRONMENT": through_api.json()["permissions"]
    }
    assert not Role.objects.filter(name="QA").exists()


def test_apply__empty_body__400_naming_every_section(acme: Acme) -> None:
    response = client_for(acme.alice).post(url(acme, "apply/"), {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == set(documents.TOP_LEVEL_FIELDS)


def test_apply__list_body__400(acme: Acme) -> None:
    response = client_for(acme.alice).post(url(acme, "apply/"), [], format="json")

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Expected an object."]}


def test_apply__api_key_admin__applied_and_audited_as_the_key(acme: Acme) -> None:
    key = f.APIKeyFactory(organisation=acme.organisation, is_admin=True, name="deploy")

    response = client_for(key).post(url(acme, "apply/"), with_new_role(acme), format="json")

    assert response.status_code == 200
    entry = AuditLogEntry.objects.get(object_type="role", action="created")
    assert entry.actor_api_key == key


def test_apply__api_key_without_admin__403(acme: Acme) -> None:
    response = client_for(acme.api_key).post(
        url(acme, "apply/"), with_new_role(acme), format="json"
    )

    assert response.status_code == 403
