"""`/api/v1/environments/{api_key}/featurestates/`: the default states of an environment
with the caller's keys on each, and direct writes (UPDATE_FEATURE_STATE on the state's
feature, optimistic `version`, `change_request_required`) (docs/API.md, docs/PERMISSIONS.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from features.models import FeatureState
from features.workflow import services as workflow_services
from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    KEYS_BY_LEVEL,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
)
from projects.models import Tag
from tests import factories as f
from tests.support.clients import client_for
from tests.support.feature_states import (
    audit_entries,
    default_state,
    state_url,
)
from tests.support.principals import role_principal, user_with
from tests.support.worlds import tags_a_b_restricted

pytestmark = pytest.mark.django_db
ENVIRONMENT_KEYS = sorted(KEYS_BY_LEVEL["environment"])


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture
def tags(project: Any) -> dict[str, Tag]:
    return tags_a_b_restricted(project)


@pytest.fixture
def feature(project: Any, environment: Any) -> Any:
    return f.FeatureFactory(project=project, name="checkout")


@pytest.fixture
def viewer(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [VIEW_ENVIRONMENT])


@pytest.fixture
def updater(organisation: Any, environment: Any) -> Any:
    return user_with(organisation, environment, [UPDATE_FEATURE_STATE])


# --------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------


def test_list__no_credentials__401(environment: Any) -> None:
    assert APIClient().get(state_url(environment)).status_code == 401


def test_list__member_without_any_grant__404(organisation: Any, environment: Any) -> None:
    assert client_for(f.member(organisation)).get(state_url(environment)).status_code == 404


def test_list__non_member_with_stale_grant__404(environment: Any) -> None:
    outsider = f.UserFactory()
    f.grant(outsider, environment, [VIEW_ENVIRONMENT])
    assert client_for(outsider).get(state_url(environment)).status_code == 404


def test_list__unknown_environment__404(org_admin: Any) -> None:
    response = client_for(org_admin).get("/api/v1/environments/nope/featurestates/")
    assert response.status_code == 404


def test_list__grant_on_another_environment_only__404(
    organisation: Any, project: Any, environment: Any
) -> None:
    other = f.EnvironmentFactory(project=project)
    user = user_with(organisation, other, [VIEW_ENVIRONMENT])
    assert client_for(user).get(state_url(environment)).status_code == 404


def test_list__viewer__default_states_only_with_documented_fields(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    f.SegmentOverrideFactory(feature=feature, environment=environment)
    other_env = f.EnvironmentFactory(project=project)
    response = client_for(viewer).get(state_url(environment))
    assert response.status_code == 200
    assert response.data["count"] == 1
    item = response.data["results"][0]
    state = default_state(feature, environment)
    assert set(item) == {
        "id",
        "feature",
        "environment",
        "enabled",
        "value",
        "version",
        "updated_at",
        "my_permissions",
    }
    assert item["id"] == state.pk
    assert (item["feature"], item["environment"]) == (feature.pk, environment.pk)
    assert (item["enabled"], item["value"], item["version"]) == (False, None, 1)
    assert item["my_permissions"] == [VIEW_ENVIRONMENT]
    assert other_env.pk != item["environment"]


def test_list__my_permissions__role_tagged_a_holds_update_on_a_features_only(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    fa = f.FeatureFactory(project=project, name="fa", tags=[tags["a"]])
    fb = f.FeatureFactory(project=project, name="fb", tags=[tags["b"]])
    fu = f.FeatureFactory(project=project, name="fu")
    user = role_principal(organisation, environment, {UPDATE_FEATURE_STATE: [tags["a"]]})
    response = client_for(user).get(state_url(environment))
    perms = {i["feature"]: i["my_permissions"] for i in response.data["results"]}
    assert perms == {fa.pk: [UPDATE_FEATURE_STATE], fb.pk: [], fu.pk: []}


def test_list__my_permissions__untagged_key_does_not_reach_restricted_feature(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    fr = f.FeatureFactory(project=project, name="fr", tags=[tags["restricted"]])
    fu = f.FeatureFactory(project=project, name="fu")
    user = role_principal(organisation, environment, {UPDATE_FEATURE_STATE: []})
    perms = {
        i["feature"]: i["my_permissions"]
        for i in client_for(user).get(state_url(environment)).data["results"]
    }
    assert perms == {fr.pk: [], fu.pk: [UPDATE_FEATURE_STATE]}


def test_list__my_permissions__environment_admin_holds_every_key(
    organisation: Any, environment: Any, feature: Any
) -> None:
    admin = user_with(organisation, environment, [], admin=True)
    item = client_for(admin).get(state_url(environment)).data["results"][0]
    assert item["my_permissions"] == ENVIRONMENT_KEYS


def test_list__api_key_through_role__my_permissions_follow_tags(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    fa = f.FeatureFactory(project=project, name="fa", tags=[tags["a"]])
    fb = f.FeatureFactory(project=project, name="fb", tags=[tags["b"]])
    key = role_principal(
        organisation, environment, {MANAGE_SEGMENT_OVERRIDES: [tags["b"]]}, via="api_key"
    )
    response = client_for(key).get(state_url(environment))
    perms = {i["feature"]: i["my_permissions"] for i in response.data["results"]}
    assert perms == {fa.pk: [], fb.pk: [MANAGE_SEGMENT_OVERRIDES]}


def test_list__filter_feature_and_feature_name(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    other = f.FeatureFactory(project=project, name="other")
    client = client_for(viewer)
    by_id = client.get(state_url(environment), {"feature": other.pk}).data["results"]
    assert [i["feature"] for i in by_id] == [other.pk]
    by_name = client.get(state_url(environment), {"feature_name": "checkout"}).data["results"]
    assert [i["feature"] for i in by_name] == [feature.pk]


def test_list__filter_tags__any_of(
    viewer: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    fa = f.FeatureFactory(project=project, name="fa", tags=[tags["a"]])
    fb = f.FeatureFactory(project=project, name="fb", tags=[tags["b"]])
    f.FeatureFactory(project=project, name="fu")
    response = client_for(viewer).get(
        state_url(environment), {"tags": f"{tags['a'].pk},{tags['b'].pk}"}
    )
    assert sorted(i["feature"] for i in response.data["results"]) == sorted([fa.pk, fb.pk])


def test_list__filter_enabled(viewer: Any, project: Any, environment: Any) -> None:
    on = f.FeatureFactory(project=project, name="on")
    off = f.FeatureFactory(project=project, name="off")
    FeatureState.objects.filter(feature=on).update(enabled=True)
    client = client_for(viewer)
    enabled = client.get(state_url(environment), {"enabled": "true"}).data["results"]
    disabled = client.get(state_url(environment), {"enabled": "false"}).data["results"]
    assert [i["feature"] for i in enabled] == [on.pk]
    assert [i["feature"] for i in disabled] == [off.pk]


@pytest.mark.parametrize(
    "params", [{"enabled": "maybe"}, {"tags": "a"}, {"feature": "x"}, {"feature": "1.5"}]
)
def test_list__invalid_filter__400_naming_it(
    viewer: Any, environment: Any, params: dict[str, str]
) -> None:
    response = client_for(viewer).get(state_url(environment), params)
    assert response.status_code == 400
    assert set(response.data) == set(params)


def test_list__ordering(viewer: Any, project: Any, environment: Any) -> None:
    b = f.FeatureFactory(project=project, name="b")
    a = f.FeatureFactory(project=project, name="a")
    client = client_for(viewer)
    default = client.get(state_url(environment)).data["results"]
    assert [i["feature"] for i in default] == [a.pk, b.pk]
    reverse = client.get(state_url(environment), {"ordering": "-feature__name"}).data["results"]
    assert [i["feature"] for i in reverse] == [b.pk, a.pk]


@pytest.mark.parametrize(
    "params",
    [{}, {"ordering": "-feature__name"}, {"ordering": "id"}, {"tags": "a"}],
    ids=["default", "name-descending", "id", "tag-filter"],
)
def test_list__later_page__the_rows_of_that_page_with_their_own_keys(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag], params: dict[str, str]
) -> None:
    user = role_principal(
        organisation,
        environment,
        {VIEW_ENVIRONMENT: [], UPDATE_FEATURE_STATE: [tags["a"]], APPROVE_CHANGE_REQUEST: []},
    )
    cycle = [[tags["a"]], [tags["b"]], [], [tags["a"], tags["restricted"]], [tags["restricted"]]]
    for i in range(23):
        f.FeatureFactory(project=project, name=f"feature-{(i * 7) % 23:02d}", tags=cycle[i % 5])
    if "tags" in params:
        params = {"tags": str(tags["a"].pk)}
    states = FeatureState.objects.filter(environment=environment, segment_override__isnull=True)
    if "tags" in params:
        states = states.filter(feature__tags=tags["a"])
    ordering = params.get("ordering", "feature__name")
    expected = list(states.order_by(ordering, "id").select_related("feature")[5:10])
    response = client_for(user).get(state_url(environment), {**params, "page_size": 5, "page": 2})
    assert response.status_code == 200
    assert response.data["count"] == states.count()
    results = response.data["results"]
    assert [item["id"] for item in results] == [state.pk for state in expected]
    fresh_user = get_user_model().objects.get(pk=user.pk)
    assert [item["my_permissions"] for item in results] == [
        engine.keys_on_feature(fresh_user, environment, state.feature) for state in expected
    ]


def _count_list_queries(principal_id: int, environment: Any) -> tuple[int, int]:
    user = get_user_model().objects.get(pk=principal_id)  # a fresh instance: cold policy
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(state_url(environment), {"page_size": 1000})
    assert response.status_code == 200
    return len(ctx.captured_queries), response.data["count"]


def test_list__query_count__constant_for_5_and_200_states(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    user = role_principal(
        organisation,
        environment,
        {
            VIEW_ENVIRONMENT: [],
            UPDATE_FEATURE_STATE: [tags["a"], tags["restricted"]],
            APPROVE_CHANGE_REQUEST: [],
        },
    )
    cycle = [[tags["a"]], [tags["b"]], [], [tags["a"], tags["restricted"]], [tags["restricted"]]]

    def add(n: int) -> None:
        for _ in range(n):
            i = FeatureState.objects.count()
            f.FeatureFactory(project=project, tags=cycle[i % len(cycle)])

    add(5)
    few, count = _count_list_queries(user.pk, environment)
    assert count == 5
    add(195)
    many, count = _count_list_queries(user.pk, environment)
    assert count == 200
    assert few == many


# --------------------------------------------------------------------------------------
# Retrieve
# --------------------------------------------------------------------------------------


def test_retrieve__viewer__200(viewer: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = client_for(viewer).get(state_url(environment, state))
    assert response.status_code == 200
    assert response.data["id"] == state.pk
    assert response.data["my_permissions"] == [VIEW_ENVIRONMENT]


def test_retrieve__cannot_view__404(organisation: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = client_for(f.member(organisation)).get(state_url(environment, state))
    assert response.status_code == 404


def test_retrieve__state_of_another_environment__404(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    other = f.EnvironmentFactory(project=project)
    response = client_for(viewer).get(state_url(environment, default_state(feature, other)))
    assert response.status_code == 404


def test_retrieve__state_of_an_override__404(viewer: Any, environment: Any, feature: Any) -> None:
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    response = client_for(viewer).get(state_url(environment, override.feature_state))
    assert response.status_code == 404


def test_retrieve__no_credentials__401(environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    assert APIClient().get(state_url(environment, state)).status_code == 401


# --------------------------------------------------------------------------------------
# Patch
# --------------------------------------------------------------------------------------


def test_patch__update_feature_state__200_bumps_version_and_audits(
    updater: Any, organisation: Any, project: Any, environment: Any, feature: Any
) -> None:
    state = default_state(feature, environment)
    response = client_for(updater).patch(
        state_url(environment, state), {"enabled": True, "value": {"colour": "red"}}
    )
    assert response.status_code == 200
    assert (response.data["enabled"], response.data["value"]) == (True, {"colour": "red"})
    assert response.data["version"] == 2
    assert response.data["my_permissions"] == [UPDATE_FEATURE_STATE]
    state.refresh_from_db()
    assert (state.enabled, state.value, state.version) == (True, {"colour": "red"}, 2)
    [entry] = audit_entries("feature_state")
    assert (entry.action, entry.object_id) == ("updated", str(state.pk))
    assert (entry.organisation_id, entry.project_id, entry.environment_id) == (
        organisation.pk,
        project.pk,
        environment.pk,
    )
    assert entry.actor_user_id == updater.pk
    assert entry.before["enabled"] is False and entry.before["version"] == 1
    assert entry.after["enabled"] is True and entry.after["version"] == 2


def test_patch__written_under_lock_then_written_again__answers_the_version_it_wrote(
    updater: Any, environment: Any, feature: Any, monkeypatch: Any
) -> None:
    # Another writer commits between the view's read and its UPDATE (the service then writes
    # under a lock), and another after its commit: the answer is this request's write.
    state = default_state(feature, environment)
    write = workflow_services.feature_state_update

    def racing(*, state: FeatureState, **kwargs: Any) -> FeatureState:
        FeatureState.objects.filter(pk=state.pk).update(version=F("version") + 1)
        written = write(state=state, **kwargs)
        FeatureState.objects.filter(pk=state.pk).update(version=F("version") + 1, value="later")
        return written

    monkeypatch.setattr(workflow_services, "feature_state_update", racing)
    response = client_for(updater).patch(state_url(environment, state), {"value": "mine"})
    assert response.status_code == 200
    assert (response.data["value"], response.data["version"]) == ("mine", 3)
    assert response.data["my_permissions"] == [UPDATE_FEATURE_STATE]
    state.refresh_from_db()
    assert (state.value, state.version) == ("later", 4)


def test_patch__with_current_version__200(updater: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = client_for(updater).patch(
        state_url(environment, state), {"enabled": True, "version": 1}
    )
    assert response.status_code == 200
    assert response.data["version"] == 2


def test_patch__stale_version__409_and_nothing_changes(
    updater: Any, environment: Any, feature: Any
) -> None:
    state = default_state(feature, environment)
    FeatureState.objects.filter(pk=state.pk).update(version=3)
    response = client_for(updater).patch(
        state_url(environment, state), {"enabled": True, "version": 2}
    )
    assert response.status_code == 409
    assert response.data["code"] == "stale"
    state.refresh_from_db()
    assert (state.enabled, state.version) == (False, 3)
    assert audit_entries("feature_state") == []


def test_patch__no_op__200_without_version_bump_or_audit(
    updater: Any, environment: Any, feature: Any
) -> None:
    state = default_state(feature, environment)
    response = client_for(updater).patch(
        state_url(environment, state), {"enabled": False, "value": None}
    )
    assert response.status_code == 200
    assert response.data["version"] == 1
    assert audit_entries("feature_state") == []


def test_patch__value_1_then_true__two_distinct_writes(
    updater: Any, environment: Any, feature: Any
) -> None:
    state = default_state(feature, environment)
    client = client_for(updater)
    assert client.patch(state_url(environment, state), {"value": 1}).data["version"] == 2
    response = client.patch(state_url(environment, state), {"value": True})
    assert (response.data["value"], response.data["version"]) == (True, 3)


def test_patch__value_null__accepted(updater: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    FeatureState.objects.filter(pk=state.pk).update(value="x")
    response = client_for(updater).patch(state_url(environment, state), {"value": None})
    assert response.status_code == 200
    assert response.data["value"] is None


def test_patch__without_update_feature_state__403_and_nothing_changes(
    viewer: Any, environment: Any, feature: Any
) -> None:
    state = default_state(feature, environment)
    response = client_for(viewer).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 403
    state.refresh_from_db()
    assert (state.enabled, state.version) == (False, 1)
    assert audit_entries("feature_state") == []


def test_patch__cannot_view__404(organisation: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = client_for(f.member(organisation)).patch(
        state_url(environment, state), {"enabled": True}
    )
    assert response.status_code == 404


def test_patch__no_credentials__401(environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = APIClient().patch(state_url(environment, state), {"enabled": True}, format="json")
    assert response.status_code == 401


def test_patch__state_of_another_environment_in_url__404(
    organisation: Any, project: Any, environment: Any, feature: Any
) -> None:
    """Unleash #5982: the check is on the state's own environment, not the URL's."""
    other = f.EnvironmentFactory(project=project)
    user = user_with(organisation, environment, [UPDATE_FEATURE_STATE])
    other_state = default_state(feature, other)
    response = client_for(user).patch(state_url(environment, other_state), {"enabled": True})
    assert response.status_code == 404
    other_state.refresh_from_db()
    assert other_state.enabled is False


