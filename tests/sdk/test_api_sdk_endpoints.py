"""`/api/v1/flags/`, `/api/v1/identities/` and `/api/v1/environment-document/`: the shapes
the Flagsmith SDKs read, keys, bad input and query counts (docs/API.md "Flags for
applications")."""

from __future__ import annotations

from typing import Any

import pytest
from flag_engine import engine
from flagsmith.mappers import map_environment_document_to_context
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from sdk import services as sdk_services
from sdk.models import Identity, Trait
from tests import factories as f
from tests.support.sdk import rules_where, segment_override, set_default

pytestmark = pytest.mark.django_db


def keyed(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_ENVIRONMENT_KEY=key)
    return client


def identify(key: str, body: Any) -> Any:
    return keyed(key).post("/api/v1/identities/", body, format="json")


def flag_of(payload: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(flag for flag in payload if flag["feature"]["name"] == name)


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/flags/", "/api/v1/environment-document/", "/api/v1/identities/"]
)
def test_sdk_endpoint__no_unknown_or_foreign_key__json_401(path, environment, organisation) -> None:
    api_key = f.APIKeyFactory(organisation=organisation)
    for client in (
        APIClient(),
        keyed("not-a-key"),
        keyed("ser.nope.nope"),
        keyed(api_key.plain_key),  # an organisation API key is no environment key
    ):
        method = client.post if path.endswith("identities/") else client.get
        response = method(path, {"identifier": "ada"}, format="json")
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"detail", "code"}


def test_sdk_endpoint__user_token__401(environment, org_admin) -> None:
    client = APIClient()
    client.force_authenticate(org_admin)  # a member's credentials are not an environment key
    assert client.get("/api/v1/flags/").status_code == 401


def test_environment_document__client_key__401(environment) -> None:
    response = keyed(environment.api_key).get("/api/v1/environment-document/")
    assert response.status_code == 401
    assert "server-side" in response.json()["detail"]


def test_sdk_endpoints__revoked_server_key__401(environment, org_admin) -> None:
    server_key, key = sdk_services.server_key_create(
        environment=environment, name="k", actor=org_admin
    )
    assert keyed(key).get("/api/v1/environment-document/").status_code == 200
    assert keyed(key).get("/api/v1/flags/").status_code == 200
    sdk_services.server_key_update(server_key=server_key, revoked=True, actor=org_admin)
    for path in ("/api/v1/environment-document/", "/api/v1/flags/"):
        response = keyed(key).get(path)
        assert response.status_code == 401
        assert response.json()["detail"] == "Unknown or revoked environment key."


def test_server_key__wrong_secret_same_prefix__401(environment, org_admin) -> None:
    _, key = sdk_services.server_key_create(environment=environment, name="k", actor=org_admin)
    assert keyed(key[:-2] + "xx").get("/api/v1/flags/").status_code == 401


# --------------------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------------------


def test_flags__environment_key__default_states_in_flagsmith_shape(environment) -> None:
    # Given
    feature = f.FeatureFactory(project=environment.project, name="checkout_v2")
    set_default(feature, environment, enabled=True, value={"colour": "blue"})
    segment_override(feature, environment, rules=rules_where("plan", "pro"), value="x")
    other_environment = f.EnvironmentFactory(project=environment.project)
    set_default(feature, other_environment, enabled=False, value="other")
    # When
    response = keyed(environment.api_key).get("/api/v1/flags/")
    # Then
    assert response.status_code == 200
    (flag,) = response.json()
    assert flag["feature"]["id"] == feature.pk
    assert flag["feature"]["name"] == "checkout_v2"
    assert flag["enabled"] is True
    # A JSON object is sent as its encoding: the SDKs type values as scalars.
    assert flag["feature_state_value"] == '{"colour":"blue"}'
    assert flag["environment"] == environment.pk
    assert "my_permissions" not in flag and "tags" not in flag["feature"]


def test_flags__1000_features__at_most_3_queries(
    environment, django_assert_max_num_queries
) -> None:
    features = f.FeatureFactory.create_batch(1000, project=environment.project)
    for feature in features[:50]:
        segment_override(feature, environment, rules=rules_where("plan", "pro"))
    with django_assert_max_num_queries(3):
        response = keyed(environment.api_key).get("/api/v1/flags/")
    assert response.status_code == 200
    assert len(response.json()) == 1000


# --------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------


def test_identities__matching_segments__lowest_priority_wins(environment) -> None:
    # Given two segments overriding one feature: priority 0 wins over 1
    feature = f.FeatureFactory(project=environment.project, name="banner")
    segment_override(
        feature, environment, rules=rules_where("plan", "pro"), value="pro", priority=1
    )
    segment_override(
        feature,
        environment,
        rules=rules_where("age", "18", "GREATER_THAN"),
        value="adult",
        priority=0,
    )
    # When
    both = identify(
        environment.api_key,
        {
            "identifier": "ada",
            "traits": [
                {"trait_key": "plan", "trait_value": "pro"},
                {"trait_key": "age", "trait_value": 30},
            ],
        },
    )
    pro_only = identify(
        environment.api_key,
        {
            "identifier": "bob",
            "traits": [
                {"trait_key": "plan", "trait_value": "pro"},
                {"trait_key": "age", "trait_value": 12},
            ],
        },
    )
    neither = identify(environment.api_key, {"identifier": "cy", "traits": []})
    # Then
    assert flag_of(both.json()["flags"], "banner")["feature_state_value"] == "adult"
    assert flag_of(pro_only.json()["flags"], "banner")["feature_state_value"] == "pro"
    assert flag_of(neither.json()["flags"], "banner")["feature_state_value"] is None
    assert both.json()["identifier"] == "ada"
    assert both.json()["traits"] == [
        {"trait_key": "age", "trait_value": 30},
        {"trait_key": "plan", "trait_value": "pro"},
    ]


