"""`/api/v1/projects/{id}/features/`: list (with `my_permissions`), create, read, edit,
delete; protected tags; DELETE_FEATURE narrowed by tags (docs/API.md, docs/PERMISSIONS.md "Never widen")."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from features.models import Feature, FeatureState
from permissions.catalogue import (
    CREATE_FEATURE,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_TAGS,
    VIEW_PROJECT,
)
from permissions.models import Grant
from projects.models import Tag
from tests import factories as f
from tests.support.clients import client_for
from tests.support.principals import user_with
from tests.support.worlds import tags_a_b_restricted

pytestmark = pytest.mark.django_db
PROJECT_KEYS = sorted(KEYS_BY_LEVEL["project"])


def url(project: Any, feature: Any | None = None) -> str:
    base = f"/api/v1/projects/{project.pk}/features/"
    return base if feature is None else f"{base}{feature.pk}/"


def role_user(organisation: Any, project: Any, entries: Any, *, api_key: bool = False) -> Any:
    """A member (or a non-admin API key) holding `entries` on `project` through a role."""
    role = f.RoleFactory(organisation=organisation)
    if api_key:
        principal = f.APIKeyFactory(organisation=organisation)
        f.RoleAssignmentFactory(role=role, api_key=principal)
    else:
        principal = f.member(organisation)
        f.RoleAssignmentFactory(role=role, user=principal)
    f.grant(role, project, entries)
    return principal


def audit(**kwargs: Any) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="feature", **kwargs))


@pytest.fixture
def tags(project: Any) -> dict[str, Tag]:
    return tags_a_b_restricted(project)


# --------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------


def test_list__no_credentials__401(project: Any) -> None:
    assert APIClient().get(url(project)).status_code == 401


def test_list__member_without_any_grant__404(organisation: Any, project: Any) -> None:
    f.FeatureFactory(project=project)
    assert client_for(f.member(organisation)).get(url(project)).status_code == 404


def test_list__non_member_with_stale_grant__404(project: Any) -> None:
    outsider = f.UserFactory()
    f.grant(outsider, project, [VIEW_PROJECT])
    assert client_for(outsider).get(url(project)).status_code == 404


def test_list__unknown_project__404(org_admin: Any) -> None:
    assert client_for(org_admin).get("/api/v1/projects/999999/features/").status_code == 404


def test_list__viewer__items_have_documented_fields(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, name="checkout", tags=[tags["b"], tags["a"]])
    f.FeatureFactory()  # another project's feature is not listed
    viewer = user_with(organisation, project, [VIEW_PROJECT])
    response = client_for(viewer).get(url(project))
    assert response.status_code == 200
    assert response.data["count"] == 1
    item = response.data["results"][0]
    assert set(item) == {"id", "name", "description", "tags", "created_at", "my_permissions"}
    assert item["id"] == feature.pk
    assert item["tags"] == sorted([tags["a"].pk, tags["b"].pk])
    assert item["my_permissions"] == [VIEW_PROJECT]


def test_list__viewer_through_environment_grant_only__200(
    organisation: Any, project: Any, environment: Any
) -> None:
    user = f.member(organisation)
    f.grant(user, environment, ["VIEW_ENVIRONMENT"])
    f.FeatureFactory(project=project)
    response = client_for(user).get(url(project))
    assert response.status_code == 200
    assert response.data["results"][0]["my_permissions"] == []


def test_list__my_permissions__role_tagged_a_holds_delete_on_a_features_only(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    on_a = f.FeatureFactory(project=project, name="f_a", tags=[tags["a"]])
    on_b = f.FeatureFactory(project=project, name="f_b", tags=[tags["b"]])
    untagged = f.FeatureFactory(project=project, name="f_untagged")
    on_a_restricted = f.FeatureFactory(
        project=project, name="f_a_restricted", tags=[tags["a"], tags["restricted"]]
    )
    user = role_user(organisation, project, {VIEW_PROJECT: [], DELETE_FEATURE: [tags["a"]]})
    response = client_for(user).get(url(project))
    assert response.status_code == 200
    by_id = {item["id"]: item["my_permissions"] for item in response.data["results"]}
    assert by_id == {
        on_a.pk: [DELETE_FEATURE, VIEW_PROJECT],
        on_b.pk: [VIEW_PROJECT],
        untagged.pk: [VIEW_PROJECT],
        on_a_restricted.pk: [VIEW_PROJECT],
    }


def test_list__my_permissions__role_naming_restricted_tag_reaches_restricted_feature(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    restricted = f.FeatureFactory(project=project, tags=[tags["restricted"]])
    user = role_user(
        organisation, project, {VIEW_PROJECT: [], DELETE_FEATURE: [tags["restricted"]]}
    )
    item = client_for(user).get(url(project)).data["results"][0]
    assert item["id"] == restricted.pk
    assert item["my_permissions"] == [DELETE_FEATURE, VIEW_PROJECT]


def test_list__my_permissions__untagged_delete_does_not_reach_restricted_feature(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.FeatureFactory(project=project, name="plain", tags=[tags["a"]])
    f.FeatureFactory(project=project, name="secret", tags=[tags["restricted"]])
    user = user_with(organisation, project, [VIEW_PROJECT, DELETE_FEATURE])
    by_name = {
        i["name"]: i["my_permissions"] for i in client_for(user).get(url(project)).data["results"]
    }
    assert by_name == {"plain": [DELETE_FEATURE, VIEW_PROJECT], "secret": [VIEW_PROJECT]}


@pytest.mark.parametrize("who", ["org_admin", "project_admin"])
def test_list__my_permissions__admins_hold_every_project_key(
    who: str, organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.FeatureFactory(project=project, tags=[tags["restricted"]])
    user = (
        f.member(organisation, admin=True)
        if who == "org_admin"
        else user_with(organisation, project, [], admin=True)
    )
    item = client_for(user).get(url(project)).data["results"][0]
    assert item["my_permissions"] == PROJECT_KEYS


def test_list__api_key_through_role__my_permissions_follow_tags(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.FeatureFactory(project=project, name="f_a", tags=[tags["a"]])
    f.FeatureFactory(project=project, name="f_b", tags=[tags["b"]])
    key = role_user(
        organisation, project, {VIEW_PROJECT: [], DELETE_FEATURE: [tags["a"]]}, api_key=True
    )
    response = client_for(key).get(url(project))
    assert response.status_code == 200
    by_name = {i["name"]: i["my_permissions"] for i in response.data["results"]}
    assert by_name == {"f_a": [DELETE_FEATURE, VIEW_PROJECT], "f_b": [VIEW_PROJECT]}


def test_list__filter_tags__any_of(organisation: Any, project: Any, tags: dict[str, Tag]) -> None:
    on_a = f.FeatureFactory(project=project, name="1", tags=[tags["a"]])
    on_both = f.FeatureFactory(project=project, name="2", tags=[tags["a"], tags["b"]])
    on_b = f.FeatureFactory(project=project, name="3", tags=[tags["b"]])
    f.FeatureFactory(project=project, name="4")
    client = client_for(f.member(organisation, admin=True))
    response = client.get(url(project), {"tags": f"{tags['a'].pk},{tags['b'].pk}"})
    assert [i["id"] for i in response.data["results"]] == [on_a.pk, on_both.pk, on_b.pk]
    response = client.get(url(project), {"tags": str(tags["b"].pk)})
    assert [i["id"] for i in response.data["results"]] == [on_both.pk, on_b.pk]


@pytest.mark.parametrize("value", ["x", "1,x", "1.5"])
def test_list__filter_tags_not_integers__400(org_admin: Any, project: Any, value: str) -> None:
    response = client_for(org_admin).get(url(project), {"tags": value})
    assert response.status_code == 400
    assert "tags" in response.data


def test_list__search__name_or_description(org_admin: Any, project: Any) -> None:
    by_name = f.FeatureFactory(project=project, name="Checkout_v2")
    by_description = f.FeatureFactory(project=project, name="other", description="new CHECKOUT")
    f.FeatureFactory(project=project, name="unrelated")
    response = client_for(org_admin).get(url(project), {"search": "checkout"})
    assert {i["id"] for i in response.data["results"]} == {by_name.pk, by_description.pk}


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [("name", ["a", "b", "c"]), ("-name", ["c", "b", "a"]), ("id", ["b", "c", "a"])],
)
def test_list__ordering(org_admin: Any, project: Any, ordering: str, expected: list[str]) -> None:
    for name in ("b", "c", "a"):
        f.FeatureFactory(project=project, name=name)
    response = client_for(org_admin).get(url(project), {"ordering": ordering})
    assert [i["name"] for i in response.data["results"]] == expected


def test_list__ordering_by_created_at(org_admin: Any, project: Any) -> None:
    first = f.FeatureFactory(project=project, name="z")
    second = f.FeatureFactory(project=project, name="a")
    response = client_for(org_admin).get(url(project), {"ordering": "-created_at,-id"})
    assert [i["id"] for i in response.data["results"]] == [second.pk, first.pk]


def _count_list_queries(principal_id: int, project: Any) -> tuple[int, int]:
    user = get_user_model().objects.get(pk=principal_id)  # a fresh instance: cold policy
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(project), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant_for_tagged_role_user(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    user = role_user(
        organisation,
        project,
        {VIEW_PROJECT: [], DELETE_FEATURE: [tags["a"], tags["restricted"]]},
    )
    cycle = [[tags["a"]], [tags["b"]], [], [tags["a"], tags["restricted"]], [tags["restricted"]]]

    def add(n: int) -> None:
        for i in range(n):
            f.FeatureFactory(project=project, tags=cycle[i % len(cycle)])

    add(5)
    few, count = _count_list_queries(user.pk, project)
    assert count == 5
    add(195)
    many, count = _count_list_queries(user.pk, project)
    assert count == 200
    assert few == many


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__no_credentials__401(project: Any) -> None:
    assert APIClient().post(url(project), {"name": "x"}).status_code == 401


def test_create__cannot_view_project__404(organisation: Any, project: Any) -> None:
    response = client_for(f.member(organisation)).post(url(project), {"name": "x"})
    assert response.status_code == 404
    assert not Feature.objects.exists()


def test_create__viewer_without_create_feature__403(organisation: Any, project: Any) -> None:
    viewer = user_with(organisation, project, [VIEW_PROJECT])
    response = client_for(viewer).post(url(project), {"name": "x"})
    assert response.status_code == 403
    assert not Feature.objects.exists()
    assert not audit()


def test_create__create_feature__201_with_default_states_and_one_audit_entry(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.EnvironmentFactory(project=project)
    f.EnvironmentFactory(project=project)
    creator = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(creator).post(
        url(project), {"name": "new_flag", "description": "d", "tags": [tags["a"].pk]}
    )
    assert response.status_code == 201, response.data
    feature = Feature.objects.get(pk=response.data["id"])
    assert response.data["name"] == "new_flag"
    assert response.data["description"] == "d"
    assert response.data["tags"] == [tags["a"].pk]
    assert response.data["my_permissions"] == [CREATE_FEATURE]
    assert FeatureState.objects.filter(feature=feature).count() == 2
    (entry,) = audit(action="created")
    assert entry.actor_user_id == creator.pk
    assert entry.project_id == project.pk
    assert entry.after["tags"] == [tags["a"].pk]
    assert entry.after["default_states_created"] == 2


def test_create__optional_fields_default(org_admin: Any, project: Any) -> None:
    response = client_for(org_admin).post(url(project), {"name": "bare"})
    assert response.status_code == 201
    assert response.data["description"] == ""
    assert response.data["tags"] == []


def test_create__role_with_create_feature__201(organisation: Any, project: Any) -> None:
    user = role_user(organisation, project, {CREATE_FEATURE: []})
    assert client_for(user).post(url(project), {"name": "x"}).status_code == 201


def test_create__duplicate_name__400_on_name(org_admin: Any, project: Any) -> None:
    f.FeatureFactory(project=project, name="taken")
    response = client_for(org_admin).post(url(project), {"name": "taken"})
    assert response.status_code == 400
    assert "name" in response.data
    assert Feature.objects.count() == 1


def test_create__same_name_in_another_project__201(org_admin: Any, project: Any) -> None:
    f.FeatureFactory(name="taken")
    assert client_for(org_admin).post(url(project), {"name": "taken"}).status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": None},
        {"name": "x" * 151},
        {"name": "ok", "description": None},
        {"name": "ok", "tags": None},
        {"name": "ok", "tags": "1"},
        {"name": "ok", "tags": [None]},
        {"name": "ok", "tags": ["a"]},
        {"name": "ok", "tags": [True]},
    ],
)
def test_create__invalid_payload__400(org_admin: Any, project: Any, payload: Any) -> None:
    response = client_for(org_admin).post(url(project), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"name", "description", "tags"}
    assert not Feature.objects.exists()


def test_create__unknown_tag_id__400_on_tags(org_admin: Any, project: Any) -> None:
    response = client_for(org_admin).post(url(project), {"name": "x", "tags": [999999]})
    assert response.status_code == 400
    assert "999999" in response.data["tags"][0]
    assert not Feature.objects.exists()


def test_create__tag_of_another_project__400_on_tags(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    foreign = f.TagFactory(project=f.ProjectFactory(organisation=organisation))
    response = client_for(org_admin).post(url(project), {"name": "x", "tags": [foreign.pk]})
    assert response.status_code == 400
    assert "tags" in response.data


def test_create__duplicate_tag_ids__400_on_tags(
    org_admin: Any, project: Any, tags: dict[str, Tag]
) -> None:
    response = client_for(org_admin).post(
        url(project), {"name": "x", "tags": [tags["a"].pk, tags["a"].pk]}
    )
    assert response.status_code == 400
    assert "tags" in response.data


def test_create__unprotected_tag_by_create_feature_holder__201(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).post(url(project), {"name": "x", "tags": [tags["b"].pk]})
    assert response.status_code == 201


def test_create__restricted_tag_by_non_admin__403_naming_the_tag(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    user = user_with(organisation, project, [CREATE_FEATURE, MANAGE_TAGS])
    response = client_for(user).post(
        url(project), {"name": "x", "tags": [tags["a"].pk, tags["restricted"].pk]}
    )
    assert response.status_code == 403
    assert response.data["code"] == "protected_tag"
    assert "payments" in response.data["detail"]
    assert not Feature.objects.exists()
    assert not audit()


def test_create__tag_named_by_a_role_grant_by_non_admin__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.grant(f.RoleFactory(organisation=organisation), project, {DELETE_FEATURE: [tags["a"]]})
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).post(url(project), {"name": "x", "tags": [tags["a"].pk]})
    assert response.status_code == 403
    assert "'a'" in response.data["detail"]
    assert not Feature.objects.exists()


@pytest.mark.parametrize("who", ["org_admin", "project_admin"])
def test_create__protected_tags_by_project_admin__201(
    who: str, organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.grant(f.RoleFactory(organisation=organisation), project, {DELETE_FEATURE: [tags["a"]]})
    user = (
        f.member(organisation, admin=True)
        if who == "org_admin"
        else user_with(organisation, project, [], admin=True)
    )
    response = client_for(user).post(
        url(project), {"name": "x", "tags": [tags["a"].pk, tags["restricted"].pk]}
    )
    assert response.status_code == 201
    assert response.data["tags"] == sorted([tags["a"].pk, tags["restricted"].pk])


# --------------------------------------------------------------------------------------
# Retrieve
# --------------------------------------------------------------------------------------


def test_retrieve__viewer__200(organisation: Any, project: Any, tags: dict[str, Tag]) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["a"]])
    user = role_user(organisation, project, {VIEW_PROJECT: [], DELETE_FEATURE: [tags["a"]]})
    response = client_for(user).get(url(project, feature))
    assert response.status_code == 200
    assert response.data["id"] == feature.pk
    assert response.data["my_permissions"] == [DELETE_FEATURE, VIEW_PROJECT]


def test_retrieve__cannot_view_project__404(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    assert client_for(f.member(organisation)).get(url(project, feature)).status_code == 404


def test_retrieve__feature_of_another_project__404(
    organisation: Any, org_admin: Any, project: Any
) -> None:
    other = f.FeatureFactory(project=f.ProjectFactory(organisation=organisation))
    assert client_for(org_admin).get(url(project, other)).status_code == 404


def test_retrieve__unknown_feature__404(org_admin: Any, project: Any) -> None:
    assert client_for(org_admin).get(f"{url(project)}999999/").status_code == 404


def test_retrieve__no_credentials__401(project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    assert APIClient().get(url(project, feature)).status_code == 401


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def test_patch__create_feature__200_and_audited(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project, name="old", description="d")
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(url(project, feature), {"name": "new"})
    assert response.status_code == 200
    assert response.data["name"] == "new"
    assert response.data["description"] == "d"
    (entry,) = audit(action="updated")
    assert entry.before == {"name": "old", "description": "d", "tags": []}
    assert entry.after == {"name": "new", "description": "d", "tags": []}


def test_patch__without_create_feature__403(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project, name="old")
    user = user_with(organisation, project, [VIEW_PROJECT, DELETE_FEATURE])
    response = client_for(user).patch(url(project, feature), {"name": "new"})
    assert response.status_code == 403
    feature.refresh_from_db()
    assert feature.name == "old"
    assert not audit()


def test_patch__cannot_view__404(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    response = client_for(f.member(organisation)).patch(url(project, feature), {"name": "n"})
    assert response.status_code == 404


def test_patch__feature_of_another_project__404(organisation: Any, project: Any) -> None:
    other_project = f.ProjectFactory(organisation=organisation)
    other = f.FeatureFactory(project=other_project, name="old")
    user = user_with(organisation, project, [CREATE_FEATURE])
    f.grant(user, other_project, [VIEW_PROJECT])
    response = client_for(user).patch(url(project, other), {"name": "new"})
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.name == "old"


def test_patch__put_is_not_allowed__405(org_admin: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    assert client_for(org_admin).put(url(project, feature), {"name": "x"}).status_code == 405


def test_patch__duplicate_name__400(org_admin: Any, project: Any) -> None:
    f.FeatureFactory(project=project, name="taken")
    feature = f.FeatureFactory(project=project, name="mine")
    response = client_for(org_admin).patch(url(project, feature), {"name": "taken"})
    assert response.status_code == 400
    assert "name" in response.data


@pytest.mark.parametrize(
    "payload", [{"name": ""}, {"name": None}, {"tags": None}, {"tags": [999999]}]
)
def test_patch__invalid_payload__400(org_admin: Any, project: Any, payload: Any) -> None:
    feature = f.FeatureFactory(project=project, name="mine")
    response = client_for(org_admin).patch(url(project, feature), payload, format="json")
    assert response.status_code == 400
    assert set(response.data) <= {"name", "tags"}


def test_patch__no_op__200_and_no_audit(org_admin: Any, project: Any, tags: dict[str, Tag]) -> None:
    feature = f.FeatureFactory(project=project, name="same", tags=[tags["a"]])
    response = client_for(org_admin).patch(
        url(project, feature), {"name": "same", "description": "", "tags": [tags["a"].pk]}
    )
    assert response.status_code == 200
    assert not audit()


def test_patch__tag_change__audited_with_before_and_after_tags(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, name="x", tags=[tags["a"]])
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(url(project, feature), {"tags": [tags["b"].pk]})
    assert response.status_code == 200
    assert response.data["tags"] == [tags["b"].pk]
    assert set(feature.tags.all()) == {tags["b"]}
    (entry,) = audit(action="updated")
    assert entry.before["tags"] == [tags["a"].pk]
    assert entry.after["tags"] == [tags["b"].pk]


def test_patch__attach_restricted_tag_by_non_admin__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["a"]])
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(
        url(project, feature), {"tags": [tags["a"].pk, tags["restricted"].pk]}
    )
    assert response.status_code == 403
    assert "payments" in response.data["detail"]
    assert set(feature.tags.all()) == {tags["a"]}
    assert not audit()


def test_patch__detach_restricted_tag_by_non_admin__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["restricted"]])
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(url(project, feature), {"tags": []})
    assert response.status_code == 403
    assert set(feature.tags.all()) == {tags["restricted"]}


def test_patch__attach_role_named_tag_to_move_feature_into_own_scope__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    """Flagsmith #1535: CREATE_FEATURE must not let a role pull features into its tag scope."""
    feature = f.FeatureFactory(project=project)
    user = role_user(organisation, project, {CREATE_FEATURE: [], DELETE_FEATURE: [tags["a"]]})
    response = client_for(user).patch(url(project, feature), {"tags": [tags["a"].pk]})
    assert response.status_code == 403
    assert not feature.tags.exists()
    assert client_for(user).delete(url(project, feature)).status_code == 403


