"""`/api/v1/projects/{id}/segments/` (read: view; write: MANAGE_SEGMENTS)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from features.models import FeatureState, Segment, SegmentOverride
from permissions.catalogue import CREATE_FEATURE, MANAGE_SEGMENTS, VIEW_PROJECT
from tests import factories as f
from tests.support.clients import client_for
from tests.support.principals import user_with

pytestmark = pytest.mark.django_db
RULES = [{"type": "ALL", "conditions": [{"property": "plan", "operator": "EQUAL", "value": "pro"}]}]


def url(project: Any, segment: Any | None = None) -> str:
    base = f"/api/v1/projects/{project.pk}/segments/"
    return base if segment is None else f"{base}{segment.pk}/"


def audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="segment", **kwargs))


@pytest.fixture
def manager(organisation: Any, project: Any) -> Any:
    return user_with(organisation, project, [MANAGE_SEGMENTS])


# --------------------------------------------------------------------------------------
# Read
# --------------------------------------------------------------------------------------


def test_list__viewer__200(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, name="pro users", rules=RULES)
    f.SegmentFactory()
    response = client_for(user_with(organisation, project, [VIEW_PROJECT])).get(url(project))
    assert response.status_code == 200
    assert response.data["results"] == [{"id": segment.pk, "name": "pro users", "rules": RULES}]


def test_list__search(org_admin: Any, project: Any) -> None:
    f.SegmentFactory(project=project, name="Beta testers")
    f.SegmentFactory(project=project, name="pro")
    response = client_for(org_admin).get(url(project), {"search": "BETA"})
    assert [s["name"] for s in response.data["results"]] == ["Beta testers"]


def test_list__cannot_view__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).get(url(project)).status_code == 404


def test_list__no_credentials__401(project: Any) -> None:
    assert APIClient().get(url(project)).status_code == 401


def _count_queries(user_id: int, project: Any) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(project), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant(organisation: Any, project: Any) -> None:
    viewer = user_with(organisation, project, [VIEW_PROJECT])
    for _ in range(5):
        f.SegmentFactory(project=project, rules=RULES)
    few, count = _count_queries(viewer.pk, project)
    assert count == 5
    for _ in range(195):
        f.SegmentFactory(project=project, rules=RULES)
    many, count = _count_queries(viewer.pk, project)
    assert count == 200
    assert few == many


def test_retrieve__viewer__200(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, rules=RULES)
    user = user_with(organisation, project, [VIEW_PROJECT])
    response = client_for(user).get(url(project, segment))
    assert response.status_code == 200
    assert response.data["rules"] == RULES


def test_retrieve__segment_of_another_project__404(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    other = f.SegmentFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(org_admin).get(url(project, other)).status_code == 404


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__manage_segments__201_and_audited(manager: Any, project: Any) -> None:
    response = client_for(manager).post(
        url(project), {"name": "pro", "rules": RULES}, format="json"
    )
    assert response.status_code == 201, response.data
    assert set(response.data) == {"id", "name", "rules"}
    assert response.data["rules"] == RULES
    (entry,) = audit(action="created")
    assert entry.after == {"name": "pro", "rules": RULES}


def test_create__rules_default_to_empty_list(manager: Any, project: Any) -> None:
    response = client_for(manager).post(url(project), {"name": "all"})
    assert response.status_code == 201
    assert response.data["rules"] == []


def test_create__without_manage_segments__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT, CREATE_FEATURE])
    assert client_for(user).post(url(project), {"name": "x"}).status_code == 403
    assert not Segment.objects.exists()


def test_create__cannot_view__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).post(url(project), {"name": "x"}).status_code == 404


def test_create__no_credentials__401(project: Any) -> None:
    assert APIClient().post(url(project), {"name": "x"}).status_code == 401


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x", "rules": {"type": "ALL"}},
        {"name": "x", "rules": "[]"},
        {"name": "x", "rules": 3},
        {"name": "x", "rules": None},
        {"name": ""},
        {"rules": []},
    ],
)
def test_create__invalid_payload__400(manager: Any, project: Any, payload: Any) -> None:
    response = client_for(manager).post(url(project), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"name", "rules"}
    assert not Segment.objects.exists()


def test_create__duplicate_name__400(manager: Any, project: Any) -> None:
    f.SegmentFactory(project=project, name="pro")
    response = client_for(manager).post(url(project), {"name": "pro"})
    assert response.status_code == 400
    assert "name" in response.data


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def test_patch__manage_segments__200_and_audited(manager: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, name="old", rules=[])
    response = client_for(manager).patch(url(project, segment), {"rules": RULES}, format="json")
    assert response.status_code == 200
    assert response.data["rules"] == RULES
    (entry,) = audit(action="updated")
    assert entry.before == {"name": "old", "rules": []}
    assert entry.after == {"name": "old", "rules": RULES}


def test_patch__without_manage_segments__403(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, name="old")
    user = user_with(organisation, project, [VIEW_PROJECT])
    assert client_for(user).patch(url(project, segment), {"name": "new"}).status_code == 403
    segment.refresh_from_db()
    assert segment.name == "old"


@pytest.mark.parametrize("payload", [{"rules": {}}, {"rules": None}, {"name": "taken"}])
def test_patch__invalid__400(manager: Any, project: Any, payload: Any) -> None:
    f.SegmentFactory(project=project, name="taken")
    segment = f.SegmentFactory(project=project, name="mine")
    response = client_for(manager).patch(url(project, segment), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) == set(payload)


def test_patch__no_op__200_and_no_audit(manager: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, name="same", rules=RULES)
    response = client_for(manager).patch(
        url(project, segment), {"name": "same", "rules": RULES}, format="json"
    )
    assert response.status_code == 200
    assert not audit()


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__manage_segments_no_overrides__204_and_audited(manager: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project, name="unused", rules=RULES)
    response = client_for(manager).delete(url(project, segment))
    assert response.status_code == 204
    assert not Segment.objects.filter(pk=segment.pk).exists()
    (entry,) = audit(action="deleted")
    assert entry.before == {"name": "unused", "rules": RULES}


def _overrides_of_one_segment(project: Any) -> tuple[Any, list[Any]]:
    """A segment with overrides in two environments on two features (one restricted, in an
    environment where change requests are on: places the segment manager cannot reach)."""
    segment = f.SegmentFactory(project=project)
    restricted = f.TagFactory(project=project, is_restricted=True)
    guarded = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    overrides = [
        f.SegmentOverrideFactory(
            feature=f.FeatureFactory(project=project),
            environment=f.EnvironmentFactory(project=project),
            segment=segment,
        ),
        f.SegmentOverrideFactory(
            feature=f.FeatureFactory(project=project, tags=[restricted]),
            environment=guarded,
            segment=segment,
        ),
    ]
    return segment, overrides


@pytest.mark.parametrize("who", ["manage_segments_only", "organisation_admin"])
def test_delete__segment_has_overrides__409_segment_in_use_names_them_nothing_deleted(
    organisation: Any, project: Any, who: str
) -> None:
    caller = (
        user_with(organisation, project, [VIEW_PROJECT, MANAGE_SEGMENTS])
        if who == "manage_segments_only"
        else f.member(organisation, admin=True)
    )
    segment, overrides = _overrides_of_one_segment(project)
    states_before = FeatureState.objects.count()

    response = client_for(caller).delete(url(project, segment))

    assert response.status_code == 409, response.data
    assert response.data["code"] == "segment_in_use"
    assert response.data["environments"] == sorted(o.environment_id for o in overrides)
    assert response.data["features"] == sorted(o.feature_id for o in overrides)
    assert sorted(o["id"] for o in response.data["overrides"]) == sorted(o.pk for o in overrides)
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert SegmentOverride.objects.filter(segment=segment).count() == 2
    assert FeatureState.objects.count() == states_before
    assert not AuditLogEntry.objects.exists()


def test_delete__overrides_deleted_first__204(manager: Any, project: Any) -> None:
    segment, overrides = _overrides_of_one_segment(project)
    for override in overrides:
        override.delete()
    assert client_for(manager).delete(url(project, segment)).status_code == 204
    assert not Segment.objects.filter(pk=segment.pk).exists()


def test_delete__without_manage_segments__403(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project)
    user = user_with(organisation, project, [VIEW_PROJECT])
    assert client_for(user).delete(url(project, segment)).status_code == 403
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert not audit()


def test_delete__cannot_view__404(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project)
    assert client_for(f.member(organisation)).delete(url(project, segment)).status_code == 404


def test_delete__project_admin__204(organisation: Any, project: Any) -> None:
    segment = f.SegmentFactory(project=project)
    admin = user_with(organisation, project, [], admin=True)
    assert client_for(admin).delete(url(project, segment)).status_code == 204
