"""Grant writes previewed on the (scope, key) pairs their rows changed, for the principals the
holder reaches (`impact.grant_writes`; docs/PERFORMANCE.md, "How the costs follow the work"):
the same answer as from the whole organisation's snapshots, in the cases where a principal's
other holders, admin flags, organisation keys and API keys decide it."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from impact import previews
from impact.changes import cycle_collection_paused
from impact.feature_counts import project_feature_index
from permissions.catalogue import (
    CREATE_PROJECT,
    DELETE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.engine import KeyState
from permissions.services import EntryInput, grant_update
from projects.models import Project
from tests import factories as f

pytestmark = pytest.mark.django_db

UNTAGGED = KeyState(admin=False, untagged=True, tags=frozenset())


@pytest.fixture
def org(organisation: Any, project: Any, environment: Any) -> Any:
    """One project, one environment, 5 features: 2 tagged `payments`, 3 untagged."""
    organisation.project, organisation.environment = project, environment
    organisation.payments = f.TagFactory(project=project, label="payments")
    organisation.features = [f.FeatureFactory(project=project, tags=[organisation.payments])]
    organisation.features.append(f.FeatureFactory(project=project, tags=[organisation.payments]))
    organisation.features += [f.FeatureFactory(project=project) for _ in range(3)]
    return organisation


def scoped_and_whole(org: Any, change: Any, holder: tuple[str, int]) -> dict[str, Any]:
    """The preview of a grant write, scoped to its holder, after checking that it equals the
    one from the whole organisation's snapshots."""
    whole = previews.impact_preview(organisation_id=org.pk, change=change)
    scoped = previews.impact_preview(organisation_id=org.pk, change=change, grants_of=holder)
    assert scoped == whole
    return scoped.as_dict()


def changed(grant: Any, entries: list[EntryInput], *, admin: bool | None = None) -> Any:
    def change() -> None:
        grant_update(grant=grant, entries=entries, admin=admin, actor=None)

    return change


def features_of(listed: list[dict[str, Any]], key: str) -> dict[int, int | None]:
    return {
        row.get("user", row.get("api_key")): row["features"]
        for row in listed
        if row["permission"] == key
    }


def test_user_grant_untagged__user_tagged_through_a_group__gains_only_the_other_features(
    org: Any,
) -> None:
    user = f.member(org)
    group = f.UserGroupFactory(organisation=org, users=[user])
    f.grant(group, org.environment, {UPDATE_FEATURE_STATE: [org.payments]})
    grant = f.grant(user, org.environment, [VIEW_ENVIRONMENT])

    listed = scoped_and_whole(
        org,
        changed(grant, [EntryInput(VIEW_ENVIRONMENT), EntryInput(UPDATE_FEATURE_STATE)]),
        ("user", user.pk),
    )

    assert features_of(listed["gained"], UPDATE_FEATURE_STATE) == {user.pk: 3}


def test_role_grant_untagged__direct_assignee_tagged_through_a_group__gains_the_others(
    org: Any,
) -> None:
    direct, through_group = f.member(org), f.member(org)
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, user=direct)
    f.RoleAssignmentFactory(
        role=role, group=f.UserGroupFactory(organisation=org, users=[through_group])
    )
    other_group = f.UserGroupFactory(organisation=org, users=[direct])
    f.grant(other_group, org.environment, {UPDATE_FEATURE_STATE: [org.payments]})
    grant = f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    listed = scoped_and_whole(
        org,
        changed(grant, [EntryInput(VIEW_ENVIRONMENT), EntryInput(UPDATE_FEATURE_STATE)]),
        ("role", role.pk),
    )

    assert features_of(listed["gained"], UPDATE_FEATURE_STATE) == {
        direct.pk: 3,
        through_group.pk: 5,
    }


def test_project_grant_made_admin__project_and_environment_keys_gained(org: Any) -> None:
    user = f.member(org)
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, user=user)
    grant = f.grant(role, org.project, [VIEW_PROJECT])

    listed = scoped_and_whole(
        org, changed(grant, [EntryInput(VIEW_PROJECT)], admin=True), ("role", role.pk)
    )

    gained = {(row["permission"], row["environment"]) for row in listed["gained"]}
    assert (DELETE_FEATURE, None) in gained
    assert (UPDATE_FEATURE_STATE, org.environment.pk) in gained
    assert (VIEW_PROJECT, None) not in gained  # held before, held after
    assert listed["lost"] == []


