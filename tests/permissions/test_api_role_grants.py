"""Role grants: `.../roles/{role_id}/organisation-permissions/`, `.../projects-permissions/`
and `.../environments-permissions/` (docs/API.md; docs/PERMISSIONS.md "Who may change grants": organisation admins only; tags
per key, only on keys that support them, only tags of the grant's project)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from environments.models import Environment
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_TAGS,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant, GrantEntry, GrantEntryTag
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


def role_url(role: Any) -> str:
    return f"/api/v1/organisations/{role.organisation_id}/roles/{role.pk}"


def grant_audit() -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="grant").order_by("id"))


@pytest.fixture
def role(organisation: Any) -> Any:
    return f.RoleFactory(organisation=organisation)


# --------------------------------------------------------------------------------------
# organisation-permissions
# --------------------------------------------------------------------------------------


def test_organisation_permissions__get__keys_of_the_role(role: Any, org_admin: Any) -> None:
    f.grant(role, role.organisation, [MANAGE_USER_GROUPS, CREATE_PROJECT])
    response = client_for(org_admin).get(f"{role_url(role)}/organisation-permissions/")
    assert response.status_code == 200
    assert response.data == {"permissions": [CREATE_PROJECT, MANAGE_USER_GROUPS]}


def test_organisation_permissions__get_without_grant__empty(role: Any, org_admin: Any) -> None:
    response = client_for(org_admin).get(f"{role_url(role)}/organisation-permissions/")
    assert response.data == {"permissions": []}


def test_organisation_permissions__put__replaces_and_audits(role: Any, org_admin: Any) -> None:
    url = f"{role_url(role)}/organisation-permissions/"
    client = client_for(org_admin)
    response = client.put(url, {"permissions": [CREATE_PROJECT]})
    assert response.status_code == 200
    assert response.data == {"permissions": [CREATE_PROJECT]}
    response = client.put(url, {"permissions": [MANAGE_USER_GROUPS]})
    assert response.data == {"permissions": [MANAGE_USER_GROUPS]}
    assert [e.action for e in grant_audit()] == ["created", "updated"]


def test_organisation_permissions__put_same__no_audit(role: Any, org_admin: Any) -> None:
    f.grant(role, role.organisation, [CREATE_PROJECT])
    url = f"{role_url(role)}/organisation-permissions/"
    client = client_for(org_admin)
    response = client.put(url, client.get(url).data)
    assert response.status_code == 200
    assert grant_audit() == []


def test_organisation_permissions__put_empty__removes_the_grant(role: Any, org_admin: Any) -> None:
    f.grant(role, role.organisation, [CREATE_PROJECT])
    response = client_for(org_admin).put(
        f"{role_url(role)}/organisation-permissions/", {"permissions": []}
    )
    assert response.status_code == 200
    assert response.data == {"permissions": []}
    assert not Grant.objects.filter(role=role).exists()
    assert [e.action for e in grant_audit()] == ["deleted"]


@pytest.mark.parametrize("keys", [[VIEW_PROJECT], ["NOPE"], "CREATE_PROJECT", None, [3]])
def test_organisation_permissions__put_bad_keys__400(role: Any, org_admin: Any, keys: Any) -> None:
    response = client_for(org_admin).put(
        f"{role_url(role)}/organisation-permissions/", {"permissions": keys}, format="json"
    )
    assert response.status_code == 400
    assert "permissions" in response.data
    assert not Grant.objects.exists()


def test_organisation_permissions__member_not_admin__403(role: Any, org_user: Any) -> None:
    client = client_for(org_user)
    url = f"{role_url(role)}/organisation-permissions/"
    assert client.get(url).status_code == 403
    assert client.put(url, {"permissions": [CREATE_PROJECT]}).status_code == 403
    assert not Grant.objects.exists()


def test_organisation_permissions__holder_of_the_role__cannot_widen_it__403(
    role: Any, org_user: Any
) -> None:
    f.RoleAssignmentFactory(role=role, user=org_user)
    f.grant(role, role.organisation, [MANAGE_USER_GROUPS])
    response = client_for(org_user).put(
        f"{role_url(role)}/organisation-permissions/",
        {"permissions": [MANAGE_USER_GROUPS, CREATE_PROJECT]},
    )
    assert response.status_code == 403


def test_organisation_permissions__non_member__404(role: Any) -> None:
    url = f"{role_url(role)}/organisation-permissions/"
    assert client_for(f.UserFactory()).get(url).status_code == 404


def test_organisation_permissions__role_of_another_organisation__404(org_admin: Any) -> None:
    foreign = f.RoleFactory()
    url = (
        f"/api/v1/organisations/{org_admin.organisation_memberships.get().organisation_id}"
        f"/roles/{foreign.pk}/organisation-permissions/"
    )
    assert client_for(org_admin).get(url).status_code == 404


def test_organisation_permissions__no_credentials__401(role: Any) -> None:
    assert APIClient().get(f"{role_url(role)}/organisation-permissions/").status_code == 401


# --------------------------------------------------------------------------------------
# projects-permissions and environments-permissions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    name: str  # "project" | "environment"
    path: str
    untagged_key: str  # does not support tags
    tagged_key: str  # supports tags
    other_tagged_key: str
    wrong_key: str

    def scope(self, environment: Environment) -> Any:
        return environment.project if self.name == "project" else environment


PROJECT = Level(
    "project",
    "projects-permissions",
    VIEW_PROJECT,
    DELETE_FEATURE,
    DELETE_FEATURE,
    VIEW_ENVIRONMENT,
)
ENVIRONMENT = Level(
    "environment",
    "environments-permissions",
    VIEW_ENVIRONMENT,
    UPDATE_FEATURE_STATE,
    APPROVE_CHANGE_REQUEST,
    VIEW_PROJECT,
)


@dataclass
class Ctx:
    level: Level
    role: Any
    organisation: Any
    project: Any
    environment: Any
    admin: Any

    @property
    def scope(self) -> Any:
        return self.level.scope(self.environment)

    @property
    def url(self) -> str:
        return f"{role_url(self.role)}/{self.level.path}/"

    def detail(self, grant: Any) -> str:
        return f"{self.url}{grant.pk}/"

    def payload(self, permissions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {self.level.name: self.scope.pk, "permissions": permissions, **extra}


@pytest.fixture(params=[PROJECT, ENVIRONMENT], ids=["project", "environment"])
def ctx(request: Any, environment: Any, role: Any, org_admin: Any) -> Ctx:
    return Ctx(
        request.param,
        role,
        environment.project.organisation,
        environment.project,
        environment,
        org_admin,
    )


def test_create__tagged_and_untagged_entries__201(ctx: Ctx) -> None:
    a = f.TagFactory(project=ctx.project)
    b = f.TagFactory(project=ctx.project)
    payload = ctx.payload(
        [
            {"permission_key": ctx.level.untagged_key, "tags": []},
            {"permission_key": ctx.level.tagged_key, "tags": [b.pk, a.pk]},
        ],
        admin=False,
    )
    response = client_for(ctx.admin).post(ctx.url, payload)
    assert response.status_code == 201, response.data
    assert set(response.data) == {"id", ctx.level.name, "admin", "permissions"}
    assert response.data[ctx.level.name] == ctx.scope.pk
    assert response.data["admin"] is False
    assert response.data["permissions"] == sorted(
        [
            {"permission_key": ctx.level.untagged_key, "tags": []},
            {"permission_key": ctx.level.tagged_key, "tags": sorted([a.pk, b.pk])},
        ],
        key=lambda e: e["permission_key"],
    )
    grant = Grant.objects.get(pk=response.data["id"])
    assert grant.role_id == ctx.role.pk and grant.scope == ctx.scope
    (entry,) = grant_audit()
    assert entry.action == "created" and entry.actor_user_id == ctx.admin.pk
    assert entry.project_id == ctx.project.pk


def test_create__tags_default_to_none(ctx: Ctx) -> None:
    response = client_for(ctx.admin).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.untagged_key}])
    )
    assert response.status_code == 201
    assert response.data["permissions"] == [{"permission_key": ctx.level.untagged_key, "tags": []}]
    assert response.data["admin"] is False


def test_create__tagged_entry_of_key_without_tag_support__400_naming_each_key(ctx: Ctx) -> None:
    tag = f.TagFactory(project=ctx.project)
    other_untaggable = CREATE_FEATURE if ctx.level is PROJECT else None
    entries = [{"permission_key": ctx.level.untagged_key, "tags": [tag.pk]}]
    if other_untaggable:
        entries.append({"permission_key": other_untaggable, "tags": [tag.pk]})
    entries.append({"permission_key": ctx.level.tagged_key, "tags": [tag.pk]})
    response = client_for(ctx.admin).post(ctx.url, ctx.payload(entries))
    assert response.status_code == 400
    messages = " ".join(response.data["permissions"])
    assert ctx.level.untagged_key in messages
    if other_untaggable:
        assert other_untaggable in messages
    assert ctx.level.tagged_key not in messages
    assert not Grant.objects.exists()
    assert grant_audit() == []


def test_create__tag_of_another_project__400(ctx: Ctx) -> None:
    foreign = f.TagFactory(project=f.ProjectFactory(organisation=ctx.organisation))
    response = client_for(ctx.admin).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.tagged_key, "tags": [foreign.pk]}])
    )
    assert response.status_code == 400
    assert "permissions" in response.data
    assert not Grant.objects.exists()


def test_create__unknown_tag__400(ctx: Ctx) -> None:
    response = client_for(ctx.admin).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.tagged_key, "tags": [999999]}])
    )
    assert response.status_code == 400
    assert "permissions" in response.data


@pytest.mark.parametrize(
    "entries",
    [
        None,
        "x",
        ["VIEW_PROJECT"],
        [{"tags": []}],
        [{"permission_key": 5}],
        [{"permission_key": "VIEW_PROJECT", "tags": None}],
        [{"permission_key": "DELETE_FEATURE", "tags": [None]}],
        [{"permission_key": "DELETE_FEATURE", "tags": ["1"]}],
        [{"permission_key": "DELETE_FEATURE", "tags": [1, 1]}],
        [{"permission_key": "VIEW_PROJECT", "tags": [], "admin": True}],
    ],
)
def test_create__malformed_entries__400_on_permissions(ctx: Ctx, entries: Any) -> None:
    response = client_for(ctx.admin).post(ctx.url, ctx.payload(entries), format="json")
    assert response.status_code == 400
    assert "permissions" in response.data
    assert not Grant.objects.exists()


def test_create__wrong_level_key__400_naming_it(ctx: Ctx) -> None:
    response = client_for(ctx.admin).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.wrong_key, "tags": []}])
    )
    assert response.status_code == 400
    assert ctx.level.wrong_key in " ".join(response.data["permissions"])


def test_create__scope_of_another_organisation__400(ctx: Ctx) -> None:
    foreign_env = f.EnvironmentFactory()
    foreign = ctx.level.scope(foreign_env)
    response = client_for(ctx.admin).post(
        ctx.url,
        {ctx.level.name: foreign.pk, "permissions": [{"permission_key": ctx.level.untagged_key}]},
    )
    assert response.status_code == 400
    assert ctx.level.name in response.data
    assert not Grant.objects.exists()


@pytest.mark.parametrize("value", [None, "abc", 999999, True])
def test_create__bad_scope_id__400(ctx: Ctx, value: Any) -> None:
    response = client_for(ctx.admin).post(
        ctx.url, {ctx.level.name: value, "permissions": []}, format="json"
    )
    assert response.status_code == 400
    assert ctx.level.name in response.data


def test_create__environment_by_api_key__400(ctx: Ctx) -> None:
    if ctx.level is not ENVIRONMENT:
        pytest.skip("environment only")
    response = client_for(ctx.admin).post(
        ctx.url, {"environment": ctx.environment.api_key, "permissions": []}
    )
    assert response.status_code == 400
    assert "environment" in response.data


def test_create__second_grant_same_scope__400(ctx: Ctx) -> None:
    f.grant(ctx.role, ctx.scope, [ctx.level.untagged_key])
    response = client_for(ctx.admin).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.tagged_key}])
    )
    assert response.status_code == 400
    assert Grant.objects.count() == 1


def test_create__admin_true(ctx: Ctx) -> None:
    response = client_for(ctx.admin).post(ctx.url, ctx.payload([], admin=True))
    assert response.status_code == 201
    assert Grant.objects.get(pk=response.data["id"]).admin is True


@pytest.mark.parametrize("who", ["member", "project_admin", "role_holder", "api_key"])
def test_create__not_organisation_admin__403(ctx: Ctx, who: str) -> None:
    if who == "api_key":
        actor = f.APIKeyFactory(organisation=ctx.organisation)
        f.RoleAssignmentFactory(role=ctx.role, api_key=actor)
        f.grant(ctx.role, ctx.project, [VIEW_PROJECT])
    else:
        actor = f.member(ctx.organisation)
        if who == "project_admin":
            f.grant(actor, ctx.project, [], admin=True)
        if who == "role_holder":
            f.RoleAssignmentFactory(role=ctx.role, user=actor)
    before = Grant.objects.count()
    response = client_for(actor).post(
        ctx.url, ctx.payload([{"permission_key": ctx.level.untagged_key}], admin=True)
    )
    assert response.status_code == 403
    assert Grant.objects.count() == before


def test_create__admin_api_key__201(ctx: Ctx) -> None:
    key = f.APIKeyFactory(organisation=ctx.organisation, is_admin=True)
    response = client_for(key).post(ctx.url, ctx.payload([]))
    assert response.status_code == 201
    (entry,) = grant_audit()
    assert entry.actor_api_key_id == key.pk


def test_list__filter_by_scope_and_fields(ctx: Ctx) -> None:
    mine = f.grant(ctx.role, ctx.scope, [ctx.level.untagged_key])
    other_env = f.EnvironmentFactory(project=f.ProjectFactory(organisation=ctx.organisation))
    other = f.grant(ctx.role, ctx.level.scope(other_env), [ctx.level.untagged_key])
    # Noise: the other level, another role.
    f.grant(ctx.role, ctx.project if ctx.level is ENVIRONMENT else ctx.environment, [])
    f.grant(f.RoleFactory(organisation=ctx.organisation), ctx.scope, [ctx.level.untagged_key])
    client = client_for(ctx.admin)
    response = client.get(ctx.url)
    assert response.status_code == 200
    assert [g["id"] for g in response.data["results"]] == [mine.pk, other.pk]
    response = client.get(ctx.url, {ctx.level.name: ctx.scope.pk})
    assert [g["id"] for g in response.data["results"]] == [mine.pk]


def test_list__bad_filter__400(ctx: Ctx) -> None:
    response = client_for(ctx.admin).get(ctx.url, {ctx.level.name: "x"})
    assert response.status_code == 400
    assert ctx.level.name in response.data


def test_list__member__403(ctx: Ctx) -> None:
    assert client_for(f.member(ctx.organisation)).get(ctx.url).status_code == 403


def test_list__non_member__404(ctx: Ctx) -> None:
    assert client_for(f.UserFactory()).get(ctx.url).status_code == 404


def test_list__no_credentials__401(ctx: Ctx) -> None:
    assert APIClient().get(ctx.url).status_code == 401


def test_list__unknown_role__404(ctx: Ctx) -> None:
    url = f"/api/v1/organisations/{ctx.organisation.pk}/roles/999999/{ctx.level.path}/"
    assert client_for(ctx.admin).get(url).status_code == 404


def test_list__query_count__constant(ctx: Ctx) -> None:
    tags = [f.TagFactory(project=ctx.project) for _ in range(3)]

    def add(n: int) -> None:
        project_ids = []
        for _ in range(n):
            project = f.ProjectFactory.build(organisation=ctx.organisation)
            project_ids.append(project)
        if ctx.level is PROJECT:
            from projects.models import Project

            scopes = Project.objects.bulk_create(project_ids)
            grants = Grant.objects.bulk_create(
                [Grant(organisation=ctx.organisation, project=p, role=ctx.role) for p in scopes]
            )
        else:
            scopes = Environment.objects.bulk_create(
                [
                    Environment(project=ctx.project, name=f"e{i}-{Environment.objects.count()}")
                    for i in range(n)
                ]
            )
            grants = Grant.objects.bulk_create(
                [
                    Grant(
                        organisation=ctx.organisation,
                        project=ctx.project,
                        environment=e,
                        role=ctx.role,
                    )
                    for e in scopes
                ]
            )
        entries = GrantEntry.objects.bulk_create(
            [
                GrantEntry(grant=g, key=key)
                for g in grants
                for key in (ctx.level.untagged_key, ctx.level.tagged_key)
            ]
        )
        GrantEntryTag.objects.bulk_create(
            [
                GrantEntryTag(entry=e, tag=t)
                for e in entries
                if e.key == ctx.level.tagged_key
                for t in tags
            ]
        )

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=ctx.admin.pk))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(ctx.url, {"page_size": 1000})
        assert response.status_code == 200
        return len(captured.captured_queries), response.data["count"]

    if ctx.level is PROJECT:
        # Environment grants need distinct environments; projects need distinct projects.
        pass
    add(5)
    small, n_small = count()
    add(195)
    large, n_large = count()
    assert (n_small, n_large) == (5, 200)
    assert small == large


def test_retrieve__200(ctx: Ctx) -> None:
    tag = f.TagFactory(project=ctx.project)
    grant = f.grant(ctx.role, ctx.scope, {ctx.level.tagged_key: [tag]}, admin=True)
    response = client_for(ctx.admin).get(ctx.detail(grant))
    assert response.status_code == 200
    assert response.data == {
        "id": grant.pk,
        ctx.level.name: ctx.scope.pk,
        "admin": True,
        "permissions": [{"permission_key": ctx.level.tagged_key, "tags": [tag.pk]}],
    }


def test_retrieve__grant_of_another_role__404(ctx: Ctx) -> None:
    other = f.grant(f.RoleFactory(organisation=ctx.organisation), ctx.scope, [])
    assert client_for(ctx.admin).get(ctx.detail(other)).status_code == 404


def test_retrieve__grant_of_the_other_level__404(ctx: Ctx) -> None:
    other_scope = ctx.project if ctx.level is ENVIRONMENT else ctx.environment
    other = f.grant(ctx.role, other_scope, [])
    assert client_for(ctx.admin).get(ctx.detail(other)).status_code == 404


def test_put__what_was_read__no_change_no_audit(ctx: Ctx) -> None:
    a = f.TagFactory(project=ctx.project)
    b = f.TagFactory(project=ctx.project)
    grant = f.grant(
        ctx.role,
        ctx.scope,
        {ctx.level.untagged_key: [], ctx.level.tagged_key: [b, a]},
        admin=True,
    )
    client = client_for(ctx.admin)
    read = client.get(ctx.detail(grant)).data
    response = client.put(ctx.detail(grant), read)
    assert response.status_code == 200, response.data
    assert response.data == read
    assert grant_audit() == []


def test_put__replaces_entries_and_audits(ctx: Ctx) -> None:
    tag = f.TagFactory(project=ctx.project)
    grant = f.grant(ctx.role, ctx.scope, [ctx.level.untagged_key], admin=True)
    response = client_for(ctx.admin).put(
        ctx.detail(grant),
        {"permissions": [{"permission_key": ctx.level.other_tagged_key, "tags": [tag.pk]}]},
    )
    assert response.status_code == 200
    assert response.data["admin"] is False  # PUT replaces: admin defaults to false
    assert response.data["permissions"] == [
        {"permission_key": ctx.level.other_tagged_key, "tags": [tag.pk]}
    ]
    (entry,) = grant_audit()
    assert entry.action == "updated"
    assert entry.before["admin"] is True and entry.after["admin"] is False


def test_patch__tagged_untaggable_key__400_nothing_changed(ctx: Ctx) -> None:
    tag = f.TagFactory(project=ctx.project)
    grant = f.grant(ctx.role, ctx.scope, {ctx.level.tagged_key: [tag]})
    response = client_for(ctx.admin).patch(
        ctx.detail(grant),
        {"permissions": [{"permission_key": ctx.level.untagged_key, "tags": [tag.pk]}]},
    )
    assert response.status_code == 400
    assert ctx.level.untagged_key in " ".join(response.data["permissions"])
    assert list(grant.entries.values_list("key", flat=True)) == [ctx.level.tagged_key]
    assert grant_audit() == []


def test_patch__admin_only__keeps_entries(ctx: Ctx) -> None:
    grant = f.grant(ctx.role, ctx.scope, [ctx.level.untagged_key])
    response = client_for(ctx.admin).patch(ctx.detail(grant), {"admin": True})
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["permissions"] == [{"permission_key": ctx.level.untagged_key, "tags": []}]


def test_patch__changing_the_scope__400(ctx: Ctx) -> None:
    grant = f.grant(ctx.role, ctx.scope, [])
    other_env = f.EnvironmentFactory(project=ctx.project)
    other = (
        ctx.level.scope(other_env)
        if ctx.level is ENVIRONMENT
        else (f.ProjectFactory(organisation=ctx.organisation))
    )
    response = client_for(ctx.admin).patch(ctx.detail(grant), {ctx.level.name: other.pk})
    assert response.status_code == 400
    assert ctx.level.name in response.data


def test_patch__member__403(ctx: Ctx) -> None:
    grant = f.grant(ctx.role, ctx.scope, [])
    response = client_for(f.member(ctx.organisation)).patch(ctx.detail(grant), {"admin": True})
    assert response.status_code == 403
    grant.refresh_from_db()
    assert grant.admin is False


def test_delete__204_and_audit(ctx: Ctx) -> None:
    grant = f.grant(ctx.role, ctx.scope, [ctx.level.untagged_key])
    response = client_for(ctx.admin).delete(ctx.detail(grant))
    assert response.status_code == 204
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert [e.action for e in grant_audit()] == ["deleted"]


def test_delete__member__403(ctx: Ctx) -> None:
    grant = f.grant(ctx.role, ctx.scope, [])
    assert client_for(f.member(ctx.organisation)).delete(ctx.detail(grant)).status_code == 403
    assert Grant.objects.filter(pk=grant.pk).exists()


def test_role_grant__reaches_holders_for_tagged_features_only(environment: Any) -> None:
    """End to end: a tagged role grant written through the API decides on features."""
    from permissions import engine

    organisation = environment.project.organisation
    admin = f.member(organisation, admin=True)
    user = f.member(organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    tag = f.TagFactory(project=environment.project)
    tagged = f.FeatureFactory(project=environment.project, tags=[tag])
    untagged = f.FeatureFactory(project=environment.project)
    response = client_for(admin).post(
        f"{role_url(role)}/environments-permissions/",
        {
            "environment": environment.pk,
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [tag.pk]}],
        },
    )
    assert response.status_code == 201
    fresh = User.objects.get(pk=user.pk)
    assert engine.allowed(fresh, UPDATE_FEATURE_STATE, environment, tagged)
    assert not engine.allowed(fresh, UPDATE_FEATURE_STATE, environment, untagged)
    assert not engine.allowed(fresh, UPDATE_FEATURE_STATE, environment)
    assert not engine.allowed(fresh, MANAGE_TAGS, environment.project)
