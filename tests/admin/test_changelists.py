"""Every registered model's admin changelist renders for a superuser, without N+1."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from permissions.catalogue import UPDATE_FEATURE_STATE
from tests import factories as f

pytestmark = pytest.mark.django_db

MODELS = sorted(
    (m._meta.app_label, m._meta.model_name)
    for m in admin.site._registry
    if m._meta.app_label
    in {"organisations", "projects", "environments", "features", "permissions", "audit"}
)


def populate(n: int) -> None:
    env = f.EnvironmentFactory()
    org = env.project.organisation
    tag = f.TagFactory(project=env.project)
    for _ in range(n):
        user = f.member(org)
        group = f.UserGroupFactory(organisation=org, users=[user])
        role = f.RoleFactory(organisation=org)
        f.RoleAssignmentFactory(role=role, group=group)
        f.grant(role, env, {UPDATE_FEATURE_STATE: [tag]})
        feature = f.FeatureFactory(project=env.project, tags=[tag])
        f.SegmentOverrideFactory(feature=feature, environment=env)
        f.APIKeyFactory(organisation=org)
        f.AuditLogEntryFactory(organisation=org)
        cr = f.ChangeRequestFactory(environment=env, author_user=user)
        f.ChangeRequestChangeFactory(change_request=cr, feature=feature)


@pytest.fixture
def superuser_client(client):
    user = f.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("app_label", "model_name"), MODELS)
def test_changelist__superuser__200_and_constant_queries(superuser_client, app_label, model_name):
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    populate(2)
    with CaptureQueriesContext(connection) as few:
        assert superuser_client.get(url).status_code == 200
    populate(8)
    with CaptureQueriesContext(connection) as many:
        response = superuser_client.get(url)
    assert response.status_code == 200
    assert len(many) == len(few), f"{url}: {len(few)} queries for few rows, {len(many)} for more"


def test_audit_log_admin__is_read_only(superuser_client):
    entry = f.AuditLogEntryFactory()
    assert superuser_client.get(reverse("admin:audit_auditlogentry_add")).status_code == 403
    url = reverse("admin:audit_auditlogentry_delete", args=[entry.pk])
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403


def test_grant_admin__is_read_only(superuser_client):
    assert superuser_client.get(reverse("admin:permissions_grant_add")).status_code == 403
