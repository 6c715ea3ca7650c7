"""Many processes over one PostgreSQL (docs/OPERATIONS.md, Many processes): a grant revoked
through one server is refused by the very next request through another, whose process has
just served the same user. Nothing a process keeps across requests decides anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import connection
from knox.models import AuthToken

from bench.serve import call, database_url, serve, server_environment
from features.models import FeatureState
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from tests import factories as f

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL (make test-postgres)"
    ),
    pytest.mark.django_db(transaction=True),
]


def test_grant_revoked_through_one_server__next_request_through_the_other__403(
    tmp_path: Path,
) -> None:
    organisation = f.OrganisationFactory()
    environment = f.EnvironmentFactory(project=f.ProjectFactory(organisation=organisation))
    feature = f.FeatureFactory(project=environment.project)
    admin = f.member(organisation, admin=True)
    user = f.member(organisation)
    # The user sees the environment through a group; the grant revoked is the write.
    f.grant(
        f.UserGroupFactory(organisation=organisation, users=[user]), environment, [VIEW_ENVIRONMENT]
    )
    grant = f.grant(user, environment, [UPDATE_FEATURE_STATE])
    state = FeatureState.objects.get(
        feature=feature, environment=environment, segment_override__isnull=True
    )
    _, admin_key = AuthToken.objects.create(user=admin)
    _, user_key = AuthToken.objects.create(user=user)
    as_admin = {"Authorization": f"Token {admin_key}"}
    as_user = {"Authorization": f"Token {user_key}"}
    state_path = f"/api/v1/environments/{environment.api_key}/featurestates/{state.pk}/"
    grant_path = f"/api/v1/environments/{environment.api_key}/user-permissions/{grant.pk}/"

    env = server_environment(
        database_url=database_url(connection.settings_dict), secret_key="x" * 50
    )
    connection.close()  # the servers and this test share the committed data
    # One worker each: the user's next request through B lands in the very process that served
    # the previous one (any per-process cache would be warm there).
    with (
        serve(env=env, log_path=tmp_path / "a.log", workers=1, threads=2) as server_a,
        serve(env=env, log_path=tmp_path / "b.log", workers=1, threads=2) as server_b,
    ):
        status, _ = call(server_b.port, "PATCH", state_path, {"enabled": True}, as_user)
        assert status == 200
        status, _ = call(server_b.port, "GET", state_path, None, as_user)
        assert status == 200

        status, _ = call(server_a.port, "DELETE", grant_path, None, as_admin)
        assert status == 204

        status, body = call(server_b.port, "PATCH", state_path, {"enabled": False}, as_user)
        assert status == 403, body
        status, _ = call(server_b.port, "GET", state_path, None, as_user)
        assert status == 200  # still seen through the group

        # Logout through A revokes the token for B too.
        assert call(server_a.port, "POST", "/api/v1/auth/logout/", None, as_user)[0] == 204
        assert call(server_b.port, "GET", "/api/v1/organisations/", None, as_user)[0] == 401

    state.refresh_from_db()
    assert state.enabled is True
    # LOG_FORMAT=json: every request is one JSON line naming its principal.
    lines = [
        json.loads(line)
        for line in (tmp_path / "b.log").read_text().splitlines()
        if line.startswith("{")
    ]
    logged = [
        (line["method"], line["status"], line["principal_type"], line["principal_id"])
        for line in lines
        if line["logger"] == "tagwarden.request" and line["path"] == state_path
    ]
    assert logged == [
        ("PATCH", 200, "user", user.pk),
        ("GET", 200, "user", user.pk),
        ("PATCH", 403, "user", user.pk),
        ("GET", 200, "user", user.pk),
    ]
