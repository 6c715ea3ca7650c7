"""A PATCH of a feature state costs at most 8 SQL queries in all, from authentication to the
audit entry (docs/PERFORMANCE.md, budgets), whatever the number of roles, groups and tags the
caller holds, for a token and for an organisation API key."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from features.models import FeatureState
from organisations.models import RoleAssignment
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from tests import factories as f

pytestmark = pytest.mark.django_db

PATCH_QUERY_BUDGET = 8


def world(n_roles: int) -> dict[str, Any]:
    """A member and an API key each reached by `n_roles` tagged roles (the user's half through
    groups), on a feature carrying one of the roles' tags."""
    environment = f.EnvironmentFactory()
    project, org = environment.project, environment.project.organisation
    user = f.member(org)
    key = f.APIKeyFactory(organisation=org)
    tags = [f.TagFactory(project=project, label=f"t{i}") for i in range(max(2, n_roles))]
    group = f.UserGroupFactory(organisation=org, users=[user])
    for i in range(n_roles):
        role = f.RoleFactory(organisation=org)
        if i % 2:
            f.RoleAssignmentFactory(role=role, group=group)
        else:
            f.RoleAssignmentFactory(role=role, user=user)
        RoleAssignment.objects.create(role=role, api_key=key)
        f.grant(role, environment, {UPDATE_FEATURE_STATE: [tags[i]], VIEW_ENVIRONMENT: []})
    feature = f.FeatureFactory(project=project, tags=[tags[0]])
    state = FeatureState.objects.get(
        feature=feature, environment=environment, segment_override__isnull=True
    )
    return {"environment": environment, "user": user, "api_key": key, "state": state}


def client_of(principal_kind: str, w: dict[str, Any]) -> APIClient:
    client = APIClient()
    if principal_kind == "token":
        _, key = AuthToken.objects.create(user=w["user"])
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {w['api_key'].plain_key}")
    return client


@pytest.mark.parametrize("n_roles", [1, 12], ids=["one-role", "twelve-roles"])
@pytest.mark.parametrize("principal_kind", ["token", "api_key"])
def test_patch_state__token_or_api_key__at_most_8_queries_with_audit_entry(
    django_assert_max_num_queries: Any, principal_kind: str, n_roles: int
) -> None:
    w = world(n_roles)
    client = client_of(principal_kind, w)
    url = f"/api/v1/environments/{w['environment'].api_key}/featurestates/{w['state'].pk}/"
    client.patch(url, {"enabled": False}, format="json")  # warm: content types, caches
    audits = AuditLogEntry.objects.count()

    with django_assert_max_num_queries(PATCH_QUERY_BUDGET):
        response = client.patch(url, {"enabled": True, "value": "on"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is True
    assert AuditLogEntry.objects.count() == audits + 1


def test_patch_state__queries__listed_for_the_budget() -> None:
    """Not a budget: prints the queries of one PATCH, to see where a regression comes from."""
    w = world(2)
    client = client_of("token", w)
    url = f"/api/v1/environments/{w['environment'].api_key}/featurestates/{w['state'].pk}/"
    client.patch(url, {"enabled": False}, format="json")
    with CaptureQueriesContext(connection) as captured:
        client.patch(url, {"enabled": True}, format="json")
    for query in captured.captured_queries:
        print(query["sql"][:300])
    assert len(captured) >= 1
