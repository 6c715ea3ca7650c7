"""`bench.generate_org` at tiny sizes: counts, validity, reproducibility, benchmark users."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from bench.generate_org import (
    BENCH_ADMIN,
    BENCH_TAGGED,
    BENCH_UNTAGGED,
    LARGE_PROJECT,
    SMALL_PROJECT_FEATURES,
    TAGGED_GROUP_PREFIX,
    UNTAGGED_GROUP,
    Progress,
    generate_org,
)
from environments.models import Environment
from features.models import Feature, FeatureState
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions import engine
from permissions.catalogue import (
    CATALOGUE,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    Level,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Project, Tag

User = get_user_model()

SIZES = {
    "members": 24,
    "groups": 9,
    "roles": 34,
    "tags": 12,
    "projects": 3,
    "environments_per_project": 2,
    "features": 40,
}


def generate(seed: int = 1, **overrides: Any) -> Organisation:
    generate_org(seed=seed, verbosity=0, **{**SIZES, **overrides})
    return Organisation.objects.get(name="Bench organisation")


def snapshot(organisation: Organisation) -> dict[str, Any]:
    """Everything random, by name (database ids differ between runs)."""
    features = {
        (f.project.name, f.name): sorted(t.label for t in f.tags.all())
        for f in Feature.objects.filter(project__organisation=organisation)
        .select_related("project")
        .prefetch_related("tags")
    }
    groups = {
        g.name: sorted(u.username for u in g.users.all())
        for g in UserGroup.objects.filter(organisation=organisation).prefetch_related("users")
    }
    assignments = sorted(
        (a.role.name, a.group.name if a.group else "", a.user.username if a.user else "")
        for a in RoleAssignment.objects.filter(role__organisation=organisation).select_related(
            "role", "group", "user"
        )
    )
    entries = sorted(
        (
            str(e.grant.principal),
            e.grant.project.name if e.grant.project else "",
            e.grant.environment.name if e.grant.environment else "",
            e.grant.admin,
            e.key,
            tuple(sorted(t.label for t in e.tags.all())),
        )
        for e in GrantEntry.objects.filter(grant__organisation=organisation)
        .select_related(
            "grant__project", "grant__environment", "grant__user", "grant__group", "grant__role"
        )
        .prefetch_related("tags")
    )
    restricted = sorted(
        Tag.objects.filter(project__organisation=organisation, is_restricted=True).values_list(
            "label", flat=True
        )
    )
    return {
        "features": features,
        "groups": groups,
        "assignments": assignments,
        "entries": entries,
        "restricted": restricted,
    }


def test_generate_org__default_sizes__expected_row_counts(db: Any) -> None:
    organisation = generate()
    assert OrganisationMembership.objects.filter(organisation=organisation).count() == 24
    assert UserGroup.objects.filter(organisation=organisation).count() == 9
    assert Role.objects.filter(organisation=organisation).count() == 34
    projects = Project.objects.filter(organisation=organisation)
    assert projects.count() == 3
    assert Environment.objects.filter(project__organisation=organisation).count() == 6
    assert Tag.objects.filter(project__organisation=organisation).count() == 12
    large = projects.get(name=LARGE_PROJECT)
    assert Feature.objects.filter(project=large).count() == 40
    for project in projects.exclude(pk=large.pk):
        assert Feature.objects.filter(project=project).count() == SMALL_PROJECT_FEATURES
    # One default state per feature and environment of its project, as the signals would.
    states = FeatureState.objects.filter(environment__project__organisation=organisation)
    assert states.filter(segment_override__isnull=True).count() == (40 + 2 * 10) * 2
    pairs = Counter(states.values_list("feature_id", "environment_id"))
    assert set(pairs.values()) == {1}
    assert not states.exclude(feature__project_id=models_f("environment__project_id")).exists()
    assert set(states.values_list("enabled", "version").distinct()) == {(False, 1)}


def models_f(name: str) -> Any:
    from django.db.models import F

    return F(name)


def test_generate_org__every_row__valid_for_its_model(db: Any) -> None:
    organisation = generate()
    for feature in Feature.objects.filter(project__organisation=organisation).prefetch_related(
        "tags"
    ):
        tags = list(feature.tags.all())
        assert len(tags) <= 4
        assert all(t.project_id == feature.project_id for t in tags)
    restricted = Tag.objects.filter(project__organisation=organisation, is_restricted=True)
    assert restricted.exists()
    assert set(restricted.values_list("project__name", flat=True)) == {LARGE_PROJECT}

    entries = GrantEntry.objects.filter(grant__organisation=organisation).select_related("grant")
    assert entries.exists()
    for entry in entries:
        grant = entry.grant
        assert CATALOGUE[entry.key].level == grant.level
        tags = list(GrantEntryTag.objects.filter(entry=entry).select_related("tag"))
        if tags:
            assert grant.role_id is not None, "only role entries are tagged"
            assert entry.key in TAG_SUPPORTED_KEYS
            assert 1 <= len(tags) <= 4
            assert all(t.tag.project_id == grant.project_id for t in tags)
    for grant in Grant.objects.filter(organisation=organisation):
        assert grant.project_id is not None
        if grant.environment_id is not None:
            assert grant.environment.project_id == grant.project_id
    # Every role is assigned to groups or users; every ordinary member is in some group.
    assert not Role.objects.filter(organisation=organisation, assignments__isnull=True).exists()
    members = User.objects.filter(username__startswith="member-")
    assert members.count() == 24 - 3
    assert not members.filter(user_groups__isnull=True).exists()


def test_generate_org__same_seed__same_organisation(db: Any) -> None:
    first = snapshot(generate(seed=7))
    Organisation.objects.all().delete()
    User.objects.all().delete()
    second = snapshot(generate(seed=7))
    assert first == second
    Organisation.objects.all().delete()
    User.objects.all().delete()
    other = snapshot(generate(seed=8))
    assert other["features"] != first["features"]


def test_generate_org__benchmark_users__hold_their_documented_access(db: Any) -> None:
    organisation = generate()
    large = Project.objects.get(organisation=organisation, name=LARGE_PROJECT)
    large_envs = list(Environment.objects.filter(project=large).select_related("project"))
    admin, untagged, tagged = (
        User.objects.get(username=n) for n in (BENCH_ADMIN, BENCH_UNTAGGED, BENCH_TAGGED)
    )
    role_of = dict(
        OrganisationMembership.objects.filter(organisation=organisation).values_list(
            "user__username", "role"
        )
    )
    assert role_of[BENCH_ADMIN] == MembershipRole.ADMIN
    assert role_of[BENCH_UNTAGGED] == role_of[BENCH_TAGGED] == MembershipRole.USER
    assert not admin.user_groups.exists()

    # bench-untagged: untagged user grants on the large project and each environment, and a
    # group with untagged grants; no role at all.
    assert list(untagged.user_groups.values_list("name", flat=True)) == [UNTAGGED_GROUP]
    assert not RoleAssignment.objects.filter(user=untagged).exists()
    assert not RoleAssignment.objects.filter(group__users=untagged).exists()
    user_grants = Grant.objects.filter(user=untagged)
    assert {g.environment_id for g in user_grants if g.environment_id} == {e.pk for e in large_envs}
    assert user_grants.filter(project=large, environment__isnull=True).exists()
    assert not GrantEntryTag.objects.filter(entry__grant__user=untagged).exists()
    group_envs = set(
        Grant.objects.filter(group__name=UNTAGGED_GROUP, environment__isnull=False).values_list(
            "environment_id", flat=True
        )
    )
    assert group_envs == {e.pk for e in large_envs}

    # bench-tagged: 30 roles, all through groups, each tagged on every large environment.
    assert set(tagged.user_groups.values_list("name", flat=True)) == {
        f"{TAGGED_GROUP_PREFIX}{i}" for i in range(1, 6)
    }
    assert not RoleAssignment.objects.filter(user=tagged).exists()
    role_ids = set(
        RoleAssignment.objects.filter(group__users=tagged).values_list("role_id", flat=True)
    )
    assert len(role_ids) == 30
    assert not Grant.objects.filter(user=tagged).exists()
    assert not Grant.objects.filter(group__users=tagged).exists()
    for role_id in role_ids:
        for environment in large_envs:
            entry = GrantEntry.objects.get(
                grant__role_id=role_id, grant__environment=environment, key=UPDATE_FEATURE_STATE
            )
            assert entry.tags.exists()
    policy = engine.load_policy(tagged, organisation.pk)
    for environment in large_envs:
        rights = policy.rights_for(Level.ENVIRONMENT, environment.pk)
        assert rights is not None and not rights.admin
        assert not rights.untagged & TAG_SUPPORTED_KEYS
        assert rights.tagged[UPDATE_FEATURE_STATE]

    # And the engine agrees with the intended shapes on a feature they all can reach.
    environment = large_envs[0]
    tag_ids = policy.rights_for(Level.ENVIRONMENT, environment.pk).tagged[UPDATE_FEATURE_STATE]
    feature = (
        Feature.objects.filter(project=large, tags__in=tag_ids)
        .exclude(tags__is_restricted=True)
        .first()
    )
    assert feature is not None
    for user in (admin, untagged, tagged):
        assert engine.allowed(user, UPDATE_FEATURE_STATE, environment, feature)
        assert engine.allowed(user, VIEW_ENVIRONMENT, environment)
    assert not engine.allowed(tagged, UPDATE_FEATURE_STATE, environment)  # fail closed


def test_generate_org__fewer_roles_than_thirty__tagged_user_holds_them_all(db: Any) -> None:
    organisation = generate(roles=4, groups=3)
    tagged = User.objects.get(username=BENCH_TAGGED)
    roles = RoleAssignment.objects.filter(group__users=tagged, role__organisation=organisation)
    assert roles.values("role_id").distinct().count() == 4


def test_generate_org__organisation_exists__command_error(db: Any) -> None:
    generate()
    with pytest.raises(CommandError, match="already exists"):
        generate()
    with pytest.raises(CommandError, match="already exist"):
        generate(name="Another")


def test_generate_org__too_few_members__command_error(db: Any) -> None:
    with pytest.raises(CommandError, match="--members"):
        generate(members=2)


def test_progress__advanced_to_the_end__100_percent_on_its_stream_silent_when_disabled() -> None:
    stream = io.StringIO()
    progress = Progress(200, stream)
    for _ in range(4):
        progress.advance(50, "rows")
    progress.finish()
    assert "100%" in stream.getvalue()
    quiet = io.StringIO()
    Progress(10, quiet, enabled=False).advance(10, "rows")
    assert quiet.getvalue() == ""


def test_generate_org__done__prints_summary_with_benchmark_users(db: Any) -> None:
    out = io.StringIO()
    generate_org(seed=3, stdout=out, stderr=io.StringIO(), **SIZES)
    text = out.getvalue()
    for username in (BENCH_ADMIN, BENCH_UNTAGGED, BENCH_TAGGED):
        assert username in text
    assert "feature states" in text
