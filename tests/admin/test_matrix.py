"""The permission matrix of an environment: members × features, each cell the tag-supported
keys the member holds on the feature, as the engine decides; fast and constant-query."""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from features.models import Feature
from organisations.models import MembershipRole, OrganisationMembership, RoleAssignment
from permissions import engine
from permissions.admin.views import MATRIX_KEYS, matrix_rows, member_policies
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
)
from projects.models import Tag
from tests import factories as f

pytestmark = pytest.mark.django_db

User = get_user_model()


def matrix_url(environment) -> str:
    return reverse("admin:environments_environment_matrix", args=[environment.pk])


def cells_of(html: str, user) -> list[int]:
    """The masks of a member's row, in column order."""
    row = re.search(rf'<tr data-u="{user.pk}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {user}"
    return [int(m) for m in re.findall(r"<td class=m(\d+)>", row.group(1))]


def bit(key: str) -> int:
    return 1 << MATRIX_KEYS.index(key)


def test_matrix_keys__are_the_tag_supported_environment_keys():
    assert MATRIX_KEYS == (
        UPDATE_FEATURE_STATE,
        CREATE_CHANGE_REQUEST,
        APPROVE_CHANGE_REQUEST,
        MANAGE_SEGMENT_OVERRIDES,
    )


@pytest.mark.parametrize("who", ["superuser", "staff"])
def test_matrix__cells_show_the_engine_decisions(superuser_client, staff_client, world, who):
    client = superuser_client if who == "superuser" else staff_client
    response = client.get(matrix_url(world.environment))
    assert response.status_code == 200
    html = response.content.decode()
    # Columns in name order: acme_plain, acme_tagged.
    assert [c["name"] for c in response.context["columns"]] == ["acme_plain", "acme_tagged"]
    # The member: APPROVE untagged through their group; UPDATE_FEATURE_STATE tagged
    # acme-beta through their group's role.
    assert cells_of(html, world.member) == [
        bit(APPROVE_CHANGE_REQUEST),
        bit(APPROVE_CHANGE_REQUEST) | bit(UPDATE_FEATURE_STATE),
    ]
    if who == "staff":  # an organisation admin holds everything
        admin = response.wsgi_request.user
        assert cells_of(html, admin) == [15, 15]
        assert "org admin" in html


def test_matrix__filter_by_tag_and_name(superuser_client, world):
    response = superuser_client.get(matrix_url(world.environment), {"tag": world.tag.pk})
    assert [c["name"] for c in response.context["columns"]] == ["acme_tagged"]
    response = superuser_client.get(matrix_url(world.environment), {"q": "plain"})
    assert [c["name"] for c in response.context["columns"]] == ["acme_plain"]
    response = superuser_client.get(matrix_url(world.environment), {"member": "nobody"})
    assert response.context["member_count"] == 0


def test_matrix__links_from_environment_change_page(superuser_client, world):
    change = reverse("admin:environments_environment_change", args=[world.environment.pk])
    assert matrix_url(world.environment) in superuser_client.get(change).content.decode()


def test_matrix__staff__other_organisation__404(staff_client, world, other_world):
    assert staff_client.get(matrix_url(other_world.environment)).status_code == 404


def test_matrix__org_admin_not_staff__200(client, world):
    client.force_login(f.member(world.organisation, admin=True))
    assert client.get(matrix_url(world.environment)).status_code == 200


def test_matrix__member_who_may_view_environment__403(client, world):
    member = f.member(world.organisation)
    f.grant(member, world.environment, ["VIEW_ENVIRONMENT"])
    client.force_login(member)
    assert client.get(matrix_url(world.environment)).status_code == 403


def test_matrix__non_member__login(client, world):
    client.force_login(f.UserFactory(is_staff=True))
    response = client.get(matrix_url(world.environment))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_matrix__unknown_environment__404(superuser_client, world):
    assert (
        superuser_client.get(
            reverse("admin:environments_environment_matrix", args=[999999])
        ).status_code
        == 404
    )


def test_matrix_cell__redirects_to_explain(superuser_client, world):
    url = reverse("admin:environments_environment_matrix_explain", args=[world.environment.pk])
    response = superuser_client.get(url, {"u": world.member.pk, "f": world.feature.pk})
    assert response.status_code == 302
    assert response["Location"] == (
        reverse("admin:permissions_explain")
        + f"?environment={world.environment.pk}&user={world.member.pk}&feature={world.feature.pk}"
    )


def test_matrix_rows__agree_with_engine_allowed_for_every_cell(world):
    """Random grants, restricted tags and paths: every cell equals `engine.allowed`."""
    rng = random.Random(7)
    org, project, env = world.organisation, world.project, world.environment
    tags = [world.tag, world.restricted_tag] + [
        f.TagFactory(project=project, is_restricted=rng.random() < 0.3) for _ in range(4)
    ]
    for _ in range(12):
        f.FeatureFactory(project=project, tags=rng.sample(tags, rng.randint(0, 2)))
    users = [f.member(org, admin=rng.random() < 0.1) for _ in range(10)]
    groups = [f.UserGroupFactory(organisation=org, users=rng.sample(users, 3)) for _ in range(3)]
    for i in range(6):
        role = f.RoleFactory(organisation=org)
        principal = rng.choice([*users, *groups])
        if isinstance(principal, type(groups[0])):
            f.RoleAssignmentFactory(role=role, group=principal)
        else:
            f.RoleAssignmentFactory(role=role, user=principal)
        entries = {k: rng.sample(tags, rng.randint(0, 2)) for k in rng.sample(MATRIX_KEYS, 2)}
        f.grant(role, env, entries, admin=i == 0)
    f.grant(users[0], env, [UPDATE_FEATURE_STATE])
    memberships = list(
        OrganisationMembership.objects.filter(organisation=org).select_related("user")
    )
    feature_list = list(Feature.objects.filter(project=project).prefetch_related("tags"))
    policies = member_policies(org.pk, [m.user for m in memberships])
    rows = matrix_rows(env, memberships, feature_list, policies)
    for row in rows:
        user = User.objects.get(pk=row.user.pk)
        for feature, mask in zip(feature_list, row.masks, strict=True):
            for key in MATRIX_KEYS:
                expected = engine.allowed(user, key, env, Feature.objects.get(pk=feature.pk))
                assert bool(mask & bit(key)) == expected, (user, feature, key)


def build_organisation(members: int, features: int):
    """An organisation with `members` members in groups holding tagged role grants, and
    `features` features with tags (bulk-created: fast)."""
    env = f.EnvironmentFactory()
    org, project = env.project.organisation, env.project
    tags = [f.TagFactory(project=project, is_restricted=i % 5 == 0) for i in range(10)]
    start = User.objects.count()
    users = User.objects.bulk_create(
        [User(username=f"m{start + i}", email=f"m{start + i}@example.com") for i in range(members)]
    )
    OrganisationMembership.objects.bulk_create(
        [
            OrganisationMembership(
                user=u,
                organisation=org,
                role=MembershipRole.ADMIN if i == 0 else MembershipRole.USER,
            )
            for i, u in enumerate(users)
        ]
    )
    for g in range(10):
        group = f.UserGroupFactory(organisation=org, users=users[g::10])
        role = f.RoleFactory(organisation=org)
        RoleAssignment.objects.create(role=role, group=group)
        f.grant(role, env, {MATRIX_KEYS[g % 4]: [tags[g]], MATRIX_KEYS[(g + 1) % 4]: []})
    start = Feature.objects.count()
    created = Feature.objects.bulk_create(
        [Feature(project=project, name=f"flag_{start + i:05d}") for i in range(features)]
    )
    Through = Feature.tags.through
    Through.objects.bulk_create(
        [Through(feature_id=ft.pk, tag_id=tags[i % 10].pk) for i, ft in enumerate(created)]
        + [
            Through(feature_id=ft.pk, tag_id=tags[(i + 3) % 10].pk)
            for i, ft in enumerate(created)
            if i % 3
        ]
    )
    return env


def test_matrix__constant_number_of_queries(superuser_client):
    small = build_organisation(members=3, features=5)
    superuser_client.get(matrix_url(small))  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as few:
        assert superuser_client.get(matrix_url(small)).status_code == 200
    big = build_organisation(members=40, features=60)
    with CaptureQueriesContext(connection) as many:
        assert superuser_client.get(matrix_url(big)).status_code == 200
    assert len(many) == len(few)


def test_matrix__queries_do_not_grow_with_features(superuser_client):
    env = build_organisation(members=3, features=5)
    superuser_client.get(matrix_url(env))
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(matrix_url(env))
    Feature.objects.bulk_create([Feature(project=env.project, name=f"more_{i}") for i in range(50)])
    with CaptureQueriesContext(connection) as many:
        superuser_client.get(matrix_url(env))
    assert len(many) == len(few)


def test_matrix__200_members_by_500_features__every_cell_in_constant_queries(superuser_client):
    """Its speed is a benchmark row (bench/run.py, docs/PERFORMANCE.md), never a timed test."""
    env = build_organisation(members=200, features=500)
    superuser_client.get(matrix_url(env) + "?q=none")  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as captured:
        response = superuser_client.get(matrix_url(env))
    small = build_organisation(members=3, features=5)
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(matrix_url(small))
    assert response.status_code == 200
    assert len(captured) == len(few)
    html = response.content.decode()
    assert html.count("<td class=m") == 200 * 500
    # Tags decide: the first group's role reaches the features tagged with tags[0] (restricted).
    assert Tag.objects.filter(project=env.project, is_restricted=True).count() == 2
