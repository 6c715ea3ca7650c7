"""`/api/v1/projects/{id}/tags/`: tags and the protected-tag rules of docs/API.md ("Choices where the contract is silent") and docs/PERMISSIONS.md ("Never widen")."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from permissions.catalogue import (
    CREATE_FEATURE,
    DELETE_FEATURE,
    MANAGE_TAGS,
    UPDATE_FEATURE_STATE,
    VIEW_PROJECT,
)
from projects.models import DEFAULT_TAG_COLOR, Tag
from tests import factories as f
from tests.support.clients import client_for
from tests.support.principals import user_with

pytestmark = pytest.mark.django_db
FIELDS = {"id", "label", "color", "description", "is_restricted", "is_protected"}


def url(project: Any, tag: Any | None = None) -> str:
    base = f"/api/v1/projects/{project.pk}/tags/"
    return base if tag is None else f"{base}{tag.pk}/"


def audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="tag", **kwargs))


def name_in_role_grant(organisation: Any, scope: Any, tag: Tag, name: str = "payments") -> Any:
    role = f.RoleFactory(organisation=organisation, name=name)
    key = UPDATE_FEATURE_STATE if hasattr(scope, "api_key") else DELETE_FEATURE
    f.grant(role, scope, {key: [tag]})
    return role


@pytest.fixture
def tag_manager(organisation: Any, project: Any) -> Any:
    return user_with(organisation, project, [MANAGE_TAGS])


@pytest.fixture
def project_admin(organisation: Any, project: Any) -> Any:
    return user_with(organisation, project, [], admin=True)


# --------------------------------------------------------------------------------------
# List and retrieve
# --------------------------------------------------------------------------------------


def test_list__no_credentials__401(project: Any) -> None:
    assert APIClient().get(url(project)).status_code == 401


def test_list__cannot_view__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).get(url(project)).status_code == 404


def test_list__viewer__fields_and_is_protected(
    organisation: Any, project: Any, environment: Any
) -> None:
    plain = f.TagFactory(project=project, label="plain")
    restricted = f.TagFactory(project=project, label="restricted", is_restricted=True)
    by_project_grant = f.TagFactory(project=project, label="project-grant")
    by_environment_grant = f.TagFactory(project=project, label="environment-grant")
    name_in_role_grant(organisation, project, by_project_grant, "r1")
    name_in_role_grant(organisation, environment, by_environment_grant, "r2")
    f.TagFactory()  # another project
    viewer = user_with(organisation, project, [VIEW_PROJECT])
    response = client_for(viewer).get(url(project))
    assert response.status_code == 200
    assert response.data["count"] == 4
    assert set(response.data["results"][0]) == FIELDS
    protected = {t["id"]: t["is_protected"] for t in response.data["results"]}
    assert protected == {
        plain.pk: False,
        restricted.pk: True,
        by_project_grant.pk: True,
        by_environment_grant.pk: True,
    }


def test_list__filters(organisation: Any, org_admin: Any, project: Any) -> None:
    f.TagFactory(project=project, label="Payments", is_restricted=True)
    f.TagFactory(project=project, label="growth")
    client = client_for(org_admin)
    assert [
        t["label"] for t in client.get(url(project), {"is_restricted": "true"}).data["results"]
    ] == ["Payments"]
    assert [t["label"] for t in client.get(url(project), {"search": "PAY"}).data["results"]] == [
        "Payments"
    ]


def _count_queries(user_id: int, project: Any) -> tuple[int, int]:
    client = client_for(get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(project), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant(organisation: Any, project: Any) -> None:
    viewer = user_with(organisation, project, [VIEW_PROJECT])

    def add(n: int, offset: int) -> None:
        for i in range(n):
            tag = f.TagFactory(project=project, is_restricted=i % 3 == 0)
            if i % 2:
                name_in_role_grant(organisation, project, tag, f"role-{offset + i}")

    add(5, 0)
    few, count = _count_queries(viewer.pk, project)
    assert count == 5
    add(195, 5)
    many, count = _count_queries(viewer.pk, project)
    assert count == 200
    assert few == many


def test_retrieve__viewer__200(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, label="x", description="d")
    response = client_for(user_with(organisation, project, [VIEW_PROJECT])).get(url(project, tag))
    assert response.status_code == 200
    assert response.data == {
        "id": tag.pk,
        "label": "x",
        "color": DEFAULT_TAG_COLOR,
        "description": "d",
        "is_restricted": False,
        "is_protected": False,
    }


def test_retrieve__tag_of_another_project__404(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    other = f.TagFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(org_admin).get(url(project, other)).status_code == 404


def test_retrieve__cannot_view__404(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project)
    assert client_for(f.member(organisation)).get(url(project, tag)).status_code == 404


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__manage_tags__201_and_audited(tag_manager: Any, project: Any) -> None:
    response = client_for(tag_manager).post(
        url(project), {"label": "growth", "color": "#ff0000", "description": "d"}
    )
    assert response.status_code == 201, response.data
    assert set(response.data) == FIELDS
    assert response.data["is_restricted"] is False
    assert response.data["is_protected"] is False
    (entry,) = audit(action="created")
    assert entry.after == {
        "label": "growth",
        "color": "#ff0000",
        "description": "d",
        "is_restricted": False,
    }


def test_create__defaults(tag_manager: Any, project: Any) -> None:
    response = client_for(tag_manager).post(url(project), {"label": "x"})
    assert response.data["color"] == DEFAULT_TAG_COLOR
    assert response.data["description"] == ""


def test_create__without_manage_tags__403(organisation: Any, project: Any) -> None:
    user = user_with(organisation, project, [VIEW_PROJECT, CREATE_FEATURE])
    assert client_for(user).post(url(project), {"label": "x"}).status_code == 403
    assert not Tag.objects.exists()


def test_create__cannot_view__404(organisation: Any, project: Any) -> None:
    assert client_for(f.member(organisation)).post(url(project), {"label": "x"}).status_code == 404


def test_create__no_credentials__401(project: Any) -> None:
    assert APIClient().post(url(project), {"label": "x"}).status_code == 401


def test_create__restricted_by_manage_tags_non_admin__403(tag_manager: Any, project: Any) -> None:
    response = client_for(tag_manager).post(url(project), {"label": "x", "is_restricted": True})
    assert response.status_code == 403
    assert response.data["code"] == "protected_tag"
    assert not Tag.objects.exists()
    assert not audit()


@pytest.mark.parametrize("who", ["project_admin", "org_admin"])
def test_create__restricted_by_admin__201(
    who: str, organisation: Any, project: Any, project_admin: Any
) -> None:
    user = project_admin if who == "project_admin" else f.member(organisation, admin=True)
    response = client_for(user).post(url(project), {"label": "x", "is_restricted": True})
    assert response.status_code == 201
    assert response.data["is_restricted"] is True
    assert response.data["is_protected"] is True


@pytest.mark.parametrize("label", ["Growth", "GROWTH", "growth"])
def test_create__label_taken_case_insensitively__400(
    tag_manager: Any, project: Any, label: str
) -> None:
    f.TagFactory(project=project, label="growth")
    response = client_for(tag_manager).post(url(project), {"label": label})
    assert response.status_code == 400
    assert "label" in response.data


def test_create__same_label_in_another_project__201(tag_manager: Any, project: Any) -> None:
    f.TagFactory(label="growth")
    assert client_for(tag_manager).post(url(project), {"label": "growth"}).status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"label": ""},
        {"label": "  "},
        {"label": None},
        {"label": "x" * 101},
        {"label": "x", "color": ""},
        {"label": "x", "color": "#" + "f" * 20},
        {"label": "x", "is_restricted": "maybe"},
        {"label": "x", "description": None},
    ],
)
def test_create__invalid_payload__400(org_admin: Any, project: Any, payload: Any) -> None:
    response = client_for(org_admin).post(url(project), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"label", "color", "is_restricted", "description"}
    assert not Tag.objects.exists()


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def test_patch__manage_tags__label_color_description__200_and_audited(
    tag_manager: Any, project: Any
) -> None:
    tag = f.TagFactory(project=project, label="old")
    response = client_for(tag_manager).patch(
        url(project, tag), {"label": "new", "color": "#000", "description": "d"}
    )
    assert response.status_code == 200
    assert response.data["label"] == "new"
    (entry,) = audit(action="updated")
    assert entry.before["label"] == "old"
    assert entry.after["label"] == "new"


def test_patch__label_of_protected_tag_by_manage_tags__200(
    organisation: Any, tag_manager: Any, project: Any
) -> None:
    tag = f.TagFactory(project=project, label="old", is_restricted=True)
    response = client_for(tag_manager).patch(url(project, tag), {"label": "new"})
    assert response.status_code == 200
    assert response.data["is_protected"] is True


def test_patch__without_manage_tags__403(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, label="old")
    user = user_with(organisation, project, [VIEW_PROJECT])
    assert client_for(user).patch(url(project, tag), {"label": "new"}).status_code == 403
    tag.refresh_from_db()
    assert tag.label == "old"


@pytest.mark.parametrize("start", [False, True])
def test_patch__change_is_restricted_by_non_admin__403(
    tag_manager: Any, project: Any, start: bool
) -> None:
    tag = f.TagFactory(project=project, is_restricted=start)
    response = client_for(tag_manager).patch(url(project, tag), {"is_restricted": not start})
    assert response.status_code == 403
    assert response.data["code"] == "protected_tag"
    tag.refresh_from_db()
    assert tag.is_restricted is start
    assert not audit()


def test_patch__same_is_restricted_by_non_admin__200(tag_manager: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, is_restricted=True, label="x")
    response = client_for(tag_manager).patch(
        url(project, tag), {"is_restricted": True, "label": "y"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("start", [False, True])
def test_patch__change_is_restricted_by_project_admin__200_and_audited(
    project_admin: Any, project: Any, start: bool
) -> None:
    tag = f.TagFactory(project=project, is_restricted=start)
    response = client_for(project_admin).patch(url(project, tag), {"is_restricted": not start})
    assert response.status_code == 200
    assert response.data["is_restricted"] is (not start)
    (entry,) = audit(action="updated")
    assert entry.before["is_restricted"] is start
    assert entry.after["is_restricted"] is (not start)


def test_patch__label_taken__400(tag_manager: Any, project: Any) -> None:
    f.TagFactory(project=project, label="taken")
    tag = f.TagFactory(project=project, label="mine")
    response = client_for(tag_manager).patch(url(project, tag), {"label": "TAKEN"})
    assert response.status_code == 400
    assert "label" in response.data


def test_patch__change_case_of_own_label__200(tag_manager: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, label="mine")
    assert client_for(tag_manager).patch(url(project, tag), {"label": "MINE"}).status_code == 200


def test_patch__no_op__200_and_no_audit(tag_manager: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, label="same")
    response = client_for(tag_manager).patch(
        url(project, tag), {"label": "same", "is_restricted": False}
    )
    assert response.status_code == 200
    assert not audit()


def test_patch__tag_of_another_project__404(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    other = f.TagFactory(project=f.ProjectFactory(organisation=organisation), label="old")
    assert client_for(org_admin).patch(url(project, other), {"label": "n"}).status_code == 404


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__plain_tag_by_manage_tags__204_detaches_and_audits(
    tag_manager: Any, project: Any
) -> None:
    tag = f.TagFactory(project=project, label="plain")
    feature = f.FeatureFactory(project=project, tags=[tag])
    response = client_for(tag_manager).delete(url(project, tag))
    assert response.status_code == 204
    assert not Tag.objects.filter(pk=tag.pk).exists()
    assert not feature.tags.exists()
    (entry,) = audit(action="deleted")
    assert entry.before["label"] == "plain"
    assert entry.before["features"] == [feature.pk]


def test_delete__without_manage_tags__403(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project)
    user = user_with(organisation, project, [VIEW_PROJECT, CREATE_FEATURE])
    assert client_for(user).delete(url(project, tag)).status_code == 403
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_delete__restricted_tag_by_non_admin__403(tag_manager: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, is_restricted=True)
    response = client_for(tag_manager).delete(url(project, tag))
    assert response.status_code == 403
    assert response.data["code"] == "protected_tag"
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_delete__grant_named_tag_by_non_admin__403(
    organisation: Any, tag_manager: Any, project: Any
) -> None:
    tag = f.TagFactory(project=project)
    name_in_role_grant(organisation, project, tag)
    assert client_for(tag_manager).delete(url(project, tag)).status_code == 403
    assert Tag.objects.filter(pk=tag.pk).exists()


@pytest.mark.parametrize("who", ["project_admin", "org_admin"])
def test_delete__grant_named_tag_by_admin__409_naming_roles(
    who: str, organisation: Any, project: Any, environment: Any, project_admin: Any
) -> None:
    tag = f.TagFactory(project=project)
    r1 = name_in_role_grant(organisation, project, tag, "alpha")
    r2 = name_in_role_grant(organisation, environment, tag, "beta")
    user = project_admin if who == "project_admin" else f.member(organisation, admin=True)
    response = client_for(user).delete(url(project, tag))
    assert response.status_code == 409
    assert response.data["code"] == "tag_in_use"
    assert "detail" in response.data
    assert response.data["roles"] == [
        {"id": r1.pk, "name": "alpha"},
        {"id": r2.pk, "name": "beta"},
    ]
    assert Tag.objects.filter(pk=tag.pk).exists()
    assert not audit()


def test_delete__restricted_tag_attached_to_feature_by_admin__409(
    project_admin: Any, project: Any
) -> None:
    tag = f.TagFactory(project=project, is_restricted=True)
    f.FeatureFactory(project=project, tags=[tag])
    response = client_for(project_admin).delete(url(project, tag))
    assert response.status_code == 409
    assert response.data["code"] == "tag_in_use"
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_delete__restricted_unattached_tag_by_admin__204(project_admin: Any, project: Any) -> None:
    tag = f.TagFactory(project=project, is_restricted=True)
    assert client_for(project_admin).delete(url(project, tag)).status_code == 204
    assert not Tag.objects.filter(pk=tag.pk).exists()


def test_delete__tag_of_another_project__404(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    other = f.TagFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(org_admin).delete(url(project, other)).status_code == 404
    assert Tag.objects.filter(pk=other.pk).exists()


def test_delete__cannot_view__404(organisation: Any, project: Any) -> None:
    tag = f.TagFactory(project=project)
    assert client_for(f.member(organisation)).delete(url(project, tag)).status_code == 404


def test_delete__no_credentials__401(project: Any) -> None:
    tag = f.TagFactory(project=project)
    assert APIClient().delete(url(project, tag)).status_code == 401
