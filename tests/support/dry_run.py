"""Shared by the `?dry_run=true` tests (tests/*/test_api_dry_run.py): one small organisation in
which every permission write has a target and a known impact, a snapshot of every table a
permission write can touch, the check every case goes through (preview, nothing saved,
then the same request applied with the previewed impact on its audit entries), and
`contract_tests`, the three tests every module runs over its own cases.

The organisation (`World`):
- `admin` (ADMIN member, the caller); `alice`, `bob`, `carol`, `dave`, `erin` (USER members);
  `outsider` (a user of no organisation);
- project `project` with one environment `environment`; tags `tag_a`, `tag_b`, `tag_c`;
  features `f1` [A], `f2` [A, B], `f3` [C];
- groups `group` {bob}, `group2` {dave}; API keys `key` (role holder), `key2` (role2 holder),
  `key3` (no role);
- `role` held by alice, `group` and `key`: organisation [CREATE_PROJECT], project
  {DELETE_FEATURE: [B]} (reaches f2), environment {UPDATE_FEATURE_STATE: [A]} (f1, f2);
- `role2` held by carol, `group2` and `key2`: no grants;
- alice's own grants: organisation [MANAGE_USER_GROUPS], project [CREATE_FEATURE],
  environment [CREATE_CHANGE_REQUEST]; `group`'s grants: the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditLogEntry
from features.models import Feature
from organisations.models import (
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.catalogue import (
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from projects.models import Tag
from tests import factories as f
from tests.support.clients import client_for

User = get_user_model()


@dataclass
class World:
    organisation: Any
    admin: Any
    alice: Any
    bob: Any
    carol: Any
    dave: Any
    erin: Any
    outsider: Any
    project: Any
    environment: Any
    tag_a: Any
    tag_b: Any
    tag_c: Any
    f1: Any
    f2: Any
    f3: Any
    group: Any
    group2: Any
    key: Any
    key2: Any
    key3: Any
    role: Any
    role2: Any
    grants: dict[str, Any]  # "<principal>_<level>" -> grant (alice_org, group_env, role_project...)
    assignments: dict[str, Any]  # "alice", "group", "key" -> the assignment of `role`

    @property
    def org_url(self) -> str:
        return f"/api/v1/organisations/{self.organisation.pk}"

    @property
    def project_url(self) -> str:
        return f"/api/v1/projects/{self.project.pk}"

    @property
    def environment_url(self) -> str:
        return f"/api/v1/environments/{self.environment.api_key}"

    def role_url(self, role: Any) -> str:
        return f"{self.org_url}/roles/{role.pk}"


def build_world() -> World:
    organisation = f.OrganisationFactory()
    admin = f.member(organisation, admin=True)
    alice, bob, carol, dave, erin = (f.member(organisation) for _ in range(5))
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    tag_a = f.TagFactory(project=project, label="a")
    tag_b = f.TagFactory(project=project, label="b")
    tag_c = f.TagFactory(project=project, label="c")
    group = f.UserGroupFactory(organisation=organisation, users=[bob])
    group2 = f.UserGroupFactory(organisation=organisation, users=[dave])
    key, key2, key3 = (f.APIKeyFactory(organisation=organisation) for _ in range(3))
    role = f.RoleFactory(organisation=organisation)
    role2 = f.RoleFactory(organisation=organisation)
    assignments = {
        "alice": f.RoleAssignmentFactory(role=role, user=alice),
        "group": f.RoleAssignmentFactory(role=role, group=group),
        "key": f.RoleAssignmentFactory(role=role, api_key=key),
    }
    f.RoleAssignmentFactory(role=role2, user=carol)
    f.RoleAssignmentFactory(role=role2, group=group2)
    f.RoleAssignmentFactory(role=role2, api_key=key2)
    grants = {
        "role_org": f.grant(role, organisation, [CREATE_PROJECT]),
        "role_project": f.grant(role, project, {DELETE_FEATURE: [tag_b]}),
        "role_env": f.grant(role, environment, {UPDATE_FEATURE_STATE: [tag_a]}),
    }
    for name, principal in (("alice", alice), ("group", group)):
        grants[f"{name}_org"] = f.grant(principal, organisation, [MANAGE_USER_GROUPS])
        grants[f"{name}_project"] = f.grant(principal, project, [CREATE_FEATURE])
        grants[f"{name}_env"] = f.grant(principal, environment, [CREATE_CHANGE_REQUEST])
    return World(
        organisation=organisation,
        admin=admin,
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        erin=erin,
        outsider=f.UserFactory(),
        project=project,
        environment=environment,
        tag_a=tag_a,
        tag_b=tag_b,
        tag_c=tag_c,
        f1=f.FeatureFactory(project=project, tags=[tag_a]),
        f2=f.FeatureFactory(project=project, tags=[tag_a, tag_b]),
        f3=f.FeatureFactory(project=project, tags=[tag_c]),
        group=group,
        group2=group2,
        key=key,
        key2=key2,
        key3=key3,
        role=role,
        role2=role2,
        grants=grants,
        assignments=assignments,
    )


# --------------------------------------------------------------------------------------
# Expected impacts
# --------------------------------------------------------------------------------------


def change(
    principal: Any,
    key: str,
    project: Any = None,
    environment: Any = None,
    features: int | None = None,
) -> dict[str, Any]:
    """One change of an impact (docs/PERMISSIONS.md, "Seeing a change before making it"): a user with their email, or an API key with its name."""
    if isinstance(principal, OrganisationAPIKey):
        who: dict[str, Any] = {"api_key": principal.pk, "email": None, "name": principal.name}
    else:
        who = {"user": principal.pk, "email": principal.email}
    return {
        **who,
        "permission": key,
        "project": project.pk if project is not None else None,
        "environment": environment.pk if environment is not None else None,
        "features": features,
    }


def canonical(changes: list[dict[str, Any]]) -> list[str]:
    """Changes compared whatever their order."""
    return sorted(json.dumps(c, sort_keys=True) for c in changes)


# --------------------------------------------------------------------------------------
# What a write may touch
# --------------------------------------------------------------------------------------


def db_state() -> dict[str, list[Any]]:
    """Every row a permission write can create, change or delete (values, not only counts),
    and the audit log."""
    return {
        "grants": list(Grant.objects.order_by("pk").values()),
        "entries": list(GrantEntry.objects.order_by("pk").values()),
        "entry_tags": list(GrantEntryTag.objects.order_by("pk").values()),
        "assignments": list(RoleAssignment.objects.order_by("pk").values()),
        "roles": list(Role.objects.order_by("pk").values()),
        "memberships": list(OrganisationMembership.objects.order_by("pk").values()),
        "groups": list(UserGroup.objects.order_by("pk").values()),
        "group_users": list(UserGroup.users.through.objects.order_by("pk").values()),
        "api_keys": list(OrganisationAPIKey.objects.order_by("pk").values()),
        "tags": list(Tag.objects.order_by("pk").values()),
        "features": list(Feature.objects.order_by("pk").values()),
        "feature_tags": list(Feature.tags.through.objects.order_by("pk").values()),
        "audit": list(AuditLogEntry.objects.order_by("pk").values()),
    }


def assert_unchanged(before: dict[str, list[Any]]) -> None:
    after = db_state()
    changed = sorted(table for table in before if before[table] != after[table])
    assert not changed, f"changed: {changed}"


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One write endpoint and method, with a request whose impact is known."""

    id: str
    method: str  # "post" | "put" | "patch" | "delete"
    url: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None
    status: int  # of the real write
    gained: Callable[[World], list[dict[str, Any]]]
    lost: Callable[[World], list[dict[str, Any]]]


