"""The admin's "Preview impact" step (docs/PERMISSIONS.md, "Seeing a change before making it"): on the change forms of roles (with their
inlines), grants, groups, tags, features and memberships, "Preview impact" validates the form
as a Save would, runs the same save in a transaction that is rolled back, and shows the
submitted form again with who would gain and who would lose what. Nothing is saved: no
object, no audit entry, no admin log entry, no success message. A real Save records the
impact on its audit entries."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditLogEntry
from features.models import Feature
from impact.admin_preview import PREVIEW_FIELD, ImpactRow
from organisations.models import (
    MembershipRole,
    OrganisationAPIKey,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Tag
from tests import factories as f
from tests.support.admin import (
    ASSIGNMENTS,
    ENV_GRANTS,
    World,
    errors,
    form_data,
    inline_prefix,
    new_row,
)

pytestmark = pytest.mark.django_db

NOTHING_SAVED = "Nothing was saved. Review the impact, then Save to apply."


def change_url(obj: Any) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def add_url(model: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_add")


def preview(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, PREVIEW_FIELD: "Preview impact"}


def save(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "_save": "Save"}


def state() -> dict[str, Any]:
    """Everything a preview must leave as it was."""
    return {
        "grants": sorted(Grant.objects.values_list("id", "admin")),
        "entries": sorted(GrantEntry.objects.values_list("grant_id", "key")),
        "entry_tags": sorted(GrantEntryTag.objects.values_list("entry_id", "tag_id")),
        "assignments": sorted(RoleAssignment.objects.values_list("id", flat=True)),
        "group_members": sorted(
            UserGroup.users.through.objects.values_list("usergroup_id", "user_id")
        ),
        "restricted": sorted(Tag.objects.filter(is_restricted=True).values_list("id", flat=True)),
        "roles": sorted(Role.objects.values_list("id", "name")),
        "audit": AuditLogEntry.objects.count(),
        "admin_log": LogEntry.objects.count(),
    }


def rows(response: Any, direction: str) -> set[tuple[Any, ...]]:
    """The impact table's rows of one direction: (who, key, project, environment, features)."""
    table = response.context["impact"]
    return {(r.who, r.permission, r.project, r.environment, r.features) for r in table[direction]}


def assert_previewed(response: Any) -> None:
    """The form shown again with the impact: no redirect, no error, no success message."""
    assert response.status_code == 200, response
    assert errors(response) == []
    page = response.content.decode()
    assert NOTHING_SAVED in page
    assert 'id="impact-preview"' in page
    assert not [m for m in get_messages(response.wsgi_request) if "success" in m.tags]


def restricted_reader(world: World) -> Any:
    """A member with an untagged UPDATE_FEATURE_STATE on the environment: reaches every
    feature that carries no restricted tag."""
    user = f.member(world.organisation, username="reader")
    f.grant(user, world.environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])
    return user


# -- the button ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj", ["role", "group", "user_grant", "tag", "feature"], ids=lambda name: name
)
def test_change_page__has_preview_button_beside_save(staff_client, world, obj):
    page = staff_client.get(change_url(getattr(world, obj))).content.decode()
    assert f'name="{PREVIEW_FIELD}"' in page
    assert page.index('name="_save"') < page.index(f'name="{PREVIEW_FIELD}"')


def test_view_only_page__no_preview_button(staff_client, world):
    # Assignments are never changed (only added and deleted): their page is view-only.
    page = staff_client.get(change_url(world.assignment)).content.decode()
    assert f'name="{PREVIEW_FIELD}"' not in page
    assert 'name="_save"' not in page


def test_other_admins__no_preview_button(staff_client, world):
    page = staff_client.get(change_url(world.project)).content.decode()
    assert f'name="{PREVIEW_FIELD}"' not in page


# -- roles: the inlines --------------------------------------------------------------------


def role_with_new_env_grant(client: Any, world: World, environment: Any) -> dict[str, Any]:
    response = client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ENV_GRANTS)
    row = new_row(data, prefix)
    data[f"{prefix}-{row}-environment"] = str(environment.pk)
    data[f"{prefix}-{row}-key__{VIEW_ENVIRONMENT}"] = "on"
    data[f"{prefix}-{row}-tags__{UPDATE_FEATURE_STATE}"] = [str(world.tag.pk)]
    return data


