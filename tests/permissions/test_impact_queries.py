"""Impact previews cost a fixed number of queries, whatever the organisation's size: the same
change previewed on a small organisation and on one with 10× the users, groups and features
costs exactly as many queries (two snapshots of 8 queries, the change itself, the emails),
never a query per user, group or feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from features.models import Feature
from features.services import feature_update
from impact import previews
from organisations.models import OrganisationMembership, UserGroup
from organisations.services import group_update, membership_delete, role_assignment_create
from permissions.catalogue import APPROVE_CHANGE_REQUEST, UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from permissions.models import Grant
from permissions.services import EntryInput, grant_update
from projects.models import Tag
from projects.services import tag_update
from tests import factories as f

pytestmark = pytest.mark.django_db

# The preview's own queries, on top of the change's: two snapshots of 8 queries, and the
# emails of the users reached (its savepoint costs what the change's own transaction would).
MAX_OVERHEAD = 17
# In all, with the change (the largest here: a member's removal, 20 queries on its own).
MAX_QUERIES = 40


def org_of(scale: int) -> dict[str, Any]:
    """An organisation with 3×scale members in 2×scale groups (3 each), a role held by every
    member (half directly, half through the groups) with a tagged environment grant, and
    5×scale features over three tags (one restricted); plus, whatever the scale, two members
    with an untagged grant and one member holding nothing."""
    environment = f.EnvironmentFactory()
    project = environment.project
    org = project.organisation
    f.member(org, admin=True)
    users = [f.member(org) for _ in range(3 * scale)]
    groups = [
        f.UserGroupFactory(
            organisation=org, users=[users[(3 * i + j) % len(users)] for j in range(3)]
        )
        for i in range(2 * scale)
    ]
    role = f.RoleFactory(organisation=org)
    for user in users[::2]:
        f.RoleAssignmentFactory(role=role, user=user)
    for i, group in enumerate(groups):
        f.RoleAssignmentFactory(role=role, group=group)
        # the first group alone gives APPROVE_CHANGE_REQUEST
        f.grant(group, environment, [VIEW_ENVIRONMENT, *[APPROVE_CHANGE_REQUEST][i:]])
    beta = f.TagFactory(project=project, label="beta")
    payments = f.TagFactory(project=project, label="payments")
    restricted = f.TagFactory(project=project, label="restricted", is_restricted=True)
    Feature.objects.bulk_create(
        [Feature(project=project, name=f"feature_{i}") for i in range(5 * scale)]
    )
    features = list(Feature.objects.filter(project=project).order_by("pk"))
    Feature.tags.through.objects.bulk_create(
        [
            Feature.tags.through(feature_id=ft.pk, tag_id=(beta, payments, restricted)[i % 3].pk)
            for i, ft in enumerate(features)
        ]
    )
    grant = f.grant(role, environment, {UPDATE_FEATURE_STATE: [beta]})
    for _ in range(2):
        f.grant(f.member(org), environment, [UPDATE_FEATURE_STATE])
    return {
        "org": org,
        "users": users,
        "outsider": f.member(org),
        "groups": groups,
        "role": role,
        "grant": grant,
        "beta": beta,
        "payments": payments,
        "features": features,
    }


def _role_gains_a_tag(o: dict[str, Any]) -> None:
    grant = Grant.objects.get(pk=o["grant"].pk)
    tags = (o["beta"].pk, o["payments"].pk)
    grant_update(grant=grant, entries=[EntryInput(UPDATE_FEATURE_STATE, tags=tags)], actor=None)


def _member_removed(o: dict[str, Any]) -> None:
    membership = OrganisationMembership.objects.get(organisation=o["org"], user=o["users"][0])
    membership_delete(membership=membership, actor=None)


def _group_emptied(o: dict[str, Any]) -> None:
    group_update(group=UserGroup.objects.get(pk=o["groups"][0].pk), users=[], actor=None)


def _tag_restricted(o: dict[str, Any]) -> None:
    tag_update(tag=Tag.objects.get(pk=o["payments"].pk), is_restricted=True, actor=None)


def _feature_tagged(o: dict[str, Any]) -> None:
    feature = Feature.objects.get(pk=o["features"][0].pk)
    feature_update(feature=feature, tags=[o["payments"]], actor=None)


def _role_assigned(o: dict[str, Any]) -> None:
    role_assignment_create(role=o["role"], user=o["outsider"], actor=None)


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "role gains a tag": _role_gains_a_tag,
    "member removed": _member_removed,
    "group emptied": _group_emptied,
    "tag restricted": _tag_restricted,
    "feature tagged": _feature_tagged,
    "role assigned": _role_assigned,
}


def queries_of_preview(
    o: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> tuple[int, int]:
    """The queries of previewing `change`: in all, and on top of making the change alone."""
    with CaptureQueriesContext(connection) as alone, transaction.atomic():
        change(o)
        transaction.set_rollback(True)
    with CaptureQueriesContext(connection) as previewed:
        result = previews.impact_preview(organisation_id=o["org"].pk, change=lambda: change(o))
    assert result, "the change must move someone's permissions, or the test proves little"
    return len(previewed), len(previewed) - len(alone)


@pytest.mark.parametrize("name", CHANGES)
def test_preview__costs_as_many_queries_on_a_10x_organisation(name: str) -> None:
    small, large = org_of(1), org_of(10)
    assert (len(large["users"]), len(large["groups"]), len(large["features"])) == (
        10 * len(small["users"]),
        10 * len(small["groups"]),
        10 * len(small["features"]),
    )

    small_queries, small_overhead = queries_of_preview(small, CHANGES[name])
    large_queries, large_overhead = queries_of_preview(large, CHANGES[name])

    assert small_queries == large_queries <= MAX_QUERIES
    assert small_overhead == large_overhead <= MAX_OVERHEAD


def test_grant_write_preview__scoped_to_the_holder__same_queries_on_a_10x_organisation() -> None:
    """A grant write previewed with `grants_of` reads only what the holder reaches: as many
    queries whatever the organisation's size, and the same impact as the organisation-wide
    preview."""
    counts = []
    for scale in (1, 10):
        o = org_of(scale)
        holder = ("role", o["role"].pk)
        with CaptureQueriesContext(connection) as captured:
            scoped = previews.impact_preview(
                organisation_id=o["org"].pk,
                change=lambda o=o: _role_gains_a_tag(o),
                grants_of=holder,
            )
        whole = previews.impact_preview(
            organisation_id=o["org"].pk, change=lambda o=o: _role_gains_a_tag(o)
        )
        assert scoped and scoped == whole
        counts.append(len(captured))
    assert counts[0] == counts[1] <= MAX_QUERIES
