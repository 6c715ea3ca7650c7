"""Impact previews by example (docs/PERMISSIONS.md, "Seeing a change before making it"): who
gains and who loses what when one change is made. The property test
(`test_impact_property.py`) holds the module to the reference on random changes; these are
the readable cases."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from features.services import feature_update
from impact import changes, previews
from organisations.models import MembershipRole, OrganisationMembership, RoleAssignment
from organisations.services import (
    group_update,
    membership_delete,
    membership_update,
    role_assignment_create,
)
from permissions.catalogue import (
    CREATE_PROJECT,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
    Level,
)
from permissions.models import Grant
from permissions.services import EntryInput, grant_update
from projects.services import tag_update
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(organisation: Any, project: Any, environment: Any) -> Any:
    """An organisation with one project and one environment, 5 features: 2 tagged `payments`,
    1 tagged `beta`, 2 untagged."""
    organisation.project = project
    organisation.environment = environment
    organisation.payments = f.TagFactory(project=project, label="payments")
    organisation.beta = f.TagFactory(project=project, label="beta")
    organisation.features = [
        f.FeatureFactory(project=project, tags=[organisation.payments]),
        f.FeatureFactory(project=project, tags=[organisation.payments]),
        f.FeatureFactory(project=project, tags=[organisation.beta]),
        f.FeatureFactory(project=project),
        f.FeatureFactory(project=project),
    ]
    return organisation


def preview(org: Any, change: Any) -> dict[str, Any]:
    """The preview's `gained` and `lost` (its `summary`: tests/permissions/test_impact_limit.py)."""
    listed = previews.impact_preview(organisation_id=org.pk, change=change).as_dict()
    return {"gained": listed["gained"], "lost": listed["lost"]}


def row(
    principal: Any,
    key: str,
    project: Any = None,
    environment: Any = None,
    features: int | None = None,
) -> dict[str, Any]:
    """One change of an impact answer (docs/PERMISSIONS.md)."""
    who: dict[str, Any] = (
        {"api_key": principal.pk, "email": None, "name": principal.name}
        if hasattr(principal, "prefix")
        else {"user": principal.pk, "email": principal.email}
    )
    return {
        **who,
        "permission": key,
        "project": project.pk if project is not None else None,
        "environment": environment.pk if environment is not None else None,
        "features": features,
    }


def role_held_by(org: Any, *users: Any, through_group: Any = ()) -> Any:
    role = f.RoleFactory(organisation=org)
    for user in users:
        f.RoleAssignmentFactory(role=role, user=user)
    if through_group:
        group = f.UserGroupFactory(organisation=org, users=list(through_group))
        f.RoleAssignmentFactory(role=role, group=group)
    return role


# --------------------------------------------------------------------------------------
# Grants
# --------------------------------------------------------------------------------------


def test_role_gains_a_tagged_entry__its_holders_gain_the_features_carrying_the_tag(
    org: Any,
) -> None:
    direct, through_group, bystander = f.member(org), f.member(org), f.member(org)
    role = role_held_by(org, direct, through_group=[through_group])
    grant = f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    result = preview(
        org,
        lambda: grant_update(
            grant=grant,
            entries=[
                EntryInput(VIEW_ENVIRONMENT),
                EntryInput(UPDATE_FEATURE_STATE, tags=(org.payments.pk,)),
            ],
            actor=None,
        ),
    )

    assert result == {
        "gained": [
            row(user, UPDATE_FEATURE_STATE, org.project, org.environment, features=2)
            for user in sorted((direct, through_group), key=lambda u: u.pk)
        ],
        "lost": [],
    }
    assert bystander.pk not in {r["user"] for r in result["gained"]}


def test_role_gains_an_entry_tagged_with_a_tag_no_feature_carries__nobody_gains(
    org: Any,
) -> None:
    role = role_held_by(org, f.member(org))
    grant = f.grant(role, org.environment, [VIEW_ENVIRONMENT])
    unused = f.TagFactory(project=org.project, label="unused")

    result = previews.impact_preview(
        organisation_id=org.pk,
        change=lambda: grant_update(
            grant=grant,
            entries=[
                EntryInput(VIEW_ENVIRONMENT),
                EntryInput(UPDATE_FEATURE_STATE, tags=(unused.pk,)),
            ],
            actor=None,
        ),
    )

    assert not result
    assert result.as_dict() == {"gained": [], "lost": [], "summary": [], "truncated": False}