def test_role_preview__tagged_inline_grant__impact_shown_nothing_saved(staff_client, world):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    data = role_with_new_env_grant(staff_client, world, staging)
    before = state()

    response = staff_client.post(change_url(world.role), preview(data))

    assert_previewed(response)
    # The member holds the role through their group: VIEW_ENVIRONMENT, and
    # UPDATE_FEATURE_STATE on the one feature carrying the tag.
    assert rows(response, "gained") == {
        (world.member.email, VIEW_ENVIRONMENT, "Acme app", "staging", None),
        (world.member.email, UPDATE_FEATURE_STATE, "Acme app", "staging", 1),
    }
    assert rows(response, "lost") == set()
    page = response.content.decode()
    assert world.member.email in page and UPDATE_FEATURE_STATE in page
    assert state() == before
    assert not Grant.objects.filter(environment=staging).exists()


def test_role_preview__form_shown_again_with_the_submitted_data(staff_client, world):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    data = role_with_new_env_grant(staff_client, world, staging)
    data["name"] = "Renamed in the form"

    response = staff_client.post(change_url(world.role), preview(data))

    assert_previewed(response)
    form = response.context["adminform"].form
    assert form["name"].value() == "Renamed in the form"
    prefix = inline_prefix(response, ENV_GRANTS)
    formset = next(
        i.formset for i in response.context["inline_admin_formsets"] if i.formset.prefix == prefix
    )
    new = formset.forms[new_row(data, prefix)]
    assert new[f"tags__{UPDATE_FEATURE_STATE}"].value() == [str(world.tag.pk)]
    assert new["environment"].value() == str(staging.pk)
    world.role.refresh_from_db()
    assert world.role.name == "Acme role"


def test_role_save_after_preview__applied_and_audit_entry_carries_impact(staff_client, world):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    data = role_with_new_env_grant(staff_client, world, staging)
    staff_client.post(change_url(world.role), preview(data))

    response = staff_client.post(change_url(world.role), save(data))

    assert response.status_code == 302
    grant = Grant.objects.get(role=world.role, environment=staging)
    entry = AuditLogEntry.objects.get(object_type="grant", action="created", object_id=grant.pk)
    assert entry.impact["gained_total"] == 2 and entry.impact["lost_total"] == 0
    assert {
        (c["email"], c["permission"], c["environment"], c["features"])
        for c in entry.impact["gained"]
    } == {
        (world.member.email, VIEW_ENVIRONMENT, staging.pk, None),
        (world.member.email, UPDATE_FEATURE_STATE, staging.pk, 1),
    }
    assert "Impact: 2 gained, 0 lost (recorded in the audit log)." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]


def test_role_preview__assignment_removed__lost_shown_nothing_saved(staff_client, world):
    response = staff_client.get(change_url(world.role))
    data = form_data(response)
    data[f"{inline_prefix(response, ASSIGNMENTS)}-0-DELETE"] = "on"
    before = state()

    response = staff_client.post(change_url(world.role), preview(data))

    assert_previewed(response)
    assert rows(response, "gained") == set()
    assert (world.member.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1) in rows(
        response, "lost"
    )
    assert state() == before


def test_role_preview__unchanged_form__nothing_changes(staff_client, world):
    data = form_data(staff_client.get(change_url(world.role)))

    response = staff_client.post(change_url(world.role), preview(data))

    assert_previewed(response)
    assert response.context["impact"]["nothing"] is True
    assert "Nothing changes." in response.content.decode()


def test_role_preview__invalid_inline__form_error_no_impact_nothing_saved(staff_client, world):
    staging = f.EnvironmentFactory(project=world.project, name="staging")
    data = role_with_new_env_grant(staff_client, world, staging)
    (row,) = [k for k, v in data.items() if k.endswith("-environment") and v == str(staging.pk)]
    data[row.replace("-environment", f"-tags__{VIEW_ENVIRONMENT}")] = [str(world.tag.pk)]
    before = state()

    response = staff_client.post(change_url(world.role), preview(data))

    assert response.status_code == 200
    assert "VIEW_ENVIRONMENT does not support tags." in errors(response)
    assert "impact" not in response.context
    assert NOTHING_SAVED not in response.content.decode()
    assert state() == before


