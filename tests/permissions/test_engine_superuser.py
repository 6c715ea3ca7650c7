"""Superusers (docs/PERMISSIONS.md, "Superusers"): an active Django superuser counts as an
ADMIN member of every organisation, on every path that decides; `is_staff` alone is nothing,
and an inactive superuser is nothing."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditLogEntry
from features.models import ChangeRequestApproval, FeatureState
from features.workflow.services import ChangeInput, change_request_create
from organisations.models import Organisation
from permissions import engine, reports
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from projects.models import Project
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def _restricted_state(environment: Any) -> tuple[Any, FeatureState]:
    tag = f.TagFactory(project=environment.project, is_restricted=True)
    feature = f.FeatureFactory(project=environment.project, tags=[tag])
    state = FeatureState.objects.get(
        feature=feature, environment=environment, segment_override__isnull=True
    )
    return feature, state


def _state_url(environment: Any, state: FeatureState) -> str:
    return f"/api/v1/environments/{environment.api_key}/featurestates/{state.pk}/"


@pytest.fixture
def superuser() -> Any:
    return f.UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def staff() -> Any:
    return f.UserFactory(is_staff=True)


@pytest.fixture
def inactive_superuser() -> Any:
    return f.UserFactory(is_superuser=True, is_staff=True, is_active=False)


def test_allowed__superuser_non_member__restricted_feature__true(superuser: Any) -> None:
    environment = f.EnvironmentFactory()
    feature, _ = _restricted_state(environment)
    assert engine.allowed(superuser, UPDATE_FEATURE_STATE, environment, feature)
    assert engine.is_admin(superuser, environment.project.organisation)
    assert engine.can_view(superuser, environment)


@pytest.mark.parametrize("who", ["staff", "inactive_superuser"])
def test_allowed__staff_or_inactive_superuser_non_member__false(
    who: str, request: pytest.FixtureRequest
) -> None:
    principal = request.getfixturevalue(who)
    environment = f.EnvironmentFactory()
    feature, _ = _restricted_state(environment)
    assert not engine.allowed(principal, UPDATE_FEATURE_STATE, environment, feature)
    assert not engine.allowed(principal, VIEW_ENVIRONMENT, environment)
    assert not engine.can_view(principal, environment)
    assert not engine.is_admin(principal, environment.project.organisation)


def test_viewable_projects__superuser__every_organisation(superuser: Any, staff: Any) -> None:
    projects = [f.ProjectFactory(), f.ProjectFactory()]
    seen = set(Project.objects.filter(engine.viewable_projects_q(superuser)))
    assert seen >= set(projects)
    assert not Project.objects.filter(engine.viewable_projects_q(staff)).exists()


def test_viewable_environments__superuser__every_environment(
    superuser: Any, inactive_superuser: Any
) -> None:
    environment = f.EnvironmentFactory()
    model = type(environment)
    assert environment in model.objects.filter(engine.viewable_environments_q(superuser))
    assert not model.objects.filter(engine.viewable_environments_q(inactive_superuser)).exists()


def test_patch_state__superuser_non_member_restricted_tag__200_and_audited(
    superuser: Any,
) -> None:
    environment = f.EnvironmentFactory()
    _, state = _restricted_state(environment)
    client = client_for(superuser)
    assert client.get(_state_url(environment, state)).status_code == 200
    response = client.patch(_state_url(environment, state), {"enabled": True}, format="json")
    assert response.status_code == 200, response.content
    state.refresh_from_db()
    assert state.enabled is True
    entry = AuditLogEntry.objects.latest("pk")
    assert entry.actor_user_id == superuser.pk


@pytest.mark.parametrize("who", ["staff", "inactive_superuser"])
def test_patch_state__staff_or_inactive_superuser_non_member__404(
    who: str, request: pytest.FixtureRequest
) -> None:
    principal = request.getfixturevalue(who)
    environment = f.EnvironmentFactory()
    _, state = _restricted_state(environment)
    client = client_for(principal)
    before = AuditLogEntry.objects.count()
    assert client.get(_state_url(environment, state)).status_code in (401, 403, 404)
    response = client.patch(_state_url(environment, state), {"enabled": True}, format="json")
    assert response.status_code in (401, 403, 404)
    if who == "staff":
        assert response.status_code == 404
    state.refresh_from_db()
    assert state.enabled is False
    assert AuditLogEntry.objects.count() == before


def _change_request(environment: Any) -> Any:
    feature, _ = _restricted_state(environment)
    author = f.member(environment.project.organisation, admin=True)
    return change_request_create(
        environment=environment,
        title="turn it on",
        changes=[ChangeInput(feature=feature.pk, enabled=True)],
        actor=author,
    )


def test_change_request_approve__superuser_non_member__200(superuser: Any) -> None:
    environment = f.EnvironmentFactory(minimum_change_request_approvals=1)
    change_request = _change_request(environment)
    url = f"/api/v1/environments/{environment.api_key}/change-requests/{change_request.pk}/"
    response = client_for(superuser).post(url + "approve/")
    assert response.status_code == 200, response.content
    assert ChangeRequestApproval.objects.filter(user=superuser).exists()
    response = client_for(superuser).post(url + "commit/")
    assert response.status_code == 200, response.content


def test_change_request_approve__staff_non_member__404(staff: Any) -> None:
    environment = f.EnvironmentFactory(minimum_change_request_approvals=1)
    change_request = _change_request(environment)
    url = f"/api/v1/environments/{environment.api_key}/change-requests/{change_request.pk}/"
    assert client_for(staff).post(url + "approve/").status_code == 404
    assert not ChangeRequestApproval.objects.exists()


def test_my_permissions__superuser_non_member__admin(superuser: Any, staff: Any) -> None:
    organisation: Organisation = f.OrganisationFactory()
    assert reports.my_permissions(superuser, organisation)["admin"] is True
    response = client_for(superuser).get(f"/api/v1/organisations/{organisation.pk}/my-permissions/")
    assert response.status_code == 200
    assert response.json()["admin"] is True
    response = client_for(staff).get(f"/api/v1/organisations/{organisation.pk}/my-permissions/")
    assert response.status_code == 404


def test_explain__superuser_non_member__via_organisation_admin(superuser: Any) -> None:
    environment = f.EnvironmentFactory()
    feature, _ = _restricted_state(environment)
    result = reports.explain(superuser, UPDATE_FEATURE_STATE, environment, feature)
    assert result["allowed"] is True
    assert result["granted_by"][0]["via"] == "organisation_admin"


def test_engine_docstring__lists_exactly_all() -> None:
    doc = engine.__doc__ or ""
    listed = [
        line.split()[0]
        for line in doc.split("Exports")[1].split("\n\n")[1].splitlines()
        if line.startswith("    ")
    ]
    assert listed == list(engine.__all__)
