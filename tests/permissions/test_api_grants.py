"""User and group grants of organisations, projects and environments:
`/organisations/{id}/user-permissions/`, `/user-group-permissions/`, and the same under
`/projects/{id}/` and `/environments/{api_key}/` (docs/API.md; docs/PERMISSIONS.md "Who may change grants": read and written by
the admins of that scope)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditLogEntry
from organisations.models import OrganisationMembership, UserGroup
from permissions.catalogue import (
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_AUDIT_LOG,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from permissions.models import Grant, GrantEntry
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db
User = get_user_model()


@dataclass(frozen=True)
class Level:
    name: str
    keys: tuple[str, str]  # two keys of this level
    wrong_key: str  # a key of another level
    has_admin: bool

    def scope(self, environment: Any) -> Any:
        if self.name == "organisation":
            return environment.project.organisation
        if self.name == "project":
            return environment.project
        return environment

    def base(self, scope: Any) -> str:
        if self.name == "organisation":
            return f"/api/v1/organisations/{scope.pk}"
        if self.name == "project":
            return f"/api/v1/projects/{scope.pk}"
        return f"/api/v1/environments/{scope.api_key}"

    def admin_of(self, scope: Any, organisation: Any) -> Any:
        if self.name == "organisation":
            return f.member(organisation, admin=True)
        user = f.member(organisation)
        f.grant(user, scope, [], admin=True)
        return user

    def viewer_of(self, scope: Any, organisation: Any) -> Any:
        """May view the scope, is not its admin."""
        user = f.member(organisation)
        if self.name == "project":
            f.grant(user, scope, [VIEW_PROJECT])
        elif self.name == "environment":
            f.grant(user, scope, [VIEW_ENVIRONMENT])
        return user

    def outsider_of(self, scope: Any, organisation: Any) -> Any:
        """May not view the scope."""
        if self.name == "organisation":
            return f.UserFactory()
        return f.member(organisation)


ORGANISATION = Level("organisation", (CREATE_PROJECT, MANAGE_USER_GROUPS), VIEW_PROJECT, False)
PROJECT = Level("project", (VIEW_PROJECT, CREATE_FEATURE), VIEW_ENVIRONMENT, True)
ENVIRONMENT = Level("environment", (VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE), VIEW_PROJECT, True)
LEVELS = [ORGANISATION, PROJECT, ENVIRONMENT]
KINDS = ["user", "group"]
CASES = [
    pytest.param((level, kind), id=f"{level.name}-{kind}") for level in LEVELS for kind in KINDS
]


@dataclass
class Ctx:
    level: Level
    kind: str
    organisation: Any
    project: Any
    environment: Any
    scope: Any

    @property
    def url(self) -> str:
        path = "user-permissions" if self.kind == "user" else "user-group-permissions"
        return f"{self.level.base(self.scope)}/{path}/"

    def detail(self, grant: Any) -> str:
        return f"{self.url}{grant.pk}/"

    def principal(self) -> Any:
        if self.kind == "user":
            return f.member(self.organisation)
        return f.UserGroupFactory(organisation=self.organisation)

    def admin(self) -> Any:
        return self.level.admin_of(self.scope, self.organisation)

    def fields(self) -> set[str]:
        base = {"id", self.kind, "permissions"}
        return base | {"admin"} if self.level.has_admin else base


@pytest.fixture(params=CASES)
def ctx(request: Any, environment: Any) -> Ctx:
    level, kind = request.param
    return Ctx(
        level,
        kind,
        environment.project.organisation,
        environment.project,
        environment,
        level.scope(environment),
    )


def grant_audit() -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.filter(object_type="grant").order_by("id"))


# --------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------


def test_list__scope_admin__grants_of_this_scope_and_kind_only(ctx: Ctx) -> None:
    principal = ctx.principal()
    mine = f.grant(principal, ctx.scope, [ctx.level.keys[1], ctx.level.keys[0]])
    # Noise: the other kind on the same scope, the same kind on another scope and level.
    other_kind = (
        f.UserGroupFactory(organisation=ctx.organisation)
        if ctx.kind == "user"
        else (f.member(ctx.organisation))
    )
    f.grant(other_kind, ctx.scope, [ctx.level.keys[0]])
    other_project = f.ProjectFactory(organisation=ctx.organisation)
    f.grant(principal, other_project, [VIEW_PROJECT])
    f.grant(principal, f.EnvironmentFactory(project=other_project), [VIEW_ENVIRONMENT])
    if ctx.level is not ORGANISATION:
        f.grant(principal, ctx.organisation, [CREATE_PROJECT])

    response = client_for(f.member(ctx.organisation, admin=True)).get(ctx.url)
    assert response.status_code == 200
    assert response.data["count"] == 1
    (item,) = response.data["results"]
    assert set(item) == ctx.fields()
    assert item["id"] == mine.pk
    assert item[ctx.kind] == principal.pk
    assert item["permissions"] == sorted(ctx.level.keys)
    if ctx.level.has_admin:
        assert item["admin"] is False


def test_list__no_credentials__401(ctx: Ctx) -> None:
    assert APIClient().get(ctx.url).status_code == 401


def test_list__cannot_view_scope__404(ctx: Ctx) -> None:
    outsider = ctx.level.outsider_of(ctx.scope, ctx.organisation)
    assert client_for(outsider).get(ctx.url).status_code == 404


def test_list__viewer_not_admin__403(ctx: Ctx) -> None:
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    assert client_for(viewer).get(ctx.url).status_code == 403


def test_list__organisation_admin__200(ctx: Ctx) -> None:
    admin = f.member(ctx.organisation, admin=True)
    assert client_for(admin).get(ctx.url).status_code == 200


def test_list__admin_api_key__200(ctx: Ctx) -> None:
    key = f.APIKeyFactory(organisation=ctx.organisation, is_admin=True)
    assert client_for(key).get(ctx.url).status_code == 200


def _bulk_grants(ctx: Ctx, n: int) -> None:
    tag = f.TagFactory(project=ctx.project)
    if ctx.kind == "user":
        users = User.objects.bulk_create(
            [User(username=f"bulk-{ctx.kind}-{Grant.objects.count()}-{i}") for i in range(n)]
        )
        OrganisationMembership.objects.bulk_create(
            [OrganisationMembership(user=u, organisation=ctx.organisation) for u in users]
        )
        principals: list[Any] = users
    else:
        start = UserGroup.objects.count()
        principals = UserGroup.objects.bulk_create(
            [UserGroup(organisation=ctx.organisation, name=f"bulk-{start + i}") for i in range(n)]
        )
    scope_kwargs: dict[str, Any] = {"organisation": ctx.organisation}
    if ctx.level is not ORGANISATION:
        scope_kwargs["project"] = ctx.project
    if ctx.level is ENVIRONMENT:
        scope_kwargs["environment"] = ctx.environment
    grants = Grant.objects.bulk_create([Grant(**scope_kwargs, **{ctx.kind: p}) for p in principals])
    entries = GrantEntry.objects.bulk_create(
        [GrantEntry(grant=g, key=key) for g in grants for key in ctx.level.keys]
    )
    del tag, entries


def test_list__query_count__constant(ctx: Ctx) -> None:
    admin = ctx.admin()

    def count() -> tuple[int, int]:
        client = client_for(User.objects.get(pk=admin.pk))  # a cold request
        with CaptureQueriesContext(connection) as captured:
            response = client.get(ctx.url, {"page_size": 1000})
        assert response.status_code == 200
        return len(captured.captured_queries), response.data["count"]

    _bulk_grants(ctx, 5)
    small, n_small = count()
    _bulk_grants(ctx, 195)
    large, n_large = count()
    assert n_large - n_small == 195
    assert small == large


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create__scope_admin__201_grant_and_audit(ctx: Ctx) -> None:
    admin = ctx.admin()
    principal = ctx.principal()
    payload: dict[str, Any] = {ctx.kind: principal.pk, "permissions": list(ctx.level.keys)}
    if ctx.level.has_admin:
        payload["admin"] = True
    response = client_for(admin).post(ctx.url, payload)
    assert response.status_code == 201, response.data
    assert set(response.data) == ctx.fields()
    grant = Grant.objects.get(pk=response.data["id"])
    assert getattr(grant, f"{ctx.kind}_id") == principal.pk
    assert grant.scope == ctx.scope
    assert sorted(grant.entries.values_list("key", flat=True)) == sorted(ctx.level.keys)
    assert response.data["permissions"] == sorted(ctx.level.keys)
    if ctx.level.has_admin:
        assert grant.admin is True and response.data["admin"] is True
    (entry,) = grant_audit()
    assert entry.action == "created"
    assert entry.actor_user_id == admin.pk
    assert entry.object_id == str(grant.pk)
    assert entry.after["permissions"] == [
        {"permission_key": k, "tags": []} for k in sorted(ctx.level.keys)
    ]


def test_create__admin_defaults_to_false(ctx: Ctx) -> None:
    if not ctx.level.has_admin:
        pytest.skip("organisation grants hold no admin")
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: ctx.principal().pk, "permissions": []}
    )
    assert response.status_code == 201
    assert response.data["admin"] is False


def test_create__viewer_not_admin__403_nothing_written(ctx: Ctx) -> None:
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    before = Grant.objects.count()
    response = client_for(viewer).post(
        ctx.url, {ctx.kind: ctx.principal().pk, "permissions": [ctx.level.keys[0]]}
    )
    assert response.status_code == 403
    assert Grant.objects.count() == before
    assert grant_audit() == []


def test_create__cannot_view__404(ctx: Ctx) -> None:
    outsider = ctx.level.outsider_of(ctx.scope, ctx.organisation)
    response = client_for(outsider).post(ctx.url, {ctx.kind: ctx.principal().pk, "permissions": []})
    assert response.status_code == 404


def test_create__no_credentials__401(ctx: Ctx) -> None:
    assert APIClient().post(ctx.url, {}).status_code == 401


def test_create__grant_to_self_by_non_admin__403(ctx: Ctx) -> None:
    """Nobody raises their own access beyond what they already administer."""
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    if ctx.kind != "user":
        pytest.skip("users only")
    payload: dict[str, Any] = {"user": viewer.pk, "permissions": list(ctx.level.keys)}
    assert client_for(viewer).post(ctx.url, payload).status_code == 403


@pytest.mark.parametrize(
    ("permissions", "needle"),
    [
        (["NOT_A_KEY"], "NOT_A_KEY"),
        ("wrong-level", None),
        ([CREATE_FEATURE, CREATE_FEATURE], None),
    ],
)
def test_create__bad_keys__400_naming_the_key(ctx: Ctx, permissions: Any, needle: Any) -> None:
    if permissions == "wrong-level":
        permissions, needle = [ctx.level.wrong_key], ctx.level.wrong_key
    if permissions == [CREATE_FEATURE, CREATE_FEATURE]:
        permissions, needle = [ctx.level.keys[0]] * 2, ctx.level.keys[0]
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: ctx.principal().pk, "permissions": permissions}
    )
    assert response.status_code == 400
    assert any(needle in message for message in response.data["permissions"])
    assert not Grant.objects.exists() or grant_audit() == []


@pytest.mark.parametrize(
    "permissions",
    [None, "VIEW_PROJECT", [1], [None], [{"permission_key": "VIEW_PROJECT"}]],
)
def test_create__malformed_permissions__400(ctx: Ctx, permissions: Any) -> None:
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: ctx.principal().pk, "permissions": permissions}, format="json"
    )
    assert response.status_code == 400
    assert "permissions" in response.data


def test_create__missing_permissions__400(ctx: Ctx) -> None:
    response = client_for(ctx.admin()).post(ctx.url, {ctx.kind: ctx.principal().pk})
    assert response.status_code == 400
    assert "permissions" in response.data


def test_create__tags_on_a_user_or_group_grant__400(ctx: Ctx) -> None:
    response = client_for(ctx.admin()).post(
        ctx.url,
        {
            ctx.kind: ctx.principal().pk,
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [1]}],
        },
    )
    assert response.status_code == 400
    assert "permissions" in response.data


def test_create__second_grant_same_principal__400_on_principal(ctx: Ctx) -> None:
    principal = ctx.principal()
    f.grant(principal, ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: principal.pk, "permissions": [ctx.level.keys[1]]}
    )
    assert response.status_code == 400
    assert ctx.kind in response.data
    assert grant_audit() == []


@pytest.mark.parametrize("value", [999999, "abc", None, True, 1.5, [1]])
def test_create__bad_principal_id__400(ctx: Ctx, value: Any) -> None:
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: value, "permissions": []}, format="json"
    )
    assert response.status_code == 400
    assert ctx.kind in response.data


def test_create__principal_of_another_organisation__400(ctx: Ctx) -> None:
    other = f.OrganisationFactory()
    foreign = f.member(other) if ctx.kind == "user" else f.UserGroupFactory(organisation=other)
    response = client_for(ctx.admin()).post(ctx.url, {ctx.kind: foreign.pk, "permissions": []})
    assert response.status_code == 400
    assert ctx.kind in response.data
    assert not Grant.objects.filter(**{ctx.kind: foreign}).exists()


def test_create__organisation_grant_with_admin__400(environment: Any) -> None:
    organisation = environment.project.organisation
    admin = f.member(organisation, admin=True)
    user = f.member(organisation)
    response = client_for(admin).post(
        f"/api/v1/organisations/{organisation.pk}/user-permissions/",
        {"user": user.pk, "admin": True, "permissions": []},
    )
    assert response.status_code == 400
    assert "admin" in response.data


@pytest.mark.parametrize("value", ["maybe", None, 2])
def test_create__bad_admin__400(ctx: Ctx, value: Any) -> None:
    if not ctx.level.has_admin:
        pytest.skip("organisation grants hold no admin")
    response = client_for(ctx.admin()).post(
        ctx.url, {ctx.kind: ctx.principal().pk, "admin": value, "permissions": []}, format="json"
    )
    assert response.status_code == 400
    assert "admin" in response.data


# --------------------------------------------------------------------------------------
# Retrieve, update, delete
# --------------------------------------------------------------------------------------


def test_retrieve__scope_admin__200(ctx: Ctx) -> None:
    principal = ctx.principal()
    grant = f.grant(principal, ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).get(ctx.detail(grant))
    assert response.status_code == 200
    assert response.data[ctx.kind] == principal.pk
    assert response.data["permissions"] == [ctx.level.keys[0]]


def test_retrieve__viewer_not_admin__403(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    assert client_for(viewer).get(ctx.detail(grant)).status_code == 403


def test_retrieve__grant_of_another_scope_or_kind__404(ctx: Ctx) -> None:
    other_project = f.ProjectFactory(organisation=ctx.organisation)
    elsewhere = f.grant(ctx.principal(), other_project, [VIEW_PROJECT])
    other_kind = (
        f.UserGroupFactory(organisation=ctx.organisation)
        if ctx.kind == "user"
        else f.member(ctx.organisation)
    )
    same_scope_other_kind = f.grant(other_kind, ctx.scope, [ctx.level.keys[0]])
    client = client_for(f.member(ctx.organisation, admin=True))
    assert client.get(ctx.detail(elsewhere)).status_code == 404
    assert client.get(ctx.detail(same_scope_other_kind)).status_code == 404


def test_put__replaces_keys__audit_before_after(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).put(ctx.detail(grant), {"permissions": [ctx.level.keys[1]]})
    assert response.status_code == 200, response.data
    assert response.data["permissions"] == [ctx.level.keys[1]]
    assert list(grant.entries.values_list("key", flat=True)) == [ctx.level.keys[1]]
    (entry,) = grant_audit()
    assert entry.action == "updated"
    assert entry.before["permissions"] == [{"permission_key": ctx.level.keys[0], "tags": []}]
    assert entry.after["permissions"] == [{"permission_key": ctx.level.keys[1], "tags": []}]


def test_put__what_was_read__no_change_no_audit(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, list(ctx.level.keys), admin=ctx.level.has_admin)
    client = client_for(ctx.admin())
    read = client.get(ctx.detail(grant)).data
    response = client.put(ctx.detail(grant), read)
    assert response.status_code == 200, response.data
    assert response.data == read
    assert grant_audit() == []


def test_put__changed_principal__400(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).put(
        ctx.detail(grant), {ctx.kind: ctx.principal().pk, "permissions": []}
    )
    assert response.status_code == 400
    assert ctx.kind in response.data


def test_put__without_permissions__400(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).put(ctx.detail(grant), {})
    assert response.status_code == 400
    assert "permissions" in response.data


def test_patch__admin_flag__keeps_keys(ctx: Ctx) -> None:
    if not ctx.level.has_admin:
        pytest.skip("organisation grants hold no admin")
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).patch(ctx.detail(grant), {"admin": True})
    assert response.status_code == 200
    assert response.data["admin"] is True
    assert response.data["permissions"] == [ctx.level.keys[0]]
    (entry,) = grant_audit()
    assert (entry.before["admin"], entry.after["admin"]) == (False, True)


def test_patch__bad_key__400_nothing_changed(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).patch(
        ctx.detail(grant), {"permissions": [ctx.level.wrong_key]}
    )
    assert response.status_code == 400
    assert list(grant.entries.values_list("key", flat=True)) == [ctx.level.keys[0]]
    assert grant_audit() == []


def test_patch__viewer_not_admin__403(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    response = client_for(viewer).patch(ctx.detail(grant), {"permissions": []})
    assert response.status_code == 403
    assert grant.entries.count() == 1


def test_delete__scope_admin__204_and_audit(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    response = client_for(ctx.admin()).delete(ctx.detail(grant))
    assert response.status_code == 204
    assert not Grant.objects.filter(pk=grant.pk).exists()
    (entry,) = grant_audit()
    assert entry.action == "deleted" and entry.after is None
    assert entry.before["permissions"] == [{"permission_key": ctx.level.keys[0], "tags": []}]


def test_delete__viewer_not_admin__403(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    viewer = ctx.level.viewer_of(ctx.scope, ctx.organisation)
    assert client_for(viewer).delete(ctx.detail(grant)).status_code == 403
    assert Grant.objects.filter(pk=grant.pk).exists()


def test_delete__cannot_view__404(ctx: Ctx) -> None:
    grant = f.grant(ctx.principal(), ctx.scope, [ctx.level.keys[0]])
    outsider = ctx.level.outsider_of(ctx.scope, ctx.organisation)
    assert client_for(outsider).delete(ctx.detail(grant)).status_code == 404


# --------------------------------------------------------------------------------------
# Who may write, across levels (docs/PERMISSIONS.md, "Who may change grants")
# --------------------------------------------------------------------------------------


def test_project_admin__writes_environment_grants_of_its_project(environment: Any) -> None:
    organisation = environment.project.organisation
    project_admin = f.member(organisation)
    f.grant(project_admin, environment.project, [], admin=True)
    user = f.member(organisation)
    response = client_for(project_admin).post(
        f"/api/v1/environments/{environment.api_key}/user-permissions/",
        {"user": user.pk, "permissions": [VIEW_ENVIRONMENT]},
    )
    assert response.status_code == 201


def test_environment_admin__cannot_write_project_grants__403(environment: Any) -> None:
    organisation = environment.project.organisation
    env_admin = f.member(organisation)
    f.grant(env_admin, environment, [], admin=True)
    response = client_for(env_admin).post(
        f"/api/v1/projects/{environment.project.pk}/user-permissions/",
        {"user": env_admin.pk, "permissions": [VIEW_PROJECT]},
    )
    assert response.status_code == 403
    assert not Grant.objects.filter(user=env_admin, environment__isnull=True).exists()


def test_environment_admin__cannot_write_grants_of_a_sibling_environment__404(
    environment: Any,
) -> None:
    organisation = environment.project.organisation
    sibling = f.EnvironmentFactory(project=environment.project)
    env_admin = f.member(organisation)
    f.grant(env_admin, environment, [], admin=True)
    response = client_for(env_admin).post(
        f"/api/v1/environments/{sibling.api_key}/user-permissions/",
        {"user": env_admin.pk, "permissions": [VIEW_ENVIRONMENT]},
    )
    assert response.status_code == 404


def test_project_admin__cannot_write_organisation_grants__403(environment: Any) -> None:
    organisation = environment.project.organisation
    project_admin = f.member(organisation)
    f.grant(project_admin, environment.project, [], admin=True)
    response = client_for(project_admin).post(
        f"/api/v1/organisations/{organisation.pk}/user-permissions/",
        {"user": project_admin.pk, "permissions": [CREATE_PROJECT]},
    )
    assert response.status_code == 403


def test_project_admin_through_a_group__writes_project_grants(environment: Any) -> None:
    organisation = environment.project.organisation
    user = f.member(organisation)
    group = f.UserGroupFactory(organisation=organisation, users=[user])
    f.grant(group, environment.project, [], admin=True)
    response = client_for(user).post(
        f"/api/v1/projects/{environment.project.pk}/user-permissions/",
        {"user": f.member(organisation).pk, "permissions": [VIEW_AUDIT_LOG]},
    )
    assert response.status_code == 201


def test_tagged_role_holder__cannot_write_project_grants__403(environment: Any) -> None:
    organisation = environment.project.organisation
    tag = f.TagFactory(project=environment.project)
    user = f.member(organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(role, environment.project, {DELETE_FEATURE: [tag]})
    response = client_for(user).get(f"/api/v1/projects/{environment.project.pk}/user-permissions/")
    assert response.status_code == 403


def test_non_admin_api_key__403(environment: Any) -> None:
    organisation = environment.project.organisation
    key = f.APIKeyFactory(organisation=organisation)
    role = f.RoleFactory(organisation=organisation)
    f.RoleAssignmentFactory(role=role, api_key=key)
    f.grant(role, environment.project, [VIEW_PROJECT])
    response = client_for(key).get(f"/api/v1/projects/{environment.project.pk}/user-permissions/")
    assert response.status_code == 403


def test_created_grant__takes_effect_for_the_grantee(environment: Any) -> None:
    organisation = environment.project.organisation
    admin = f.member(organisation, admin=True)
    user = f.member(organisation)
    my = f"/api/v1/environments/{environment.api_key}/my-permissions/"
    assert client_for(user).get(my).status_code == 404
    client_for(admin).post(
        f"/api/v1/environments/{environment.api_key}/user-permissions/",
        {"user": user.pk, "permissions": [VIEW_ENVIRONMENT, UPDATE_FEATURE_STATE]},
    )
    response = client_for(User.objects.get(pk=user.pk)).get(my)  # a new request
    assert response.status_code == 200
    assert response.data["permissions"] == [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT]