def test_patch__state_of_another_project_in_url__404(organisation: Any, environment: Any) -> None:
    other_project = f.ProjectFactory(organisation=organisation)
    other_env = f.EnvironmentFactory(project=other_project)
    other_feature = f.FeatureFactory(project=other_project)
    admin = f.member(organisation, admin=True)
    response = client_for(admin).patch(
        state_url(environment, default_state(other_feature, other_env)), {"enabled": True}
    )
    assert response.status_code == 404


def test_patch__override_state_through_this_endpoint__404(
    organisation: Any, environment: Any, feature: Any
) -> None:
    override = f.SegmentOverrideFactory(feature=feature, environment=environment)
    admin = f.member(organisation, admin=True)
    response = client_for(admin).patch(
        state_url(environment, override.feature_state), {"enabled": True}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"version": "1"}, "version"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"feature": 999999}, "feature"),
        ({"environment": 999999}, "environment"),
    ],
)
def test_patch__invalid_payload__400_on_field(
    updater: Any, environment: Any, feature: Any, payload: dict[str, Any], field: str
) -> None:
    state = default_state(feature, environment)
    response = client_for(updater).patch(state_url(environment, state), payload)
    assert response.status_code == 400
    assert field in response.data
    state.refresh_from_db()
    assert state.version == 1


