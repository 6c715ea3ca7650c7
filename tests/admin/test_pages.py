"""Every admin page (changelist, search, add, change, delete) as a superuser and as a user
who administers one organisation (docs/PERMISSIONS.md: an organisation admin manages their own
organisation and nothing else; the engine decides; docs/ADMIN.md: what they may not view is a
404). The pages of members whose rights are narrowed are in test_members.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests import factories as f

pytestmark = pytest.mark.django_db

MODELS = [
    "organisations.organisation",
    "organisations.organisationmembership",
    "organisations.usergroup",
    "organisations.role",
    "organisations.roleassignment",
    "organisations.organisationapikey",
    "projects.project",
    "projects.tag",
    "environments.environment",
    "features.feature",
    "features.featurestate",
    "features.segment",
    "features.segmentoverride",
    "features.changerequest",
    "permissions.grant",
    "permissions.grantentry",
    "audit.auditlogentry",
    "auth.user",
]
# Written elsewhere (grant entries through their grant; the audit log is append-only).
READ_ONLY = {
    "permissions.grantentry",
    "audit.auditlogentry",
}
# Default feature states come and go with their feature and environment: changed, never
# added or deleted.
CHANGE_ONLY = {"features.featurestate"}
# Only its author edits a change request (the admins of the fixture are not its author).
AUTHOR_ONLY = {"features.changerequest"}
# Users are global: only superusers add, change or delete them.
SUPERUSER_ONLY = {"auth.user"}


def url(label: str, view: str, *args: object) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def listed_pks(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].queryset}


def test_models__every_project_model_is_registered():
    from django.contrib import admin

    registered = {
        f"{m._meta.app_label}.{m._meta.model_name}"
        for m in admin.site._registry
        if m._meta.app_label
        in {"organisations", "projects", "environments", "features", "permissions", "audit"}
    }
    assert registered == set(MODELS) - {"auth.user"}


@pytest.mark.parametrize("label", MODELS)
def test_changelist__superuser__lists_every_organisation(
    superuser_client, world, other_world, label
):
    response = superuser_client.get(url(label, "changelist"))
    assert response.status_code == 200
    pks = listed_pks(response)
    assert world.objects()[label].pk in pks
    assert other_world.objects()[label].pk in pks


@pytest.mark.parametrize("label", MODELS)
def test_changelist__org_admin_staff__lists_only_own_organisation(
    staff_client, world, other_world, label
):
    response = staff_client.get(url(label, "changelist"))
    assert response.status_code == 200
    pks = listed_pks(response)
    assert world.objects()[label].pk in pks
    assert other_world.objects()[label].pk not in pks


@pytest.mark.parametrize("label", MODELS)
@pytest.mark.parametrize("who", ["superuser", "staff"])
def test_search__finds_own_and_not_other(
    superuser_client, staff_client, world, other_world, label, who
):
    client = superuser_client if who == "superuser" else staff_client
    response = client.get(url(label, "changelist"), {"q": "acme"})
    assert response.status_code == 200
    pks = listed_pks(response)
    assert world.objects()[label].pk in pks
    assert other_world.objects()[label].pk not in pks


@pytest.mark.parametrize("label", MODELS)
@pytest.mark.parametrize("who", ["superuser", "staff"])
def test_add_page__superuser_or_org_admin__200_where_writable_else_403(
    superuser_client, staff_client, world, label, who
):
    client = superuser_client if who == "superuser" else staff_client
    response = client.get(url(label, "add"))
    writable = label not in READ_ONLY | CHANGE_ONLY and (
        who == "superuser" or label not in SUPERUSER_ONLY
    )
    assert response.status_code == (200 if writable else 403)


@pytest.mark.parametrize("label", MODELS)
@pytest.mark.parametrize("who", ["superuser", "staff"])
def test_change_page__own_organisation__200(superuser_client, staff_client, world, label, who):
    client = superuser_client if who == "superuser" else staff_client
    obj = world.objects()[label]
    response = client.get(url(label, "change", obj.pk))
    assert response.status_code == 200
    writable = label not in READ_ONLY | AUTHOR_ONLY and (
        who == "superuser" or label not in SUPERUSER_ONLY
    )
    assert (
        response.context["has_change_permission"] is writable
        or label == "organisations.roleassignment"
    )


@pytest.mark.parametrize("label", MODELS)
def test_change_page__org_admin__other_organisation__404(staff_client, world, other_world, label):
    obj = other_world.objects()[label]
    response = staff_client.get(url(label, "change", obj.pk))
    assert response.status_code == 404


@pytest.mark.parametrize("label", MODELS)
@pytest.mark.parametrize("who", ["superuser", "staff"])
def test_delete_page__superuser_or_org_admin__200_where_writable_else_403(
    superuser_client, staff_client, world, label, who
):
    client = superuser_client if who == "superuser" else staff_client
    obj = world.objects()[label]
    response = client.get(url(label, "delete", obj.pk))
    writable = label not in READ_ONLY | CHANGE_ONLY and (
        who == "superuser" or label not in SUPERUSER_ONLY
    )
    # AUTHOR_ONLY: its author or an environment admin, which both the organisation admin and
    # the superuser (an organisation admin of every organisation) are
    assert response.status_code == (200 if writable else 403)


@pytest.mark.parametrize("label", sorted(set(MODELS) - READ_ONLY - SUPERUSER_ONLY))
def test_delete_page__org_admin__other_organisation__404(staff_client, world, other_world, label):
    obj = other_world.objects()[label]
    response = staff_client.get(url(label, "delete", obj.pk))
    assert response.status_code == 404


@pytest.mark.parametrize("label", MODELS)
def test_changelist_filters__staff__offer_only_own_organisation(
    staff_client, world, other_world, label
):
    response = staff_client.get(url(label, "changelist"))
    offered = {
        str(title)
        for spec in response.context["cl"].filter_specs
        for choice in spec.choices(response.context["cl"])
        for title in [choice.get("display")]
    }
    assert not any("Other" in title for title in offered), offered


@pytest.mark.parametrize("label", sorted(set(MODELS) - READ_ONLY - SUPERUSER_ONLY))
def test_post__org_admin__other_organisation__404_changes_nothing(
    staff_client, world, other_world, label
):
    from audit.models import AuditLogEntry

    obj = other_world.objects()[label]
    before = AuditLogEntry.objects.count()
    change = staff_client.post(url(label, "change", obj.pk), {"name": "hijacked"})
    delete = staff_client.post(url(label, "delete", obj.pk), {"post": "yes"})
    assert (change.status_code, delete.status_code) == (404, 404)
    assert type(obj).objects.filter(pk=obj.pk).exists()
    assert AuditLogEntry.objects.count() == before


def test_index__org_admin_staff__sees_the_apps(staff_client, world):
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    apps = {app["app_label"] for app in response.context["app_list"]}
    assert {"organisations", "projects", "environments", "features", "permissions", "audit"} <= apps


# What a USER member who holds nothing on a project sees of the configuration.
CONFIGURATION = [
    label
    for label in MODELS
    if label.split(".")[0] in ("organisations", "permissions", "audit", "auth")
]


@pytest.mark.parametrize("label", CONFIGURATION)
def test_configuration_pages__member_who_is_not_admin__403(client, world, label):
    """A USER member (not ADMIN) of the organisation manages none of its configuration."""
    user = f.member(world.organisation)
    client.force_login(user)
    assert client.get(url(label, "changelist")).status_code == 403
    assert client.get(url(label, "change", world.objects()[label].pk)).status_code in (403, 404)


def test_index__staff_member_of_nothing__redirected_to_login(client, world):
    client.force_login(f.UserFactory(is_staff=True))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_index__org_admin_not_staff__signed_in(client, world):
    user = f.member(world.organisation, admin=True)
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    apps = {app["app_label"] for app in response.context["app_list"]}
    assert {"organisations", "permissions", "features"} <= apps


def test_api_key_pages__show_the_prefix_never_the_hash(superuser_client, world):
    key = world.api_key
    for page in (
        url("organisations.organisationapikey", "changelist"),
        url("organisations.organisationapikey", "change", key.pk),
    ):
        html = superuser_client.get(page).content.decode()
        assert key.prefix in html
        assert key.hashed_key not in html
        assert key.plain_key not in html


def test_audit_log__read_only_even_for_superusers(superuser_client, world):
    entry = world.audit_entry
    assert superuser_client.get(url("audit.auditlogentry", "add")).status_code == 403
    response = superuser_client.get(url("audit.auditlogentry", "change", entry.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert (
        superuser_client.post(
            url("audit.auditlogentry", "delete", entry.pk), {"post": "yes"}
        ).status_code
        == 403
    )
    assert (
        superuser_client.post(url("audit.auditlogentry", "change", entry.pk), {}).status_code == 403
    )


def test_autocomplete__staff__only_own_organisation(staff_client, world, other_world):
    response = staff_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "organisations",
            "model_name": "role",
            "field_name": "organisation",
            "term": "",
        },
    )
    assert response.status_code == 200
    ids = {int(r["id"]) for r in response.json()["results"]}
    assert ids == {world.organisation.pk}


def test_autocomplete__new_member__staff_finds_users_by_exact_name_only(
    staff_client, world, other_world
):
    outsider = f.UserFactory(username="outsider", email="outsider@example.com")
    params = {
        "app_label": "organisations",
        "model_name": "organisationmembership",
        "field_name": "user",
    }
    found = staff_client.get(
        reverse("admin:autocomplete"), {**params, "term": "outsider@example.com"}
    )
    assert [int(r["id"]) for r in found.json()["results"]] == [outsider.pk]
    partial = staff_client.get(reverse("admin:autocomplete"), {**params, "term": "outs"})
    assert partial.json()["results"] == []
    everyone = staff_client.get(reverse("admin:autocomplete"), {**params, "term": ""})
    assert everyone.json()["results"] == []
