"""`/api/v1/environments/{api_key}/change-requests/`: create, edit, delete, approve and
commit, with the rules, the order of the errors and the codes of docs/API.md ("Feature states, overrides, change requests"), and the
audit of §8. (Tag-scoped keys on every write path: test_tag_scoped_write_paths.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    ChangeRequestStatus,
    FeatureState,
)
from features.workflow.services import ChangeInput, change_request_approve, change_request_create
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
)
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for
from tests.support.feature_states import (
    audit_entries,
    default_state,
    env_url,
)
from tests.support.principals import role_principal, user_with

pytestmark = pytest.mark.django_db


def url(environment: Any, change_request: Any | None = None, action: str = "") -> str:
    base = env_url(environment, "change-requests/")
    if change_request is None:
        return base
    return f"{base}{change_request.pk}/" + (f"{action}/" if action else "")


@pytest.fixture
def environment(project: Any) -> Any:
    """Change requests on, one approval needed."""
    return f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)


@pytest.fixture
def feature(project: Any, environment: Any) -> Any:
    return f.FeatureFactory(project=project, name="checkout")


@pytest.fixture
def other_feature(project: Any, environment: Any) -> Any:
    return f.FeatureFactory(project=project, name="search")


@pytest.fixture
def author(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [CREATE_CHANGE_REQUEST])


@pytest.fixture
def approver(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [APPROVE_CHANGE_REQUEST])


@pytest.fixture
def viewer(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [VIEW_ENVIRONMENT])


@pytest.fixture
def change_request(environment: Any, feature: Any, author: Any) -> ChangeRequest:
    return open_cr(environment, author, [ChangeInput(feature=feature.pk, enabled=True, value=7)])


def open_cr(environment: Any, author: Any, changes: list[ChangeInput]) -> ChangeRequest:
    environment.refresh_from_db()
    return change_request_create(
        environment=environment, title="Turn it on", changes=changes, actor=author
    )


def approve(change_request: ChangeRequest, principal: Any) -> None:
    change_request_approve(change_request=change_request, actor=principal)


# --------------------------------------------------------------------------------------
# List and retrieve
# --------------------------------------------------------------------------------------


def test_list__viewer__200_with_documented_fields(
    viewer: Any, environment: Any, change_request: ChangeRequest, feature: Any, author: Any
) -> None:
    response = client_for(viewer).get(url(environment))
    assert response.status_code == 200
    [item] = response.data["results"]
    assert item["id"] == change_request.pk
    assert item["author"] == author.pk and item["author_api_key"] is None
    assert item["changes"] == [
        {"feature": feature.pk, "segment_override": None, "enabled": True, "value": 7}
    ]
    assert item["approvals"] == []
    assert (item["status"], item["committed_at"], item["committed_by"]) == ("open", None, None)
    assert {"title", "description", "committed_by_api_key"} <= set(item)


def test_list__filter_status(viewer: Any, environment: Any, change_request: ChangeRequest) -> None:
    client = client_for(viewer)
    assert client.get(url(environment), {"status": "open"}).data["count"] == 1
    assert client.get(url(environment), {"status": "committed"}).data["count"] == 0
    assert client.get(url(environment), {"status": "nope"}).status_code == 400


def test_list__no_credentials__401(environment: Any) -> None:
    assert APIClient().get(url(environment)).status_code == 401


def test_list__cannot_view__404(organisation: Any, environment: Any) -> None:
    assert client_for(f.member(organisation)).get(url(environment)).status_code == 404


def test_list__only_this_environment(
    organisation: Any, project: Any, viewer: Any, environment: Any, change_request: Any
) -> None:
    other = f.EnvironmentFactory(project=project, minimum_change_request_approvals=0)
    other_feature = f.FeatureFactory(project=project)
    admin = f.member(organisation, admin=True)
    open_cr(other, admin, [ChangeInput(feature=other_feature.pk, enabled=True)])
    assert [i["id"] for i in client_for(viewer).get(url(environment)).data["results"]] == [
        change_request.pk
    ]


def _count(user_id: int, environment: Any) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(environment), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant_for_5_and_200_requests(
    viewer: Any, organisation: Any, environment: Any, feature: Any, other_feature: Any
) -> None:
    author = f.member(organisation)
    approver = f.member(organisation)

    def add(n: int) -> None:
        for _ in range(n):
            cr = f.ChangeRequestFactory(environment=environment, author_user=author)
            for feat in (feature, other_feature):
                f.ChangeRequestChangeFactory(
                    change_request=cr, feature=feat, feature_state=default_state(feat, environment)
                )
            f.ChangeRequestApprovalFactory(change_request=cr, user=approver)

    add(5)
    few, count = _count(viewer.pk, environment)
    assert count == 5
    add(195)
    many, count = _count(viewer.pk, environment)
    assert count == 200
    assert few == many


def test_retrieve__viewer__200(viewer: Any, environment: Any, change_request: Any) -> None:
    response = client_for(viewer).get(url(environment, change_request))
    assert response.status_code == 200
    assert response.data["id"] == change_request.pk


def test_retrieve__request_of_another_environment__404(
    organisation: Any, project: Any, change_request: Any
) -> None:
    other = f.EnvironmentFactory(project=project)
    user = user_with(organisation, other, [VIEW_ENVIRONMENT])
    assert client_for(user).get(url(other, change_request)).status_code == 404


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__holder__201_records_versions_and_audits(
    author: Any, environment: Any, feature: Any, other_feature: Any
) -> None:
    FeatureState.objects.filter(pk=default_state(other_feature, environment).pk).update(version=4)
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    response = client_for(author).post(
        url(environment),
        {
            "title": "Launch",
            "description": "Go",
            "changes": [
                {"feature": feature.pk, "enabled": True, "value": {"a": 1}},
                {"feature": other_feature.pk, "enabled": False},
                {"feature": feature.pk, "segment_override": override.pk, "enabled": True},
            ],
        },
    )
    assert response.status_code == 201, response.data
    assert response.data["author"] == author.pk
    assert response.data["status"] == "open"
    assert response.data["changes"] == [
        {"feature": feature.pk, "segment_override": None, "enabled": True, "value": {"a": 1}},
        {"feature": other_feature.pk, "segment_override": None, "enabled": False, "value": None},
        {"feature": feature.pk, "segment_override": override.pk, "enabled": True, "value": None},
    ]
    changes = list(ChangeRequestChange.objects.order_by("id"))
    assert [c.recorded_version for c in changes] == [1, 4, 1]
    assert changes[2].feature_state_id == override.feature_state.pk
    assert changes[2].targets_override is True
    [entry] = audit_entries("change_request")
    assert (entry.action, entry.environment_id) == ("created", environment.pk)
    assert len(entry.after["changes"]) == 3
    # Nothing applied yet
    assert default_state(feature, environment).enabled is False


def test_create__api_key_author__author_api_key_set(
    organisation: Any, environment: Any, feature: Any
) -> None:
    key = role_principal(organisation, environment, [CREATE_CHANGE_REQUEST], via="api_key")
    response = client_for(key).post(
        url(environment),
        {"title": "t", "changes": [{"feature": feature.pk, "enabled": True}]},
    )
    assert response.status_code == 201
    assert (response.data["author"], response.data["author_api_key"]) == (None, key.pk)


def test_create__change_requests_off__400_change_requests_disabled(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=None)
    author = user_with(organisation, environment, [CREATE_CHANGE_REQUEST])
    response = client_for(author).post(
        url(environment), {"title": "t", "changes": [{"feature": feature.pk, "enabled": True}]}
    )
    assert response.status_code == 400
    assert response.data["code"] == "change_requests_disabled"
    assert not ChangeRequest.objects.exists()
    assert audit_entries("change_request") == []


def test_create__without_key__403(viewer: Any, environment: Any, feature: Any) -> None:
    response = client_for(viewer).post(
        url(environment), {"title": "t", "changes": [{"feature": feature.pk, "enabled": True}]}
    )
    assert response.status_code == 403
    assert not ChangeRequest.objects.exists()


def test_create__update_feature_state_is_not_create_change_request__403(
    organisation: Any, environment: Any, feature: Any
) -> None:
    user = user_with(organisation, environment, [UPDATE_FEATURE_STATE])
    response = client_for(user).post(
        url(environment), {"title": "t", "changes": [{"feature": feature.pk, "enabled": True}]}
    )
    assert response.status_code == 403


def test_create__cannot_view__404(organisation: Any, environment: Any, feature: Any) -> None:
    response = client_for(f.member(organisation)).post(
        url(environment), {"title": "t", "changes": [{"feature": feature.pk, "enabled": True}]}
    )
    assert response.status_code == 404


def test_create__no_credentials__401(environment: Any) -> None:
    assert APIClient().post(url(environment), {}, format="json").status_code == 401


@pytest.mark.parametrize(
    "changes",
    [
        [],
        None,
        "x",
        [{"enabled": True}],
        [{"feature": "1", "enabled": True}],
        [{"feature": 0, "enabled": "yes"}],
        [{"feature": 0}],
        [7],
    ],
)
def test_create__malformed_changes__400_on_changes(
    author: Any, environment: Any, feature: Any, changes: Any
) -> None:
    if isinstance(changes, list):
        changes = [
            {**c, "feature": feature.pk} if isinstance(c, dict) and c.get("feature") == 0 else c
            for c in changes
        ]
    response = client_for(author).post(url(environment), {"title": "t", "changes": changes})
    assert response.status_code == 400
    assert "changes" in response.data
    assert all(isinstance(m, str) for m in response.data["changes"])
    assert not ChangeRequest.objects.exists()


def test_create__missing_title__400(author: Any, environment: Any, feature: Any) -> None:
    response = client_for(author).post(
        url(environment), {"changes": [{"feature": feature.pk, "enabled": True}]}
    )
    assert response.status_code == 400
    assert "title" in response.data


def test_create__feature_of_another_project__400_on_changes(
    organisation: Any, environment: Any
) -> None:
    admin = f.member(organisation, admin=True)
    foreign = f.FeatureFactory(project=f.ProjectFactory(organisation=organisation))
    response = client_for(admin).post(
        url(environment), {"title": "t", "changes": [{"feature": foreign.pk, "enabled": True}]}
    )
    assert response.status_code == 400
    assert "changes" in response.data


def test_create__override_of_another_feature__400_on_changes(
    organisation: Any, environment: Any, feature: Any, other_feature: Any
) -> None:
    admin = f.member(organisation, admin=True)
    override = f.SegmentOverrideFactory(feature=other_feature, environment=environment)
    response = client_for(admin).post(
        url(environment),
        {
            "title": "t",
            "changes": [{"feature": feature.pk, "segment_override": override.pk, "enabled": True}],
        },
    )
    assert response.status_code == 400
    assert "segment_override" in response.data["changes"][0]


def test_create__override_of_another_environment__400_on_changes(
    organisation: Any, project: Any, environment: Any, feature: Any
) -> None:
    admin = f.member(organisation, admin=True)
    override = f.SegmentOverrideFactory(
        feature=feature, environment=f.EnvironmentFactory(project=project)
    )
    response = client_for(admin).post(
        url(environment),
        {
            "title": "t",
            "changes": [{"feature": feature.pk, "segment_override": override.pk, "enabled": True}],
        },
    )
    assert response.status_code == 400
    assert "changes" in response.data


def test_create__duplicate_target__400_on_changes(
    author: Any, environment: Any, feature: Any
) -> None:
    response = client_for(author).post(
        url(environment),
        {
            "title": "t",
            "changes": [
                {"feature": feature.pk, "enabled": True},
                {"feature": feature.pk, "enabled": False},
            ],
        },
    )
    assert response.status_code == 400
    assert "changes" in response.data


def test_create__several_open_requests_may_target_the_same_state(
    author: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    response = client_for(author).post(
        url(environment), {"title": "t2", "changes": [{"feature": feature.pk, "enabled": False}]}
    )
    assert response.status_code == 201


def test_create__key_on_one_feature_only__403(
    organisation: Any, environment: Any, feature: Any, other_feature: Any
) -> None:
    """An untagged key does not reach a restricted feature: the whole request is refused."""
    user = role_principal(organisation, environment, {CREATE_CHANGE_REQUEST: []})
    restricted = f.TagFactory(project=environment.project, is_restricted=True)
    other_feature.tags.set([restricted])
    response = client_for(user).post(
        url(environment),
        {
            "title": "t",
            "changes": [
                {"feature": feature.pk, "enabled": True},
                {"feature": other_feature.pk, "enabled": True},
            ],
        },
    )
    assert response.status_code == 403
    assert "search" in response.data["detail"]
    assert not ChangeRequest.objects.exists()


# --------------------------------------------------------------------------------------
# Edit
# --------------------------------------------------------------------------------------


def test_patch__author__200_resets_approvals_and_rerecords_versions(
    author: Any, approver: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    state = default_state(feature, environment)
    FeatureState.objects.filter(pk=state.pk).update(version=5)
    response = client_for(author).patch(url(environment, change_request), {"title": "Renamed"})
    assert response.status_code == 200
    assert response.data["title"] == "Renamed"
    assert response.data["approvals"] == []
    assert ChangeRequestChange.objects.get(change_request=change_request).recorded_version == 5
    entry = audit_entries("change_request")[-1]
    assert entry.action == "updated"
    assert entry.before["approvals"] == [{"user": approver.pk}]
    assert entry.after["approvals"] == []


def test_patch__replace_changes__200(
    author: Any, environment: Any, feature: Any, other_feature: Any, change_request: Any
) -> None:
    response = client_for(author).patch(
        url(environment, change_request),
        {"changes": [{"feature": other_feature.pk, "enabled": True, "value": "x"}]},
    )
    assert response.status_code == 200
    assert response.data["changes"] == [
        {"feature": other_feature.pk, "segment_override": None, "enabled": True, "value": "x"}
    ]


def test_patch__write_back_what_was_read__no_op_keeps_approvals(
    author: Any, approver: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    client = client_for(author)
    read = client.get(url(environment, change_request)).data
    before = len(audit_entries("change_request"))
    response = client.patch(
        url(environment, change_request),
        {"title": read["title"], "description": read["description"], "changes": read["changes"]},
    )
    assert response.status_code == 200
    assert len(response.data["approvals"]) == 1
    assert len(audit_entries("change_request")) == before


def test_patch__not_the_author__403(
    approver: Any, organisation: Any, environment: Any, change_request: Any
) -> None:
    admin = f.member(organisation, admin=True)
    for principal in (approver, admin):
        response = client_for(principal).patch(url(environment, change_request), {"title": "x"})
        assert response.status_code == 403
    change_request.refresh_from_db()
    assert change_request.title == "Turn it on"


def test_patch__committed__409_already_committed(
    author: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(author).patch(url(environment, change_request), {"title": "x"})
    assert response.status_code == 409
    assert response.data["code"] == "already_committed"


def test_patch__invalid_changes__400(author: Any, environment: Any, change_request: Any) -> None:
    response = client_for(author).patch(url(environment, change_request), {"changes": []})
    assert response.status_code == 400
    assert "changes" in response.data


def test_patch__cannot_view__404(organisation: Any, environment: Any, change_request: Any) -> None:
    response = client_for(f.member(organisation)).patch(
        url(environment, change_request), {"title": "x"}
    )
    assert response.status_code == 404


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__author__204_and_audited(
    author: Any, environment: Any, change_request: Any
) -> None:
    assert client_for(author).delete(url(environment, change_request)).status_code == 204
    assert not ChangeRequest.objects.exists()
    assert audit_entries("change_request")[-1].action == "deleted"


def test_delete__environment_admin__204(
    organisation: Any, environment: Any, change_request: Any
) -> None:
    admin = user_with(organisation, environment, [], admin=True)
    assert client_for(admin).delete(url(environment, change_request)).status_code == 204


def test_delete__someone_else__403(approver: Any, environment: Any, change_request: Any) -> None:
    assert client_for(approver).delete(url(environment, change_request)).status_code == 403
    assert ChangeRequest.objects.exists()


def test_delete__committed__409(author: Any, environment: Any, change_request: Any) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(author).delete(url(environment, change_request))
    assert response.status_code == 409
    assert response.data["code"] == "already_committed"


def test_delete__someone_else_on_committed__403_before_409(
    approver: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    assert client_for(approver).delete(url(environment, change_request)).status_code == 403


# --------------------------------------------------------------------------------------
# Approve
# --------------------------------------------------------------------------------------


def test_approve__approver__200_with_approval_and_audit(
    approver: Any, environment: Any, change_request: Any
) -> None:
    response = client_for(approver).post(url(environment, change_request, "approve"))
    assert response.status_code == 200
    [approval] = response.data["approvals"]
    assert approval["user"] == approver.pk and approval["approved_at"]
    entry = audit_entries("change_request")[-1]
    assert entry.action == "updated"
    assert entry.after["approvals"] == [{"user": approver.pk}]


def test_approve__twice__no_op_200(approver: Any, environment: Any, change_request: Any) -> None:
    client = client_for(approver)
    client.post(url(environment, change_request, "approve"))
    before = len(audit_entries("change_request"))
    response = client.post(url(environment, change_request, "approve"))
    assert response.status_code == 200
    assert len(response.data["approvals"]) == 1
    assert ChangeRequestApproval.objects.count() == 1
    assert len(audit_entries("change_request")) == before


def test_approve__api_key__api_key_field_set(
    organisation: Any, environment: Any, change_request: Any
) -> None:
    key = role_principal(organisation, environment, [APPROVE_CHANGE_REQUEST], via="api_key")
    response = client_for(key).post(url(environment, change_request, "approve"))
    assert response.status_code == 200
    assert response.data["approvals"][0]["user"] is None
    assert response.data["approvals"][0]["api_key"] == key.pk


def test_approve__own_request__403_cannot_approve_own_checked_before_the_key(
    author: Any, environment: Any, change_request: Any
) -> None:
    """The author holds no APPROVE_CHANGE_REQUEST: still `cannot_approve_own`."""
    response = client_for(author).post(url(environment, change_request, "approve"))
    assert response.status_code == 403
    assert response.data["code"] == "cannot_approve_own"
    assert not ChangeRequestApproval.objects.exists()


def test_approve__own_request_as_admin__403_cannot_approve_own(
    organisation: Any, environment: Any, feature: Any
) -> None:
    admin = f.member(organisation, admin=True)
    cr = open_cr(environment, admin, [ChangeInput(feature=feature.pk, enabled=True)])
    response = client_for(admin).post(url(environment, cr, "approve"))
    assert response.status_code == 403
    assert response.data["code"] == "cannot_approve_own"


def test_approve__own_request_as_api_key__403_cannot_approve_own(
    organisation: Any, environment: Any, feature: Any
) -> None:
    key = role_principal(
        organisation,
        environment,
        [CREATE_CHANGE_REQUEST, APPROVE_CHANGE_REQUEST],
        via="api_key",
    )
    cr = open_cr(environment, key, [ChangeInput(feature=feature.pk, enabled=True)])
    response = client_for(key).post(url(environment, cr, "approve"))
    assert response.status_code == 403
    assert response.data["code"] == "cannot_approve_own"


def test_approve__without_key__403(viewer: Any, environment: Any, change_request: Any) -> None:
    response = client_for(viewer).post(url(environment, change_request, "approve"))
    assert response.status_code == 403
    assert response.data["code"] == "permission_denied"


def test_approve__committed__409(approver: Any, environment: Any, change_request: Any) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(approver).post(url(environment, change_request, "approve"))
    assert response.status_code == 409
    assert response.data["code"] == "already_committed"


def test_approve__cannot_view__404(
    organisation: Any, environment: Any, change_request: Any
) -> None:
    response = client_for(f.member(organisation)).post(url(environment, change_request, "approve"))
    assert response.status_code == 404


def test_approve__get_is_not_allowed__405(
    approver: Any, environment: Any, change_request: Any
) -> None:
    response = client_for(approver).get(url(environment, change_request, "approve"))
    assert response.status_code == 405


# --------------------------------------------------------------------------------------
# Commit
# --------------------------------------------------------------------------------------


def test_commit__approved__applies_every_change_and_bumps_versions(
    author: Any,
    approver: Any,
    organisation: Any,
    environment: Any,
    feature: Any,
    other_feature: Any,
) -> None:
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    cr = open_cr(
        environment,
        author,
        [
            ChangeInput(feature=feature.pk, enabled=True, value="on"),
            ChangeInput(feature=other_feature.pk, enabled=False, value=None),  # no-op
            ChangeInput(feature=feature.pk, segment_override=override.pk, enabled=True, value=2),
        ],
    )
    approve(cr, approver)
    response = client_for(author).post(url(environment, cr, "commit"))
    assert response.status_code == 200, response.data
    assert response.data["status"] == "committed"
    assert response.data["committed_by"] == author.pk
    assert response.data["committed_at"]
    state = default_state(feature, environment)
    assert (state.enabled, state.value, state.version) == (True, "on", 2)
    untouched = default_state(other_feature, environment)
    assert untouched.version == 1
    override_state = FeatureState.objects.get(segment_override=override)
    assert (override_state.enabled, override_state.value, override_state.version) == (True, 2, 2)
    state_entries = audit_entries("feature_state")
    assert sorted(int(e.object_id) for e in state_entries) == sorted([state.pk, override_state.pk])
    assert all(e.after["change_request"] == cr.pk for e in state_entries)
    cr_entry = audit_entries("change_request")[-1]
    assert (cr_entry.before["status"], cr_entry.after["status"]) == ("open", "committed")


def test_commit__by_an_approver__200(
    author: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    response = client_for(approver).post(url(environment, change_request, "commit"))
    assert response.status_code == 200
    assert response.data["committed_by"] == approver.pk


def test_commit__by_api_key__committed_by_api_key(
    organisation: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    key = role_principal(organisation, environment, [APPROVE_CHANGE_REQUEST], via="api_key")
    response = client_for(key).post(url(environment, change_request, "commit"))
    assert response.status_code == 200
    assert (response.data["committed_by"], response.data["committed_by_api_key"]) == (
        None,
        key.pk,
    )


def test_commit__neither_author_nor_approver__403(
    viewer: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    response = client_for(viewer).post(url(environment, change_request, "commit"))
    assert response.status_code == 403
    change_request.refresh_from_db()
    assert change_request.status == "open"


def test_commit__too_few_approvals__400_not_enough_approvals_and_nothing_applied(
    author: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"
    assert default_state(feature, environment).enabled is False
    assert audit_entries("feature_state") == []
    change_request.refresh_from_db()
    assert change_request.status == "open"


def test_commit__threshold_two_needs_two_distinct_approvers(
    organisation: Any, author: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    environment.minimum_change_request_approvals = 2
    environment.save()
    approve(change_request, approver)
    approve(change_request, approver)
    client = client_for(author)
    assert client.post(url(environment, change_request, "commit")).status_code == 400
    approve(change_request, user_with(organisation, environment, [APPROVE_CHANGE_REQUEST]))
    assert client.post(url(environment, change_request, "commit")).status_code == 200


def test_commit__approver_lost_membership__400_not_enough_approvals(
    author: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    approver.organisation_memberships.all().delete()
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"


def test_commit__approver_lost_the_key__400_not_enough_approvals(
    author: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    Grant.objects.filter(user=approver).delete()
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"


def test_commit__approver_lost_role__400_not_enough_approvals(
    organisation: Any, author: Any, environment: Any, change_request: Any
) -> None:
    approver = role_principal(organisation, environment, [APPROVE_CHANGE_REQUEST], via="group")
    approve(change_request, approver)
    approver.user_groups.clear()
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400


def test_commit__approving_api_key_revoked__400_not_enough_approvals(
    organisation: Any, author: Any, environment: Any, change_request: Any
) -> None:
    key = role_principal(organisation, environment, [APPROVE_CHANGE_REQUEST], via="api_key")
    approve(change_request, key)
    key.revoked = True
    key.save()
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"


def test_commit__feature_moved_out_of_approvers_tag__approval_no_longer_counts(
    organisation: Any, author: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    tag = f.TagFactory(project=environment.project)
    feature.tags.set([tag])
    approver = role_principal(organisation, environment, {APPROVE_CHANGE_REQUEST: [tag]})
    approve(change_request, approver)
    feature.tags.set([])
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"


def test_commit__stale_target__409_and_nothing_applied(
    author: Any,
    approver: Any,
    environment: Any,
    feature: Any,
    other_feature: Any,
) -> None:
    cr = open_cr(
        environment,
        author,
        [
            ChangeInput(feature=feature.pk, enabled=True),
            ChangeInput(feature=other_feature.pk, enabled=True),
        ],
    )
    approve(cr, approver)
    FeatureState.objects.filter(pk=default_state(other_feature, environment).pk).update(version=2)
    response = client_for(author).post(url(environment, cr, "commit"))
    assert response.status_code == 409
    assert response.data["code"] == "stale"
    assert default_state(feature, environment).enabled is False  # atomic: none applied
    assert audit_entries("feature_state") == []
    cr.refresh_from_db()
    assert cr.status == "open"


def test_commit__target_override_deleted__409_stale(
    author: Any, approver: Any, environment: Any, feature: Any
) -> None:
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    cr = open_cr(
        environment,
        author,
        [ChangeInput(feature=feature.pk, segment_override=override.pk, enabled=True)],
    )
    approve(cr, approver)
    override.delete()
    response = client_for(author).post(url(environment, cr, "commit"))
    assert response.status_code == 409
    assert response.data["code"] == "stale"
    # and editing without resending the changes says why
    response = client_for(author).patch(url(environment, cr), {"title": "again"})
    assert response.status_code == 400
    assert "changes" in response.data


def _two_feature_request_approved(
    author: Any, approver: Any, environment: Any, feature: Any, other_feature: Any
) -> ChangeRequest:
    cr = open_cr(
        environment,
        author,
        [
            ChangeInput(feature=feature.pk, enabled=True, value="a"),
            ChangeInput(feature=other_feature.pk, enabled=True, value="b"),
        ],
    )
    approve(cr, approver)
    return cr


def test_commit__one_feature_of_approved_two_feature_request_deleted__409_stale_none_applied(
    org_admin: Any,
    author: Any,
    approver: Any,
    project: Any,
    environment: Any,
    feature: Any,
    other_feature: Any,
) -> None:
    cr = _two_feature_request_approved(author, approver, environment, feature, other_feature)
    deleted = client_for(org_admin).delete(f"/api/v1/projects/{project.pk}/features/{feature.pk}/")
    assert deleted.status_code == 204

    for committer in (author, approver):
        response = client_for(committer).post(url(environment, cr, "commit"))
        assert response.status_code == 409, response.data
        assert response.data["code"] == "stale"
    state = default_state(other_feature, environment)
    assert (state.enabled, state.value, state.version) == (False, None, 1)  # never in part
    assert audit_entries("feature_state") == []
    cr.refresh_from_db()
    assert cr.status == "open"
    # the request still shows the change whose feature is gone
    shown = client_for(author).get(url(environment, cr)).data["changes"]
    assert [c["feature"] for c in shown] == [None, other_feature.pk]


def test_feature_delete__open_change_requests__audit_entry_names_them(
    org_admin: Any,
    author: Any,
    approver: Any,
    project: Any,
    environment: Any,
    feature: Any,
    other_feature: Any,
) -> None:
    touching = _two_feature_request_approved(author, approver, environment, feature, other_feature)
    also = open_cr(environment, author, [ChangeInput(feature=feature.pk, enabled=False)])
    committed = open_cr(environment, author, [ChangeInput(feature=feature.pk, enabled=True)])
    approve(committed, approver)
    assert client_for(author).post(url(environment, committed, "commit")).status_code == 200
    elsewhere = open_cr(environment, author, [ChangeInput(feature=other_feature.pk, enabled=True)])

    response = client_for(org_admin).delete(f"/api/v1/projects/{project.pk}/features/{feature.pk}/")

    assert response.status_code == 204
    (entry,) = audit_entries("feature")
    assert entry.action == "deleted"
    assert entry.before["open_change_requests"] == sorted([touching.pk, also.pk])
    assert elsewhere.pk not in entry.before["open_change_requests"]


def test_patch__feature_deleted_without_resending_changes__400_on_changes(
    org_admin: Any,
    author: Any,
    approver: Any,
    project: Any,
    environment: Any,
    feature: Any,
    other_feature: Any,
) -> None:
    cr = _two_feature_request_approved(author, approver, environment, feature, other_feature)
    client_for(org_admin).delete(f"/api/v1/projects/{project.pk}/features/{feature.pk}/")

    response = client_for(author).patch(url(environment, cr), {"title": "again"})

    assert response.status_code == 400
    assert "changes" in response.data
    # resending only the change that is left makes a request of that change alone, which
    # needs approving again (the edit resets the approvals)
    response = client_for(author).patch(
        url(environment, cr),
        {"changes": [{"feature": other_feature.pk, "enabled": True, "value": "b"}]},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["approvals"] == []


def test_commit__stale_then_edit_rerecords__commit_succeeds(
    author: Any, approver: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    FeatureState.objects.filter(pk=default_state(feature, environment).pk).update(version=3)
    client = client_for(author)
    client.patch(url(environment, change_request), {"description": "rebased"})
    approve(change_request, approver)
    response = client.post(url(environment, change_request, "commit"))
    assert response.status_code == 200
    assert default_state(feature, environment).version == 4


def test_commit__already_committed__409(
    author: Any, approver: Any, environment: Any, change_request: Any
) -> None:
    approve(change_request, approver)
    client = client_for(author)
    assert client.post(url(environment, change_request, "commit")).status_code == 200
    response = client.post(url(environment, change_request, "commit"))
    assert response.status_code == 409
    assert response.data["code"] == "already_committed"


def test_commit__committed_and_too_few_approvals__409_before_400(
    author: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 409


def test_commit__too_few_approvals_and_stale__400_before_409(
    author: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    FeatureState.objects.filter(pk=default_state(feature, environment).pk).update(version=9)
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 400
    assert response.data["code"] == "not_enough_approvals"


def test_commit__threshold_zero__author_commits_without_approvals(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=0)
    author = user_with(organisation, environment, [CREATE_CHANGE_REQUEST])
    cr = open_cr(environment, author, [ChangeInput(feature=feature.pk, enabled=True)])
    assert client_for(author).post(url(environment, cr, "commit")).status_code == 200


def test_commit__change_requests_switched_off__open_request_committable_with_threshold_0(
    author: Any, environment: Any, feature: Any, change_request: Any
) -> None:
    environment.minimum_change_request_approvals = None
    environment.save()
    response = client_for(author).post(url(environment, change_request, "commit"))
    assert response.status_code == 200
    assert default_state(feature, environment).enabled is True


def test_commit__cannot_view__404(organisation: Any, environment: Any, change_request: Any) -> None:
    response = client_for(f.member(organisation)).post(url(environment, change_request, "commit"))
    assert response.status_code == 404


def test_commit__no_credentials__401(environment: Any, change_request: Any) -> None:
    assert APIClient().post(url(environment, change_request, "commit")).status_code == 401


def test_commit__neither_author_nor_approver_on_committed__403_before_409(
    viewer: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(viewer).post(url(environment, change_request, "commit"))
    assert response.status_code == 403


def test_approve__without_key_on_committed__403_before_409(
    viewer: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(viewer).post(url(environment, change_request, "approve"))
    assert response.status_code == 403


def test_approve__author_on_committed__403_cannot_approve_own_before_409(
    author: Any, environment: Any, change_request: Any
) -> None:
    ChangeRequest.objects.filter(pk=change_request.pk).update(status=ChangeRequestStatus.COMMITTED)
    response = client_for(author).post(url(environment, change_request, "approve"))
    assert response.status_code == 403
    assert response.data["code"] == "cannot_approve_own"