def test_patch__detach_role_named_tag_by_non_admin__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    f.grant(f.RoleFactory(organisation=organisation), project, {DELETE_FEATURE: [tags["a"]]})
    feature = f.FeatureFactory(project=project, tags=[tags["a"], tags["b"]])
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(url(project, feature), {"tags": [tags["b"].pk]})
    assert response.status_code == 403


def test_patch__other_fields_of_feature_with_protected_tag_by_non_admin__200(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, name="x", tags=[tags["restricted"]])
    user = user_with(organisation, project, [CREATE_FEATURE])
    response = client_for(user).patch(
        url(project, feature),
        {"description": "edited", "tags": [tags["restricted"].pk, tags["b"].pk]},
    )
    assert response.status_code == 200
    assert set(feature.tags.all()) == {tags["restricted"], tags["b"]}


def test_patch__protected_tags_by_project_admin__200(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["restricted"]])
    admin = user_with(organisation, project, [], admin=True)
    response = client_for(admin).patch(url(project, feature), {"tags": [tags["a"].pk]})
    assert response.status_code == 200
    assert response.data["tags"] == [tags["a"].pk]
    assert set(feature.tags.all()) == {tags["a"]}


# --------------------------------------------------------------------------------------
# Delete
# --------------------------------------------------------------------------------------