def test_identities__traits__stored_updated_and_null_removes(environment) -> None:
    key = environment.api_key
    identify(
        key,
        {
            "identifier": "ada",
            "traits": [
                {"trait_key": "plan", "trait_value": "pro"},
                {"trait_key": "beta", "trait_value": True},
            ],
        },
    )
    identify(
        key,
        {
            "identifier": "ada",
            "traits": [
                {"trait_key": "plan", "trait_value": "free"},
                {"trait_key": "beta", "trait_value": None},
            ],
        },
    )
    identity = Identity.objects.get(environment=environment, identifier="ada")
    assert {t.trait_key: t.value for t in identity.traits.all()} == {"plan": "free"}
    response = identify(key, {"identifier": "ada"})
    assert response.json()["traits"] == [{"trait_key": "plan", "trait_value": "free"}]


def test_identities__transient__nothing_stored(environment) -> None:
    key = environment.api_key
    response = identify(
        key,
        {
            "identifier": "ghost",
            "transient": True,
            "traits": [{"trait_key": "plan", "trait_value": "pro"}],
        },
    )
    assert response.status_code == 200
    assert response.json()["traits"] == [
        {"trait_key": "plan", "trait_value": "pro", "transient": True}
    ]
    identify(
        key,
        {
            "identifier": "ada",
            "traits": [
                {"trait_key": "plan", "trait_value": "pro", "transient": True},
                {"trait_key": "country", "trait_value": "fr"},
            ],
        },
    )
    assert not Identity.objects.filter(identifier="ghost").exists()
    assert list(Trait.objects.values_list("trait_key", flat=True)) == ["country"]


def test_identities__same_identifier_other_environment__separate(environment) -> None:
    other = f.EnvironmentFactory(project=environment.project)
    identify(
        environment.api_key,
        {"identifier": "ada", "traits": [{"trait_key": "plan", "trait_value": "pro"}]},
    )
    response = identify(other.api_key, {"identifier": "ada"})
    assert response.json()["traits"] == []
    assert Identity.objects.filter(identifier="ada").count() == 2


def test_identities__no_audit_entries(environment) -> None:
    identify(
        environment.api_key, {"identifier": "ada", "traits": [{"trait_key": "a", "trait_value": 1}]}
    )
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "identifier"),
        ({"identifier": ""}, "identifier"),
        ({"identifier": "a\u0000b"}, "identifier"),
        ({"identifier": "x" * 2001}, "identifier"),
        ({"identifier": "ada", "traits": {"plan": "pro"}}, "traits"),
        ({"identifier": "ada", "traits": [{"trait_value": 1}]}, "traits"),
        ({"identifier": "ada", "traits": [{"trait_key": "k", "trait_value": {"a": 1}}]}, "traits"),
        ({"identifier": "ada", "traits": [{"trait_key": "k", "trait_value": 2**70}]}, "traits"),
        ({"identifier": "ada", "transient": "maybe"}, "transient"),
    ],
)
def test_identities__malformed_body__400_naming_field_nothing_stored(
    environment, body, field
) -> None:
    response = identify(environment.api_key, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Identity.objects.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_identities__many_traits_and_segments__at_most_5_queries(
    environment, existing, django_assert_max_num_queries
) -> None:
    features = f.FeatureFactory.create_batch(200, project=environment.project)
    for index, feature in enumerate(features[:40]):
        segment_override(feature, environment, rules=rules_where(f"t{index}", "1"), priority=index)
    body = {
        "identifier": "ada",
        "traits": [{"trait_key": f"t{i}", "trait_value": i} for i in range(60)]
        + [{"trait_key": "gone", "trait_value": None}],
    }
    if existing:
        identify(environment.api_key, {**body, "traits": [{"trait_key": "gone", "trait_value": 1}]})
    with django_assert_max_num_queries(5):
        response = identify(environment.api_key, body)
    assert response.status_code == 200
    assert flag_of(response.json()["flags"], features[1].name)["enabled"] is True
    assert Trait.objects.filter(trait_key="gone").count() == 0


# --------------------------------------------------------------------------------------
# Environment document
# --------------------------------------------------------------------------------------


def test_environment_document__round_trips_through_sdk_mapper_and_engine(
    environment, org_admin
) -> None:
    # Given
    feature = f.FeatureFactory(project=environment.project, name="new_pricing")
    set_default(feature, environment, enabled=False, value=1)
    segment_override(feature, environment, rules=rules_where("plan", "pro"), value=2)
    f.SegmentFactory(project=environment.project, rules=[{"attribute": "free-form"}])  # skipped
    foreign = f.EnvironmentFactory()
    f.FeatureFactory(project=foreign.project, name="foreign_flag")
    _, key = sdk_services.server_key_create(environment=environment, name="k", actor=org_admin)
    # When
    document = keyed(key).get("/api/v1/environment-document/").json()
    context = map_environment_document_to_context(document)
    context["identity"] = {"identifier": "ada", "traits": {"plan": "pro"}}
    result = engine.get_evaluation_result(context)
    # Then
    assert document["api_key"] == environment.api_key
    assert [s["id"] for s in document["project"]["segments"]] == [
        feature.segment_overrides.get().segment_id
    ]
    assert result["flags"]["new_pricing"]["value"] == 2
    assert "foreign_flag" not in result["flags"]