def test_patch__put_is_not_allowed__405(updater: Any, environment: Any, feature: Any) -> None:
    state = default_state(feature, environment)
    response = client_for(updater).put(state_url(environment, state), {"enabled": True})
    assert response.status_code == 405


@pytest.mark.parametrize("threshold", [0, 2])
@pytest.mark.parametrize("who", ["organisation_admin", "environment_admin", "holder"])
def test_patch__change_requests_on__403_change_request_required_for_everyone(
    organisation: Any, project: Any, feature: Any, threshold: int, who: str
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=threshold)
    if who == "organisation_admin":
        principal = f.member(organisation, admin=True)
    elif who == "environment_admin":
        principal = user_with(organisation, environment, [], admin=True)
    else:
        principal = user_with(organisation, environment, [UPDATE_FEATURE_STATE])
    state = default_state(feature, environment)
    response = client_for(principal).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 403
    assert response.data["code"] == "change_request_required"
    state.refresh_from_db()
    assert (state.enabled, state.version) == (False, 1)
    assert audit_entries("feature_state") == []


def test_patch__change_requests_on_and_stale_version__403_before_409(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    admin = f.member(organisation, admin=True)
    state = default_state(feature, environment)
    response = client_for(admin).patch(
        state_url(environment, state), {"enabled": True, "version": 7}
    )
    assert response.status_code == 403
    assert response.data["code"] == "change_request_required"


def test_patch__change_requests_on_without_key__403_permission_first(
    viewer: Any, organisation: Any, project: Any, feature: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    user = user_with(organisation, environment, [VIEW_ENVIRONMENT])
    state = default_state(feature, environment)
    response = client_for(user).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 403
    assert response.data["code"] != "change_request_required"


def test_patch__change_requests_switched_off__direct_write_allowed_again(
    organisation: Any, project: Any, feature: Any
) -> None:
    environment = f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)
    admin = f.member(organisation, admin=True)
    state = default_state(feature, environment)
    environment.minimum_change_request_approvals = None
    environment.save()
    response = client_for(admin).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 200


def test_patch__role_through_api_key__200(
    organisation: Any, project: Any, environment: Any, tags: dict[str, Tag]
) -> None:
    fa = f.FeatureFactory(project=project, tags=[tags["a"]])
    key = role_principal(
        organisation, environment, {UPDATE_FEATURE_STATE: [tags["a"]]}, via="api_key"
    )
    state = default_state(fa, environment)
    response = client_for(key).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 200
    [entry] = audit_entries("feature_state")
    assert entry.actor_api_key_id == key.pk


def test_patch__member_removed__404(organisation: Any, environment: Any, feature: Any) -> None:
    """Membership gates every decision (docs/PERMISSIONS.md, "How one decision is made";
    Flagsmith #5893)."""
    user = user_with(organisation, environment, [UPDATE_FEATURE_STATE])
    user.organisation_memberships.all().delete()
    state = default_state(feature, environment)
    response = client_for(user).patch(state_url(environment, state), {"enabled": True})
    assert response.status_code == 404


def test_list__pages_in_name_order__every_default_state_of_this_environment_once(
    viewer: Any, organisation: Any, project: Any, environment: Any
) -> None:
    # The unfiltered list pages the project's features by name (StatesPage): a state of
    # another environment, of another project's feature, or of an override never shows.
    f.EnvironmentFactory(project=project)
    other_project = f.ProjectFactory(organisation=organisation)
    f.FeatureFactory(project=other_project, name="feature-00")
    features = [f.FeatureFactory(project=project, name=f"feature-{i:02d}") for i in (3, 1, 2, 0)]
    f.SegmentOverrideFactory(feature=features[0], environment=environment)
    client = client_for(viewer)
    pages = [
        client.get(state_url(environment), {"page_size": 3, "page": page}).data for page in (1, 2)
    ]
    assert [page["count"] for page in pages] == [4, 4]
    ids = [item["id"] for page in pages for item in page["results"]]
    expected = FeatureState.objects.filter(
        environment=environment, segment_override__isnull=True
    ).order_by("feature__name")
    assert ids == [state.pk for state in expected]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner")
def test_list__sqlite_plan__count_and_page_by_the_default_states_index(
    viewer: Any, project: Any, environment: Any
) -> None:
    # Without statistics SQLite took `segment_override_id IS NULL` on the override column's
    # unique index: every default state of every environment (docs/PERFORMANCE.md).
    f.FeatureFactory(project=project)
    with CaptureQueriesContext(connection) as ctx:
        assert client_for(viewer).get(state_url(environment)).status_code == 200
    state_queries = [q["sql"] for q in ctx.captured_queries if "features_featurestate" in q["sql"]]
    assert len(state_queries) == 2  # the count, the page
    for sql in state_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            plan = " | ".join(row[-1] for row in cursor.fetchall())
        assert "featurestate_one_default_per_environment" in plan, plan
        assert "segment_override_id=?" not in plan, plan


def test_list__count__follows_features_created_and_deleted(
    viewer: Any, project: Any, environment: Any, feature: Any
) -> None:
    client = client_for(viewer)
    assert client.get(state_url(environment)).data["count"] == 1
    added = f.FeatureFactory(project=project)
    assert client.get(state_url(environment)).data["count"] == 2
    assert client.get(state_url(environment), {"enabled": "false"}).data["count"] == 2
    feature.delete()
    added.delete()
    assert client.get(state_url(environment)).data["count"] == 0
    f.FeatureFactory(project=project)
    assert client.get(state_url(environment)).data["count"] == 1