def test_admin_toggled_on_a_project_grant__gains_every_project_and_environment_key(
    org: Any,
) -> None:
    user = f.member(org)
    second_environment = f.EnvironmentFactory(project=org.project)
    grant = f.grant(user, org.project, [VIEW_PROJECT])
    n_features = len(org.features)

    def expected(key: str, environment: Any = None) -> dict[str, Any]:
        count = n_features if key in TAG_SUPPORTED_KEYS else None
        return row(user, key, org.project, environment, features=count)

    result = preview(org, lambda: grant_update(grant=grant, admin=True, actor=None))

    assert result["lost"] == []
    assert result["gained"] == [
        *(expected(k) for k in sorted(KEYS_BY_LEVEL[Level.PROJECT]) if k != VIEW_PROJECT),
        *(expected(k, org.environment) for k in sorted(KEYS_BY_LEVEL[Level.ENVIRONMENT])),
        *(expected(k, second_environment) for k in sorted(KEYS_BY_LEVEL[Level.ENVIRONMENT])),
    ]


def test_admin_toggled_on_a_project_grant_of_an_organisation_admin__nobody_gains(
    org: Any,
) -> None:
    admin = f.member(org, admin=True)
    grant = f.grant(admin, org.project, [VIEW_PROJECT])

    assert preview(org, lambda: grant_update(grant=grant, admin=True, actor=None)) == {
        "gained": [],
        "lost": [],
    }


def test_admin_toggled_on_a_project_grant_of_a_superuser_member__nobody_gains(
    org: Any,
) -> None:
    """An active superuser is an organisation admin (docs/PERMISSIONS.md, "Superusers")
    whatever its membership role: it already holds every key, so it gains none."""
    superuser = f.member(org)
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    grant = f.grant(superuser, org.project, [VIEW_PROJECT])

    assert preview(org, lambda: grant_update(grant=grant, admin=True, actor=None)) == {
        "gained": [],
        "lost": [],
    }


def test_member_removed__superuser_member__loses_nothing(org: Any) -> None:
    superuser, plain = f.member(org), f.member(org)
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    f.grant(superuser, org.project, [VIEW_PROJECT])
    f.grant(plain, org.project, [VIEW_PROJECT])

    def remove(user: Any) -> Any:
        membership = OrganisationMembership.objects.get(organisation=org, user=user)
        return lambda: membership_delete(membership=membership, actor=None)

    assert preview(org, remove(superuser)) == {"gained": [], "lost": []}
    assert preview(org, remove(plain))["lost"] != []


# --------------------------------------------------------------------------------------
# Groups, membership, API keys
# --------------------------------------------------------------------------------------


def test_user_removed_from_a_group__loses_what_the_group_gave(org: Any) -> None:
    leaving, staying = f.member(org), f.member(org)
    group = f.UserGroupFactory(organisation=org, users=[leaving, staying])
    f.grant(group, org.environment, [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE])

    result = preview(org, lambda: group_update(group=group, users=[staying], actor=None))

    assert result == {
        "gained": [],
        "lost": [
            row(leaving, UPDATE_FEATURE_STATE, org.project, org.environment, features=5),
            row(leaving, VIEW_ENVIRONMENT, org.project, org.environment),
        ],
    }


def test_user_removed_from_a_group__keeps_what_another_path_gives(org: Any) -> None:
    leaving = f.member(org)
    group = f.UserGroupFactory(organisation=org, users=[leaving])
    f.grant(group, org.environment, [VIEW_ENVIRONMENT])
    f.grant(leaving, org.environment, [VIEW_ENVIRONMENT])

    assert preview(org, lambda: group_update(group=group, users=[], actor=None)) == {
        "gained": [],
        "lost": [],
    }


def test_member_removed__loses_everything_organisation_keys_included(org: Any) -> None:
    f.member(org, admin=True)  # the organisation keeps an ADMIN
    leaving = f.member(org)
    role = role_held_by(org, leaving)
    f.grant(role, org, [CREATE_PROJECT])
    f.grant(leaving, org.project, [VIEW_PROJECT, DELETE_FEATURE])
    membership = OrganisationMembership.objects.get(organisation=org, user=leaving)

    result = preview(org, lambda: membership_delete(membership=membership, actor=None))

    assert result == {
        "gained": [],
        "lost": [
            row(leaving, CREATE_PROJECT),
            row(leaving, DELETE_FEATURE, org.project, features=5),
            row(leaving, VIEW_PROJECT, org.project),
        ],
    }


