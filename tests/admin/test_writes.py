"""Admin writes of every writable model go through the services: the same validation (errors
shown on the form, nothing saved) and the same audit entries as the API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import Feature, Segment
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    RoleAssignment,
    UserGroup,
)
from permissions import engine
from permissions.catalogue import (
    CREATE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant
from projects.models import Project, Tag
from tests import factories as f
from tests.support.admin import errors, form_data

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["superuser", "staff"])
def admin_client(request, superuser_client, staff_client):
    return superuser_client if request.param == "superuser" else staff_client


def add_url(label: str) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_add")


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def delete_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])


def audited(object_type: str, action: str, obj=None) -> AuditLogEntry:
    qs = AuditLogEntry.objects.filter(object_type=object_type, action=action)
    if obj is not None:
        qs = qs.filter(object_id=str(obj.pk))
    return qs.get()


def edit(client, obj, **changes):
    data = form_data(client.get(change_url(obj)))
    data.update(changes)
    return client.post(change_url(obj), data)


# -- organisations ------------------------------------------------------------------------


def test_organisation_add__creator_becomes_admin_member(admin_client, world):
    assert (
        admin_client.post(add_url("organisations.organisation"), {"name": "Newco"}).status_code
        == 302
    )
    org = Organisation.objects.get(name="Newco")
    membership = OrganisationMembership.objects.get(organisation=org)
    assert membership.role == MembershipRole.ADMIN
    assert audited("organisation", "created", org).after == {"name": "Newco"}
    assert audited("organisation_membership", "created", membership)


def test_organisation_rename__audited(admin_client, world):
    assert edit(admin_client, world.organisation, name="Acme Corp").status_code == 302
    entry = audited("organisation", "updated", world.organisation)
    assert (entry.before, entry.after) == ({"name": "Acme"}, {"name": "Acme Corp"})


def test_organisation_delete__through_service(admin_client, world):
    response = admin_client.post(delete_url(world.organisation), {"post": "yes"})
    assert response.status_code == 302
    assert not Organisation.objects.filter(pk=world.organisation.pk).exists()


# -- membership --------------------------------------------------------------------------


def test_membership_add__any_existing_user__audited(admin_client, world):
    user = f.UserFactory()
    response = admin_client.post(
        add_url("organisations.organisationmembership"),
        {"organisation": world.organisation.pk, "user": user.pk, "role": "USER"},
    )
    assert response.status_code == 302
    membership = OrganisationMembership.objects.get(user=user)
    assert audited("organisation_membership", "created", membership).after == {
        "user": user.pk,
        "role": "USER",
    }


def test_membership_add__already_member__service_error(admin_client, world):
    before = AuditLogEntry.objects.count()
    response = admin_client.post(
        add_url("organisations.organisationmembership"),
        {"organisation": world.organisation.pk, "user": world.member.pk, "role": "USER"},
    )
    assert response.status_code == 200
    assert "This user is already a member." in errors(response)
    assert AuditLogEntry.objects.count() == before


def test_membership_add__staff__other_organisation__invalid_choice(
    staff_client, world, other_world
):
    user = f.UserFactory()
    response = staff_client.post(
        add_url("organisations.organisationmembership"),
        {"organisation": other_world.organisation.pk, "user": user.pk, "role": "ADMIN"},
    )
    assert response.status_code == 200
    assert not OrganisationMembership.objects.filter(user=user).exists()


def test_membership_change_role__audited(admin_client, world):
    membership = world.member.organisation_memberships.get()
    assert edit(admin_client, membership, role="ADMIN").status_code == 302
    membership.refresh_from_db()
    assert membership.role == "ADMIN"
    entry = audited("organisation_membership", "updated", membership)
    assert (entry.before["role"], entry.after["role"]) == ("USER", "ADMIN")


def test_membership_demote_last_admin__service_error(superuser_client, world):
    membership = world.member.organisation_memberships.get()
    membership.role = MembershipRole.ADMIN
    membership.save()
    response = edit(superuser_client, membership, role="USER")
    assert response.status_code == 200
    assert "role: An organisation must keep at least one ADMIN member." in errors(response) or (
        "An organisation must keep at least one ADMIN member." in errors(response)
    )
    membership.refresh_from_db()
    assert membership.role == MembershipRole.ADMIN


def test_membership_delete__removes_grants_groups_roles(admin_client, world):
    membership = world.member.organisation_memberships.get()
    assert admin_client.post(delete_url(membership), {"post": "yes"}).status_code == 302
    assert not Grant.objects.filter(user=world.member).exists()
    assert not world.group.users.filter(pk=world.member.pk).exists()
    entry = audited("organisation_membership", "deleted", membership)
    assert entry.before["groups"] == [world.group.pk]
    assert not engine.allowed(world.member, VIEW_PROJECT, world.project)


def test_membership_delete__last_admin__message_and_kept(superuser_client, world):
    membership = world.member.organisation_memberships.get()
    membership.role = MembershipRole.ADMIN
    membership.save()
    response = superuser_client.post(delete_url(membership), {"post": "yes"}, follow=True)
    assert "An organisation must keep at least one ADMIN member." in response.content.decode()
    assert OrganisationMembership.objects.filter(pk=membership.pk).exists()


# -- groups ------------------------------------------------------------------------------


def test_group_add__with_members__audited(admin_client, world):
    response = admin_client.post(
        add_url("organisations.usergroup"),
        {"organisation": world.organisation.pk, "name": "Ops", "users": [world.member.pk]},
    )
    assert response.status_code == 302
    group = UserGroup.objects.get(name="Ops")
    assert audited("user_group", "created", group).after == {
        "name": "Ops",
        "users": [world.member.pk],
    }


def test_group_add__non_member__service_error(superuser_client, world, other_world):
    response = superuser_client.post(
        add_url("organisations.usergroup"),
        {"organisation": world.organisation.pk, "name": "Ops", "users": [other_world.member.pk]},
    )
    assert response.status_code == 200
    assert any("Not members of this organisation" in e for e in errors(response))
    assert not UserGroup.objects.filter(name="Ops").exists()


def test_group_change_members__audited(staff_client, world):
    admin_client = staff_client  # an organisation admin: see test_superuser_not_member__*
    other = f.member(world.organisation)
    assert edit(admin_client, world.group, users=[str(other.pk)]).status_code == 302
    entry = audited("user_group", "updated", world.group)
    assert (entry.before["users"], entry.after["users"]) == ([world.member.pk], [other.pk])


def test_group_delete__audited(staff_client, world):
    admin_client = staff_client  # an organisation admin: see test_superuser_not_member__*
    assert admin_client.post(delete_url(world.group), {"post": "yes"}).status_code == 302
    assert audited("user_group", "deleted", world.group).before["roles"] == [world.role.pk]


# -- role assignments ----------------------------------------------------------------------


def test_role_assignment_add__audited(admin_client, world):
    response = admin_client.post(
        add_url("organisations.roleassignment"),
        {"role": world.role.pk, "api_key": world.api_key.pk},
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(api_key=world.api_key)
    assert audited("role_assignment", "created", assignment)


def test_role_assignment_add__two_principals__error(admin_client, world):
    response = admin_client.post(
        add_url("organisations.roleassignment"),
        {"role": world.role.pk, "api_key": world.api_key.pk, "user": world.member.pk},
    )
    assert response.status_code == 200
    assert "Give exactly one of user, group, api_key." in errors(response)


def test_role_assignment_delete__audited(admin_client, world):
    assert admin_client.post(delete_url(world.assignment), {"post": "yes"}).status_code == 302
    assert audited("role_assignment", "deleted", world.assignment)


# -- API keys ------------------------------------------------------------------------------


def test_api_key_add__key_shown_once_prefix_kept(admin_client, world):
    response = admin_client.post(
        add_url("organisations.organisationapikey"),
        {
            "organisation": world.organisation.pk,
            "name": "CI",
            "expiry_date_0": "",
            "expiry_date_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    api_key = OrganisationAPIKey.objects.get(name="CI")
    messages = [str(m) for m in response.context["messages"]]
    (shown,) = [m for m in messages if "The new API key is" in m]
    assert api_key.prefix in shown
    plain = shown.split("<code>")[1].split("</code>")[0]
    assert OrganisationAPIKey.objects.get_from_key(plain) == api_key
    assert plain not in api_key.hashed_key
    entry = audited("organisation_api_key", "created", api_key)
    assert entry.after["prefix"] == api_key.prefix
    assert plain not in str(entry.after)
    # Never again.
    assert plain not in admin_client.get(change_url(api_key)).content.decode()


def test_api_key_revoke__audited_and_final(admin_client, world):
    assert edit(admin_client, world.api_key, revoked="on").status_code == 302
    world.api_key.refresh_from_db()
    assert world.api_key.revoked
    entry = audited("organisation_api_key", "updated", world.api_key)
    assert (entry.before["revoked"], entry.after["revoked"]) == (False, True)
    response = admin_client.get(change_url(world.api_key))
    assert "revoked" not in response.context["adminform"].form.fields


def test_api_key_delete__audited(admin_client, world):
    assert admin_client.post(delete_url(world.api_key), {"post": "yes"}).status_code == 302
    assert audited("organisation_api_key", "deleted", world.api_key)


# -- projects and tags -----------------------------------------------------------------------


def test_project_add__member__creator_is_project_admin(staff_client, world, org_admin_staff):
    response = staff_client.post(
        add_url("projects.project"), {"organisation": world.organisation.pk, "name": "Mobile"}
    )
    assert response.status_code == 302
    project = Project.objects.get(name="Mobile")
    assert Grant.objects.get(project=project, user=org_admin_staff).admin is True
    assert audited("project", "created", project)


def test_project_add__superuser_not_member__clear_error_nothing_saved(superuser_client, world):
    # The creator of a project receives a project admin grant, and grants are held by members
    # only: a superuser joins the organisation first (docs/PERMISSIONS.md, "Superusers").
    response = superuser_client.post(
        add_url("projects.project"), {"organisation": world.organisation.pk, "name": "Mobile"}
    )
    assert response.status_code == 200
    assert "user: This user is not a member of this organisation." in errors(response)
    assert not Project.objects.filter(name="Mobile").exists()


def test_project_rename_and_delete__audited(admin_client, world):
    assert edit(admin_client, world.project, name="Renamed").status_code == 302
    assert audited("project", "updated", world.project).after["name"] == "Renamed"
    assert admin_client.post(delete_url(world.project), {"post": "yes"}).status_code == 302
    assert not Project.objects.filter(pk=world.project.pk).exists()


def test_tag_add_restricted__audited(staff_client, world):
    admin_client = staff_client  # an organisation admin: see test_superuser_not_member__*
    response = admin_client.post(
        add_url("projects.tag"),
        {
            "project": world.project.pk,
            "label": "payments",
            "color": "#ff0000",
            "is_restricted": "on",
        },
    )
    assert response.status_code == 302
    tag = Tag.objects.get(label="payments")
    assert tag.is_restricted
    assert audited("tag", "created", tag).after["is_restricted"] is True


def test_tag_add__duplicate_label__service_error(admin_client, world):
    response = admin_client.post(
        add_url("projects.tag"),
        {"project": world.project.pk, "label": world.tag.label.upper(), "color": "#ff0000"},
    )
    assert response.status_code == 200
    assert "A tag with this label already exists in the project." in errors(response)


def test_tag_delete__named_by_a_grant__refused_with_message(admin_client, staff_client, world):
    response = admin_client.post(delete_url(world.tag), {"post": "yes"}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    # a project admin, and a superuser (an organisation admin everywhere): the tag is in use
    assert messages == [
        "Tag 'acme-beta' is named by the grants of 'Acme role'; remove it from them first."
    ]
    assert Tag.objects.filter(pk=world.tag.pk).exists()
    assert not AuditLogEntry.objects.filter(object_type="tag", action="deleted").exists()


def test_segment_delete__has_overrides__refused_with_message(admin_client, world):
    response = admin_client.post(delete_url(world.segment), {"post": "yes"}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and "override(s)" in messages[0], messages
    assert Segment.objects.filter(pk=world.segment.pk).exists()
    assert not AuditLogEntry.objects.filter(object_type="segment", action="deleted").exists()


def test_tag_update_and_delete__audited(admin_client, world):
    tag = f.TagFactory(project=world.project, label="loose")
    assert edit(admin_client, tag, label="free").status_code == 302
    assert audited("tag", "updated", tag).after["label"] == "free"
    assert admin_client.post(delete_url(tag), {"post": "yes"}).status_code == 302
    assert audited("tag", "deleted", tag)


# -- environments, features, segments --------------------------------------------------------


def test_environment_add__audited_with_default_states(staff_client, world):
    response = staff_client.post(
        add_url("environments.environment"),
        {"project": world.project.pk, "name": "staging", "minimum_change_request_approvals": ""},
    )
    assert response.status_code == 302
    env = Environment.objects.get(name="staging")
    assert audited("environment", "created", env).after["default_states_created"] == 2


def test_environment_update_threshold__audited(admin_client, world):
    assert (
        edit(admin_client, world.environment, minimum_change_request_approvals="2").status_code
        == 302
    )
    entry = audited("environment", "updated", world.environment)
    assert entry.after["minimum_change_request_approvals"] == 2


def test_environment_delete__audited(admin_client, world):
    assert admin_client.post(delete_url(world.environment), {"post": "yes"}).status_code == 302
    assert audited("environment", "deleted", world.environment)


def test_feature_add_with_tags__audited(staff_client, world):
    admin_client = staff_client  # an organisation admin: see test_superuser_not_member__*
    response = admin_client.post(
        add_url("features.feature"),
        {"project": world.project.pk, "name": "new_checkout", "tags": [world.tag.pk]},
    )
    assert response.status_code == 302
    feature = Feature.objects.get(name="new_checkout")
    assert audited("feature", "created", feature).after["tags"] == [world.tag.pk]


def test_feature_add__tag_of_another_project__service_error(superuser_client, world, other_world):
    response = superuser_client.post(
        add_url("features.feature"),
        {"project": world.project.pk, "name": "new_checkout", "tags": [other_world.tag.pk]},
    )
    assert response.status_code == 200
    assert any("Tags not in this project" in e for e in errors(response))
    assert not Feature.objects.filter(name="new_checkout").exists()


def test_feature_update_tags__audited(staff_client, world):
    admin_client = staff_client  # an organisation admin: see test_superuser_not_member__*
    assert edit(admin_client, world.feature, tags=[str(world.tag.pk)]).status_code == 302
    entry = audited("feature", "updated", world.feature)
    assert (entry.before["tags"], entry.after["tags"]) == ([], [world.tag.pk])


def test_feature_delete__audited(admin_client, world):
    assert admin_client.post(delete_url(world.feature), {"post": "yes"}).status_code == 302
    assert audited("feature", "deleted", world.feature)


def test_segment_add__valid_or_invalid_rules__saved_audited_or_form_error(admin_client, world):
    ok = admin_client.post(
        add_url("features.segment"), {"project": world.project.pk, "name": "beta", "rules": "[]"}
    )
    assert ok.status_code == 302
    assert audited("segment", "created", Segment.objects.get(name="beta"))
    bad = admin_client.post(
        add_url("features.segment"), {"project": world.project.pk, "name": "gamma", "rules": "{}"}
    )
    assert bad.status_code == 200
    assert "Must be a JSON list of rules." in errors(bad)
    bad_operator = admin_client.post(
        add_url("features.segment"),
        {
            "project": world.project.pk,
            "name": "delta",
            "rules": '[{"type": "ALL", "conditions": [{"property": "p", "operator": "LIKE", "value": "x"}]}]',
        },
    )
    assert bad_operator.status_code == 200
    assert any(
        e.startswith("rules[0].conditions[0].operator: Must be one of")
        for e in errors(bad_operator)
    )
    assert not Segment.objects.filter(name__in=["gamma", "delta"]).exists()


# -- grants (any principal) -------------------------------------------------------------------


def grant_add(client, **fields):
    data = form_data(client.get(add_url("permissions.grant")))
    data.update({k: v for k, v in fields.items() if v is not None})
    return client.post(add_url("permissions.grant"), data)


def test_grant_add__user_project_grant__audited(admin_client, world):
    user = f.member(world.organisation)
    response = grant_add(
        admin_client,
        user=str(user.pk),
        organisation=str(world.organisation.pk),
        project=str(world.project.pk),
        **{f"key__{VIEW_PROJECT}": "on", f"key__{CREATE_FEATURE}": "on"},
    )
    assert response.status_code == 302, errors(response)
    grant = Grant.objects.get(user=user)
    assert sorted(e.key for e in grant.entries.all()) == [CREATE_FEATURE, VIEW_PROJECT]
    assert audited("grant", "created", grant)
    assert engine.allowed(user, CREATE_FEATURE, world.project)


def test_grant_add__tags_on_user_grant__error_names_key(admin_client, world):
    user = f.member(world.organisation)
    response = grant_add(
        admin_client,
        user=str(user.pk),
        organisation=str(world.organisation.pk),
        environment=str(world.environment.pk),
        **{f"tags__{UPDATE_FEATURE_STATE}": [str(world.tag.pk)]},
    )
    assert response.status_code == 200
    assert (
        f"Only role grants may carry tags; remove the tags of: {UPDATE_FEATURE_STATE}."
        in errors(response)
    )
    assert not Grant.objects.filter(user=user).exists()


def test_grant_add__key_of_another_level__error_names_key(admin_client, world):
    user = f.member(world.organisation)
    response = grant_add(
        admin_client,
        user=str(user.pk),
        organisation=str(world.organisation.pk),
        project=str(world.project.pk),
        **{f"key__{VIEW_ENVIRONMENT}": "on"},
    )
    assert response.status_code == 200
    assert any(
        e.startswith(f"{VIEW_ENVIRONMENT} is a environment permission") for e in errors(response)
    )


def test_grant_add__two_principals__error(admin_client, world):
    response = grant_add(
        admin_client,
        user=str(world.member.pk),
        group=str(world.group.pk),
        organisation=str(world.organisation.pk),
    )
    assert response.status_code == 200
    assert "Choose exactly one principal: a user, a group or a role." in errors(response)


def test_grant_add__non_member_user__service_error(superuser_client, world, other_world):
    response = grant_add(
        superuser_client,
        user=str(other_world.member.pk),
        organisation=str(world.organisation.pk),
        project=str(world.project.pk),
        **{f"key__{VIEW_PROJECT}": "on"},
    )
    assert response.status_code == 200
    assert "This user is not a member of this organisation." in errors(response)


def test_grant_change__entries__audited(admin_client, world):
    response = edit(admin_client, world.user_grant, **{f"key__{CREATE_FEATURE}": ""})
    assert response.status_code == 302
    entry = audited("grant", "updated", world.user_grant)
    assert [e["permission_key"] for e in entry.after["permissions"]] == [VIEW_PROJECT]


def test_grant_change__role_grant_unsupported_tag__error(admin_client, world):
    response = edit(
        admin_client, world.role_grant, **{f"tags__{VIEW_ENVIRONMENT}": [str(world.tag.pk)]}
    )
    assert response.status_code == 200
    assert "VIEW_ENVIRONMENT does not support tags." in errors(response)


def test_grant_delete__audited(admin_client, world):
    assert admin_client.post(delete_url(world.user_grant), {"post": "yes"}).status_code == 302
    assert audited("grant", "deleted", world.user_grant)


# -- superusers who are not members ------------------------------------------------------------
# Services that check their actor (groups, protected tags, creator grants) refuse a superuser
# who is not a member of the organisation, as they would any non-member: the admin shows
# their error and saves nothing. (Superusers act as organisation admins by joining.)


def test_superuser_not_member__group_change__allowed_as_organisation_admin(
    superuser_client, superuser, world
):
    other = f.member(world.organisation)
    response = edit(superuser_client, world.group, users=[str(other.pk)])
    assert response.status_code == 302
    assert list(world.group.users.all()) == [other]
    assert audited("user_group", "updated", world.group).actor_user == superuser


def test_superuser_not_member__restricted_tag__created_as_project_admin(superuser_client, world):
    response = superuser_client.post(
        add_url("projects.tag"),
        {
            "project": world.project.pk,
            "label": "payments",
            "color": "#ff0000",
            "is_restricted": "on",
        },
    )
    assert response.status_code == 302
    assert Tag.objects.get(label="payments").is_restricted


def test_superuser_member_admin__group_change__allowed(superuser_client, superuser, world):
    f.MembershipFactory(user=superuser, organisation=world.organisation, role=MembershipRole.ADMIN)
    other = f.member(world.organisation)
    assert edit(superuser_client, world.group, users=[str(other.pk)]).status_code == 302
