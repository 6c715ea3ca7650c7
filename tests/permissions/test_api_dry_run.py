"""`?dry_run=true` on grant writes (docs/PERMISSIONS.md, "Seeing a change before making it"): user and
group grants of the organisation, the project and the environment, and role grants. Each
case previews (200 `{"impact"}`, nothing saved, no audit entry), then applies the same
request, whose audit entries carry the previewed impact. The organisation is described in
tests/support/dry_run.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    MANAGE_SEGMENT_OVERRIDES,
    MANAGE_SEGMENTS,
    MANAGE_USER_GROUPS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
    VIEW_PROJECT,
)
from tests import factories as f
from tests.support.dry_run import (
    Case,
    World,
    change,
    check_refused,
    contract_tests,
    db_state,
    nothing,
    pick,
    send,
    world_fixture,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Grants:
    """The user grants (`kind="user"`: alice's; creations for carol) or the group grants
    (`kind="group"`: `group`'s, i.e. bob's; creations for group2 = {dave}) of one level."""

    level: str  # "org" | "project" | "env"
    kind: str  # "user" | "group"

    @property
    def id(self) -> str:
        return f"{self.level}-{self.kind}"

    def collection(self, w: World) -> str:
        base = {"org": w.org_url, "project": w.project_url, "env": w.environment_url}[self.level]
        return f"{base}/{'user' if self.kind == 'user' else 'user-group'}-permissions/"

    def detail(self, w: World) -> str:
        holder = "alice" if self.kind == "user" else "group"
        return f"{self.collection(w)}{w.grants[f'{holder}_{self.level}'].pk}/"

    def ref(self, w: World, *, new: bool = False) -> dict[str, int]:
        if self.kind == "user":
            return {"user": (w.carol if new else w.alice).pk}
        return {"group": (w.group2 if new else w.group).pk}

    def holder(self, w: World) -> Any:
        return w.alice if self.kind == "user" else w.bob

    def newcomer(self, w: World) -> Any:
        return w.carol if self.kind == "user" else w.dave

    def change(self, who: Any, key: str, w: World, features: int | None = None) -> Any:
        project = None if self.level == "org" else w.project
        environment = w.environment if self.level == "env" else None
        return change(who, key, project, environment, features=features)


def _org_cases(g: Grants) -> list[Case]:
    """alice's and `group`'s MANAGE_USER_GROUPS; both also hold CREATE_PROJECT through the
    role, so putting it in its place gains them nothing."""
    return [
        Case(
            id=f"{g.id}-post",
            method="post",
            url=g.collection,
            body=lambda w: {**g.ref(w, new=True), "permissions": [CREATE_PROJECT]},
            status=201,
            gained=lambda w: [g.change(g.newcomer(w), CREATE_PROJECT, w)],
            lost=nothing,
        ),
        Case(
            id=f"{g.id}-put",
            method="put",
            url=g.detail,
            body=lambda w: {**g.ref(w), "permissions": [CREATE_PROJECT]},
            status=200,
            gained=nothing,
            lost=lambda w: [g.change(g.holder(w), MANAGE_USER_GROUPS, w)],
        ),
        Case(
            id=f"{g.id}-patch",
            method="patch",
            url=g.detail,
            body=lambda w: {"permissions": []},
            status=200,
            gained=nothing,
            lost=lambda w: [g.change(g.holder(w), MANAGE_USER_GROUPS, w)],
        ),
        Case(
            id=f"{g.id}-delete",
            method="delete",
            url=g.detail,
            body=None,
            status=204,
            gained=nothing,
            lost=lambda w: [g.change(g.holder(w), MANAGE_USER_GROUPS, w)],
        ),
    ]


def _project_cases(g: Grants) -> list[Case]:
    """alice's and `group`'s CREATE_FEATURE (no tags: `features` null); both hold
    DELETE_FEATURE tagged B (f2) through the role."""
    return [
        Case(
            id=f"{g.id}-post",
            method="post",
            url=g.collection,
            body=lambda w: {**g.ref(w, new=True), "permissions": [DELETE_FEATURE]},
            status=201,
            gained=lambda w: [g.change(g.newcomer(w), DELETE_FEATURE, w, features=3)],
            lost=nothing,
        ),
        Case(
            id=f"{g.id}-put",
            method="put",
            url=g.detail,
            body=lambda w: {**g.ref(w), "admin": False, "permissions": [MANAGE_SEGMENTS]},
            status=200,
            gained=lambda w: [g.change(g.holder(w), MANAGE_SEGMENTS, w)],
            lost=lambda w: [g.change(g.holder(w), CREATE_FEATURE, w)],
        ),
        # DELETE_FEATURE untagged adds f1 and f3 to what the role's entry reaches (f2).
        Case(
            id=f"{g.id}-patch",
            method="patch",
            url=g.detail,
            body=lambda w: {"permissions": [CREATE_FEATURE, DELETE_FEATURE]},
            status=200,
            gained=lambda w: [g.change(g.holder(w), DELETE_FEATURE, w, features=2)],
            lost=nothing,
        ),
        Case(
            id=f"{g.id}-delete",
            method="delete",
            url=g.detail,
            body=None,
            status=204,
            gained=nothing,
            lost=lambda w: [g.change(g.holder(w), CREATE_FEATURE, w)],
        ),
    ]


def _env_cases(g: Grants) -> list[Case]:
    """alice's and `group`'s CREATE_CHANGE_REQUEST untagged (all 3 features); both hold
    UPDATE_FEATURE_STATE tagged A (f1, f2) through the role."""
    return [
        Case(
            id=f"{g.id}-post",
            method="post",
            url=g.collection,
            body=lambda w: {**g.ref(w, new=True), "permissions": [UPDATE_FEATURE_STATE]},
            status=201,
            gained=lambda w: [g.change(g.newcomer(w), UPDATE_FEATURE_STATE, w, features=3)],
            lost=nothing,
        ),
        # UPDATE_FEATURE_STATE untagged adds f3 only.
        Case(
            id=f"{g.id}-put",
            method="put",
            url=g.detail,
            body=lambda w: {**g.ref(w), "admin": False, "permissions": [UPDATE_FEATURE_STATE]},
            status=200,
            gained=lambda w: [g.change(g.holder(w), UPDATE_FEATURE_STATE, w, features=1)],
            lost=lambda w: [g.change(g.holder(w), CREATE_CHANGE_REQUEST, w, features=3)],
        ),
        Case(
            id=f"{g.id}-patch",
            method="patch",
            url=g.detail,
            body=lambda w: {"permissions": [CREATE_CHANGE_REQUEST, APPROVE_CHANGE_REQUEST]},
            status=200,
            gained=lambda w: [g.change(g.holder(w), APPROVE_CHANGE_REQUEST, w, features=3)],
            lost=nothing,
        ),
        Case(
            id=f"{g.id}-delete",
            method="delete",
            url=g.detail,
            body=None,
            status=204,
            gained=nothing,
            lost=lambda w: [g.change(g.holder(w), CREATE_CHANGE_REQUEST, w, features=3)],
        ),
    ]


GRANT_CASES = [
    case
    for kind in ("user", "group")
    for cases_of, level in ((_org_cases, "org"), (_project_cases, "project"), (_env_cases, "env"))
    for case in cases_of(Grants(level, kind))
]


def _role_holders(w: World) -> list[Any]:
    return [w.alice, w.bob, w.key]


def _role2_holders(w: World) -> list[Any]:
    return [w.carol, w.dave, w.key2]


def _role_grant_url(w: World, scope: str, grant: str | None = None) -> str:
    base = f"{w.role_url(w.role)}/{scope}-permissions/"
    return base if grant is None else f"{base}{w.grants[grant].pk}/"


ROLE_CASES = [
    # The role's CREATE_PROJECT becomes MANAGE_USER_GROUPS: alice and bob hold that already
    # (own and group grants), the API key does not.
    Case(
        id="role-organisation-put",
        method="put",
        url=lambda w: f"{w.role_url(w.role)}/organisation-permissions/",
        body=lambda w: {"permissions": [MANAGE_USER_GROUPS]},
        status=200,
        gained=lambda w: [change(w.key, MANAGE_USER_GROUPS)],
        lost=lambda w: [change(p, CREATE_PROJECT) for p in _role_holders(w)],
    ),
    Case(
        id="role-project-post",
        method="post",
        url=lambda w: f"{w.role_url(w.role2)}/projects-permissions/",
        body=lambda w: {
            "project": w.project.pk,
            "permissions": [{"permission_key": DELETE_FEATURE, "tags": [w.tag_a.pk]}],
        },
        status=201,
        gained=lambda w: [
            change(p, DELETE_FEATURE, w.project, features=2) for p in _role2_holders(w)
        ],
        lost=nothing,
    ),
    # DELETE_FEATURE tagged B (f2) becomes tagged A (f1, f2).
    Case(
        id="role-project-put",
        method="put",
        url=lambda w: _role_grant_url(w, "projects", "role_project"),
        body=lambda w: {
            "project": w.project.pk,
            "admin": False,
            "permissions": [{"permission_key": DELETE_FEATURE, "tags": [w.tag_a.pk]}],
        },
        status=200,
        gained=lambda w: [
            change(p, DELETE_FEATURE, w.project, features=1) for p in _role_holders(w)
        ],
        lost=nothing,
    ),
    # Untagged: every feature of the project.
    Case(
        id="role-project-patch",
        method="patch",
        url=lambda w: _role_grant_url(w, "projects", "role_project"),
        body=lambda w: {"permissions": [{"permission_key": DELETE_FEATURE, "tags": []}]},
        status=200,
        gained=lambda w: [
            change(p, DELETE_FEATURE, w.project, features=2) for p in _role_holders(w)
        ],
        lost=nothing,
    ),
    Case(
        id="role-project-delete",
        method="delete",
        url=lambda w: _role_grant_url(w, "projects", "role_project"),
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: [change(p, DELETE_FEATURE, w.project, features=1) for p in _role_holders(w)],
    ),
    # The brief's example: UPDATE_FEATURE_STATE tagged A on an environment: each holder of
    # the role (a user, a group's member, an API key) gains it on the 2 features carrying A.
    Case(
        id="role-environment-post",
        method="post",
        url=lambda w: f"{w.role_url(w.role2)}/environments-permissions/",
        body=lambda w: {
            "environment": w.environment.pk,
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [w.tag_a.pk]}],
        },
        status=201,
        gained=lambda w: [
            change(p, UPDATE_FEATURE_STATE, w.project, w.environment, features=2)
            for p in _role2_holders(w)
        ],
        lost=nothing,
    ),
    # Tagged A (f1, f2) becomes tagged B (f2).
    Case(
        id="role-environment-put",
        method="put",
        url=lambda w: _role_grant_url(w, "environments", "role_env"),
        body=lambda w: {
            "environment": w.environment.pk,
            "admin": False,
            "permissions": [{"permission_key": UPDATE_FEATURE_STATE, "tags": [w.tag_b.pk]}],
        },
        status=200,
        gained=nothing,
        lost=lambda w: [
            change(p, UPDATE_FEATURE_STATE, w.project, w.environment, features=1)
            for p in _role_holders(w)
        ],
    ),
    Case(
        id="role-environment-patch",
        method="patch",
        url=lambda w: _role_grant_url(w, "environments", "role_env"),
        body=lambda w: {
            "permissions": [
                {"permission_key": UPDATE_FEATURE_STATE, "tags": [w.tag_a.pk]},
                {"permission_key": MANAGE_SEGMENT_OVERRIDES, "tags": [w.tag_c.pk]},
            ]
        },
        status=200,
        gained=lambda w: [
            change(p, MANAGE_SEGMENT_OVERRIDES, w.project, w.environment, features=1)
            for p in _role_holders(w)
        ],
        lost=nothing,
    ),
    Case(
        id="role-environment-delete",
        method="delete",
        url=lambda w: _role_grant_url(w, "environments", "role_env"),
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: [
            change(p, UPDATE_FEATURE_STATE, w.project, w.environment, features=2)
            for p in _role_holders(w)
        ],
    ),
]

CASES = GRANT_CASES + ROLE_CASES
BY_ID = {case.id: case for case in CASES}

w = world_fixture  # the organisation of tests/support/dry_run.py, fresh for every test

(
    test_dry_run__impact_and_nothing_saved__then_applied_with_that_impact_audited,
    test_dry_run__junk_value__400_naming_dry_run_nothing_saved,
    test_dry_run__false__applied,
) = contract_tests(
    CASES,
    junk=(
        "org-user-post",
        "project-group-delete",
        "env-user-patch",
        "role-organisation-put",
        "role-environment-put",
    ),
    applies=(
        "org-user-post",
        "env-group-put",
        "role-project-delete",
    ),
)


# --------------------------------------------------------------------------------------
# Refusals come first, the same with a dry run
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            lambda w: f"{w.org_url}/user-permissions/",
            lambda w: {"user": w.carol.pk, "permissions": ["NOPE"]},
            "permissions",
        ),
        (
            lambda w: f"{w.project_url}/user-permissions/",
            lambda w: {"user": w.outsider.pk, "permissions": [VIEW_PROJECT]},
            "user",
        ),
        (
            lambda w: f"{w.environment_url}/user-group-permissions/",
            lambda w: {"group": w.group2.pk, "permissions": [VIEW_PROJECT]},
            "permissions",
        ),
        # A tagged entry whose key does not support tags.
        (
            lambda w: f"{w.role_url(w.role2)}/environments-permissions/",
            lambda w: {
                "environment": w.environment.pk,
                "permissions": [{"permission_key": VIEW_ENVIRONMENT, "tags": [w.tag_a.pk]}],
            },
            "permissions",
        ),
        # A second grant of the role on the same project.
        (
            lambda w: f"{w.role_url(w.role)}/projects-permissions/",
            lambda w: {"project": w.project.pk, "permissions": []},
            "role",
        ),
    ],
    ids=["unknown-key", "non-member", "wrong-level-key", "tagged-unsupported-key", "second-grant"],
)
def test_dry_run__invalid_create__400_naming_the_field__nothing_saved(
    w: World, url: Any, body: Any, field: str
) -> None:
    case = Case(
        id="bad", method="post", url=url, body=body, status=201, gained=nothing, lost=nothing
    )
    response = check_refused(case, w, w.admin, 400)
    assert field in response.json()


def test_dry_run__invalid_role_grant_update__400_naming_permissions(w: World) -> None:
    case = BY_ID["role-environment-patch"]
    bad = Case(
        id="bad",
        method="patch",
        url=case.url,
        body=lambda w: {"permissions": [{"permission_key": CREATE_FEATURE, "tags": []}]},
        status=200,
        gained=nothing,
        lost=nothing,
    )
    response = check_refused(bad, w, w.admin, 400)
    assert CREATE_FEATURE in str(response.json()["permissions"])


@pytest.mark.parametrize(
    "case",
    pick(
        CASES, "org-user-post", "org-group-delete", "role-organisation-put", "role-environment-post"
    ),
)
def test_dry_run__member_not_admin__403(case: Case, w: World) -> None:
    check_refused(case, w, w.carol, 403)


@pytest.mark.parametrize("case", pick(CASES, "project-user-put", "env-group-delete"))
def test_dry_run__viewer_not_admin_of_the_scope__403(case: Case, w: World) -> None:
    check_refused(case, w, w.alice, 403)  # alice views them through her grants


@pytest.mark.parametrize(
    "case", pick(CASES, "project-user-post", "env-user-patch", "role-project-put")
)
def test_dry_run__not_a_member__404(case: Case, w: World) -> None:
    check_refused(case, w, w.outsider, 404)


def test_dry_run__project_admin__previews_a_project_grant(w: World) -> None:
    project_admin = f.member(w.organisation)
    f.grant(project_admin, w.project, [], admin=True)
    case = BY_ID["project-user-post"]
    before = db_state()
    response = send(case, w, caller=project_admin, query="dry_run=true")
    assert response.status_code == 200
    assert response.json()["impact"]["gained"] == [
        change(w.carol, DELETE_FEATURE, w.project, features=3)
    ]
    assert db_state() == before


def test_dry_run__api_key_caller__previews_like_a_user(w: World) -> None:
    admin_key = f.APIKeyFactory(organisation=w.organisation, is_admin=True)
    case = BY_ID["role-environment-post"]
    before = db_state()
    response = send(case, w, caller=admin_key, query="dry_run=1")
    assert response.status_code == 200
    gained = response.json()["impact"]["gained"]
    assert change(w.key2, UPDATE_FEATURE_STATE, w.project, w.environment, features=2) in gained
    assert db_state() == before
