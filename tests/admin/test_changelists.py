"""Every registered model's admin changelist renders without N+1, for a superuser and for a
staff user scoped to one organisation."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from permissions.catalogue import UPDATE_FEATURE_STATE
from tests import factories as f

pytestmark = pytest.mark.django_db

MODELS = [
    *sorted(
        (m._meta.app_label, m._meta.model_name)
        for m in admin.site._registry
        if m._meta.app_label
        in {"organisations", "projects", "environments", "features", "permissions", "audit"}
    ),
    ("auth", "user"),
]


def populate(n: int, env) -> None:
    org = env.project.organisation
    tag = f.TagFactory(project=env.project)
    for _ in range(n):
        f.TagFactory(project=env.project)
        user = f.member(org)
        group = f.UserGroupFactory(organisation=org, users=[user])
        role = f.RoleFactory(organisation=org)
        f.RoleAssignmentFactory(role=role, group=group)
        f.grant(role, env, {UPDATE_FEATURE_STATE: [tag]})
        f.grant(user, env.project, ["VIEW_PROJECT"])
        feature = f.FeatureFactory(project=env.project, tags=[tag])
        f.SegmentOverrideFactory(feature=feature, environment=env)
        f.APIKeyFactory(organisation=org)
        f.AuditLogEntryFactory(organisation=org)
        cr = f.ChangeRequestFactory(environment=env, author_user=user)
        f.ChangeRequestChangeFactory(change_request=cr, feature=feature)
        f.EnvironmentFactory(project=f.ProjectFactory(organisation=org))


@pytest.fixture
def env(db):
    return f.EnvironmentFactory()


@pytest.fixture(params=["superuser", "org_admin_staff"])
def admin_client(request, client, env):
    if request.param == "superuser":
        user = f.UserFactory(is_staff=True, is_superuser=True)
    else:
        user = f.member(env.project.organisation, admin=True, is_staff=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("app_label", "model_name"), MODELS)
def test_changelist__constant_queries(admin_client, env, app_label, model_name):
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    populate(2, env)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    populate(8, env)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)
    assert response.status_code == 200
    if model_name != "organisation":  # the scoped staff user administers one organisation
        assert response.context["cl"].result_count > 2
    assert len(many) == len(few), f"{url}: {len(few)} queries for few rows, {len(many)} for more"