def test_member_promoted_to_admin__gains_every_key_it_did_not_hold(org: Any) -> None:
    f.member(org, admin=True)
    user = f.member(org)
    f.grant(user, org, [CREATE_PROJECT])
    membership = OrganisationMembership.objects.get(organisation=org, user=user)

    result = preview(
        org,
        lambda: membership_update(membership=membership, role=MembershipRole.ADMIN, actor=None),
    )

    gained = {(r["permission"], r["project"], r["environment"]) for r in result["gained"]}
    assert (CREATE_PROJECT, None, None) not in gained  # it held that one already
    assert (VIEW_PROJECT, org.project.pk, None) in gained
    assert (UPDATE_FEATURE_STATE, org.project.pk, org.environment.pk) in gained
    assert result["lost"] == []


def test_role_assigned_to_an_api_key__the_key_is_shown_as_api_key(org: Any) -> None:
    api_key = f.APIKeyFactory(organisation=org)
    role = f.RoleFactory(organisation=org)
    f.grant(role, org.environment, {VIEW_ENVIRONMENT: [], UPDATE_FEATURE_STATE: [org.beta]})

    result = preview(org, lambda: role_assignment_create(role=role, api_key=api_key, actor=None))

    assert result == {
        "gained": [
            row(api_key, UPDATE_FEATURE_STATE, org.project, org.environment, features=1),
            row(api_key, VIEW_ENVIRONMENT, org.project, org.environment),
        ],
        "lost": [],
    }
    assert result["gained"][0]["api_key"] == api_key.pk and "user" not in result["gained"][0]


def test_role_assigned_to_a_revoked_api_key__nobody_gains(org: Any) -> None:
    api_key = f.APIKeyFactory(organisation=org, revoked=True)
    role = f.RoleFactory(organisation=org)
    f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    assert preview(org, lambda: role_assignment_create(role=role, api_key=api_key, actor=None)) == {
        "gained": [],
        "lost": [],
    }


# --------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------


def test_tag_restricted__untagged_holders_lose_its_features_and_roles_naming_it_keep_them(
    org: Any,
) -> None:
    untagged_holder, payments_holder = f.member(org), f.member(org)
    f.grant(untagged_holder, org.environment, [UPDATE_FEATURE_STATE])
    role = role_held_by(org, payments_holder)
    f.grant(role, org.environment, {UPDATE_FEATURE_STATE: [org.payments]})

    result = preview(org, lambda: tag_update(tag=org.payments, is_restricted=True, actor=None))

    assert result == {
        "gained": [],
        "lost": [
            row(untagged_holder, UPDATE_FEATURE_STATE, org.project, org.environment, features=2)
        ],
    }


def test_tag_restricted__project_admins_keep_its_features(org: Any) -> None:
    project_admin = f.member(org)
    f.grant(project_admin, org.project, [], admin=True)

    assert preview(org, lambda: tag_update(tag=org.payments, is_restricted=True, actor=None)) == {
        "gained": [],
        "lost": [],
    }


def test_feature_tag_added__holders_of_a_role_with_that_tag_gain_one_feature(org: Any) -> None:
    beta_holder, untagged_holder = f.member(org), f.member(org)
    role = role_held_by(org, beta_holder)
    f.grant(role, org.environment, {UPDATE_FEATURE_STATE: [org.beta]})
    f.grant(untagged_holder, org.environment, [UPDATE_FEATURE_STATE])
    untagged_feature = org.features[3]

    result = preview(
        org, lambda: feature_update(feature=untagged_feature, tags=[org.beta], actor=None)
    )

    assert result == {
        "gained": [
            row(beta_holder, UPDATE_FEATURE_STATE, org.project, org.environment, features=1)
        ],
        "lost": [],
    }


# --------------------------------------------------------------------------------------
# Preview and apply
# --------------------------------------------------------------------------------------