def nothing(w: World) -> list[dict[str, Any]]:
    return []


def send(case: Case, w: World, caller: Any = None, query: str = "") -> Any:
    url = case.url(w) + (f"?{query}" if query else "")
    body = case.body(w) if case.body is not None else None
    return getattr(client_for(caller or w.admin), case.method)(url, body, format="json")


def check_preview_then_apply(case: Case, w: World) -> None:
    """`?dry_run=true` answers 200 with the expected impact and saves nothing (no audit entry
    either); the same request without it applies, and every audit entry it writes carries
    the previewed impact."""
    before = db_state()
    preview = send(case, w, query="dry_run=true")
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert set(body) == {"impact"}, body
    impact = body["impact"]
    for direction, expected in (("gained", case.gained(w)), ("lost", case.lost(w))):
        got = canonical(impact[direction])
        assert got == canonical(expected), f"{direction}: {got} != {canonical(expected)}"
    assert_unchanged(before)

    applied = send(case, w)
    assert applied.status_code == case.status, applied.content
    assert db_state() != before, "nothing was applied"
    known = {row["id"] for row in before["audit"]}
    entries = list(AuditLogEntry.objects.exclude(pk__in=known))
    assert entries, "no audit entry"
    for entry in entries:
        assert entry.impact is not None, entry
        assert (entry.impact["gained"], entry.impact["lost"]) == (
            impact["gained"],
            impact["lost"],
        ), (entry.impact, impact)


