"""Policies are memoised within a request and never carried into the next one."""

from __future__ import annotations

import pytest
from django.core.signals import request_started

from permissions import engine
from permissions.catalogue import VIEW_ENVIRONMENT
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def test_same_user_object_across_requests__grant_revoked__next_request_denied():
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    grant = f.grant(user, env, [VIEW_ENVIRONMENT])
    client = client_for(user)  # force_authenticate reuses this very object for every request
    url = f"/api/v1/environments/{env.api_key}/"
    assert client.get(url).status_code == 200
    grant.delete()
    assert client.get(url).status_code == 404


def test_same_user_object_across_requests__grant_given__next_request_allowed():
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    client = client_for(user)
    url = f"/api/v1/environments/{env.api_key}/"
    assert client.get(url).status_code == 404
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert client.get(url).status_code == 200


@pytest.fixture
def request_boundaries():
    """Send request_started as a new request does, without Django's close_old_connections
    (which would close PostgreSQL's test transaction)."""
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    try:
        yield lambda: request_started.send(sender=None)
    finally:
        request_started.connect(close_old_connections)


def test_within_one_request__repeated_decision__memoised(
    django_assert_num_queries, request_boundaries
):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    f.grant(user, env, [VIEW_ENVIRONMENT])
    request_boundaries()
    with django_assert_num_queries(1):
        assert engine.allowed(user, VIEW_ENVIRONMENT, env)
        assert engine.allowed(user, VIEW_ENVIRONMENT, env)
    request_boundaries()  # the next request loads afresh
    with django_assert_num_queries(1):
        assert engine.allowed(user, VIEW_ENVIRONMENT, env)
