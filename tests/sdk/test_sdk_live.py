"""The real `flagsmith` SDK (and the OpenFeature Flagsmith provider) against a live server:
the flags applications read are what Tagwarden's members change (docs/API.md "Flags for
applications")."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flagsmith import Flagsmith
from flagsmith.exceptions import FlagsmithAPIError
from urllib3 import Retry

from features.workflow import services as workflow_services
from features.workflow.services import ChangeInput
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from sdk import services as sdk_services
from tests import factories as f
from tests.support.clients import client_for
from tests.support.feature_states import default_state
from tests.support.sdk import rules_where, segment_override, set_default

pytestmark = pytest.mark.django_db(transaction=True)

NO_RETRIES = Retry(total=0)


@pytest.fixture
def api_url(live_server: Any) -> str:
    return f"{live_server.url}/api/v1/"


@pytest.fixture
def clients() -> Iterator[list[Flagsmith]]:
    """Every SDK client a test makes; their polling threads are stopped, and waited for, at
    the end: a poll still in flight when the database is flushed deadlocks PostgreSQL's
    TRUNCATE against the live server's read."""
    made: list[Flagsmith] = []
    yield made
    threads = [
        thread
        for client in made
        if (thread := getattr(client, "environment_data_polling_manager_thread", None))
    ]
    for thread in threads:
        thread.stop()
    for thread in threads:
        thread.join(timeout=30)


def sdk(clients: list[Flagsmith], api_url: str, key: str, **kwargs: Any) -> Flagsmith:
    client = Flagsmith(
        environment_key=key,
        api_url=api_url,
        retries=NO_RETRIES,
        environment_refresh_interval_seconds=3600,
        **kwargs,
    )
    clients.append(client)
    return client


def test_sdk_environment_flags__remote__default_states(api_url, clients, environment) -> None:
    # Given
    on = f.FeatureFactory(project=environment.project, name="checkout_v2")
    f.FeatureFactory(project=environment.project, name="dark_mode")
    set_default(on, environment, enabled=True, value="blue")
    # When
    flags = sdk(clients, api_url, environment.api_key).get_environment_flags()
    # Then
    assert flags.is_feature_enabled("checkout_v2") is True
    assert flags.get_feature_value("checkout_v2") == "blue"
    assert flags.is_feature_enabled("dark_mode") is False
    assert {flag.feature_name for flag in flags.all_flags()} == {"checkout_v2", "dark_mode"}


def test_sdk_identity_flags__trait_matches_segment__override_applies(
    api_url, clients, environment
) -> None:
    # Given
    feature = f.FeatureFactory(project=environment.project, name="new_pricing")
    segment_override(feature, environment, rules=rules_where("plan", "pro"), enabled=True, value=42)
    client = sdk(clients, api_url, environment.api_key)
    # When
    pro = client.get_identity_flags("ada", {"plan": "pro"})
    free = client.get_identity_flags("bob", {"plan": "free"})
    # Then
    assert (pro.is_feature_enabled("new_pricing"), pro.get_feature_value("new_pricing")) == (
        True,
        42,
    )
    assert (free.is_feature_enabled("new_pricing"), free.get_feature_value("new_pricing")) == (
        False,
        None,
    )
    # The stored trait counts on the next call without it.
    assert client.get_identity_flags("ada").is_feature_enabled("new_pricing") is True


def test_sdk_local_evaluation__server_key__same_flags_as_remote(
    api_url, clients, environment, org_admin
) -> None:
    # Given
    feature = f.FeatureFactory(project=environment.project, name="new_pricing")
    set_default(feature, environment, enabled=False, value="old")
    segment_override(
        feature, environment, rules=rules_where("plan", "pro"), enabled=True, value="new"
    )
    _, key = sdk_services.server_key_create(
        environment=environment, name="backend", actor=org_admin
    )
    # When
    local = sdk(clients, api_url, key, enable_local_evaluation=True)
    # Then
    assert local.get_environment_flags().get_feature_value("new_pricing") == "old"
    pro = local.get_identity_flags("ada", {"plan": "pro"})
    assert (pro.is_feature_enabled("new_pricing"), pro.get_feature_value("new_pricing")) == (
        True,
        "new",
    )
    assert (
        local.get_identity_flags("bob", {"plan": "free"}).get_feature_value("new_pricing") == "old"
    )
    assert [s.name for s in local.get_identity_segments("ada", {"plan": "pro"})] == [
        feature.segment_overrides.get().segment.name
    ]