def test_delete__untagged_delete_feature__204_with_states_and_audit(
    organisation: Any, project: Any, environment: Any
) -> None:
    feature = f.FeatureFactory(project=project, name="gone")
    assert FeatureState.objects.filter(feature=feature).count() == 1
    user = user_with(organisation, project, [DELETE_FEATURE])
    response = client_for(user).delete(url(project, feature))
    assert response.status_code == 204
    assert not Feature.objects.filter(pk=feature.pk).exists()
    assert not FeatureState.objects.filter(feature_id=feature.pk).exists()
    (entry,) = audit(action="deleted")
    assert entry.object_id == str(feature.pk)
    assert entry.before["name"] == "gone"
    assert entry.before["feature_states_deleted"] == 1


def test_delete__without_delete_feature__403(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    user = user_with(organisation, project, [VIEW_PROJECT, CREATE_FEATURE])
    assert client_for(user).delete(url(project, feature)).status_code == 403
    assert Feature.objects.filter(pk=feature.pk).exists()
    assert not audit()


def test_delete__role_tagged_a__a_feature__204(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["a"], tags["b"]])
    user = role_user(organisation, project, {DELETE_FEATURE: [tags["a"]]})
    assert client_for(user).delete(url(project, feature)).status_code == 204
    assert not Feature.objects.filter(pk=feature.pk).exists()


