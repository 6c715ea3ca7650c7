"""`/api/v1/environments/{api_key}/features/{feature_id}/segment-overrides/`: read by
viewers; written with MANAGE_SEGMENT_OVERRIDES on the feature (its tags apply, creation
included: Flagsmith #4287); where change requests are on, `enabled`/`value` change
only through one while create, delete and `priority` stay direct (docs/API.md, "Feature states, overrides, change requests")."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from features.models import FeatureState, SegmentOverride
from permissions.catalogue import MANAGE_SEGMENT_OVERRIDES, VIEW_ENVIRONMENT
from tests import factories as f
from tests.support.clients import client_for
from tests.support.feature_states import (
    audit_entries,
    env_url,
)
from tests.support.principals import role_principal, user_with

pytestmark = pytest.mark.django_db


def url(environment: Any, feature: Any, override: Any | None = None) -> str:
    base = env_url(environment, f"features/{feature.pk}/segment-overrides/")
    return base if override is None else f"{base}{override.pk}/"


@pytest.fixture
def feature(project: Any, environment: Any) -> Any:
    return f.FeatureFactory(project=project)


@pytest.fixture
def segment(project: Any) -> Any:
    return f.SegmentFactory(project=project)


@pytest.fixture
def override(feature: Any, environment: Any, segment: Any) -> Any:
    return f.SegmentOverrideFactory(feature=feature, environment=environment, segment=segment)


@pytest.fixture
def viewer(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [VIEW_ENVIRONMENT])


@pytest.fixture
def manager(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [MANAGE_SEGMENT_OVERRIDES])


def cr_environment(project: Any, threshold: int = 1) -> Any:
    return f.EnvironmentFactory(project=project, minimum_change_request_approvals=threshold)


# --------------------------------------------------------------------------------------
# List and retrieve
# --------------------------------------------------------------------------------------


def test_list__viewer__200_with_documented_fields(
    viewer: Any, environment: Any, feature: Any, override: Any
) -> None:
    FeatureState.objects.filter(segment_override=override).update(enabled=True, value=3)
    response = client_for(viewer).get(url(environment, feature))
    assert response.status_code == 200
    assert response.data["results"] == [
        {
            "id": override.pk,
            "segment": override.segment_id,
            "priority": 0,
            "enabled": True,
            "value": 3,
        }
    ]


def test_list__only_this_feature_and_environment(
    viewer: Any, project: Any, environment: Any, feature: Any, override: Any
) -> None:
    f.SegmentOverrideFactory(feature=f.FeatureFactory(project=project), environment=environment)
    f.SegmentOverrideFactory(feature=feature, environment=f.EnvironmentFactory(project=project))
    response = client_for(viewer).get(url(environment, feature))
    assert [i["id"] for i in response.data["results"]] == [override.pk]


def test_list__ordered_by_priority_and_filter_segment(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    low = f.SegmentOverrideFactory(feature=feature, environment=environment, priority=5)
    high = f.SegmentOverrideFactory(feature=feature, environment=environment, priority=1)
    client = client_for(viewer)
    assert [i["id"] for i in client.get(url(environment, feature)).data["results"]] == [
        high.pk,
        low.pk,
    ]
    only = client.get(url(environment, feature), {"segment": low.segment_id}).data["results"]
    assert [i["id"] for i in only] == [low.pk]


def test_list__no_credentials__401(environment: Any, feature: Any) -> None:
    assert APIClient().get(url(environment, feature)).status_code == 401


def test_list__cannot_view__404(organisation: Any, environment: Any, feature: Any) -> None:
    assert client_for(f.member(organisation)).get(url(environment, feature)).status_code == 404


def test_list__feature_of_another_project__404(
    viewer: Any, organisation: Any, environment: Any
) -> None:
    other = f.FeatureFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(viewer).get(url(environment, other)).status_code == 404


def test_list__invalid_filter__400(viewer: Any, environment: Any, feature: Any) -> None:
    response = client_for(viewer).get(url(environment, feature), {"segment": "x"})
    assert response.status_code == 400
    assert "segment" in response.data


def _count(user_id: int, environment: Any, feature: Any) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(environment, feature), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant_for_5_and_200_overrides(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    for _ in range(5):
        f.SegmentOverrideFactory(feature=feature, environment=environment)
    few, count = _count(viewer.pk, environment, feature)
    assert count == 5
    for _ in range(195):
        f.SegmentOverrideFactory(feature=feature, environment=environment)
    many, count = _count(viewer.pk, environment, feature)
    assert count == 200
    assert few == many


def test_retrieve__viewer__200(viewer: Any, environment: Any, feature: Any, override: Any) -> None:
    response = client_for(viewer).get(url(environment, feature, override))
    assert response.status_code == 200
    assert response.data["id"] == override.pk


def test_retrieve__override_of_another_feature_in_url__404(
    viewer: Any, project: Any, environment: Any, override: Any
) -> None:
    other = f.FeatureFactory(project=project)
    assert client_for(viewer).get(url(environment, other, override)).status_code == 404


def test_retrieve__override_of_another_environment_in_url__404(
    organisation: Any, project: Any, feature: Any, override: Any
) -> None:
    other_env = f.EnvironmentFactory(project=project)
    user = user_with(organisation, other_env, [VIEW_ENVIRONMENT])
    assert client_for(user).get(url(other_env, feature, override)).status_code == 404


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__manager__201_with_own_state_and_one_audit_entry(
    manager: Any, organisation: Any, project: Any, environment: Any, feature: Any, segment: Any
) -> None:
    response = client_for(manager).post(
        url(environment, feature),
        {"segment": segment.pk, "priority": 2, "enabled": True, "value": "beta"},
    )
    assert response.status_code == 201, response.data
    override = SegmentOverride.objects.get(pk=response.data["id"])
    assert response.data == {
        "id": override.pk,
        "segment": segment.pk,
        "priority": 2,
        "enabled": True,
        "value": "beta",
    }
    state = FeatureState.objects.get(segment_override=override)
    assert (state.feature_id, state.environment_id, state.version) == (
        feature.pk,
        environment.pk,
        1,
    )
    [entry] = audit_entries("segment_override")
    assert (entry.action, entry.object_id, entry.environment_id) == (
        "created",
        str(override.pk),
        environment.pk,
    )
    assert entry.after["enabled"] is True and entry.after["feature_state"] == state.pk
    assert audit_entries("feature_state") == []


def test_create__defaults(manager: Any, environment: Any, feature: Any, segment: Any) -> None:
    response = client_for(manager).post(url(environment, feature), {"segment": segment.pk})
    assert response.status_code == 201
    assert (response.data["priority"], response.data["enabled"], response.data["value"]) == (
        0,
        False,
        None,
    )


def test_create__without_key__403_and_nothing_written(
    viewer: Any, environment: Any, feature: Any, segment: Any
) -> None:
    response = client_for(viewer).post(url(environment, feature), {"segment": segment.pk})
    assert response.status_code == 403
    assert not SegmentOverride.objects.exists()
    assert audit_entries("segment_override") == []


def test_create__cannot_view__404(
    organisation: Any, environment: Any, feature: Any, segment: Any
) -> None:
    response = client_for(f.member(organisation)).post(
        url(environment, feature), {"segment": segment.pk}
    )
    assert response.status_code == 404


def test_create__no_credentials__401(environment: Any, feature: Any, segment: Any) -> None:
    response = APIClient().post(url(environment, feature), {"segment": segment.pk}, format="json")
    assert response.status_code == 401


def test_create__feature_of_another_project__404(
    organisation: Any, environment: Any, segment: Any
) -> None:
    admin = f.member(organisation, admin=True)
    other_project = f.ProjectFactory(organisation=organisation)
    other = f.FeatureFactory(project=other_project)
    response = client_for(admin).post(url(environment, other), {"segment": segment.pk})
    assert response.status_code == 404
    assert not SegmentOverride.objects.exists()


def test_create__segment_of_another_project__400_on_segment(
    manager: Any, organisation: Any, environment: Any, feature: Any
) -> None:
    foreign = f.SegmentFactory(project=f.ProjectFactory(organisation=organisation))
    response = client_for(manager).post(url(environment, feature), {"segment": foreign.pk})
    assert response.status_code == 400
    assert "segment" in response.data


def test_create__unknown_segment__400_on_segment(
    manager: Any, environment: Any, feature: Any
) -> None:
    response = client_for(manager).post(url(environment, feature), {"segment": 999999})
    assert response.status_code == 400
    assert "segment" in response.data


def test_create__duplicate_segment__400_on_segment(
    manager: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(manager).post(url(environment, feature), {"segment": override.segment_id})
    assert response.status_code == 400
    assert "segment" in response.data
    assert SegmentOverride.objects.count() == 1


def test_create__same_segment_in_another_environment__201(
    organisation: Any, project: Any, feature: Any, override: Any
) -> None:
    other_env = f.EnvironmentFactory(project=project)
    admin = f.member(organisation, admin=True)
    response = client_for(admin).post(url(other_env, feature), {"segment": override.segment_id})
    assert response.status_code == 201


@pytest.mark.parametrize(
    "payload,field",
    [
        ({}, "segment"),
        ({"segment": "1"}, "segment"),
        ({"segment": None}, "segment"),
        ({"priority": -1}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"enabled": "yes"}, "enabled"),
        ({"feature": 999999}, "feature"),
    ],
)
def test_create__invalid_payload__400_on_field(
    manager: Any,
    environment: Any,
    feature: Any,
    segment: Any,
    payload: dict[str, Any],
    field: str,
) -> None:
    body = {"segment": segment.pk, **payload} if field != "segment" else payload
    response = client_for(manager).post(url(environment, feature), body)
    assert response.status_code == 400
    assert field in response.data
    assert not SegmentOverride.objects.exists()


def test_create__change_requests_on__default_override_is_direct__201(
    organisation: Any, project: Any, feature: Any, segment: Any
) -> None:
    environment = cr_environment(project)
    manager = user_with(organisation, environment, [MANAGE_SEGMENT_OVERRIDES])
    response = client_for(manager).post(
        url(environment, feature), {"segment": segment.pk, "priority": 3}
    )
    assert response.status_code == 201
    assert (response.data["enabled"], response.data["value"]) == (False, None)


@pytest.mark.parametrize("payload", [{"enabled": True}, {"value": "x"}, {"value": False}])
def test_create__change_requests_on__setting_enabled_or_value__403_even_for_admin(
    organisation: Any, project: Any, feature: Any, segment: Any, payload: dict[str, Any]
) -> None:
    environment = cr_environment(project, threshold=0)
    admin = f.member(organisation, admin=True)
    response = client_for(admin).post(url(environment, feature), {"segment": segment.pk, **payload})
    assert response.status_code == 403
    assert response.data["code"] == "change_request_required"
    assert not SegmentOverride.objects.exists()
    assert audit_entries("segment_override") == []


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def test_patch__priority__200_audited_without_version_bump(
    manager: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(manager).patch(url(environment, feature, override), {"priority": 9})
    assert response.status_code == 200
    assert response.data["priority"] == 9
    override.refresh_from_db()
    assert override.priority == 9
    assert FeatureState.objects.get(segment_override=override).version == 1
    [entry] = audit_entries("segment_override")
    assert (entry.action, entry.before["priority"], entry.after["priority"]) == ("updated", 0, 9)


def test_patch__enabled_and_value__200_bumps_state_version(
    manager: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(manager).patch(
        url(environment, feature, override), {"enabled": True, "value": [1, 2]}
    )
    assert response.status_code == 200
    assert (response.data["enabled"], response.data["value"]) == (True, [1, 2])
    state = FeatureState.objects.get(segment_override=override)
    assert (state.enabled, state.value, state.version) == (True, [1, 2], 2)
    [entry] = audit_entries("segment_override")
    assert (entry.before["version"], entry.after["version"]) == (1, 2)


def test_patch__no_op__200_and_nothing_recorded(
    manager: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(manager).patch(
        url(environment, feature, override),
        {"priority": 0, "enabled": False, "value": None, "segment": override.segment_id},
    )
    assert response.status_code == 200
    assert audit_entries("segment_override") == []
    assert FeatureState.objects.get(segment_override=override).version == 1


def test_patch__without_key__403(
    viewer: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(viewer).patch(url(environment, feature, override), {"priority": 4})
    assert response.status_code == 403
    override.refresh_from_db()
    assert override.priority == 0


def test_patch__cannot_view__404(
    organisation: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(f.member(organisation)).patch(
        url(environment, feature, override), {"priority": 4}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"segment": 999999}, "segment"),
        ({"priority": -1}, "priority"),
        ({"enabled": "no"}, "enabled"),
    ],
)
def test_patch__invalid_payload__400_on_field(
    manager: Any,
    environment: Any,
    feature: Any,
    override: Any,
    payload: dict[str, Any],
    field: str,
) -> None:
    response = client_for(manager).patch(url(environment, feature, override), payload)
    assert response.status_code == 400
    assert field in response.data


def test_patch__change_requests_on__priority_is_direct__200(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = cr_environment(project)
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    manager = user_with(organisation, environment, [MANAGE_SEGMENT_OVERRIDES])
    response = client_for(manager).patch(
        url(environment, feature, override),
        {"priority": 5, "enabled": False, "value": None},  # writes back what was read
    )
    assert response.status_code == 200
    assert response.data["priority"] == 5


@pytest.mark.parametrize("payload", [{"enabled": True}, {"value": 1}, {"priority": 2, "value": 1}])
def test_patch__change_requests_on__changing_enabled_or_value__403_even_for_admin(
    organisation: Any, project: Any, feature: Any, payload: dict[str, Any]
) -> None:
    environment = cr_environment(project, threshold=0)
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    admin = f.member(organisation, admin=True)
    response = client_for(admin).patch(url(environment, feature, override), payload)
    assert response.status_code == 403
    assert response.data["code"] == "change_request_required"
    override.refresh_from_db()
    assert override.priority == 0
    assert FeatureState.objects.get(segment_override=override).version == 1
    assert audit_entries("segment_override") == []


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__manager__204_removes_state_and_audits(
    manager: Any, environment: Any, feature: Any, override: Any
) -> None:
    state_id = FeatureState.objects.get(segment_override=override).pk
    response = client_for(manager).delete(url(environment, feature, override))
    assert response.status_code == 204
    assert not SegmentOverride.objects.filter(pk=override.pk).exists()
    assert not FeatureState.objects.filter(pk=state_id).exists()
    [entry] = audit_entries("segment_override")
    assert (entry.action, entry.before["feature_state"]) == ("deleted", state_id)


def test_delete__without_key__403(
    viewer: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(viewer).delete(url(environment, feature, override))
    assert response.status_code == 403
    assert SegmentOverride.objects.filter(pk=override.pk).exists()


def test_delete__cannot_view__404(
    organisation: Any, environment: Any, feature: Any, override: Any
) -> None:
    response = client_for(f.member(organisation)).delete(url(environment, feature, override))
    assert response.status_code == 404


def test_delete__change_requests_on__still_direct__204(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = cr_environment(project)
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    manager = user_with(organisation, environment, [MANAGE_SEGMENT_OVERRIDES])
    assert client_for(manager).delete(url(environment, feature, override)).status_code == 204


def test_write__role_through_group__200(
    organisation: Any, environment: Any, feature: Any, override: Any
) -> None:
    user = role_principal(organisation, environment, [MANAGE_SEGMENT_OVERRIDES], via="group")
    response = client_for(user).patch(url(environment, feature, override), {"priority": 1})
    assert response.status_code == 200
