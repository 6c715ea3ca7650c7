"""Isolation: nothing of another organisation is visible or usable, and nothing is reached
through the wrong project or environment in the URL.

Two organisations, A and B, are built alike (projects, environments, tags, features,
segments, overrides, change requests, groups, roles, API keys, grants of every kind, audit
entries). The caller is A's strongest principal: an ADMIN member (and an admin API key).
Everything of B carries the marker `zzBzz` in its name, so a leak of any B object in any
response body is caught by one string search.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from audit.models import AuditLogEntry
from features.models import ChangeRequest
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    DELETE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from tests import factories as f
from tests.support.clients import token_client
from tests.support.feature_states import default_state

pytestmark = pytest.mark.django_db
User = get_user_model()
API = "/api/v1"
MARK = "zzBzz"


@dataclass
class Side:
    """One organisation with everything in it. `project2`/`env_p2` are a second project of
    the same organisation (for the wrong-project cases); `env2` a second environment of
    `project`."""

    organisation: Any
    admin: Any
    user: Any
    admin_key: Any
    key: Any
    project: Any
    project2: Any
    env: Any
    env2: Any
    env_p2: Any
    tag: Any
    tag_p2: Any
    feature: Any
    feature_p2: Any
    segment: Any
    segment_p2: Any
    override: Any
    override2: Any
    state: Any
    change_request: Any
    change_request_env2: Any
    group: Any
    role: Any
    role2: Any
    org_user_grant: Any
    org_group_grant: Any
    project_user_grant: Any
    project_group_grant: Any
    env_user_grant: Any
    env_group_grant: Any
    role_project_grant: Any
    role_env_grant: Any
    user_assignment: Any
    group_assignment: Any
    key_assignment: Any

    @property
    def org(self) -> str:
        return f"{API}/organisations/{self.organisation.pk}"

    @property
    def proj(self) -> str:
        return f"{API}/projects/{self.project.pk}"

    @property
    def envu(self) -> str:
        return f"{API}/environments/{self.env.api_key}"


def build_side(prefix: str) -> Side:
    organisation = f.OrganisationFactory(name=f"{prefix} organisation")
    admin = f.member(organisation, admin=True, username=f"{prefix}admin")
    user = f.member(organisation, username=f"{prefix}user")
    project = f.ProjectFactory(organisation=organisation, name=f"{prefix} project")
    project2 = f.ProjectFactory(organisation=organisation, name=f"{prefix} project two")
    env = f.EnvironmentFactory(
        project=project, name=f"{prefix} env", minimum_change_request_approvals=0
    )
    env2 = f.EnvironmentFactory(project=project, name=f"{prefix} env two")
    env_p2 = f.EnvironmentFactory(project=project2, name=f"{prefix} env of project two")
    tag = f.TagFactory(project=project, label=f"{prefix} tag")
    tag_p2 = f.TagFactory(project=project2, label=f"{prefix} tag two")
    feature = f.FeatureFactory(project=project, name=f"{prefix}_feature", tags=[tag])
    feature2 = f.FeatureFactory(project=project, name=f"{prefix}_feature_two")
    feature_p2 = f.FeatureFactory(project=project2, name=f"{prefix}_feature_p2", tags=[tag_p2])
    segment = f.SegmentFactory(project=project, name=f"{prefix} segment")
    segment_p2 = f.SegmentFactory(project=project2, name=f"{prefix} segment two")
    override = f.SegmentOverrideFactory(feature=feature, environment=env, segment=segment)
    override2 = f.SegmentOverrideFactory(feature=feature2, environment=env, segment=segment)
    change_request = f.ChangeRequestFactory(
        environment=env, title=f"{prefix} change", author_user=admin
    )
    f.ChangeRequestChangeFactory(
        change_request=change_request, feature=feature, feature_state=default_state(feature, env)
    )
    change_request_env2 = f.ChangeRequestFactory(
        environment=env2, title=f"{prefix} change two", author_user=admin
    )
    group = f.UserGroupFactory(organisation=organisation, name=f"{prefix} group", users=[user])
    role = f.RoleFactory(organisation=organisation, name=f"{prefix} role")
    role2 = f.RoleFactory(organisation=organisation, name=f"{prefix} role two")
    admin_key = f.APIKeyFactory(
        organisation=organisation, name=f"{prefix} admin key", is_admin=True
    )
    key = f.APIKeyFactory(organisation=organisation, name=f"{prefix} key")
    side = Side(
        organisation=organisation,
        admin=admin,
        user=user,
        admin_key=admin_key,
        key=key,
        project=project,
        project2=project2,
        env=env,
        env2=env2,
        env_p2=env_p2,
        tag=tag,
        tag_p2=tag_p2,
        feature=feature,
        feature_p2=feature_p2,
        segment=segment,
        segment_p2=segment_p2,
        override=override,
        override2=override2,
        state=default_state(feature, env),
        change_request=change_request,
        change_request_env2=change_request_env2,
        group=group,
        role=role,
        role2=role2,
        org_user_grant=f.grant(user, organisation, ["CREATE_PROJECT"]),
        org_group_grant=f.grant(group, organisation, ["MANAGE_USER_GROUPS"]),
        project_user_grant=f.grant(user, project, [VIEW_PROJECT]),
        project_group_grant=f.grant(group, project, [VIEW_PROJECT]),
        env_user_grant=f.grant(user, env, [VIEW_ENVIRONMENT]),
        env_group_grant=f.grant(group, env, [UPDATE_FEATURE_STATE]),
        role_project_grant=f.grant(role, project, {DELETE_FEATURE: [tag]}),
        role_env_grant=f.grant(role, env, {APPROVE_CHANGE_REQUEST: [tag]}),
        user_assignment=f.RoleAssignmentFactory(role=role, user=user),
        group_assignment=f.RoleAssignmentFactory(role=role, group=group),
        key_assignment=f.RoleAssignmentFactory(role=role, api_key=key),
    )
    f.grant(role2, project2, [VIEW_PROJECT])
    for scope in (
        {},
        {"project_id": project.pk},
        {"project_id": project.pk, "environment_id": env.pk},
    ):
        f.AuditLogEntryFactory(
            organisation=organisation,
            actor_user=admin,
            object_type="feature",
            object_id=str(feature.pk),
            after={"name": f"{prefix}_feature"},
            **scope,
        )
    return side


@pytest.fixture(scope="module")
def sides(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[Side, Side]]:
    """A and B, built once per module inside a transaction that is rolled back at the end;
    every test runs in a savepoint inside it (pytest-django's `db`), so nothing a test
    writes survives it and nothing of A or B outlives the module."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield build_side("alpha"), build_side(MARK)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def a(sides: tuple[Side, Side], db: Any) -> Side:
    return sides[0]


@pytest.fixture
def b(sides: tuple[Side, Side], db: Any) -> Side:
    return sides[1]


@pytest.fixture(params=["admin_user", "admin_api_key"])
def caller(request: Any, a: Side) -> Any:
    return a.admin if request.param == "admin_user" else a.admin_key


def b_leaks(response: Any, b: Side) -> list[str]:
    """What of B a response body shows: the marker, or an environment key of B."""
    body = response.content.decode()
    found = [MARK] if MARK in body else []
    found += [
        env.api_key for env in (b.env, b.env2, b.env_p2) if env.api_key and env.api_key in body
    ]
    return found


def all_items(client: Any, url: str) -> tuple[Any, list[Any]]:
    response = client.get(url, {"page_size": 1000})
    data = response.data
    items = data["results"] if isinstance(data, dict) and "results" in data else data
    return response, items


class _Ref:
    """Renders a URL builder as a readable test id: `s.role.pk` becomes `{s.role}`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> _Ref:
        return self if attr in ("pk", "api_key") else _Ref(f"{self.name}.{attr}")

    def __format__(self, spec: str) -> str:
        return "{" + self.name + "}"


def _id(method: str, make_url: Callable[..., str]) -> str:
    refs = [_Ref(name) for name in make_url.__code__.co_varnames[: make_url.__code__.co_argcount]]
    return f"{method.upper()} {make_url(*refs)}"


# --------------------------------------------------------------------------------------
# Lists show nothing of B
# --------------------------------------------------------------------------------------

A_LISTS: list[Callable[[Side], str]] = [
    lambda s: f"{API}/organisations/",
    lambda s: f"{API}/projects/",
    lambda s: f"{API}/environments/",
    lambda s: f"{s.org}/users/",
    lambda s: f"{s.org}/groups/",
    lambda s: f"{s.org}/roles/",
    lambda s: f"{s.org}/api-keys/",
    lambda s: f"{s.org}/user-permissions/",
    lambda s: f"{s.org}/user-group-permissions/",
    lambda s: f"{s.org}/audit-log/",
    lambda s: f"{s.org}/my-permissions/",
    lambda s: f"{s.org}/roles/{s.role.pk}/users/",
    lambda s: f"{s.org}/roles/{s.role.pk}/groups/",
    lambda s: f"{s.org}/roles/{s.role.pk}/api-keys/",
    lambda s: f"{s.org}/roles/{s.role.pk}/organisation-permissions/",
    lambda s: f"{s.org}/roles/{s.role.pk}/projects-permissions/",
    lambda s: f"{s.org}/roles/{s.role.pk}/environments-permissions/",
    lambda s: f"{s.proj}/tags/",
    lambda s: f"{s.proj}/features/",
    lambda s: f"{s.proj}/segments/",
    lambda s: f"{s.proj}/user-permissions/",
    lambda s: f"{s.proj}/user-group-permissions/",
    lambda s: f"{s.proj}/audit-log/",
    lambda s: f"{s.proj}/my-permissions/",
    lambda s: f"{s.envu}/featurestates/",
    lambda s: f"{s.envu}/features/{s.feature.pk}/segment-overrides/",
    lambda s: f"{s.envu}/change-requests/",
    lambda s: f"{s.envu}/user-permissions/",
    lambda s: f"{s.envu}/user-group-permissions/",
    lambda s: f"{s.envu}/my-permissions/",
]


@pytest.mark.parametrize("make_url", A_LISTS, ids=lambda make_url: _id("GET", make_url))
def test_list__shows_nothing_of_another_organisation(
    make_url: Callable[[Side], str], a: Side, b: Side, caller: Any
) -> None:
    url = make_url(a)
    response, items = all_items(token_client(caller), url)
    assert response.status_code == 200, url
    assert b_leaks(response, b) == [], url
    assert items is not None


def test_list__organisations__only_the_callers(a: Side, b: Side, caller: Any) -> None:
    _, items = all_items(token_client(caller), f"{API}/organisations/")
    assert [o["id"] for o in items] == [a.organisation.pk]


def test_list__projects_and_environments__only_the_callers(a: Side, b: Side, caller: Any) -> None:
    client = token_client(caller)
    _, projects = all_items(client, f"{API}/projects/")
    _, environments = all_items(client, f"{API}/environments/")
    assert {p["id"] for p in projects} == {a.project.pk, a.project2.pk}
    assert {e["id"] for e in environments} == {a.env.pk, a.env2.pk, a.env_p2.pk}


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (lambda s: f"{API}/projects/", lambda o: {"organisation": o.organisation.pk}),
        (lambda s: f"{API}/environments/", lambda o: {"project": o.project.pk}),
        (lambda s: f"{s.org}/audit-log/", lambda o: {"project": o.project.pk}),
        (lambda s: f"{s.org}/audit-log/", lambda o: {"environment": o.env.pk}),
        (lambda s: f"{s.org}/audit-log/", lambda o: {"actor": o.admin.pk}),
        (lambda s: f"{s.proj}/features/", lambda o: {"tags": str(o.tag.pk)}),
        (lambda s: f"{s.envu}/featurestates/", lambda o: {"feature": o.feature.pk}),
        (lambda s: f"{s.envu}/featurestates/", lambda o: {"tags": str(o.tag.pk)}),
        (
            lambda s: f"{s.org}/roles/{s.role.pk}/projects-permissions/",
            lambda o: {"project": o.project.pk},
        ),
    ],
    ids=lambda f: (
        _id("GET", f) if f.__code__.co_varnames[0] == "s" else "?" + ",".join(f(_Ref("o")))
    ),
)
def test_list__filtered_by_an_id_of_another_organisation__nothing_of_it(
    url: Callable[[Side], str], params: Callable[[Side], dict[str, Any]], a: Side, b: Side
) -> None:
    response = token_client(a.admin).get(url(a), params(b))
    assert response.status_code == 200
    assert b_leaks(response, b) == []
    assert response.data["results"] == []


# --------------------------------------------------------------------------------------
# B's objects do not exist for A: 404 on every method
# --------------------------------------------------------------------------------------

B_URLS: list[tuple[str, Callable[[Side], str]]] = [
    ("get patch delete", lambda s: f"{s.org}/"),
    ("get post", lambda s: f"{s.org}/users/"),
    ("patch delete", lambda s: f"{s.org}/users/{s.user.pk}/"),
    ("get post", lambda s: f"{s.org}/groups/"),
    ("get put patch delete", lambda s: f"{s.org}/groups/{s.group.pk}/"),
    ("get post", lambda s: f"{s.org}/roles/"),
    ("get patch delete", lambda s: f"{s.org}/roles/{s.role.pk}/"),
    ("get post", lambda s: f"{s.org}/roles/{s.role.pk}/users/"),
    ("delete", lambda s: f"{s.org}/roles/{s.role.pk}/users/{s.user_assignment.pk}/"),
    ("get post", lambda s: f"{s.org}/roles/{s.role.pk}/groups/"),
    ("delete", lambda s: f"{s.org}/roles/{s.role.pk}/groups/{s.group_assignment.pk}/"),
    ("get post", lambda s: f"{s.org}/roles/{s.role.pk}/api-keys/"),
    ("delete", lambda s: f"{s.org}/roles/{s.role.pk}/api-keys/{s.key_assignment.pk}/"),
    ("get put", lambda s: f"{s.org}/roles/{s.role.pk}/organisation-permissions/"),
    ("get post", lambda s: f"{s.org}/roles/{s.role.pk}/projects-permissions/"),
    (
        "get put patch delete",
        lambda s: f"{s.org}/roles/{s.role.pk}/projects-permissions/{s.role_project_grant.pk}/",
    ),
    ("get post", lambda s: f"{s.org}/roles/{s.role.pk}/environments-permissions/"),
    (
        "get put patch delete",
        lambda s: f"{s.org}/roles/{s.role.pk}/environments-permissions/{s.role_env_grant.pk}/",
    ),
    ("get post", lambda s: f"{s.org}/api-keys/"),
    ("get patch delete", lambda s: f"{s.org}/api-keys/{s.key.pk}/"),
    ("get post", lambda s: f"{s.org}/user-permissions/"),
    ("get put patch delete", lambda s: f"{s.org}/user-permissions/{s.org_user_grant.pk}/"),
    ("get post", lambda s: f"{s.org}/user-group-permissions/"),
    (
        "get put patch delete",
        lambda s: f"{s.org}/user-group-permissions/{s.org_group_grant.pk}/",
    ),
    ("get", lambda s: f"{s.org}/audit-log/"),
    ("get", lambda s: f"{s.org}/my-permissions/"),
    ("get patch delete", lambda s: f"{s.proj}/"),
    ("get post", lambda s: f"{s.proj}/tags/"),
    ("get patch delete", lambda s: f"{s.proj}/tags/{s.tag.pk}/"),
    ("get post", lambda s: f"{s.proj}/features/"),
    ("get patch delete", lambda s: f"{s.proj}/features/{s.feature.pk}/"),
    ("get post", lambda s: f"{s.proj}/segments/"),
    ("get patch delete", lambda s: f"{s.proj}/segments/{s.segment.pk}/"),
    ("get post", lambda s: f"{s.proj}/user-permissions/"),
    ("get put patch delete", lambda s: f"{s.proj}/user-permissions/{s.project_user_grant.pk}/"),
    ("get post", lambda s: f"{s.proj}/user-group-permissions/"),
    (
        "get put patch delete",
        lambda s: f"{s.proj}/user-group-permissions/{s.project_group_grant.pk}/",
    ),
    ("get", lambda s: f"{s.proj}/audit-log/"),
    ("get", lambda s: f"{s.proj}/my-permissions/"),
    ("get", lambda s: f"{s.proj}/user-detailed-permissions/{s.user.pk}/"),
    ("get patch delete", lambda s: f"{s.envu}/"),
    ("get", lambda s: f"{s.envu}/featurestates/"),
    ("get patch", lambda s: f"{s.envu}/featurestates/{s.state.pk}/"),
    ("get post", lambda s: f"{s.envu}/features/{s.feature.pk}/segment-overrides/"),
    (
        "get patch delete",
        lambda s: f"{s.envu}/features/{s.feature.pk}/segment-overrides/{s.override.pk}/",
    ),
    ("get post", lambda s: f"{s.envu}/change-requests/"),
    ("get patch delete", lambda s: f"{s.envu}/change-requests/{s.change_request.pk}/"),
    ("post", lambda s: f"{s.envu}/change-requests/{s.change_request.pk}/approve/"),
    ("post", lambda s: f"{s.envu}/change-requests/{s.change_request.pk}/commit/"),
    ("get post", lambda s: f"{s.envu}/user-permissions/"),
    ("get put patch delete", lambda s: f"{s.envu}/user-permissions/{s.env_user_grant.pk}/"),
    ("get post", lambda s: f"{s.envu}/user-group-permissions/"),
    (
        "get put patch delete",
        lambda s: f"{s.envu}/user-group-permissions/{s.env_group_grant.pk}/",
    ),
    ("get", lambda s: f"{s.envu}/my-permissions/"),
    ("get", lambda s: f"{s.envu}/user-detailed-permissions/{s.user.pk}/"),
    ("get", lambda s: f"{s.envu}/features/{s.feature.pk}/explain/"),
]


def _cases(urls: list[tuple[str, Callable[[Side], str]]]) -> list[Any]:
    return [
        pytest.param(method, make_url, id=_id(method, make_url))
        for methods, make_url in urls
        for method in methods.split()
    ]


def call(client: Any, method: str, url: str, data: Any = None) -> Any:
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, data if data is not None else {}, format="json")


def audit_count(side: Side) -> int:
    return AuditLogEntry.objects.filter(organisation=side.organisation).count()


@pytest.mark.parametrize(("method", "make_url"), _cases(B_URLS))
def test_object_of_another_organisation__404_and_unchanged(
    method: str, make_url: Callable[[Side], str], a: Side, b: Side, caller: Any
) -> None:
    before = audit_count(b)
    response = call(token_client(caller), method, make_url(b))
    assert response.status_code == 404, response.content
    assert b_leaks(response, b) == []
    assert audit_count(b) == before


# --------------------------------------------------------------------------------------
# B's ids under A's URLs, and A's own objects under the wrong project or environment: 404
# --------------------------------------------------------------------------------------

# (methods, url(a, other), also_wrong_scope): `other` is B (another organisation), or, for
# the wrong-scope cases (`also_wrong_scope`), A itself seen through `shifted`: the same
# URLs with objects taken from another project or environment of A.
CROSS_URLS: list[tuple[str, Callable[[Side, Side], str], bool]] = [
    ("get put patch delete", lambda a, o: f"{a.org}/groups/{o.group.pk}/", False),
    ("get patch delete", lambda a, o: f"{a.org}/roles/{o.role.pk}/", False),
    ("get post", lambda a, o: f"{a.org}/roles/{o.role.pk}/users/", False),
    ("delete", lambda a, o: f"{a.org}/roles/{a.role.pk}/users/{o.user_assignment.pk}/", True),
    ("delete", lambda a, o: f"{a.org}/roles/{a.role.pk}/groups/{o.group_assignment.pk}/", True),
    ("delete", lambda a, o: f"{a.org}/roles/{a.role.pk}/api-keys/{o.key_assignment.pk}/", True),
    (
        "get put patch delete",
        lambda a, o: f"{a.org}/roles/{a.role.pk}/projects-permissions/{o.role_project_grant.pk}/",
        True,
    ),
    (
        "get put patch delete",
        lambda a, o: f"{a.org}/roles/{a.role.pk}/environments-permissions/{o.role_env_grant.pk}/",
        True,
    ),
    ("get patch delete", lambda a, o: f"{a.org}/api-keys/{o.key.pk}/", False),
    (
        "get put patch delete",
        lambda a, o: f"{a.org}/user-permissions/{o.org_user_grant.pk}/",
        False,
    ),
    (
        "get put patch delete",
        lambda a, o: f"{a.org}/user-group-permissions/{o.org_group_grant.pk}/",
        False,
    ),
    ("get patch delete", lambda a, o: f"{a.proj}/tags/{o.tag.pk}/", True),
    ("get patch delete", lambda a, o: f"{a.proj}/features/{o.feature.pk}/", True),
    ("get patch delete", lambda a, o: f"{a.proj}/segments/{o.segment.pk}/", True),
    (
        "get put patch delete",
        lambda a, o: f"{a.proj}/user-permissions/{o.project_user_grant.pk}/",
        True,
    ),
    (
        "get put patch delete",
        lambda a, o: f"{a.proj}/user-group-permissions/{o.project_group_grant.pk}/",
        True,
    ),
    ("get patch", lambda a, o: f"{a.envu}/featurestates/{o.state.pk}/", True),
    ("get post", lambda a, o: f"{a.envu}/features/{o.feature.pk}/segment-overrides/", True),
    (
        "get patch delete",
        lambda a, o: f"{a.envu}/features/{a.feature.pk}/segment-overrides/{o.override.pk}/",
        True,
    ),
    ("get patch delete", lambda a, o: f"{a.envu}/change-requests/{o.change_request.pk}/", True),
    ("post", lambda a, o: f"{a.envu}/change-requests/{o.change_request.pk}/approve/", True),
    ("post", lambda a, o: f"{a.envu}/change-requests/{o.change_request.pk}/commit/", True),
    (
        "get put patch delete",
        lambda a, o: f"{a.envu}/user-permissions/{o.env_user_grant.pk}/",
        True,
    ),
    (
        "get put patch delete",
        lambda a, o: f"{a.envu}/user-group-permissions/{o.env_group_grant.pk}/",
        True,
    ),
    ("get", lambda a, o: f"{a.envu}/features/{o.feature.pk}/explain/", True),
]


def _cross_cases(*, wrong_scope_only: bool) -> list[Any]:
    return [
        pytest.param(method, make_url, id=_id(method, make_url))
        for methods, make_url, wrong_scope in CROSS_URLS
        if wrong_scope or not wrong_scope_only
        for method in methods.split()
    ]


@pytest.mark.parametrize(("method", "make_url"), _cross_cases(wrong_scope_only=False))
def test_id_of_another_organisation_under_own_url__404(
    method: str, make_url: Callable[[Side, Side], str], a: Side, b: Side, caller: Any
) -> None:
    before = audit_count(b), audit_count(a)
    response = call(token_client(caller), method, make_url(a, b))
    assert response.status_code == 404, response.content
    assert b_leaks(response, b) == []
    assert (audit_count(b), audit_count(a)) == before


def shifted(a: Side) -> Side:
    """A twin of A whose objects sit in the wrong project or environment for A's `project`
    and `env` URLs: another project's tag, feature and segment; the feature's state in
    another environment; an override of another feature; a change request of another
    environment; grants of other scopes and role assignments of another role."""
    return Side(
        **{
            **a.__dict__,
            "tag": a.tag_p2,
            "feature": a.feature_p2,
            "segment": a.segment_p2,
            "state": default_state(a.feature, a.env2),
            "override": a.override2,
            "change_request": a.change_request_env2,
            "project_user_grant": f.grant(f.member(a.organisation), a.project2, [VIEW_PROJECT]),
            "project_group_grant": f.grant(a.group, a.project2, [VIEW_PROJECT]),
            "env_user_grant": f.grant(a.user, a.env2, [VIEW_ENVIRONMENT]),
            "env_group_grant": f.grant(a.group, a.env2, [VIEW_ENVIRONMENT]),
            "role_project_grant": f.grant(a.role2, a.project, [VIEW_PROJECT]),
            "role_env_grant": f.grant(a.role2, a.env, [VIEW_ENVIRONMENT]),
            "user_assignment": f.RoleAssignmentFactory(role=a.role2, user=a.user),
            "group_assignment": f.RoleAssignmentFactory(role=a.role2, group=a.group),
            "key_assignment": f.RoleAssignmentFactory(role=a.role2, api_key=a.key),
        }
    )


@pytest.mark.parametrize(("method", "make_url"), _cross_cases(wrong_scope_only=True))
def test_object_addressed_through_the_wrong_project_or_environment__404(
    method: str, make_url: Callable[[Side, Side], str], a: Side
) -> None:
    other = shifted(a)
    before = audit_count(a)
    response = call(token_client(a.admin), method, make_url(a, other))
    assert response.status_code == 404, (make_url(a, other), response.content)
    assert audit_count(a) == before


# --------------------------------------------------------------------------------------
# Ids of B (or of another project of A) in payloads: 400 naming the field
# --------------------------------------------------------------------------------------

# (method, url(a), payload(a, other), field)
PAYLOADS: list[tuple[str, Callable[[Side], str], Callable[[Side, Side], dict[str, Any]], str]] = [
    (
        "post",
        lambda a: f"{API}/projects/",
        lambda a, o: {"name": "p", "organisation": o.organisation.pk},
        "organisation",
    ),
    (
        "patch",
        lambda a: f"{a.proj}/",
        lambda a, o: {"organisation": o.organisation.pk},
        "organisation",
    ),
    (
        "post",
        lambda a: f"{API}/environments/",
        lambda a, o: {"name": "e", "project": o.project.pk},
        "project",
    ),
    ("patch", lambda a: f"{a.envu}/", lambda a, o: {"project": o.project.pk}, "project"),
    (
        "post",
        lambda a: f"{a.org}/user-permissions/",
        lambda a, o: {"user": o.user.pk, "permissions": []},
        "user",
    ),
    (
        "post",
        lambda a: f"{a.org}/user-group-permissions/",
        lambda a, o: {"group": o.group.pk, "permissions": []},
        "group",
    ),
    (
        "post",
        lambda a: f"{a.proj}/user-permissions/",
        lambda a, o: {"user": o.user.pk, "permissions": [VIEW_PROJECT]},
        "user",
    ),
    (
        "post",
        lambda a: f"{a.proj}/user-group-permissions/",
        lambda a, o: {"group": o.group.pk, "permissions": [VIEW_PROJECT]},
        "group",
    ),
    (
        "post",
        lambda a: f"{a.envu}/user-permissions/",
        lambda a, o: {"user": o.user.pk, "permissions": [VIEW_ENVIRONMENT]},
        "user",
    ),
    (
        "post",
        lambda a: f"{a.envu}/user-group-permissions/",
        lambda a, o: {"group": o.group.pk, "permissions": [VIEW_ENVIRONMENT]},
        "group",
    ),
    (
        "post",
        lambda a: f"{a.org}/groups/",
        lambda a, o: {"name": "g", "users": [o.user.pk]},
        "users",
    ),
    (
        "put",
        lambda a: f"{a.org}/groups/{a.group.pk}/",
        lambda a, o: {"name": a.group.name, "users": [a.user.pk, o.user.pk]},
        "users",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/users/",
        lambda a, o: {"user": o.user.pk},
        "user",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/groups/",
        lambda a, o: {"group": o.group.pk},
        "group",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/api-keys/",
        lambda a, o: {"api_key": o.key.pk},
        "api_key",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/projects-permissions/",
        lambda a, o: {"project": o.project.pk, "permissions": []},
        "project",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/environments-permissions/",
        lambda a, o: {"environment": o.env.pk, "permissions": []},
        "environment",
    ),
    (
        "put",
        lambda a: f"{a.org}/roles/{a.role.pk}/projects-permissions/{a.role_project_grant.pk}/",
        lambda a, o: {"project": o.project.pk, "permissions": []},
        "project",
    ),
    (
        "post",
        lambda a: f"{a.org}/roles/{a.role2.pk}/projects-permissions/",
        lambda a, o: {
            "project": a.project.pk,
            "permissions": [{"permission_key": DELETE_FEATURE, "tags": [o.tag.pk]}],
        },
        "permissions",
    ),
    (
        "patch",
        lambda a: f"{a.org}/roles/{a.role.pk}/environments-permissions/{a.role_env_grant.pk}/",
        lambda a, o: {
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [o.tag.pk]}]
        },
        "permissions",
    ),
    (
        "post",
        lambda a: f"{a.proj}/features/",
        lambda a, o: {"name": "x", "tags": [o.tag.pk]},
        "tags",
    ),
    (
        "patch",
        lambda a: f"{a.proj}/features/{a.feature.pk}/",
        lambda a, o: {"tags": [a.tag.pk, o.tag.pk]},
        "tags",
    ),
    (
        "post",
        lambda a: f"{a.envu}/features/{a.feature.pk}/segment-overrides/",
        lambda a, o: {"segment": o.segment.pk, "priority": 5},
        "segment",
    ),
    (
        "patch",
        lambda a: f"{a.envu}/features/{a.feature.pk}/segment-overrides/{a.override.pk}/",
        lambda a, o: {"segment": o.segment.pk},
        "segment",
    ),
    (
        "patch",
        lambda a: f"{a.envu}/featurestates/{a.state.pk}/",
        lambda a, o: {"feature": o.feature.pk, "enabled": True},
        "feature",
    ),
    (
        "post",
        lambda a: f"{a.envu}/change-requests/",
        lambda a, o: {"title": "t", "changes": [{"feature": o.feature.pk, "enabled": True}]},
        "changes",
    ),
    (
        "post",
        lambda a: f"{a.envu}/change-requests/",
        lambda a, o: {
            "title": "t",
            "changes": [
                {"feature": a.feature.pk, "segment_override": o.override.pk, "enabled": True}
            ],
        },
        "changes",
    ),
    (
        "patch",
        lambda a: f"{a.envu}/change-requests/{a.change_request.pk}/",
        lambda a, o: {"changes": [{"feature": o.feature.pk, "enabled": True}]},
        "changes",
    ),
]


def _payload_cases() -> list[Any]:
    return [
        pytest.param(method, url, payload, field, id=f"{_id(method, url)} {field}")
        for method, url, payload, field in PAYLOADS
    ]


@pytest.mark.parametrize(("method", "make_url", "payload", "field"), _payload_cases())
def test_payload_id_of_another_organisation__400_on_the_field(
    method: str,
    make_url: Callable[[Side], str],
    payload: Callable[[Side, Side], dict[str, Any]],
    field: str,
    a: Side,
    b: Side,
) -> None:
    client = token_client(a.admin)
    before = audit_count(a), audit_count(b)
    response = call(client, method, make_url(a), payload(a, b))
    assert response.status_code == 400, response.content
    assert field in response.data, response.data
    assert b_leaks(response, b) == []
    assert (audit_count(a), audit_count(b)) == before


WRONG_PROJECT_PAYLOADS = [
    case
    for case in _payload_cases()
    if case.values[3] in {"tags", "segment", "changes", "permissions", "feature"}
]


@pytest.mark.parametrize(("method", "make_url", "payload", "field"), WRONG_PROJECT_PAYLOADS)
def test_payload_id_of_another_project_of_the_same_organisation__400_on_the_field(
    method: str,
    make_url: Callable[[Side], str],
    payload: Callable[[Side, Side], dict[str, Any]],
    field: str,
    a: Side,
) -> None:
    other = shifted(a)
    # the other project's objects, and for overrides one of another environment
    other.override = f.SegmentOverrideFactory(
        feature=a.feature, environment=a.env2, segment=a.segment
    )
    client = token_client(a.admin)
    before = audit_count(a)
    response = call(client, method, make_url(a), payload(a, other))
    assert response.status_code == 400, response.content
    assert field in response.data, response.data
    assert audit_count(a) == before


def test_change_request__b_ids_in_payload__nothing_created(a: Side, b: Side) -> None:
    count = ChangeRequest.objects.count()
    token_client(a.admin).post(
        f"{a.envu}/change-requests/",
        {"title": "t", "changes": [{"feature": b.feature.pk, "enabled": True}]},
        format="json",
    )
    assert ChangeRequest.objects.count() == count


def test_explain__user_of_another_organisation__404(a: Side, b: Side) -> None:
    response = token_client(a.admin).get(
        f"{a.envu}/features/{a.feature.pk}/explain/",
        {"user": b.user.pk, "permission": UPDATE_FEATURE_STATE},
    )
    assert response.status_code == 404
    assert b_leaks(response, b) == []


@pytest.mark.parametrize("scope", ["project", "environment"])
def test_user_detailed_permissions__user_of_another_organisation__404(
    a: Side, b: Side, scope: str
) -> None:
    base = a.proj if scope == "project" else a.envu
    response = token_client(a.admin).get(f"{base}/user-detailed-permissions/{b.user.pk}/")
    assert response.status_code == 404
    assert b_leaks(response, b) == []


def test_leak_check__b_admin_reads_b__finds_b_marker(b: Side) -> None:
    """Guard: B's own admin does see B (so `b_leaks` would catch a leak)."""
    response = token_client(b.admin).get(f"{b.envu}/change-requests/")
    assert b_leaks(response, b)
    assert json.loads(response.content)["count"] >= 1
