"""`manage.py seed_demo`: builds the demo organisation through the services, is safe to run
twice, and `--reset` rebuilds it. Facts checked here are about stored rows, not decisions of
the engine."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import Feature, FeatureState, Segment, SegmentOverride
from organisations.models import (
    MembershipRole,
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.models import Grant, GrantEntry
from projects.models import Project, Tag

pytestmark = pytest.mark.django_db
User = get_user_model()

USERNAMES = ["admin", "alice", "bob", "carol", "dave", "erin"]


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_api_key(output: str) -> str:
    match = re.search(r"shown this once:\n\s+(\S+)", output)
    assert match, output
    return match.group(1)


def counts() -> dict[str, int]:
    return {
        "organisations": Organisation.objects.count(),
        "memberships": OrganisationMembership.objects.count(),
        "groups": UserGroup.objects.count(),
        "roles": Role.objects.count(),
        "role_assignments": RoleAssignment.objects.count(),
        "api_keys": OrganisationAPIKey.objects.count(),
        "projects": Project.objects.count(),
        "environments": Environment.objects.count(),
        "tags": Tag.objects.count(),
        "features": Feature.objects.count(),
        "default_states": FeatureState.objects.filter(segment_override=None).count(),
        "override_states": FeatureState.objects.exclude(segment_override=None).count(),
        "segments": Segment.objects.count(),
        "segment_overrides": SegmentOverride.objects.count(),
        "grants": Grant.objects.count(),
        "users": User.objects.count(),
    }


EXPECTED = {
    "organisations": 1,
    "memberships": 6,
    "groups": 3,
    "roles": 4,
    # Payments engineer → Payments team; Release approver and Payments approver → carol;
    # Growth marketer → Growth and → the ci-pipeline key.
    "role_assignments": 5,
    "api_keys": 1,
    "projects": 2,
    "environments": 5,
    "tags": 7,
    "features": 17,
    "default_states": 12 * 3 + 5 * 2,
    "override_states": 1,
    "segments": 1,
    "segment_overrides": 1,
    # creators' project admin grants (2), Payments engineer (3), Release approver (1),
    # Payments approver (1), Growth marketer (3), erin (1), QA (1)
    "grants": 12,
    "users": 6,
}


@pytest.fixture
def output(db: Any) -> str:
    return seed()


def acme() -> Organisation:
    return Organisation.objects.get(name="Acme Inc")


def entries(role_name: str, **scope: Any) -> dict[str, list[str]]:
    grant = Grant.objects.get(role__name=role_name, **scope)
    return {
        e.key: sorted(t.label for t in e.tags.all())
        for e in GrantEntry.objects.filter(grant=grant).prefetch_related("tags")
    }


def test_seed_demo__counts(output: str) -> None:
    assert counts() == EXPECTED


def test_seed_demo__users_members_and_passwords(output: str) -> None:
    organisation = acme()
    roles = dict(
        OrganisationMembership.objects.filter(organisation=organisation).values_list(
            "user__username", "role"
        )
    )
    assert roles == {
        "admin": MembershipRole.ADMIN,
        "alice": MembershipRole.ADMIN,
        "bob": MembershipRole.USER,
        "carol": MembershipRole.USER,
        "dave": MembershipRole.USER,
        "erin": MembershipRole.USER,
    }
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not User.objects.exclude(username="admin").filter(is_superuser=True).exists()
    for username in USERNAMES:
        password = f"demo-{username}-2026"
        assert User.objects.get(username=username).check_password(password)
        assert re.search(rf"^\s+{username}\b.*{re.escape(password)}", output, re.M), username


def test_seed_demo__groups_and_their_members(output: str) -> None:
    members = {
        g.name: sorted(u.username for u in g.users.all())
        for g in UserGroup.objects.filter(organisation=acme())
    }
    assert members == {"Payments team": ["bob", "carol"], "Growth": ["dave"], "QA": ["erin"]}


def test_seed_demo__role_assignments(output: str) -> None:
    assigned = sorted(
        (a.role.name, a.user.username if a.user else a.group.name if a.group else a.api_key.name)
        for a in RoleAssignment.objects.select_related("role", "user", "group", "api_key")
    )
    assert assigned == [
        ("Growth marketer", "Growth"),
        ("Growth marketer", "ci-pipeline"),
        ("Payments approver", "carol"),
        ("Payments engineer", "Payments team"),
        ("Release approver", "carol"),
    ]


def test_seed_demo__payments_engineer_entries_are_tagged_payments(output: str) -> None:
    for environment in ("Production", "Staging"):
        assert entries(
            "Payments engineer", project__name="Checkout", environment__name=environment
        ) == {
            "UPDATE_FEATURE_STATE": ["payments"],
            "CREATE_CHANGE_REQUEST": ["payments"],
            "VIEW_ENVIRONMENT": [],
        }
    assert entries("Payments engineer", project__name="Checkout", environment=None) == {
        "VIEW_PROJECT": [],
        "DELETE_FEATURE": ["payments"],
    }


def test_seed_demo__release_approver_and_growth_marketer_entries(output: str) -> None:
    assert entries("Release approver", environment__name="Production") == {
        "APPROVE_CHANGE_REQUEST": []
    }
    assert entries("Payments approver", environment__name="Production") == {
        "APPROVE_CHANGE_REQUEST": ["payments"]
    }
    growth = entries("Growth marketer", environment__name="Staging")
    assert growth["UPDATE_FEATURE_STATE"] == ["experiments", "growth"]


def test_seed_demo__user_and_group_grants(output: str) -> None:
    erin = Grant.objects.get(user__username="erin")
    assert (erin.project.name, erin.environment, erin.admin) == ("Checkout", None, False)
    assert list(erin.entries.values_list("key", flat=True)) == ["VIEW_PROJECT"]
    qa = Grant.objects.get(group__name="QA")
    assert (qa.project.name, qa.environment.name) == ("Checkout", "Staging")
    assert list(qa.entries.values_list("key", flat=True)) == ["VIEW_ENVIRONMENT"]
    creators = sorted(
        Grant.objects.filter(admin=True).values_list("user__username", "project__name")
    )
    assert creators == [("admin", "Checkout"), ("alice", "Mobile app")]


def test_seed_demo__projects_environments_tags_and_features(output: str) -> None:
    checkout = Project.objects.get(organisation=acme(), name="Checkout")
    thresholds = dict(checkout.environments.values_list("name", "minimum_change_request_approvals"))
    assert thresholds == {"Development": None, "Staging": None, "Production": 1}
    tags = dict(checkout.tags.values_list("label", "is_restricted"))
    assert tags == {"payments": True, "growth": False, "experiments": False, "ui": False}
    features = checkout.features.prefetch_related("tags")
    assert features.count() == 12
    tag_sets = {x.name: {t.label for t in x.tags.all()} for x in features}
    assert sum(1 for labels in tag_sets.values() if not labels) >= 2
    assert sum(1 for labels in tag_sets.values() if len(labels) >= 2) >= 3
    assert any("payments" in labels for labels in tag_sets.values())
    mobile = Project.objects.get(organisation=acme(), name="Mobile app")
    assert sorted(mobile.environments.values_list("name", flat=True)) == [
        "Development",
        "Production",
    ]
    assert mobile.tags.exists() and mobile.features.exists()


def test_seed_demo__beta_users_override_in_staging(output: str) -> None:
    override = SegmentOverride.objects.select_related("segment", "environment").get()
    assert override.segment.name == "beta users"
    assert (override.environment.name, override.environment.project.name) == (
        "Staging",
        "Checkout",
    )
    assert override.feature.name == "checkout_redesign_2026"
    assert override.feature_state.feature == override.feature
    assert override.feature_state.enabled is True


def test_seed_demo__printed_api_key_authenticates_with_growth_marketer(output: str) -> None:
    api_key = OrganisationAPIKey.objects.get_from_key(printed_api_key(output))
    assert (api_key.name, api_key.is_admin, api_key.organisation) == ("ci-pipeline", False, acme())
    assert [a.role.name for a in api_key.role_assignments.all()] == ["Growth marketer"]


def test_seed_demo__every_grant_audited(output: str) -> None:
    assert (
        AuditLogEntry.objects.filter(object_type="grant", action="created").count()
        == Grant.objects.count()
    )
    assert AuditLogEntry.objects.filter(organisation=acme()).count() > 40


def test_seed_demo__run_twice__second_run_changes_nothing_and_reprints_users(
    output: str,
) -> None:
    before = counts()
    audit_before = AuditLogEntry.objects.count()
    again = seed()
    assert "already exists" in again
    for username in USERNAMES:
        assert f"demo-{username}-2026" in again
    assert counts() == before
    assert AuditLogEntry.objects.count() == audit_before


def test_seed_demo__reset__rebuilds_with_the_same_users(output: str) -> None:
    old_organisation = acme()
    user_ids = sorted(User.objects.values_list("pk", flat=True))
    old_key = printed_api_key(output)
    again = seed("--reset")
    assert "Deleted demo organisation" in again
    assert counts() == EXPECTED
    assert acme().pk != old_organisation.pk
    assert sorted(User.objects.values_list("pk", flat=True)) == user_ids
    with pytest.raises(OrganisationAPIKey.DoesNotExist):
        OrganisationAPIKey.objects.get_from_key(old_key)
    OrganisationAPIKey.objects.get_from_key(printed_api_key(again))


def test_seed_demo__reset_without_demo__builds_it(db: Any) -> None:
    seed("--reset")
    assert counts() == EXPECTED


def test_seed_demo__users_already_exist__reused(db: Any) -> None:
    User.objects.create_user(username="bob", password="something-else")
    seed()
    assert counts() == EXPECTED
    assert User.objects.get(username="bob").check_password("demo-bob-2026")


def test_seed_demo__carol_on_production__may_approve_payments_and_unrestricted_features(
    output: str,
) -> None:
    from permissions.catalogue import APPROVE_CHANGE_REQUEST
    from permissions.engine import allowed

    production = Environment.objects.get(project__name="Checkout", name="Production")
    carol = User.objects.get(username="carol")
    dave = User.objects.get(username="dave")
    payments_feature = Feature.objects.get(project=production.project, name="apple_pay")
    unrestricted = Feature.objects.exclude(tags__is_restricted=True).filter(
        project=production.project
    )[0]
    assert allowed(carol, APPROVE_CHANGE_REQUEST, production, feature=payments_feature)
    assert allowed(carol, APPROVE_CHANGE_REQUEST, production, feature=unrestricted)
    assert not allowed(dave, APPROVE_CHANGE_REQUEST, production, feature=payments_feature)


def test_seed_demo__growth_restricted_dry_run__the_worked_example_of_permissions_md(
    output: str,
) -> None:
    """docs/PERMISSIONS.md, "Seeing a change before making it": restricting `growth` too."""
    from tests.support.clients import token_client

    checkout = Project.objects.get(name="Checkout")
    growth = Tag.objects.get(project=checkout, label="growth")
    staging, production = (
        Environment.objects.get(project=checkout, name=name) for name in ("Staging", "Production")
    )
    client = token_client(User.objects.get(username="admin"))

    response = client.patch(
        f"/api/v1/projects/{checkout.pk}/tags/{growth.pk}/?dry_run=true",
        {"is_restricted": True},
        format="json",
    )

    assert response.status_code == 200
    impact = response.json()["impact"]
    assert impact["gained"] == []
    lost = {
        (row["email"].split("@")[0], row["permission"], row["environment"], row["features"])
        for row in impact["lost"]
    }
    one_feature = {
        (who, key, environment, 1)
        for who in ("bob", "carol")
        for key in ("CREATE_CHANGE_REQUEST", "UPDATE_FEATURE_STATE")
        for environment in (staging.pk, production.pk)
    }
    assert lost == one_feature | {
        ("bob", "DELETE_FEATURE", None, 1),
        ("carol", "DELETE_FEATURE", None, 1),
        ("carol", "APPROVE_CHANGE_REQUEST", production.pk, 4),
    }
    assert not Tag.objects.get(pk=growth.pk).is_restricted