def check_junk_dry_run(case: Case, w: World) -> None:
    before = db_state()
    response = send(case, w, query="dry_run=banana")
    assert response.status_code == 400, response.content
    assert "dry_run" in response.json()
    assert_unchanged(before)


def check_dry_run_false_applies(case: Case, w: World) -> None:
    before = db_state()
    response = send(case, w, query="dry_run=false")
    assert response.status_code == case.status, response.content
    assert db_state() != before, "nothing was applied"


def check_refused(case: Case, w: World, caller: Any, status: int) -> Any:
    """A caller who may not do this gets the same refusal with `?dry_run=true`, and nothing
    is saved."""
    before = db_state()
    response = send(case, w, caller=caller, query="dry_run=true")
    assert response.status_code == status, response.content
    assert_unchanged(before)
    return response


@pytest.fixture(name="w")
def world_fixture(db: Any) -> World:
    """The organisation above, as the fixture `w` of the dry-run test modules."""
    return build_world()


def pick(cases: list[Case], *ids: str) -> list[Any]:
    """The cases with these ids, as pytest params named by their id."""
    by_id = {case.id: case for case in cases}
    return [pytest.param(by_id[i], id=i) for i in ids]


def contract_tests(
    cases: list[Case], *, junk: tuple[str, ...], applies: tuple[str, ...]
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    """The three tests every dry-run module runs: every case previews its impact, saves
    nothing, then applies with that impact audited; the cases named in `junk` refuse
    `?dry_run=banana` with a 400 naming `dry_run`; those named in `applies` apply with
    `?dry_run=false`. A module binds them to its own names so pytest collects them there."""

    @pytest.mark.parametrize("case", cases, ids=lambda c: c.id)
    def test_dry_run__impact_and_nothing_saved__then_applied_with_that_impact_audited(
        case: Case, w: World
    ) -> None:
        check_preview_then_apply(case, w)

    @pytest.mark.parametrize("case", pick(cases, *junk))
    def test_dry_run__junk_value__400_naming_dry_run_nothing_saved(case: Case, w: World) -> None:
        check_junk_dry_run(case, w)

    @pytest.mark.parametrize("case", pick(cases, *applies))
    def test_dry_run__false__applied(case: Case, w: World) -> None:
        check_dry_run_false_applies(case, w)

    return (
        test_dry_run__impact_and_nothing_saved__then_applied_with_that_impact_audited,
        test_dry_run__junk_value__400_naming_dry_run_nothing_saved,
        test_dry_run__false__applied,
    )
