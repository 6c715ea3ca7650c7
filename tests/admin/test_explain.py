"""The explain admin page: pick a user, an environment, a feature and a key; see the engine's
decision and every path that allowed it or did not match."""

from __future__ import annotations

import pytest
from django.urls import reverse

from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
)
from tests import factories as f
from tests.support.admin import errors

pytestmark = pytest.mark.django_db

URL = "admin:permissions_explain"


def explain(client, world, feature, key=None, user=None, environment=None):
    params = {
        "environment": (environment or world.environment).pk,
        "user": (user or world.member).pk,
        "feature": feature.pk,
    }
    if key:
        params["key"] = key
    return client.get(reverse(URL), params)


@pytest.fixture(params=["superuser", "staff"])
def admin_client(request, superuser_client, staff_client):
    return superuser_client if request.param == "superuser" else staff_client


def test_explain__empty_form__200(admin_client, world):
    response = admin_client.get(reverse(URL))
    assert response.status_code == 200
    assert response.context["results"] == []


def test_explain__linked_from_grant_changelist(admin_client, world):
    html = admin_client.get(reverse("admin:permissions_grant_changelist")).content.decode()
    assert reverse(URL) in html


def test_explain__allowed_through_role_of_group__with_tags_matched(admin_client, world):
    response = explain(admin_client, world, world.tagged_feature, UPDATE_FEATURE_STATE)
    assert response.status_code == 200
    (result,) = response.context["results"]
    assert result["allowed"] is True
    assert result["allowed"] == engine.allowed(
        world.member, UPDATE_FEATURE_STATE, world.environment, world.tagged_feature
    )
    (path,) = result["granted_by"]
    assert path["role"]["label"] == "Acme role"
    assert path["group"]["label"] == "Acme group"
    assert [t["label"] for t in path["tags"]] == ["acme-beta"]
    assert path["grants_url"].endswith(f"?role={world.role.pk}&environment={world.environment.pk}")
    assert result["blocked_by"] == []
    grants = admin_client.get(path["grants_url"])
    assert {g.pk for g in grants.context["cl"].queryset} == {world.role_grant.pk}
    html = response.content.decode()
    assert "Allowed" in html and "Acme role" in html


def test_explain__denied__tag_mismatch_listed(admin_client, world):
    response = explain(admin_client, world, world.feature, UPDATE_FEATURE_STATE)
    (result,) = response.context["results"]
    assert result["allowed"] is False
    assert result["granted_by"] == []
    (blocked,) = result["blocked_by"]
    assert blocked["why"] == "the feature carries none of this entry's tags"
    assert [t["label"] for t in blocked["tags"]] == ["acme-beta"]
    assert "Denied" in response.content.decode()


def test_explain__restricted_tag__listed_as_restricted(admin_client, world):
    feature = f.FeatureFactory(project=world.project, tags=[world.tag, world.restricted_tag])
    response = explain(admin_client, world, feature, UPDATE_FEATURE_STATE)
    (result,) = response.context["results"]
    assert result["allowed"] is False
    (blocked,) = result["blocked_by"]
    assert blocked["why"] == (
        "the feature carries restricted tags that the user's entries for this key, "
        "taken together, do not all name"
    )


def test_explain__every_environment_key_without_key(admin_client, world):
    response = explain(admin_client, world, world.tagged_feature)
    results = {r["key"]: r["allowed"] for r in response.context["results"]}
    assert results == {
        VIEW_ENVIRONMENT: True,
        UPDATE_FEATURE_STATE: True,
        "CREATE_CHANGE_REQUEST": False,
        APPROVE_CHANGE_REQUEST: True,
        MANAGE_SEGMENT_OVERRIDES: False,
    }


def test_explain__organisation_admin_path(admin_client, world):
    admin = f.member(world.organisation, admin=True)
    response = explain(admin_client, world, world.feature, MANAGE_SEGMENT_OVERRIDES, user=admin)
    (result,) = response.context["results"]
    assert result["allowed"] is True
    assert result["granted_by"][0]["via"] == "organisation admin (ADMIN member)"


def test_explain__non_member__denied(superuser_client, world, other_world):
    response = explain(
        superuser_client, world, world.feature, VIEW_ENVIRONMENT, user=other_world.member
    )
    (result,) = response.context["results"]
    assert result["allowed"] is False
    assert result["reason"] == "Not a member of the organisation: no permission applies."


def test_explain__feature_of_another_project__form_error(admin_client, world):
    feature = f.FeatureFactory(project=f.ProjectFactory(organisation=world.organisation))
    response = explain(admin_client, world, feature, VIEW_ENVIRONMENT)
    assert response.status_code == 200
    assert "This feature is not in the environment's project." in errors(response)
    assert response.context["results"] == []


def test_explain__staff__other_organisation__invalid_choices(staff_client, world, other_world):
    response = explain(
        staff_client,
        world,
        other_world.feature,
        VIEW_ENVIRONMENT,
        user=other_world.member,
        environment=other_world.environment,
    )
    assert response.status_code == 200
    assert response.context["results"] == []
    form = response.context["form"]
    assert set(form.errors) == {"environment", "user", "feature"}


def test_explain__unknown_key__form_error(admin_client, world):
    response = explain(admin_client, world, world.feature, "NOT_A_KEY")
    assert "key" in response.context["form"].errors


def test_explain__member_not_admin__offered_only_themselves(client, world):
    member = f.member(world.organisation)
    client.force_login(member)
    response = client.get(reverse(URL))
    assert response.status_code == 200
    assert list(response.context["form"].fields["user"].queryset) == [member]


def test_explain__member_not_admin__someone_else__refused(client, world):
    client.force_login(f.member(world.organisation))
    response = client.get(
        reverse(URL),
        {"environment": world.environment.pk, "user": world.member.pk, "feature": world.feature.pk},
    )
    assert response.status_code == 200
    assert "user" in response.context["form"].errors
    assert response.context["results"] == []