def test_role_preview__service_error__form_error_nothing_saved(staff_client, world):
    """The service refuses a second grant on the same environment while saving: the preview
    shows its error, as a Save would."""
    response = staff_client.get(change_url(world.role))
    data = form_data(response)
    prefix = inline_prefix(response, ENV_GRANTS)
    row = new_row(data, prefix)
    data[f"{prefix}-{row}-environment"] = str(world.environment.pk)
    data[f"{prefix}-{row}-key__{VIEW_ENVIRONMENT}"] = "on"
    before = state()

    response = staff_client.post(change_url(world.role), preview(data))

    assert response.status_code == 200
    assert any("already has a grant on this environment" in e for e in errors(response))
    assert "impact" not in response.context
    assert state() == before


def test_role_preview__staff_of_another_organisation__refused_nothing_saved(
    staff_client, world, other_world
):
    data = form_data(staff_client.get(change_url(world.role)))
    data["name"] = "Sneaky"
    before = state()

    response = staff_client.post(change_url(other_world.role), preview(data))

    assert response.status_code == 404
    assert state() == before


def test_role_preview__member_who_administers_nothing__404_nothing_saved(superuser_client, world):
    data = form_data(superuser_client.get(change_url(world.role)))
    data["name"] = "Sneaky"
    client = type(superuser_client)()
    client.force_login(f.member(world.organisation, username="plain-staff", is_staff=True))
    before = state()

    response = client.post(change_url(world.role), preview(data))

    assert response.status_code == 404  # roles are not shown to members who administer nothing
    assert state() == before


def test_role_delete__audit_entry_carries_impact(staff_client, world):
    url = reverse("admin:organisations_role_delete", args=[world.role.pk])

    assert staff_client.post(url, {"post": "yes"}).status_code == 302

    entry = AuditLogEntry.objects.get(object_type="role", action="deleted")
    assert (world.member.email, UPDATE_FEATURE_STATE, world.environment.pk, 1) in {
        (c["email"], c["permission"], c["environment"], c["features"]) for c in entry.impact["lost"]
    }


# -- groups ------------------------------------------------------------------------------------


def test_group_preview__user_added__gains_through_group_grants_and_roles(staff_client, world):
    newcomer = f.member(world.organisation, username="newcomer")
    data = form_data(staff_client.get(change_url(world.group)))
    data["users"] = [str(world.member.pk), str(newcomer.pk)]
    before = state()

    response = staff_client.post(change_url(world.group), preview(data))

    assert_previewed(response)
    gained = rows(response, "gained")
    assert {
        (newcomer.email, APPROVE_CHANGE_REQUEST, "Acme app", "production", 2),
        (newcomer.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1),
        (newcomer.email, VIEW_PROJECT, "Acme app", "", None),
    } <= gained
    assert {row[0] for row in gained} == {newcomer.email}
    assert state() == before

    assert staff_client.post(change_url(world.group), save(data)).status_code == 302
    assert set(world.group.users.all()) == {world.member, newcomer}
    entry = AuditLogEntry.objects.get(object_type="user_group", action="updated")
    assert entry.impact["gained_total"] == len(gained)


def test_group_save__no_permission_change__no_impact_message(staff_client, world):
    data = form_data(staff_client.get(change_url(world.group)))
    data["name"] = "Renamed group"

    response = staff_client.post(change_url(world.group), save(data))

    assert response.status_code == 302
    assert not [m for m in get_messages(response.wsgi_request) if "Impact:" in str(m)]
    entry = AuditLogEntry.objects.get(object_type="user_group", action="updated")
    assert entry.impact["gained_total"] == entry.impact["lost_total"] == 0


# -- grants ------------------------------------------------------------------------------------


@pytest.fixture(params=["superuser", "staff"])
def admin_client(request, superuser_client, staff_client):
    return superuser_client if request.param == "superuser" else staff_client