def test_organisation_grant_key_added__the_key_gained_at_organisation_level(org: Any) -> None:
    user = f.member(org)
    grant = f.grant(user, org, [])

    listed = scoped_and_whole(org, changed(grant, [EntryInput(CREATE_PROJECT)]), ("user", user.pk))

    assert [(r["user"], r["permission"], r["project"]) for r in listed["gained"]] == [
        (user.pk, CREATE_PROJECT, None)
    ]


def test_role_held_by_an_api_key__the_key_gains(org: Any) -> None:
    api_key = f.APIKeyFactory(organisation=org)
    role = f.RoleFactory(organisation=org)
    f.RoleAssignmentFactory(role=role, api_key=api_key)
    grant = f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    listed = scoped_and_whole(
        org,
        changed(
            grant,
            [
                EntryInput(VIEW_ENVIRONMENT),
                EntryInput(UPDATE_FEATURE_STATE, tags=(org.payments.pk,)),
            ],
        ),
        ("role", role.pk),
    )

    assert features_of(listed["gained"], UPDATE_FEATURE_STATE) == {api_key.pk: 2}


def test_role_held_by_admins_and_a_superuser__they_are_never_listed(org: Any) -> None:
    admin = f.member(org, admin=True)
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw-2026")
    member = f.member(org)
    role = f.RoleFactory(organisation=org)
    for user in (admin, superuser, member):
        f.RoleAssignmentFactory(role=role, user=user)
    grant = f.grant(role, org.environment, [VIEW_ENVIRONMENT])

    listed = scoped_and_whole(
        org,
        changed(grant, [EntryInput(VIEW_ENVIRONMENT), EntryInput(UPDATE_FEATURE_STATE)]),
        ("role", role.pk),
    )

    assert features_of(listed["gained"], UPDATE_FEATURE_STATE) == {member.pk: 5}


# --------------------------------------------------------------------------------------
# The project's feature index, kept per features_version
# --------------------------------------------------------------------------------------


def test_feature_index__feature_created__a_new_version_and_the_new_feature_counted(
    org: Any,
) -> None:
    before = Project.objects.get(pk=org.project.pk).features_version
    assert project_feature_index(org.project.pk).reached(UNTAGGED).bit_count() == 5

    f.FeatureFactory(project=org.project)

    assert Project.objects.get(pk=org.project.pk).features_version != before
    assert project_feature_index(org.project.pk).reached(UNTAGGED).bit_count() == 6


@pytest.mark.parametrize(
    "write", ["tag_removed", "tag_restricted", "tag_deleted", "feature_deleted"]
)
def test_feature_index__features_or_tags_written__never_the_kept_index(
    org: Any, write: str
) -> None:
    tagged = KeyState(admin=False, untagged=False, tags=frozenset({org.payments.pk}))
    assert project_feature_index(org.project.pk).reached(tagged).bit_count() == 2

    if write == "tag_removed":
        org.features[0].tags.remove(org.payments)
    elif write == "tag_restricted":
        org.payments.is_restricted = True
        org.payments.save()
    elif write == "tag_deleted":
        org.payments.delete()
    else:
        org.features[0].delete()

    reached = project_feature_index(org.project.pk).reached(tagged)
    assert (
        reached.bit_count()
        == {"tag_removed": 1, "tag_restricted": 2, "tag_deleted": 0, "feature_deleted": 1}[write]
    )
    untagged_reach = project_feature_index(org.project.pk).reached(UNTAGGED).bit_count()
    assert (
        untagged_reach
        == {"tag_removed": 5, "tag_restricted": 3, "tag_deleted": 5, "feature_deleted": 4}[write]
    )


def test_cycle_collection_paused__restored_even_when_the_work_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), cycle_collection_paused():
        assert not gc.isenabled()
        raise RuntimeError("the comparison failed")
    assert gc.isenabled()
