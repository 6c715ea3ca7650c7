"""The admin for every member (docs/ADMIN.md): sign-in, what each person sees, and every
write and refusal, as an organisation admin, a project admin, a tag-scoped member (bob), an
approver (carol), a viewer and a non-member."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from audit.models import AuditLogEntry
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestStatus,
    Feature,
    SegmentOverride,
)
from features.workflow.services import ChangeInput, change_request_create, feature_state_update
from tests import factories as f
from tests.support.admin_members import Checkout, build_checkout

pytestmark = pytest.mark.django_db


@pytest.fixture
def co(db: Any) -> Checkout:
    return build_checkout("Acme")


@pytest.fixture
def other(db: Any) -> Checkout:
    return build_checkout("Other")


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def msgs(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def state_url(state: Any, action: str = "change") -> str:
    return reverse(f"admin:features_featurestate_{action}", args=[state.pk])


CHANGELIST = reverse("admin:features_featurestate_changelist")


def post_state(client: Client, state: Any, **data: Any) -> Any:
    payload = {"enabled": "on", "value": "null", "version": str(state.version)}
    payload.update({k: v for k, v in data.items() if v is not None})
    if data.get("enabled") is False:
        payload.pop("enabled")
    return client.post(state_url(state), payload)


# --------------------------------------------------------------------------------------
# Signing in
# --------------------------------------------------------------------------------------


def test_login__member_not_staff__signed_in(client, co):
    response = client.post(
        reverse("admin:login"), {"username": co.bob.username, "password": f.PASSWORD}
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_login__non_member__refused(client, co):
    response = client.post(
        reverse("admin:login"), {"username": co.outsider.username, "password": f.PASSWORD}
    )
    assert response.status_code == 200
    assert "member of an organisation" in response.content.decode()


def test_login__inactive_member__refused(client, co):
    co.bob.is_active = False
    co.bob.save()
    response = client.post(
        reverse("admin:login"), {"username": co.bob.username, "password": f.PASSWORD}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "url",
    [
        reverse("admin:index"),
        CHANGELIST,
        reverse("admin:features_changerequest_changelist"),
        reverse("admin:my_permissions"),
    ],
)
def test_pages__non_member__redirected_to_login(co, url):
    response = signed_in(co.outsider).get(url)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_index__tag_scoped_member__sidebar_shows_what_they_reach(co):
    response = signed_in(co.bob).get(reverse("admin:index"))
    assert response.status_code == 200
    models = {
        (app["app_label"], m["object_name"])
        for app in response.context["app_list"]
        for m in app["models"]
    }
    assert ("you", "MyPermissions") in models
    assert ("features", "FeatureState") in models
    assert ("features", "ChangeRequest") in models
    # configuration stays with the organisation's admins
    assert not {m for m in models if m[0] in ("organisations", "permissions", "audit")}


def test_index__org_admin__sees_configuration(co):
    response = signed_in(co.org_admin).get(reverse("admin:index"))
    apps = {app["app_label"] for app in response.context["app_list"]}
    assert {"organisations", "permissions", "features", "you"} <= apps


# --------------------------------------------------------------------------------------
# The feature-state changelist
# --------------------------------------------------------------------------------------


def rows(response: Any) -> set[tuple[str, str]]:
    return {(s.feature.name, s.environment.name) for s in response.context["cl"].result_list}


def test_states_changelist__tag_scoped_member__every_state_of_viewable_environments(co, other):
    response = signed_in(co.bob).get(CHANGELIST)
    assert response.status_code == 200
    assert rows(response) == {
        (feature, env)
        for feature in ("apple_pay", "promo_code_field")
        for env in ("Staging", "Production")
    }
    assert all(
        s.environment.project.organisation_id == co.organisation.pk
        for s in response.context["cl"].result_list
    )


def test_states_changelist__viewer__only_staging(co):
    response = signed_in(co.viewer).get(CHANGELIST)
    assert {env for _, env in rows(response)} == {"Staging"}


def test_states_changelist__keys_column__the_members_keys_per_row(co):
    response = signed_in(co.bob).get(CHANGELIST + f"?environment__id__exact={co.staging.pk}")
    html = response.content.decode()
    # apple_pay (payments): U, C and M held; promo (growth): nothing
    assert 'title="UPDATE_FEATURE_STATE, CREATE_CHANGE_REQUEST, MANAGE_SEGMENT_OVERRIDES"' in html
    assert 'title="no key on this feature"' in html


def test_states_changelist__filters_by_environment_tag_enabled_and_search(co):
    client = signed_in(co.bob)
    by_env = client.get(CHANGELIST + f"?environment__id__exact={co.production.pk}")
    assert {env for _, env in rows(by_env)} == {"Production"}
    by_tag = client.get(CHANGELIST + f"?tag={co.growth.pk}")
    assert {name for name, _ in rows(by_tag)} == {"promo_code_field"}
    by_search = client.get(CHANGELIST + "?q=apple")
    assert {name for name, _ in rows(by_search)} == {"apple_pay"}
    by_enabled = client.get(CHANGELIST + "?enabled__exact=1")
    assert rows(by_enabled) == set()


@pytest.mark.parametrize("n", [10, 100])
@pytest.mark.parametrize(
    "changelist",
    [
        "features_featurestate",
        "features_feature",
        "features_segmentoverride",
        "features_changerequest",
        "environments_environment",
        "projects_project",
    ],
)
def test_member_changelists__constant_queries(co, django_assert_max_num_queries, n, changelist):
    for i in range(n):
        feature = f.FeatureFactory(project=co.project, name=f"flag_{i:03}", tags=[co.payments])
        f.SegmentOverrideFactory(
            feature=feature, environment=co.staging, segment=f.SegmentFactory(project=co.project)
        )
        cr = f.ChangeRequestFactory(environment=co.production, author_user=co.bob)
        f.ChangeRequestChangeFactory(change_request=cr, feature=feature)
    for env in (co.staging, co.production):
        for feature in Feature.objects.filter(project=co.project):
            from features.models import FeatureState

            FeatureState.objects.get_or_create(
                feature=feature, environment=env, segment_override=None
            )
    client = signed_in(co.bob)
    url = reverse(f"admin:{changelist}_changelist") + "?all="
    with django_assert_max_num_queries(25):
        response = client.get(url)
    assert response.status_code == 200
    if changelist.startswith("features_"):
        assert len(response.context["cl"].result_list) >= n


# --------------------------------------------------------------------------------------
# The feature-state change form (change requests off: Staging)
# --------------------------------------------------------------------------------------


def test_state_change_page__payments_member_on_payments_state__editable(co):
    response = signed_in(co.bob).get(state_url(co.state(co.apple_pay, co.staging)))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is True
    assert 'name="version"' in response.content.decode()


def test_state_change_page__payments_member_on_growth_state__read_only(co):
    response = signed_in(co.bob).get(state_url(co.state(co.promo, co.staging)))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="enabled"' not in response.content.decode()


def test_state_post__payments_member_on_growth_state__403_nothing_changed(co):
    state = co.state(co.promo, co.staging)
    before = AuditLogEntry.objects.count()
    response = post_state(signed_in(co.bob), state)
    assert response.status_code == 403
    state.refresh_from_db()
    assert (state.enabled, state.version) == (False, 1)
    assert AuditLogEntry.objects.count() == before


def test_state_post__payments_member__written_through_service_and_audited(co):
    state = co.state(co.apple_pay, co.staging)
    response = post_state(signed_in(co.bob), state, value='{"limit": 3}')
    assert response.status_code == 302
    state.refresh_from_db()
    assert (state.enabled, state.value, state.version) == (True, {"limit": 3}, 2)
    entry = AuditLogEntry.objects.filter(object_type="feature_state", object_id=str(state.pk)).get()
    assert entry.actor_user_id == co.bob.pk


def test_state_post__stale_form__refused_with_message_nothing_changed(co):
    state = co.state(co.apple_pay, co.staging)
    opened_at = state.version
    feature_state_update(state=state, enabled=True, actor=co.org_admin)
    before = AuditLogEntry.objects.count()
    response = signed_in(co.bob).post(state_url(state), {"value": '"x"', "version": str(opened_at)})
    assert response.status_code == 200
    assert "The state changed since you read it" in response.content.decode()
    state.refresh_from_db()
    assert (state.enabled, state.value, state.version) == (True, None, 2)
    assert AuditLogEntry.objects.count() == before


def test_state_post__invalid_json__clear_error_nothing_changed(co):
    state = co.state(co.apple_pay, co.staging)
    response = post_state(signed_in(co.bob), state, value="{not json")
    assert response.status_code == 200
    assert "value: not valid JSON" in response.content.decode()
    state.refresh_from_db()
    assert state.version == 1


def test_state_post__viewer__403(co):
    state = co.state(co.apple_pay, co.staging)
    assert post_state(signed_in(co.viewer), state).status_code == 403
    state.refresh_from_db()
    assert state.version == 1


@pytest.mark.parametrize("who", ["viewer", "outsider_member"])
def test_state_page__cannot_view_environment__404(co, other, who):
    client = signed_in(co.viewer) if who == "viewer" else signed_in(other.bob)
    state = co.state(co.apple_pay, co.production)
    assert client.get(state_url(state)).status_code == 404
    assert post_state(client, state).status_code == 404


@pytest.mark.parametrize("who", ["org_admin", "project_admin"])
def test_state_post__admins__any_state(co, who):
    state = co.state(co.promo, co.staging)
    response = post_state(signed_in(getattr(co, who)), state)
    assert response.status_code == 302
    state.refresh_from_db()
    assert state.enabled is True


# --------------------------------------------------------------------------------------
# Change requests on (Production): the form proposes a change request
# --------------------------------------------------------------------------------------


def test_state_post__change_requests_on__proposes_change_request(co):
    state = co.state(co.apple_pay, co.production)
    response = post_state(signed_in(co.bob), state, title="Apple Pay on")
    cr = ChangeRequest.objects.get(title="Apple Pay on")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:features_changerequest_change", args=[cr.pk])
    state.refresh_from_db()
    assert (state.enabled, state.version) == (False, 1)
    assert cr.author_user_id == co.bob.pk
    assert list(cr.changes.values_list("feature_id", "enabled")) == [(co.apple_pay.pk, True)]


def test_state_post__change_requests_on__growth_state__403(co):
    state = co.state(co.promo, co.production)
    assert post_state(signed_in(co.bob), state, title="x").status_code == 403
    assert not ChangeRequest.objects.filter(title="x").exists()


def test_state_post__change_requests_on__stale_form__refused_no_change_request(co):
    state = co.state(co.apple_pay, co.production)
    ChangeRequest.objects.all().delete()
    co.production.minimum_change_request_approvals = None
    co.production.save()
    feature_state_update(state=state, enabled=True, actor=co.org_admin)
    co.production.minimum_change_request_approvals = 1
    co.production.save()
    before = AuditLogEntry.objects.count()
    response = post_state(signed_in(co.bob), state, title="late", version="1")
    assert response.status_code == 200
    assert "changed since you opened this form" in response.content.decode()
    assert not ChangeRequest.objects.exists()
    assert AuditLogEntry.objects.count() == before


def test_state_page__change_requests_on__org_admin_gets_proposal_form(co):
    response = signed_in(co.org_admin).get(state_url(co.state(co.promo, co.production)))
    assert 'name="title"' in response.content.decode()


# --------------------------------------------------------------------------------------
# Bulk actions
# --------------------------------------------------------------------------------------


def bulk(client: Client, action: str, states: list[Any]) -> Any:
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(s.pk) for s in states]},
        follow=True,
    )


def test_bulk_enable__names_refused_rows(co):
    payments, growth = co.state(co.apple_pay, co.staging), co.state(co.promo, co.staging)
    response = bulk(signed_in(co.bob), "enable_selected", [payments, growth])
    text = " ".join(msgs(response))
    assert "Enabled 1: apple_pay (Staging)." in text
    assert "promo_code_field (Staging): you need UPDATE_FEATURE_STATE" in text
    payments.refresh_from_db()
    growth.refresh_from_db()
    assert (payments.enabled, growth.enabled) == (True, False)


def test_bulk_enable__change_requests_on__refused_change_request_required(co):
    state = co.state(co.apple_pay, co.production)
    response = bulk(signed_in(co.org_admin), "enable_selected", [state])
    state.refresh_from_db()
    assert "Change requests are on" in " ".join(msgs(response))
    assert state.version == 1


def test_bulk_enable__state_not_viewable__ignored(co):
    state = co.state(co.apple_pay, co.production)
    bulk(signed_in(co.viewer), "enable_selected", [state])
    state.refresh_from_db()
    assert state.enabled is False


# --------------------------------------------------------------------------------------
# Change requests: create, edit, delete, approve, commit
# --------------------------------------------------------------------------------------


def cr_url(cr: Any, action: str = "change") -> str:
    if action in ("approve", "commit"):
        return reverse(f"admin:features_changerequest_{action}", args=[cr.pk])
    return reverse(f"admin:features_changerequest_{action}", args=[cr.pk])


@pytest.fixture
def proposal(co: Checkout) -> ChangeRequest:
    return change_request_create(
        environment=co.production,
        title="Apple Pay on",
        changes=[ChangeInput(feature=co.apple_pay.pk, enabled=True, value=None)],
        actor=co.bob,
    )


def add_cr(client: Client, co: Checkout, rows: list[dict[str, Any]], title: str = "Two") -> Any:
    data: dict[str, Any] = {
        "environment": str(co.production.pk),
        "title": title,
        "description": "",
        "changes-TOTAL_FORMS": str(len(rows)),
        "changes-INITIAL_FORMS": "0",
        "changes-MIN_NUM_FORMS": "0",
        "changes-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data[f"changes-{i}-feature"] = str(row["feature"].pk)
        data[f"changes-{i}-value"] = row.get("value", "null")
        if row.get("enabled"):
            data[f"changes-{i}-enabled"] = "on"
    return client.post(reverse("admin:features_changerequest_add"), data)


def test_change_request_add__with_inline_rows__created_by_service(co):
    response = add_cr(
        signed_in(co.org_admin),
        co,
        [{"feature": co.apple_pay, "enabled": True}, {"feature": co.promo, "value": "5"}],
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    cr = ChangeRequest.objects.get(title="Two")
    assert cr.changes.count() == 2
    assert AuditLogEntry.objects.filter(object_type="change_request", action="created").exists()


def test_change_request_add__feature_without_key__refused_nothing_stored(co):
    before = AuditLogEntry.objects.count()
    response = add_cr(signed_in(co.bob), co, [{"feature": co.promo, "enabled": True}])
    assert response.status_code == 200
    assert "CREATE_CHANGE_REQUEST" in response.content.decode()
    assert not ChangeRequest.objects.filter(title="Two").exists()
    assert AuditLogEntry.objects.count() == before


def test_change_request_add__change_requests_off__refused(co):
    client = signed_in(co.org_admin)
    data_env = co.staging
    co_staging = Checkout(**{**co.__dict__, "production": data_env})
    response = add_cr(client, co_staging, [{"feature": co.apple_pay, "enabled": True}])
    assert response.status_code == 200
    assert "Change requests are off" in response.content.decode()


def test_change_request_page__shows_approvals_and_buttons(co, proposal):
    ChangeRequestApproval.objects.create(change_request=proposal, user=co.carol)
    response = signed_in(co.bob).get(cr_url(proposal))
    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["summary"]["valid"] == 1
    assert response.context["summary"]["needed"] == 0
    assert cr_url(proposal, "commit") in html
    assert cr_url(proposal, "approve") not in html  # the author cannot approve
    assert "editing this change request resets its approvals" in html


def test_change_request_page__approval_no_longer_valid__shown(co, proposal):
    ChangeRequestApproval.objects.create(change_request=proposal, user=co.viewer)
    response = signed_in(co.bob).get(cr_url(proposal))
    summary = response.context["summary"]
    assert [a["valid"] for a in summary["approvals"]] == [False]
    assert summary["needed"] == 1


def test_approve__approver__approval_recorded_and_audited(co, proposal):
    response = signed_in(co.carol).post(cr_url(proposal, "approve"), follow=True)
    assert "You approved it." in msgs(response)
    assert ChangeRequestApproval.objects.filter(change_request=proposal, user=co.carol).exists()
    entry = AuditLogEntry.objects.filter(object_type="change_request", action="updated").get()
    assert entry.actor_user_id == co.carol.pk


def test_approve__author__cannot_approve_own(co, proposal):
    response = signed_in(co.bob).post(cr_url(proposal, "approve"), follow=True)
    assert any("cannot_approve_own" in m for m in msgs(response))
    assert not ChangeRequestApproval.objects.exists()


def test_approve__member_without_key__refused(co, proposal):
    response = signed_in(co.project_admin).post(cr_url(proposal, "approve"), follow=True)
    assert "You approved it." in msgs(response)  # project admin: every key
    other_member = f.member(co.organisation)
    f.grant(other_member, co.production, ["VIEW_ENVIRONMENT"])
    response = signed_in(other_member).post(cr_url(proposal, "approve"), follow=True)
    assert any("permission_denied" in m and "APPROVE_CHANGE_REQUEST" in m for m in msgs(response))
    assert ChangeRequestApproval.objects.filter(change_request=proposal).count() == 1


def test_approve__cannot_view__404(co, proposal):
    assert signed_in(co.viewer).post(cr_url(proposal, "approve")).status_code == 404
    assert not ChangeRequestApproval.objects.exists()


def test_approve__get__405(co, proposal):
    assert signed_in(co.carol).get(cr_url(proposal, "approve")).status_code == 405


def test_commit__not_enough_approvals__refused(co, proposal):
    response = signed_in(co.bob).post(cr_url(proposal, "commit"), follow=True)
    assert any("not_enough_approvals" in m for m in msgs(response))
    proposal.refresh_from_db()
    assert proposal.status == ChangeRequestStatus.OPEN


def test_commit__approved__author_commits_state_written(co, proposal):
    signed_in(co.carol).post(cr_url(proposal, "approve"))
    response = signed_in(co.bob).post(cr_url(proposal, "commit"), follow=True)
    assert "Committed: every change was applied." in msgs(response)
    state = co.state(co.apple_pay, co.production)
    assert (state.enabled, state.version) == (True, 2)
    again = signed_in(co.bob).post(cr_url(proposal, "commit"), follow=True)
    assert any("already_committed" in m for m in msgs(again))


def test_commit__stale_target__refused(co, proposal):
    signed_in(co.carol).post(cr_url(proposal, "approve"))
    other = change_request_create(
        environment=co.production,
        title="Other",
        changes=[ChangeInput(feature=co.apple_pay.pk, enabled=False, value=1)],
        actor=co.bob,
    )
    ChangeRequestApproval.objects.create(change_request=other, user=co.carol)
    signed_in(co.bob).post(cr_url(other, "commit"))
    response = signed_in(co.bob).post(cr_url(proposal, "commit"), follow=True)
    assert any("stale" in m for m in msgs(response))
    proposal.refresh_from_db()
    assert proposal.status == ChangeRequestStatus.OPEN


def test_commit__member_neither_author_nor_approver__refused(co, proposal):
    ChangeRequestApproval.objects.create(change_request=proposal, user=co.carol)
    other_member = f.member(co.organisation)
    f.grant(other_member, co.production, ["VIEW_ENVIRONMENT"])
    response = signed_in(other_member).post(cr_url(proposal, "commit"), follow=True)
    assert any("permission_denied" in m for m in msgs(response))
    proposal.refresh_from_db()
    assert proposal.status == ChangeRequestStatus.OPEN


def test_change_request_edit__author__approvals_reset_and_said(co, proposal):
    ChangeRequestApproval.objects.create(change_request=proposal, user=co.carol)
    client = signed_in(co.bob)
    page = client.get(cr_url(proposal))
    from tests.support.admin import form_data

    data = form_data(page)
    data["title"] = "Apple Pay on, edited"
    response = client.post(cr_url(proposal), data, follow=True)
    assert any("approval(s) were reset" in m for m in msgs(response)), response.content.decode()[
        :3000
    ]
    proposal.refresh_from_db()
    assert proposal.title == "Apple Pay on, edited"
    assert not ChangeRequestApproval.objects.filter(change_request=proposal).exists()


def test_change_request_edit__not_author__read_only_and_post_403(co, proposal):
    client = signed_in(co.carol)
    assert client.get(cr_url(proposal)).context["has_change_permission"] is False
    response = client.post(cr_url(proposal), {"title": "hijacked"})
    assert response.status_code == 403
    proposal.refresh_from_db()
    assert proposal.title == "Apple Pay on"


@pytest.mark.parametrize("who, deleted", [("bob", True), ("org_admin", True), ("carol", False)])
def test_change_request_delete__author_or_environment_admin(co, proposal, who, deleted):
    response = signed_in(getattr(co, who)).post(cr_url(proposal, "delete"), {"post": "yes"})
    assert response.status_code == (302 if deleted else 403)
    assert ChangeRequest.objects.filter(pk=proposal.pk).exists() is not deleted


# --------------------------------------------------------------------------------------
# My permissions
# --------------------------------------------------------------------------------------


def test_my_permissions__tag_scoped_member__keys_and_tags_per_environment(co):
    response = signed_in(co.bob).get(reverse("admin:my_permissions"))
    assert response.status_code == 200
    (org,) = response.context["organisations"]
    (project,) = org["projects"]
    envs = {e["environment"].name: e for e in project["environments"]}
    assert set(envs) == {"Staging", "Production"}
    keys = {k["key"]: k for k in envs["Staging"]["keys"]}
    assert keys["VIEW_ENVIRONMENT"]["how"] == "held"
    assert keys["UPDATE_FEATURE_STATE"]["how"] == "tags"
    assert [t.label for t in keys["UPDATE_FEATURE_STATE"]["tags"]] == ["payments"]
    assert "APPROVE_CHANGE_REQUEST" not in keys
    assert f"user={co.bob.pk}" in envs["Staging"]["explain_url"]


def test_my_permissions__viewer__only_staging(co):
    response = signed_in(co.viewer).get(reverse("admin:my_permissions"))
    (org,) = response.context["organisations"]
    assert [e["environment"].name for e in org["projects"][0]["environments"]] == ["Staging"]


def test_my_permissions__constant_queries(co, django_assert_max_num_queries):
    for i in range(20):
        environment = f.EnvironmentFactory(project=co.project, name=f"env{i}")
        f.grant(co.bob, environment, ["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE"])
    client = signed_in(co.bob)
    with django_assert_max_num_queries(25):
        response = client.get(reverse("admin:my_permissions"))
    assert len(response.context["organisations"][0]["projects"][0]["environments"]) == 22


def test_explain__member__own_decisions_only(co):
    client = signed_in(co.bob)
    url = reverse("admin:permissions_explain")
    own = client.get(
        url,
        {"environment": co.staging.pk, "user": co.bob.pk, "feature": co.apple_pay.pk},
    )
    assert own.status_code == 200
    assert own.context["results"]
    someone_else = client.get(
        url,
        {"environment": co.staging.pk, "user": co.carol.pk, "feature": co.apple_pay.pk},
    )
    assert not someone_else.context["results"]


def test_matrix__member__403(co):
    url = reverse("admin:environments_environment_matrix", args=[co.staging.pk])
    assert signed_in(co.bob).get(url).status_code == 403


# --------------------------------------------------------------------------------------
# Segment overrides
# --------------------------------------------------------------------------------------


def add_override(client: Client, co: Checkout, feature: Any) -> Any:
    return client.post(
        reverse("admin:features_segmentoverride_add"),
        {
            "environment": str(co.staging.pk),
            "feature": str(feature.pk),
            "segment": str(co.segment.pk),
            "priority": "1",
            "value": "null",
        },
    )


def test_override_add__key_on_feature__created(co):
    response = add_override(signed_in(co.bob), co, co.apple_pay)
    assert response.status_code == 302
    assert SegmentOverride.objects.filter(feature=co.apple_pay, environment=co.staging).exists()


def test_override_add__no_key_on_feature__refused_nothing_stored(co):
    before = AuditLogEntry.objects.count()
    response = add_override(signed_in(co.bob), co, co.promo)
    assert response.status_code == 200
    assert "MANAGE_SEGMENT_OVERRIDES" in response.content.decode()
    assert not SegmentOverride.objects.exists()
    assert AuditLogEntry.objects.count() == before


@pytest.mark.parametrize("feature, allowed", [("apple_pay", True), ("promo", False)])
def test_override_edit_priority_and_delete__key_on_feature(co, feature, allowed):
    override = f.SegmentOverrideFactory(
        feature=getattr(co, feature), environment=co.staging, segment=co.segment
    )
    client = signed_in(co.bob)
    url = reverse("admin:features_segmentoverride_change", args=[override.pk])
    response = client.post(url, {"priority": "7", "value": "null"})
    override.refresh_from_db()
    assert (response.status_code, override.priority) == ((302, 7) if allowed else (403, 0))
    delete = client.post(
        reverse("admin:features_segmentoverride_delete", args=[override.pk]), {"post": "yes"}
    )
    assert delete.status_code == (302 if allowed else 403)
    assert SegmentOverride.objects.filter(pk=override.pk).exists() is not allowed


def test_override_edit__change_requests_on__enabled_refused(co):
    override = f.SegmentOverrideFactory(
        feature=co.apple_pay, environment=co.production, segment=co.segment
    )
    response = signed_in(co.bob).post(
        reverse("admin:features_segmentoverride_change", args=[override.pk]),
        {"priority": "0", "enabled": "on", "value": "null"},
    )
    assert response.status_code == 200
    assert "Change requests are on" in response.content.decode()
    override.feature_state.refresh_from_db()
    assert override.feature_state.enabled is False


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


def add_feature(client: Client, co: Checkout, tags: list[Any]) -> Any:
    return client.post(
        reverse("admin:features_feature_add"),
        {
            "project": str(co.project.pk),
            "name": "new_flag",
            "description": "",
            "tags": [str(t.pk) for t in tags],
        },
    )


def test_feature_add__project_admin__created(co):
    response = add_feature(signed_in(co.project_admin), co, [co.payments])
    assert response.status_code == 302
    assert Feature.objects.filter(name="new_flag").exists()


def test_feature_add__no_create_feature__403(co):
    assert add_feature(signed_in(co.bob), co, []).status_code == 403
    assert not Feature.objects.filter(name="new_flag").exists()


def test_feature_add__create_feature_with_protected_tag__service_message(co):
    maker = f.member(co.organisation)
    f.grant(maker, co.project, ["VIEW_PROJECT", "CREATE_FEATURE"])
    response = add_feature(signed_in(maker), co, [co.payments])
    assert response.status_code == 200
    assert "project admin" in response.content.decode()
    assert not Feature.objects.filter(name="new_flag").exists()


@pytest.mark.parametrize("feature, allowed", [("apple_pay", True), ("promo", False)])
def test_feature_delete__delete_feature_tagged(co, feature, allowed):
    obj = getattr(co, feature)
    response = signed_in(co.bob).post(
        reverse("admin:features_feature_delete", args=[obj.pk]), {"post": "yes"}
    )
    assert response.status_code == (302 if allowed else 403)
    assert Feature.objects.filter(pk=obj.pk).exists() is not allowed


def test_feature_change__viewer_of_environment_only__read_only(co):
    response = signed_in(co.viewer).get(
        reverse("admin:features_feature_change", args=[co.apple_pay.pk])
    )
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False


def test_feature_page__other_organisation__404(co, other):
    url = reverse("admin:features_feature_change", args=[other.apple_pay.pk])
    assert signed_in(co.bob).get(url).status_code == 404


def test_change_request_page__approver__sees_approve_button(co, proposal):
    html = signed_in(co.carol).get(cr_url(proposal)).content.decode()
    assert cr_url(proposal, "approve") in html
    assert "1 more" in html


def test_override_page__no_key_on_feature__read_only_with_its_state(co):
    override = f.SegmentOverrideFactory(
        feature=co.promo, environment=co.staging, segment=co.segment, state__value=5
    )
    response = signed_in(co.bob).get(
        reverse("admin:features_segmentoverride_change", args=[override.pk])
    )
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="priority"' not in response.content.decode()