def test_grant_preview__key_removed__lost_shown_nothing_saved(admin_client, world):
    data = form_data(admin_client.get(change_url(world.user_grant)))
    data.pop(f"key__{CREATE_FEATURE}")
    before = state()

    response = admin_client.post(change_url(world.user_grant), preview(data))

    assert_previewed(response)
    assert rows(response, "lost") == {(world.member.email, CREATE_FEATURE, "Acme app", "", None)}
    assert rows(response, "gained") == set()
    assert state() == before

    assert admin_client.post(change_url(world.user_grant), save(data)).status_code == 302
    entry = AuditLogEntry.objects.get(object_type="grant", action="updated")
    assert [c["permission"] for c in entry.impact["lost"]] == [CREATE_FEATURE]


def test_grant_add_preview__new_grant__gained_shown_nothing_saved(staff_client, world):
    user = f.member(world.organisation, username="newbie")
    data = {
        "user": str(user.pk),
        "organisation": str(world.organisation.pk),
        "project": str(world.project.pk),
        f"key__{VIEW_PROJECT}": "on",
    }
    before = state()

    response = staff_client.post(add_url(Grant), preview(data))

    assert_previewed(response)
    assert rows(response, "gained") == {(user.email, VIEW_PROJECT, "Acme app", "", None)}
    assert response.context["adminform"].form["user"].value() == str(user.pk)
    assert state() == before


def test_grant_add_preview__no_scope__form_error_nothing_saved(staff_client, world):
    before = state()

    response = staff_client.post(add_url(Grant), preview({f"key__{VIEW_PROJECT}": "on"}))

    assert response.status_code == 200
    assert errors(response)
    assert "impact" not in response.context
    assert state() == before


# -- tags and features ------------------------------------------------------------------------


def test_tag_preview__restricted__untagged_holders_lose_its_features(staff_client, world):
    reader = restricted_reader(world)
    data = form_data(staff_client.get(change_url(world.tag)))
    data["is_restricted"] = "on"
    before = state()

    response = staff_client.post(change_url(world.tag), preview(data))

    assert_previewed(response)
    # The member's UPDATE_FEATURE_STATE names the tag: unaffected; their group's untagged
    # APPROVE_CHANGE_REQUEST, like the reader's untagged key, no longer reaches the feature.
    assert rows(response, "lost") == {
        (reader.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1),
        (world.member.email, APPROVE_CHANGE_REQUEST, "Acme app", "production", 1),
    }
    assert rows(response, "gained") == set()
    assert state() == before

    assert staff_client.post(change_url(world.tag), save(data)).status_code == 302
    world.tag.refresh_from_db()
    assert world.tag.is_restricted is True
    entry = AuditLogEntry.objects.get(object_type="tag", action="updated")
    assert entry.impact["lost_total"] == 2


def test_tag_preview__unrestricted__gain_shown(staff_client, world):
    reader = restricted_reader(world)
    f.FeatureFactory(project=world.project, name="paid", tags=[world.restricted_tag])
    data = form_data(staff_client.get(change_url(world.restricted_tag)))
    data.pop("is_restricted")

    response = staff_client.post(change_url(world.restricted_tag), preview(data))

    assert_previewed(response)
    assert rows(response, "gained") == {
        (reader.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1),
        (world.member.email, APPROVE_CHANGE_REQUEST, "Acme app", "production", 1),
    }
    assert Tag.objects.get(pk=world.restricted_tag.pk).is_restricted is True


def test_feature_preview__tag_removed__tagged_holders_lose_it(staff_client, world):
    data = form_data(staff_client.get(change_url(world.tagged_feature)))
    data["tags"] = []
    before_tags = list(world.tagged_feature.tags.all())
    audit_before = AuditLogEntry.objects.count()

    response = staff_client.post(change_url(world.tagged_feature), preview(data))

    assert_previewed(response)
    assert (world.member.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1) in rows(
        response, "lost"
    )
    assert list(world.tagged_feature.tags.all()) == before_tags
    assert AuditLogEntry.objects.count() == audit_before