def test_delete__role_tagged_a__b_feature__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["b"]])
    user = role_user(organisation, project, {DELETE_FEATURE: [tags["a"]]})
    response = client_for(user).delete(url(project, feature))
    assert response.status_code == 403
    assert Feature.objects.filter(pk=feature.pk).exists()


def test_delete__role_tagged_a__untagged_feature__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project)
    user = role_user(organisation, project, {DELETE_FEATURE: [tags["a"]]})
    assert client_for(user).delete(url(project, feature)).status_code == 403


def test_delete__role_tagged_a__feature_with_a_and_restricted_tag__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["a"], tags["restricted"]])
    user = role_user(organisation, project, {DELETE_FEATURE: [tags["a"]]})
    assert client_for(user).delete(url(project, feature)).status_code == 403


def test_delete__role_tagged_restricted__restricted_feature__204(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags["restricted"]])
    user = role_user(organisation, project, {DELETE_FEATURE: [tags["restricted"]]})
    assert client_for(user).delete(url(project, feature)).status_code == 204


def test_delete__untagged_role__tagged_feature__204(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    """Flagsmith #4288: an untagged entry applies to tagged features."""
    feature = f.FeatureFactory(project=project, tags=[tags["a"]])
    user = role_user(organisation, project, {DELETE_FEATURE: []})
    assert client_for(user).delete(url(project, feature)).status_code == 204


def test_delete__role_through_group__tagged_a__a_feature__204_b_feature__403(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    user = f.member(organisation)
    group = f.UserGroupFactory(organisation=organisation, users=[user])
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, group=group)
    f.grant(role, project, {DELETE_FEATURE: [tags["a"]]})
    on_a = f.FeatureFactory(project=project, tags=[tags["a"]])
    on_b = f.FeatureFactory(project=project, tags=[tags["b"]])
    client = client_for(user)
    assert client.delete(url(project, on_b)).status_code == 403
    assert client.delete(url(project, on_a)).status_code == 204


@pytest.mark.parametrize(("tag", "expected"), [("a", 204), ("b", 403)])
def test_delete__api_key_with_role_tagged_a(
    organisation: Any, project: Any, tags: dict[str, Tag], tag: str, expected: int
) -> None:
    feature = f.FeatureFactory(project=project, tags=[tags[tag]])
    key = role_user(organisation, project, {DELETE_FEATURE: [tags["a"]]}, api_key=True)
    assert client_for(key).delete(url(project, feature)).status_code == expected


def test_delete__feature_with_protected_tag_needs_only_delete_feature__204(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    """Deleting a feature is not detaching its tags."""
    f.grant(f.RoleFactory(organisation=organisation), project, {DELETE_FEATURE: [tags["a"]]})
    feature = f.FeatureFactory(project=project, tags=[tags["a"]])
    user = user_with(organisation, project, [DELETE_FEATURE])
    assert client_for(user).delete(url(project, feature)).status_code == 204


def test_delete__feature_of_another_project_through_granted_project__404(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    """Unleash #5982: the feature's own project decides, never the URL's."""
    other_project = f.ProjectFactory(organisation=organisation)
    other = f.FeatureFactory(project=other_project)
    user = user_with(organisation, project, [DELETE_FEATURE])
    f.grant(user, other_project, [VIEW_PROJECT])
    assert client_for(user).delete(url(project, other)).status_code == 404
    assert client_for(user).delete(url(other_project, other)).status_code == 403
    assert Feature.objects.filter(pk=other.pk).exists()


def test_delete__cannot_view__404(organisation: Any, project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    assert client_for(f.member(organisation)).delete(url(project, feature)).status_code == 404


def test_delete__unknown_feature__404(org_admin: Any, project: Any) -> None:
    assert client_for(org_admin).delete(f"{url(project)}999999/").status_code == 404


def test_delete__no_credentials__401(project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    assert APIClient().delete(url(project, feature)).status_code == 401


def test_delete__removed_member_keeps_no_access__404(
    organisation: Any, project: Any, tags: dict[str, Tag]
) -> None:
    user = role_user(organisation, project, {DELETE_FEATURE: []})
    user.organisation_memberships.all().delete()
    feature = f.FeatureFactory(project=project)
    assert client_for(user).delete(url(project, feature)).status_code == 404
    assert Grant.objects.filter(role__assignments__user=user).exists()
