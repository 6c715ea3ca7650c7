"""Roles in the admin: the role itself, its organisation keys, and inlines for its assignments
and its project and environment grants with per-key tags. Every write goes through the
services (same validation and audit entries as the API); a rejected save saves nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLogEntry
from environments.models import Environment
from organisations.models import Role, RoleAssignment
from permissions import engine
from permissions.catalogue import (
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_AUDIT_LOG,
    VIEW_ENVIRONMENT,
)
from permissions.models import Grant
from tests import factories as f
from tests.support.admin import (
    ASSIGNMENTS,
    ENV_GRANTS,
    PROJECT_GRANTS,
    errors,
    form_data,
    inline_prefix,
    new_row,
)

pytestmark = pytest.mark.django_db


def change_url(role) -> str:
    return reverse("admin:organisations_role_change", args=[role.pk])


@pytest.fixture(params=["superuser", "staff"])
def admin_client(request, superuser_client, staff_client):
    return superuser_client if request.param == "superuser" else staff_client


def audit_count() -> int:
    return AuditLogEntry.objects.count()


# -- the role ----------------------------------------------------------------------------


def test_add_role__through_service__audited(admin_client, world):
    response = admin_client.post(
        reverse("admin:organisations_role_add"),
        {
            "organisation": world.organisation.pk,
            "name": "Releasers",
            "description": "Ship it",
            "organisation_permissions": [CREATE_PROJECT],
        },
    )
    assert response.status_code == 302
    role = Role.objects.get(name="Releasers")
    assert role.organisation == world.organisation
    entries = AuditLogEntry.objects.filter(organisation=world.organisation)
    assert entries.filter(object_type="role", action="created", object_id=str(role.pk)).exists()
    grant = Grant.objects.get(role=role, project__isnull=True)
    assert [e.key for e in grant.entries.all()] == [CREATE_PROJECT]
    assert entries.filter(object_type="grant", action="created", object_id=str(grant.pk)).exists()


def test_add_role__duplicate_name__form_error_nothing_saved(admin_client, world):
    before = audit_count()
    response = admin_client.post(
        reverse("admin:organisations_role_add"),
        {
            "organisation": world.organisation.pk,
            "name": world.role.name.upper(),
            "organisation_permissions": [CREATE_PROJECT],
        },
    )
    assert response.status_code == 200
    assert "A role with this name already exists." in errors(response)
    assert Role.objects.filter(organisation=world.organisation).count() == 1
    assert audit_count() == before


def test_add_role__staff__other_organisation__invalid_choice(staff_client, world, other_world):
    response = staff_client.post(
        reverse("admin:organisations_role_add"),
        {"organisation": other_world.organisation.pk, "name": "Sneaky"},
    )
    assert response.status_code == 200
    assert any("Select a valid choice" in e for e in errors(response))
    assert not Role.objects.filter(name="Sneaky").exists()


def test_add_role__page_has_no_inlines(admin_client, world):
    response = admin_client.get(reverse("admin:organisations_role_add"))
    assert response.context["inline_admin_formsets"] == []


def test_change_role__rename_and_organisation_keys__audited(admin_client, world):
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    data["name"] = "Renamed"
    data["organisation_permissions"] = [MANAGE_USER_GROUPS]
    assert admin_client.post(change_url(world.role), data).status_code == 302
    world.role.refresh_from_db()
    assert world.role.name == "Renamed"
    updated = AuditLogEntry.objects.get(object_type="role", action="updated")
    assert updated.before["name"] == "Acme role" and updated.after["name"] == "Renamed"
    grant = Grant.objects.get(role=world.role, project__isnull=True)
    assert [e.key for e in grant.entries.all()] == [MANAGE_USER_GROUPS]


def test_change_role__unchanged__writes_no_audit_entry(admin_client, world):
    response = admin_client.get(change_url(world.role))
    before = audit_count()
    assert admin_client.post(change_url(world.role), form_data(response)).status_code == 302
    assert audit_count() == before


def test_change_role__page_shows_grants_with_their_tags(admin_client, world):
    response = admin_client.get(change_url(world.role))
    prefix = inline_prefix(response, ENV_GRANTS)
    formset = next(
        i.formset for i in response.context["inline_admin_formsets"] if i.formset.prefix == prefix
    )
    (form,) = formset.initial_forms
    assert form.instance == world.role_grant
    assert form[f"tags__{UPDATE_FEATURE_STATE}"].value() == [world.tag.pk]
    assert form[f"key__{VIEW_ENVIRONMENT}"].value() is True
    html = response.content.decode()
    assert f'value="{world.tag.pk}" selected' in html


def test_change_page__queries_do_not_grow_with_grants(admin_client, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    admin_client.get(change_url(world.role))  # warm the content-type cache
    with CaptureQueriesContext(connection) as few:
        admin_client.get(change_url(world.role))
    for _ in range(5):
        env = f.EnvironmentFactory(project=world.project)
        f.grant(world.role, env, {UPDATE_FEATURE_STATE: [world.tag]})
        f.RoleAssignmentFactory(role=world.role, user=f.member(world.organisation))
    with CaptureQueriesContext(connection) as many:
        admin_client.get(change_url(world.role))
    assert len(many) == len(few)


def test_delete_role__through_service__audited_with_cascade(admin_client, world):
    url = reverse("admin:organisations_role_delete", args=[world.role.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Role.objects.filter(pk=world.role.pk).exists()
    entry = AuditLogEntry.objects.get(object_type="role", action="deleted")
    assert {g["id"] for g in entry.before["grants"]} >= {world.role_grant.pk}
    assert entry.before["assignments"] == [{"role": world.role.pk, "group": world.group.pk}]


# -- grants inline ----------------------------------------------------------------------


def add_env_grant(client, role, environment, entries: dict[str, list], *, admin: bool = False):
    response = client.get(change_url(role))
    data = form_data(response)
    prefix = inline_prefix(response, ENV_GRANTS)
    row = new_row(data, prefix)
    data[f"{prefix}-{row}-environment"] = str(environment.pk)
    if admin:
        data[f"{prefix}-{row}-admin"] = "on"
    for key, tags in entries.items():
        if tags:
            data[f"{prefix}-{row}-tags__{key}"] = [str(t.pk) for t in tags]
        else:
            data[f"{prefix}-{row}-key__{key}"] = "on"
    return client.post(change_url(role), data)


def test_grant_inline__tagged_environment_grant__created_and_audited(admin_client, world):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    response = add_env_grant(
        admin_client,
        world.role,
        staging,
        {VIEW_ENVIRONMENT: [], UPDATE_FEATURE_STATE: [world.tag, world.restricted_tag]},
    )
    assert response.status_code == 302, errors(response)
    grant = Grant.objects.get(role=world.role, environment=staging)
    entries = {e.key: sorted(t.pk for t in e.tags.all()) for e in grant.entries.all()}
    assert entries == {
        VIEW_ENVIRONMENT: [],
        UPDATE_FEATURE_STATE: sorted([world.tag.pk, world.restricted_tag.pk]),
    }
    entry = AuditLogEntry.objects.get(object_type="grant", object_id=str(grant.pk))
    assert entry.action == "created"
    assert entry.after["permissions"] == [
        {
            "permission_key": UPDATE_FEATURE_STATE,
            "tags": sorted([world.tag.pk, world.restricted_tag.pk]),
        },
        {"permission_key": VIEW_ENVIRONMENT, "tags": []},
    ]
    # The engine sees it: the member (through their group's role) may now update the tagged
    # feature in staging, and not the untagged one.
    assert engine.allowed(world.member, UPDATE_FEATURE_STATE, staging, world.tagged_feature)
    assert not engine.allowed(world.member, UPDATE_FEATURE_STATE, staging, world.feature)


def test_grant_inline__tagged_key_without_tag_support__error_names_key_nothing_saved(
    admin_client, world
):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    before = audit_count()
    response = add_env_grant(
        admin_client,
        world.role,
        staging,
        {VIEW_ENVIRONMENT: [world.tag], UPDATE_FEATURE_STATE: [world.tag]},
    )
    assert response.status_code == 200
    assert "VIEW_ENVIRONMENT does not support tags." in errors(response)
    assert not Grant.objects.filter(environment=staging).exists()
    assert audit_count() == before


def test_grant_inline__tagged_project_key_without_tag_support__error_names_key(admin_client, world):
    other_project = f.ProjectFactory(organisation=world.organisation)
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, PROJECT_GRANTS)
    row = new_row(data, prefix)
    tag = f.TagFactory(project=other_project)
    data[f"{prefix}-{row}-project"] = str(other_project.pk)
    data[f"{prefix}-{row}-tags__{VIEW_AUDIT_LOG}"] = [str(tag.pk)]
    data[f"{prefix}-{row}-tags__{DELETE_FEATURE}"] = [str(tag.pk)]
    response = admin_client.post(change_url(world.role), data)
    assert response.status_code == 200
    assert errors(response).count("VIEW_AUDIT_LOG does not support tags.") == 1
    assert not any("DELETE_FEATURE" in e for e in errors(response))
    assert not Grant.objects.filter(project=other_project).exists()


def test_grant_inline__tag_of_another_project__error_nothing_saved(admin_client, world):
    other_project = f.ProjectFactory(organisation=world.organisation)
    foreign_tag = f.TagFactory(project=other_project, label="elsewhere")
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    before = audit_count()
    response = add_env_grant(
        admin_client, world.role, staging, {UPDATE_FEATURE_STATE: [foreign_tag]}
    )
    assert response.status_code == 200
    assert any("elsewhere" in e and UPDATE_FEATURE_STATE in e for e in errors(response))
    assert not Grant.objects.filter(environment=staging).exists()
    assert audit_count() == before


def test_grant_inline__second_grant_on_same_environment__rejected_nothing_saved(
    admin_client, world
):
    """The service refuses the duplicate while saving: the whole save is rolled back (the
    role's rename too) and the form shows the service's error."""
    before = audit_count()
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    data["name"] = "Renamed meanwhile"
    prefix = inline_prefix(response, ENV_GRANTS)
    row = new_row(data, prefix)
    data[f"{prefix}-{row}-environment"] = str(world.environment.pk)
    data[f"{prefix}-{row}-key__{VIEW_ENVIRONMENT}"] = "on"
    response = admin_client.post(change_url(world.role), data)
    assert response.status_code == 200
    assert any("already has a grant on this environment" in e for e in errors(response))
    world.role.refresh_from_db()
    assert world.role.name == "Acme role"
    assert Grant.objects.filter(role=world.role, environment=world.environment).count() == 1
    assert audit_count() == before


def test_grant_inline__change_entries__updated_and_audited(admin_client, world):
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ENV_GRANTS)
    data[f"{prefix}-0-tags__{UPDATE_FEATURE_STATE}"] = [str(world.restricted_tag.pk)]
    data[f"{prefix}-0-admin"] = "on"
    assert admin_client.post(change_url(world.role), data).status_code == 302
    world.role_grant.refresh_from_db()
    assert world.role_grant.admin is True
    entry = world.role_grant.entries.get(key=UPDATE_FEATURE_STATE)
    assert [t.pk for t in entry.tags.all()] == [world.restricted_tag.pk]
    audit = AuditLogEntry.objects.get(object_type="grant", action="updated")
    assert audit.before["admin"] is False and audit.after["admin"] is True


def test_grant_inline__delete__through_service__audited(admin_client, world):
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ENV_GRANTS)
    data[f"{prefix}-0-DELETE"] = "on"
    assert admin_client.post(change_url(world.role), data).status_code == 302
    assert not Grant.objects.filter(pk=world.role_grant.pk).exists()
    audit = AuditLogEntry.objects.get(object_type="grant", action="deleted")
    assert audit.object_id == str(world.role_grant.pk)


def test_grant_inline__staff__environment_of_other_organisation__invalid_choice(
    staff_client, world, other_world
):
    response = add_env_grant(
        staff_client, world.role, other_world.environment, {VIEW_ENVIRONMENT: []}
    )
    assert response.status_code == 200
    assert any("Select a valid choice" in e for e in errors(response))
    assert not Grant.objects.filter(role=world.role, environment=other_world.environment).exists()


# -- assignments inline -------------------------------------------------------------------


def test_assignment_inline__assign_user__through_service(admin_client, world):
    user = f.member(world.organisation)
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ASSIGNMENTS)
    data[f"{prefix}-{new_row(data, prefix)}-user"] = str(user.pk)
    assert admin_client.post(change_url(world.role), data).status_code == 302
    assignment = RoleAssignment.objects.get(role=world.role, user=user)
    audit = AuditLogEntry.objects.get(object_type="role_assignment", action="created")
    assert audit.object_id == str(assignment.pk)


def test_assignment_inline__two_principals__error(admin_client, world):
    user = f.member(world.organisation)
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ASSIGNMENTS)
    row = new_row(data, prefix)
    data[f"{prefix}-{row}-user"] = str(user.pk)
    data[f"{prefix}-{row}-api_key"] = str(world.api_key.pk)
    response = admin_client.post(change_url(world.role), data)
    assert response.status_code == 200
    assert "Choose exactly one of user, group, API key." in errors(response)
    assert not RoleAssignment.objects.filter(user=user).exists()


def test_assignment_inline__already_assigned__service_error_nothing_saved(admin_client, world):
    before = audit_count()
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ASSIGNMENTS)
    data[f"{prefix}-{new_row(data, prefix)}-group"] = str(world.group.pk)
    response = admin_client.post(change_url(world.role), data)
    assert response.status_code == 200
    assert any("already assigned to this group" in e for e in errors(response))
    assert RoleAssignment.objects.filter(role=world.role).count() == 1
    assert audit_count() == before


def test_assignment_inline__non_member__invalid_choice(admin_client, world, other_world):
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ASSIGNMENTS)
    data[f"{prefix}-{new_row(data, prefix)}-user"] = str(other_world.member.pk)
    response = admin_client.post(change_url(world.role), data)
    assert response.status_code == 200
    assert any("Select a valid choice" in e for e in errors(response))


def test_assignment_inline__delete__through_service(admin_client, world):
    response = admin_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ASSIGNMENTS)
    data[f"{prefix}-0-DELETE"] = "on"
    assert admin_client.post(change_url(world.role), data).status_code == 302
    assert not RoleAssignment.objects.filter(pk=world.assignment.pk).exists()
    assert AuditLogEntry.objects.filter(object_type="role_assignment", action="deleted").exists()
    # Never widen: the member lost what the role gave them through their group.
    assert not engine.allowed(world.member, VIEW_ENVIRONMENT, world.environment)


def test_environment_choices__label_project_and_environment(admin_client, world):
    Environment.objects.create(project=world.project, name="qa")
    html = admin_client.get(change_url(world.role)).content.decode()
    assert "Acme app / qa" in html