def test_feature_add_preview__tagged_feature__holders_of_the_tag_gain_it(staff_client, world):
    data = {
        "project": str(world.project.pk),
        "name": "new_checkout",
        "tags": [str(world.tag.pk)],
    }
    before = state()

    response = staff_client.post(add_url(Feature), preview(data))

    assert_previewed(response)
    assert (world.member.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1) in rows(
        response, "gained"
    )
    assert not Feature.objects.filter(name="new_checkout").exists()
    assert state() == before


# -- role assignments and memberships ---------------------------------------------------------


def test_assignment_add_preview__user_gains_the_roles_keys(staff_client, world):
    user = f.member(world.organisation, username="assignee")
    before = state()

    response = staff_client.post(
        add_url(RoleAssignment), preview({"role": str(world.role.pk), "user": str(user.pk)})
    )

    assert_previewed(response)
    gained = rows(response, "gained")
    assert (user.email, UPDATE_FEATURE_STATE, "Acme app", "production", 1) in gained
    assert {row[0] for row in gained} == {user.email}
    assert state() == before


def test_membership_preview__promoted_to_admin__gains_shown_nothing_saved(staff_client, world):
    membership = world.member.organisation_memberships.get()
    data = form_data(staff_client.get(change_url(membership)))
    data["role"] = MembershipRole.ADMIN
    before = state()

    response = staff_client.post(change_url(membership), preview(data))

    assert_previewed(response)
    gained = rows(response, "gained")
    assert (world.member.email, CREATE_FEATURE, "Acme app", "", None) not in gained  # held
    assert any(row[1] == "CREATE_PROJECT" for row in gained)
    membership.refresh_from_db()
    assert membership.role == MembershipRole.USER
    assert state() == before


# -- the audit log -----------------------------------------------------------------------------


def test_audit_entry_page__shows_impact_table(superuser_client, world):
    response = superuser_client.get(change_url(world.user_grant))
    data = form_data(response)
    data.pop(f"key__{CREATE_FEATURE}")
    superuser_client.post(change_url(world.user_grant), save(data))
    entry = AuditLogEntry.objects.get(object_type="grant", action="updated")

    page = superuser_client.get(change_url(entry)).content.decode()

    assert "Lost (1)" in page and world.member.email in page and CREATE_FEATURE in page
    changelist = superuser_client.get(reverse("admin:audit_auditlogentry_changelist"))
    assert "+0 / −1" in changelist.content.decode()


def test_audit_entry_page__no_impact__dash(superuser_client, world):
    response = superuser_client.get(change_url(world.audit_entry))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<div class="readonly">—</div>' in page
    assert "Nothing changes." not in page and "Lost (" not in page


def test_impact_row__api_key__named_and_marked():
    from impact.admin_preview import impact_table

    table = impact_table(
        {
            "gained": [
                {
                    "api_key": 7,
                    "email": None,
                    "name": "ci",
                    "permission": VIEW_PROJECT,
                    "project": 999_999,
                    "environment": None,
                    "features": None,
                }
            ],
            "lost": [],
        }
    )
    assert table["gained"] == [ImpactRow("ci", "API key", VIEW_PROJECT, "#999999", "", None)]
    assert table["nothing"] is False


# -- API keys -------------------------------------------------------------------------------


def test_api_key_preview__revoked__its_roles_keys_lost_nothing_saved(staff_client, world):
    key = f.APIKeyFactory(organisation=world.organisation, name="deploy-bot")
    f.RoleAssignmentFactory(role=world.role, api_key=key)
    data = form_data(staff_client.get(change_url(key)))
    data["revoked"] = "on"
    before = state()

    response = staff_client.post(change_url(key), preview(data))

    assert_previewed(response)
    lost = rows(response, "lost")
    assert (
        "deploy-bot",
        UPDATE_FEATURE_STATE,
        "Acme app",
        "production",
        1,
    ) in lost
    assert {who for who, *_ in lost} == {"deploy-bot"}
    assert rows(response, "gained") == set()
    assert OrganisationAPIKey.objects.get(pk=key.pk).revoked is False
    assert state() == before

    assert staff_client.post(change_url(key), save(data)).status_code == 302
    assert OrganisationAPIKey.objects.get(pk=key.pk).revoked is True
    entry = AuditLogEntry.objects.get(object_type="organisation_api_key", action="updated")
    assert entry.impact["lost_total"] == len(lost)
