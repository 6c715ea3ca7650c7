"""No input gives a 500, and a rejected value is never stored (docs/API.md, Conventions).

Bodies: integers outside the 64-bit signed range, `\\u0000` and lone surrogates anywhere in
a value (keys included) are a 400 naming the field; a JSON `value` or `rules` over 64 KiB is
a 400. Query strings: a 400 naming the parameter. Paths: a 404. Whatever still escapes is
a JSON 500 under /api/. Run on PostgreSQL too (`scripts/with-postgres.sh`): there `\\u0000`
and lone surrogates reach text and jsonb columns, which refuse them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import path

import tagwarden.urls
from audit.models import AuditLogEntry
from features.models import ChangeRequest, FeatureState, Segment, SegmentOverride
from permissions.catalogue import CREATE_CHANGE_REQUEST, VIEW_ENVIRONMENT
from projects.models import Tag
from tests import factories as f
from tests.support.clients import client_for
from tests.support.input import (
    AT_64_KIB,
    HUGE,
    NUL,
    OVER_64_KIB,
    SURROGATE,
    UNSTORABLE_VALUES,
    send_json,
)

pytestmark = pytest.mark.django_db


class World:
    def __init__(self) -> None:
        self.organisation = f.OrganisationFactory()
        self.admin = f.member(self.organisation, admin=True)
        self.project = f.ProjectFactory(organisation=self.organisation)
        self.environment = f.EnvironmentFactory(project=self.project)
        self.cr_environment = f.EnvironmentFactory(
            project=self.project, minimum_change_request_approvals=0
        )
        self.tag = f.TagFactory(project=self.project, label="plain")
        self.feature = f.FeatureFactory(project=self.project, tags=[self.tag])
        self.segment = f.SegmentFactory(project=self.project)
        self.override = f.SegmentOverrideFactory(
            feature=self.feature, environment=self.environment, segment=self.segment
        )
        self.role = f.RoleFactory(organisation=self.organisation)
        self.client = client_for(self.admin)

    @property
    def state(self) -> FeatureState:
        return FeatureState.objects.get(
            feature=self.feature, environment=self.environment, segment_override__isnull=True
        )

    def env_url(self, rest: str, environment: Any = None) -> str:
        return f"/api/v1/environments/{(environment or self.environment).api_key}/{rest}"

    def state_url(self) -> str:
        return self.env_url(f"featurestates/{self.state.pk}/")

    def override_url(self) -> str:
        return self.env_url(f"features/{self.feature.pk}/segment-overrides/{self.override.pk}/")


@pytest.fixture
def world() -> World:
    return World()


def audit_count() -> int:
    return AuditLogEntry.objects.count()


def assert_field_400(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


# --------------------------------------------------------------------------------------
# JSON values: feature states, overrides, change requests, segment rules
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", UNSTORABLE_VALUES.values(), ids=UNSTORABLE_VALUES.keys())
def test_patch_state__unstorable_value__400_nothing_stored_and_reads_still_work(
    world: World, value: Any
) -> None:
    before, entries = world.state, audit_count()
    response = send_json(world.client, "patch", world.state_url(), {"value": value})
    assert_field_400(response, "value")
    after = world.state
    assert (after.value, after.version) == (before.value, before.version)
    assert audit_count() == entries
    assert world.client.get(world.env_url("featurestates/")).status_code == 200
    organisation_log = f"/api/v1/organisations/{world.organisation.pk}/audit-log/"
    assert world.client.get(organisation_log).status_code == 200


def test_patch_state__storable_value__200_stored(world: World) -> None:
    value = {"ä": ["ok", 2**63 - 1, -(2**63), 1.5, None]}
    response = send_json(world.client, "patch", world.state_url(), {"value": value})
    assert response.status_code == 200, response.content
    assert world.state.value == value


def test_patch_state__value_over_64_kib__400(world: World) -> None:
    response = send_json(world.client, "patch", world.state_url(), {"value": OVER_64_KIB})
    assert_field_400(response, "value")
    assert world.state.value is None


def test_patch_state__value_of_64_kib__200(world: World) -> None:
    response = send_json(world.client, "patch", world.state_url(), {"value": AT_64_KIB})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("value", [SURROGATE, {"a": NUL}, OVER_64_KIB])
def test_patch_override__unstorable_value__400_nothing_stored(world: World, value: Any) -> None:
    entries = audit_count()
    response = send_json(world.client, "patch", world.override_url(), {"value": value})
    assert_field_400(response, "value")
    assert SegmentOverride.objects.get(pk=world.override.pk).feature_state.value is None
    assert audit_count() == entries


@pytest.mark.parametrize("value", [SURROGATE, {NUL: 1}, OVER_64_KIB])
def test_create_override__unstorable_value__400_nothing_stored(world: World, value: Any) -> None:
    segment = f.SegmentFactory(project=world.project)
    response = send_json(
        world.client,
        "post",
        world.env_url(f"features/{world.feature.pk}/segment-overrides/"),
        {"segment": segment.pk, "value": value},
    )
    assert_field_400(response, "value")
    assert not SegmentOverride.objects.filter(segment=segment).exists()


@pytest.mark.parametrize("value", [SURROGATE, [NUL], OVER_64_KIB])
def test_create_change_request__unstorable_value__400_nothing_stored(
    world: World, value: Any
) -> None:
    body = {
        "title": "t",
        "changes": [{"feature": world.feature.pk, "enabled": True, "value": value}],
    }
    response = send_json(
        world.client, "post", world.env_url("change-requests/", world.cr_environment), body
    )
    assert_field_400(response, "changes")
    assert not ChangeRequest.objects.exists()


@pytest.mark.parametrize("rules", [[SURROGATE], [{"attribute": NUL}], [{SURROGATE: 1}]])
def test_create_segment__unstorable_rules__400_nothing_stored(world: World, rules: Any) -> None:
    response = send_json(
        world.client,
        "post",
        f"/api/v1/projects/{world.project.pk}/segments/",
        {"name": "new", "rules": rules},
    )
    assert_field_400(response, "rules")
    assert not Segment.objects.filter(name="new").exists()


def test_create_segment__rules_over_64_kib__400(world: World) -> None:
    response = send_json(
        world.client,
        "post",
        f"/api/v1/projects/{world.project.pk}/segments/",
        {"name": "new", "rules": [OVER_64_KIB]},
    )
    assert_field_400(response, "rules")
    assert not Segment.objects.filter(name="new").exists()


@pytest.mark.parametrize("name", [NUL, "x" + SURROGATE])
def test_create_feature__unstorable_name__400(world: World, name: str) -> None:
    response = send_json(
        world.client, "post", f"/api/v1/projects/{world.project.pk}/features/", {"name": name}
    )
    assert_field_400(response, "name")


def test_body__unstorable_key_outside_any_field__400_non_field_errors(world: World) -> None:
    response = send_json(world.client, "patch", world.state_url(), {SURROGATE: 1})
    assert_field_400(response, "non_field_errors")


# --------------------------------------------------------------------------------------
# Integers outside the 64-bit range: bodies 400, query strings 400, paths 404
# --------------------------------------------------------------------------------------


def _huge_bodies(w: World) -> list[tuple[str, str, str, dict[str, Any]]]:
    org = f"/api/v1/organisations/{w.organisation.pk}"
    role = f"{org}/roles/{w.role.pk}"
    return [
        (
            "post",
            f"/api/v1/projects/{w.project.pk}/features/",
            "tags",
            {"name": "n", "tags": [HUGE]},
        ),
        (
            "post",
            w.env_url("change-requests/", w.cr_environment),
            "changes",
            {"title": "t", "changes": [{"feature": HUGE, "enabled": True}]},
        ),
        (
            "post",
            w.env_url("change-requests/", w.cr_environment),
            "changes",
            {
                "title": "t",
                "changes": [{"feature": w.feature.pk, "segment_override": HUGE, "enabled": True}],
            },
        ),
        ("post", f"{org}/groups/", "users", {"name": "g", "users": [HUGE]}),
        (
            "post",
            f"{role}/projects-permissions/",
            "permissions",
            {
                "project": w.project.pk,
                "permissions": [{"permission_key": "VIEW_PROJECT", "tags": [HUGE]}],
            },
        ),
        ("post", f"{org}/user-permissions/", "user", {"user": HUGE, "permissions": []}),
        (
            "post",
            "/api/v1/environments/",
            "minimum_change_request_approvals",
            {"name": "e", "project": w.project.pk, "minimum_change_request_approvals": HUGE},
        ),
        # Within 64 bits but beyond the column (an `integer` on PostgreSQL).
        (
            "post",
            "/api/v1/environments/",
            "minimum_change_request_approvals",
            {"name": "e", "project": w.project.pk, "minimum_change_request_approvals": 2**31},
        ),
        ("patch", w.state_url(), "version", {"version": HUGE}),
        ("patch", w.override_url(), "priority", {"priority": -HUGE}),
    ]


@pytest.mark.parametrize("case", range(10))
def test_body__integer_outside_range__400_naming_the_field_nothing_stored(
    world: World, case: int
) -> None:
    method, url, field, body = _huge_bodies(world)[case]
    entries = audit_count()
    response = send_json(world.client, method, url, body)
    assert_field_400(response, field)
    assert audit_count() == entries


@pytest.mark.parametrize(
    ("rest", "parameter"),
    [
        ("featurestates/?feature={huge}", "feature"),
        ("featurestates/?tags=1,{huge}", "tags"),
        ("features/{feature}/segment-overrides/?segment={huge}", "segment"),
    ],
)
def test_environment_query__integer_outside_range__400(
    world: World, rest: str, parameter: str
) -> None:
    url = world.env_url(rest.format(huge=HUGE, feature=world.feature.pk))
    assert_field_400(world.client.get(url), parameter)


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/organisations/{org}/audit-log/?actor={huge}", "actor"),
        ("/api/v1/organisations/{org}/audit-log/?project={huge}", "project"),
        ("/api/v1/projects/{project}/features/?tags={huge}", "tags"),
        ("/api/v1/environments/?project={huge}", "project"),
        (
            "/api/v1/organisations/{org}/roles/{role}/projects-permissions/?project={huge}",
            "project",
        ),
        ("/api/v1/organisations/{org}/audit-log/?object_type=%00", "object_type"),
    ],
)
def test_query__unstorable_parameter__400(world: World, url: str, parameter: str) -> None:
    url = url.format(
        huge=HUGE, org=world.organisation.pk, project=world.project.pk, role=world.role.pk
    )
    assert_field_400(world.client.get(url), parameter)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/organisations/{org}/users/{huge}/",
        "/api/v1/organisations/{huge}/",
        "/api/v1/projects/{project}/features/{huge}/",
        "/api/v1/organisations/{org}/roles/{huge}/users/",
        "/api/v1/environments/a%00b/",
        "/api/v1/environments/a%00b/featurestates/1/",
        "/api/v1/environments/a%00b/user-permissions/",
    ],
)
def test_path__integer_outside_range_or_nul__json_404(world: World, url: str) -> None:
    url = url.format(huge=HUGE, org=world.organisation.pk, project=world.project.pk)
    response = send_json(world.client, "patch", url, {})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --------------------------------------------------------------------------------------
# Whatever escapes: JSON under /api/, Django's page elsewhere
# --------------------------------------------------------------------------------------


def _boom(request: Any) -> Any:
    raise RuntimeError("boom")


# The project's own error handlers, with two routes that fail.
urlpatterns = [path("api/v1/boom/", _boom), path("boom/", _boom)]
handler500 = tagwarden.urls.handler500


@pytest.mark.urls("tests.security.test_input_policy")
def test_uncaught_exception_under_api__json_500(client: Any) -> None:
    client.raise_request_exception = False
    response = client.get("/api/v1/boom/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["request_id"] == response["X-Request-ID"]
    assert body == {
        "detail": "A server error occurred.",
        "code": "server_error",
        "request_id": body["request_id"],
    }


@pytest.mark.urls("tests.security.test_input_policy")
def test_uncaught_exception_outside_api__html_500(client: Any) -> None:
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_uncaught_exception_in_an_api_view__json_500(world: World, monkeypatch: Any) -> None:
    from features.workflow import selectors as workflow_selectors

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(workflow_selectors, "default_states_for_list", broken)
    world.client.raise_request_exception = False
    response = world.client.get(world.env_url("featurestates/"))
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"


# --------------------------------------------------------------------------------------
# Change-request PATCH: who may edit comes before the body
# --------------------------------------------------------------------------------------


def _cr_world(world: World) -> tuple[Any, Any, ChangeRequest]:
    author = f.member(world.organisation)
    other = f.member(world.organisation)
    for user in (author, other):
        f.grant(user, world.cr_environment, [VIEW_ENVIRONMENT, CREATE_CHANGE_REQUEST])
    change_request = f.ChangeRequestFactory(environment=world.cr_environment, author_user=author)
    f.ChangeRequestChangeFactory(
        change_request=change_request,
        feature=world.feature,
        feature_state=FeatureState.objects.get(
            feature=world.feature, environment=world.cr_environment, segment_override__isnull=True
        ),
    )
    return author, other, change_request


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"changes": "x"}, {"title": SURROGATE}, {"changes": [{"feature": HUGE}]}],
)
def test_patch_change_request__not_author_invalid_body__403(world: World, body: Any) -> None:
    _, other, change_request = _cr_world(world)
    url = world.env_url(f"change-requests/{change_request.pk}/", world.cr_environment)
    response = send_json(client_for(other), "patch", url, body)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"changes": "x"}, {"title": SURROGATE}, {"changes": [{"feature": HUGE}]}],
)
def test_patch_change_request__author_invalid_body__400(world: World, body: Any) -> None:
    author, _, change_request = _cr_world(world)
    url = world.env_url(f"change-requests/{change_request.pk}/", world.cr_environment)
    response = send_json(client_for(author), "patch", url, body)
    assert response.status_code == 400, response.content


def test_patch_change_request__not_author_valid_body__403(world: World) -> None:
    _, other, change_request = _cr_world(world)
    url = world.env_url(f"change-requests/{change_request.pk}/", world.cr_environment)
    response = send_json(client_for(other), "patch", url, {"title": "mine now"})
    assert response.status_code == 403
    change_request.refresh_from_db()
    assert change_request.title != "mine now"


def test_patch_change_request__author_valid_body__200(world: World) -> None:
    author, _, change_request = _cr_world(world)
    url = world.env_url(f"change-requests/{change_request.pk}/", world.cr_environment)
    response = send_json(client_for(author), "patch", url, {"title": "renamed"})
    assert response.status_code == 200, response.content


# --------------------------------------------------------------------------------------
# Tag labels: unique per project under Unicode case folding
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "label"),
    [("Ärger", "ärger"), ("ärger", "ÄRGER"), ("Ärger", "A\u0308rger"), ("Straße", "STRASSE")],
)
def test_create_tag__label_equal_ignoring_unicode_case__400(
    world: World, existing: str, label: str
) -> None:
    f.TagFactory(project=world.project, label=existing)
    response = send_json(
        world.client, "post", f"/api/v1/projects/{world.project.pk}/tags/", {"label": label}
    )
    assert_field_400(response, "label")
    assert Tag.objects.filter(project=world.project).count() == 2  # `plain` and `existing`


@pytest.mark.parametrize(("existing", "label"), [("Ärger", "Arger"), ("Ärger", "Ärgernis")])
def test_create_tag__different_label__201(world: World, existing: str, label: str) -> None:
    f.TagFactory(project=world.project, label=existing)
    response = send_json(
        world.client, "post", f"/api/v1/projects/{world.project.pk}/tags/", {"label": label}
    )
    assert response.status_code == 201, response.content


def test_create_tag__same_label_in_another_project__201(world: World) -> None:
    f.TagFactory(project=f.ProjectFactory(organisation=world.organisation), label="Ärger")
    response = send_json(
        world.client, "post", f"/api/v1/projects/{world.project.pk}/tags/", {"label": "ärger"}
    )
    assert response.status_code == 201, response.content


def test_rename_tag__label_equal_ignoring_unicode_case__400(world: World) -> None:
    f.TagFactory(project=world.project, label="Ärger")
    tag = f.TagFactory(project=world.project, label="other")
    url = f"/api/v1/projects/{world.project.pk}/tags/{tag.pk}/"
    assert_field_400(send_json(world.client, "patch", url, {"label": "ÄRGER"}), "label")
    tag.refresh_from_db()
    assert tag.label == "other"


def test_tag_label_key__database_refuses_a_duplicate_written_around_the_service(
    world: World,
) -> None:
    from django.db import IntegrityError, transaction

    f.TagFactory(project=world.project, label="Ärger")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.bulk_create([Tag(project=world.project, label="ärger")])


def test_tag_label_key__follows_a_rename(world: World) -> None:
    tag = f.TagFactory(project=world.project, label="Ärger")
    tag.label = "Öl"
    tag.save(update_fields=["label"])
    assert Tag.objects.get(pk=tag.pk).label_key == "öl"


# --------------------------------------------------------------------------------------
# Audit naming
# --------------------------------------------------------------------------------------


def test_api_key_audit_entries__object_type_is_the_model_name(world: World) -> None:
    url = f"/api/v1/organisations/{world.organisation.pk}/api-keys/"
    response = send_json(world.client, "post", url, {"name": "CI"})
    assert response.status_code == 201, response.content
    key_id = response.json()["id"]
    send_json(world.client, "patch", f"{url}{key_id}/", {"name": "CI 2"})
    world.client.delete(f"{url}{key_id}/")
    entries = AuditLogEntry.objects.filter(object_id=str(key_id)).exclude(
        object_type="role_assignment"
    )
    assert sorted(entries.values_list("action", flat=True)) == ["created", "deleted", "updated"]
    assert set(entries.values_list("object_type", flat=True)) == {"organisation_api_key"}
    log = world.client.get(
        f"/api/v1/organisations/{world.organisation.pk}/audit-log/?object_type=organisation_api_key"
    )
    assert log.json()["count"] == 3


# --------------------------------------------------------------------------------------
# The admin writes the same fields: it refuses the same values
# --------------------------------------------------------------------------------------


def _admin_client(world: World, client: Any) -> Any:
    staff = f.member(world.organisation, admin=True, is_staff=True)
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    "rules", ['["\\ud800"]', '[{"a": "x\\u0000"}]', '{"\\udfff": 1}', f'["{OVER_64_KIB}"]']
)
def test_admin_segment__unstorable_rules__form_error_nothing_stored(
    world: World, client: Any, rules: str
) -> None:
    response = _admin_client(world, client).post(
        "/admin/features/segment/add/",
        {"project": world.project.pk, "name": "from-admin", "rules": rules},
    )
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["rules"]
    assert not Segment.objects.filter(name="from-admin").exists()


RULES_ÄRGER = [
    {
        "type": "ALL",
        "rules": [],
        "conditions": [{"property": "ä", "operator": "EQUAL", "value": "Ärger"}],
    }
]


def test_admin_segment__storable_rules__saved(world: World, client: Any) -> None:
    response = _admin_client(world, client).post(
        "/admin/features/segment/add/",
        {"project": world.project.pk, "name": "from-admin", "rules": json.dumps(RULES_ÄRGER)},
    )
    assert response.status_code == 302
    assert Segment.objects.get(name="from-admin").rules == RULES_ÄRGER


@pytest.mark.parametrize("content_type", ["", "text/csv"])
def test_patch_project__body_of_no_readable_content_type__415_documented_nothing_changed(
    world: World, content_type: str
) -> None:
    url = f"/api/v1/projects/{world.project.pk}/"
    before = world.project.name

    response = world.client.generic("PATCH", url, b'{"name": "renamed"}', content_type=content_type)

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    world.project.refresh_from_db()
    assert world.project.name == before
    schema = world.client.get("/api/v1/schema/", {"format": "json"}).json()
    assert "415" in schema["paths"]["/api/v1/projects/{id}/"]["patch"]["responses"]