def test_preview__saves_nothing_and_writes_no_audit_entry(org: Any) -> None:
    user = f.member(org)
    grant = f.grant(user, org.environment, [VIEW_ENVIRONMENT])

    result = previews.impact_preview(
        organisation_id=org.pk, change=lambda: grant_update(grant=grant, entries=[], actor=None)
    )

    assert result  # the user would lose VIEW_ENVIRONMENT
    assert list(Grant.objects.get(pk=grant.pk).entries.values_list("key", flat=True)) == [
        VIEW_ENVIRONMENT
    ]
    assert not AuditLogEntry.objects.filter(organisation=org).exists()


def test_preview__an_invalid_change_raises_its_error_and_saves_nothing(org: Any) -> None:
    user = f.member(org)
    grant = f.grant(user, org.environment, [VIEW_ENVIRONMENT])

    with pytest.raises(ValidationError) as raised:
        previews.impact_preview(
            organisation_id=org.pk,
            change=lambda: grant_update(
                grant=grant,
                entries=[EntryInput(UPDATE_FEATURE_STATE, tags=(org.beta.pk,))],  # user: no tags
                actor=None,
            ),
        )

    assert "permissions" in raised.value.message_dict
    assert Grant.objects.get(pk=grant.pk).entries.count() == 1


def test_apply__stores_the_summary_on_the_audit_entries_the_change_wrote(org: Any) -> None:
    user = f.member(org)
    role = f.RoleFactory(organisation=org)
    f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    assignment, result = previews.impact_apply(
        organisation_id=org.pk,
        change=lambda: role_assignment_create(role=role, user=user, actor=None),
    )

    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()
    assert result.as_dict()["gained"] == [row(user, VIEW_ENVIRONMENT, org.project, org.environment)]
    assert result.as_dict()["lost"] == []
    (entry,) = AuditLogEntry.objects.filter(organisation=org)
    assert entry.object_type == "role_assignment"
    assert entry.impact == result.summary()
    assert entry.impact["gained_total"] == 1 and entry.impact["principals"] == 1


def test_apply__a_change_that_changes_nothing_writes_nothing(org: Any) -> None:
    user = f.member(org)
    grant = f.grant(user, org.environment, [VIEW_ENVIRONMENT])

    _, result = previews.impact_apply(
        organisation_id=org.pk,
        change=lambda: grant_update(
            grant=grant, entries=[EntryInput(VIEW_ENVIRONMENT)], actor=None
        ),
    )

    assert not result
    assert not AuditLogEntry.objects.filter(organisation=org).exists()


def test_apply__an_audited_change_nobody_gains_or_loses_by__stores_an_empty_summary(
    org: Any,
) -> None:
    user = f.member(org)
    group = f.UserGroupFactory(organisation=org, users=[user])
    group_grant = f.grant(group, org.environment, [VIEW_ENVIRONMENT])
    f.grant(user, org.environment, [VIEW_ENVIRONMENT])  # the user keeps it this way

    _, result = previews.impact_apply(
        organisation_id=org.pk,
        change=lambda: grant_update(grant=group_grant, entries=[], actor=None),
    )

    assert not result
    (entry,) = AuditLogEntry.objects.filter(organisation=org)
    assert entry.impact == changes.Impact().summary()
    assert entry.impact["gained_total"] == entry.impact["lost_total"] == 0


# --------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------


def _change(user_id: int, key: str) -> changes.ImpactChange:
    return changes.ImpactChange(
        principal_type="user",
        principal_id=user_id,
        name=f"user{user_id}@example.com",
        permission=key,
        project_id=1,
        environment_id=None,
        features=None,
    )


def test_summary__keeps_the_first_changes_each_way_and_the_totals() -> None:
    gained = (_change(1, CREATE_PROJECT), _change(1, VIEW_PROJECT), _change(2, VIEW_PROJECT))
    lost = (_change(3, VIEW_PROJECT),)

    summary = changes.Impact(gained=gained, lost=lost).summary(limit=2)

    assert summary == {
        "gained": [c.as_dict() for c in gained[:2]],
        "lost": [lost[0].as_dict()],
        "gained_total": 3,
        "lost_total": 1,
        "principals": 3,
        "truncated": True,
    }


def test_summary__within_the_limit__is_not_truncated() -> None:
    gained = (_change(1, CREATE_PROJECT), _change(2, VIEW_PROJECT))

    summary = changes.Impact(gained=gained).summary(limit=2)

    assert summary["truncated"] is False
    assert summary["gained"] == [c.as_dict() for c in gained]
    assert (summary["gained_total"], summary["lost_total"], summary["principals"]) == (2, 0, 2)