def test_sdk_next_call__tag_scoped_member_patches_state__sees_it(
    api_url, clients, organisation, environment
) -> None:
    # Given a member whose role reaches only features tagged "growth"
    tag = f.TagFactory(project=environment.project, label="growth")
    feature = f.FeatureFactory(project=environment.project, name="upsell", tags=[tag])
    role = f.RoleFactory(organisation=organisation)
    f.grant(role, environment, {UPDATE_FEATURE_STATE: [tag], VIEW_ENVIRONMENT: []})
    member = f.member(organisation)
    f.RoleAssignmentFactory(role=role, user=member)
    client = sdk(clients, api_url, environment.api_key)
    assert client.get_environment_flags().is_feature_enabled("upsell") is False
    # When
    state = default_state(feature, environment)
    response = client_for(member).patch(
        f"/api/v1/environments/{environment.api_key}/featurestates/{state.pk}/",
        {"enabled": True, "value": "banner-b"},
        format="json",
    )
    assert response.status_code == 200, response.data
    # Then
    flags = client.get_environment_flags()
    assert (flags.is_feature_enabled("upsell"), flags.get_feature_value("upsell")) == (
        True,
        "banner-b",
    )


def test_sdk_next_call__change_request_committed__sees_it(
    api_url, clients, organisation, project, org_admin
) -> None:
    # Given an environment where every write goes through a change request
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    feature = f.FeatureFactory(project=project, name="maintenance_mode")
    client = sdk(clients, api_url, environment.api_key)
    author = f.member(organisation, admin=True)
    change_request = workflow_services.change_request_create(
        environment=environment,
        title="Maintenance tonight",
        changes=[ChangeInput(feature=feature.pk, enabled=True, value="22:00")],
        actor=author,
    )
    assert client.get_environment_flags().is_feature_enabled("maintenance_mode") is False
    # When
    workflow_services.change_request_approve(change_request=change_request, actor=org_admin)
    workflow_services.change_request_commit(change_request=change_request, actor=author)
    # Then
    flags = client.get_environment_flags()
    assert flags.is_feature_enabled("maintenance_mode") is True
    assert flags.get_feature_value("maintenance_mode") == "22:00"


def test_sdk_local_evaluation__server_key_revoked__clear_error(
    api_url, clients, environment, org_admin, caplog
) -> None:
    # Given a local-evaluation client that has read the document once
    f.FeatureFactory(project=environment.project, name="kill_switch")
    server_key, key = sdk_services.server_key_create(
        environment=environment, name="backend", actor=org_admin
    )
    running = sdk(clients, api_url, key, enable_local_evaluation=True)
    assert running.get_environment_flags().is_feature_enabled("kill_switch") is False
    # When
    sdk_services.server_key_update(server_key=server_key, revoked=True, actor=org_admin)
    # Then a refresh is refused (the SDK logs it and keeps its last document) ...
    with caplog.at_level(logging.ERROR, logger="flagsmith.flagsmith"):
        running.update_environment()
    assert "Error retrieving environment document from API" in caplog.text
    error = caplog.records[-1].exc_info[1]
    assert isinstance(error, FlagsmithAPIError)
    assert error.__cause__.response.status_code == 401
    assert error.__cause__.response.json() == {
        "detail": "Unknown or revoked environment key.",
        "code": "authentication_failed",
    }
    # ... and a new client gets no flags at all: local evaluation has stopped.
    fresh = sdk(clients, api_url, key, enable_local_evaluation=True)
    with pytest.raises(FlagsmithAPIError):
        fresh.get_environment_flags()


def test_openfeature_provider__remote__resolves_flags(api_url, environment) -> None:
    # Given
    openfeature = pytest.importorskip("openfeature")
    from openfeature import api as openfeature_api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature_flagsmith.provider import FlagsmithProvider

    feature = f.FeatureFactory(project=environment.project, name="checkout_v2")
    set_default(feature, environment, enabled=True, value="blue")
    segment_override(
        feature, environment, rules=rules_where("plan", "pro"), enabled=True, value="gold"
    )
    client = Flagsmith(environment_key=environment.api_key, api_url=api_url, retries=NO_RETRIES)
    openfeature_api.set_provider(FlagsmithProvider(client=client))
    of_client = openfeature_api.get_client()
    # When / Then
    assert openfeature is not None
    assert of_client.get_boolean_value("checkout_v2", False) is True
    assert of_client.get_string_value("checkout_v2", "") == "blue"
    pro = EvaluationContext(targeting_key="ada", attributes={"plan": "pro"})
    assert of_client.get_string_value("checkout_v2", "", pro) == "gold"


def test_readme_example__demo_environment_key__reads_demo_flags(api_url, clients) -> None:
    # Given the demo, as `make demo` seeds it (the README example reads its key from there)
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("seed_demo", stdout=out)
    line = next(row for row in out.getvalue().splitlines() if "Checkout / Staging:" in row)
    key = line.rsplit(" ", 1)[1]
    # When: the README's example
    flagsmith = sdk(clients, api_url, key)
    flags = flagsmith.get_identity_flags("ada", traits={"beta_tester": True})
    # Then the demo's beta users override applies
    assert flags.is_feature_enabled("checkout_redesign_2026") is True
    assert flagsmith.get_environment_flags().is_feature_enabled("checkout_redesign_2026") is False
