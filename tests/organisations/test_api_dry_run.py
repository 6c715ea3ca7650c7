"""`?dry_run=true` on role assignments, roles, groups, members and API keys (docs/API.md
"Permissions as code and impact preview"). The organisation is described in
tests/support/dry_run.py: `role` (held by alice, `group` = {bob} and `key`) gives
CREATE_PROJECT, DELETE_FEATURE tagged B (1 feature) and UPDATE_FEATURE_STATE tagged A on the
environment (2 features)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from organisations.models import MembershipRole
from permissions.catalogue import (
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    CREATE_PROJECT,
    DELETE_FEATURE,
    KEYS_BY_LEVEL,
    MANAGE_USER_GROUPS,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    Level,
)
from tests.support.clients import client_for
from tests.support.dry_run import (
    Case,
    World,
    canonical,
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


def through_role(w: World, who: Any) -> list[dict[str, Any]]:
    """What `role` gives `who`."""
    return [
        change(who, CREATE_PROJECT),
        change(who, DELETE_FEATURE, w.project, features=1),
        change(who, UPDATE_FEATURE_STATE, w.project, w.environment, features=2),
    ]


def through_group(w: World, who: Any) -> list[dict[str, Any]]:
    """What `group` gives its members: its own grants and `role`."""
    return [
        change(who, MANAGE_USER_GROUPS),
        change(who, CREATE_FEATURE, w.project),
        change(who, CREATE_CHANGE_REQUEST, w.project, w.environment, features=3),
        *through_role(w, who),
    ]


def everything(w: World, who: Any) -> list[dict[str, Any]]:
    """Every key of the catalogue on every scope, each tag-supported one on all 3 features:
    what an organisation ADMIN holds."""
    scopes = [
        (Level.ORGANISATION, None, None),
        (Level.PROJECT, w.project, None),
        (Level.ENVIRONMENT, w.project, w.environment),
    ]
    return [
        change(who, key, project, environment, features=3 if key in TAG_SUPPORTED_KEYS else None)
        for level, project, environment in scopes
        for key in KEYS_BY_LEVEL[level]
    ]


def _assignments(w: World, kind: str, assignment: str | None = None) -> str:
    base = f"{w.role_url(w.role)}/{kind}/"
    return base if assignment is None else f"{base}{w.assignments[assignment].pk}/"


CASES = [
    # Role assignments
    Case(
        id="role-users-post",
        method="post",
        url=lambda w: _assignments(w, "users"),
        body=lambda w: {"user": w.erin.pk},
        status=201,
        gained=lambda w: through_role(w, w.erin),
        lost=nothing,
    ),
    Case(
        id="role-users-delete",
        method="delete",
        url=lambda w: _assignments(w, "users", "alice"),
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_role(w, w.alice),
    ),
    Case(
        id="role-groups-post",
        method="post",
        url=lambda w: _assignments(w, "groups"),
        body=lambda w: {"group": w.group2.pk},
        status=201,
        gained=lambda w: through_role(w, w.dave),
        lost=nothing,
    ),
    Case(
        id="role-groups-delete",
        method="delete",
        url=lambda w: _assignments(w, "groups", "group"),
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_role(w, w.bob),
    ),
    # API-key principals appear with "api_key" (and their name) instead of "user".
    Case(
        id="role-api-keys-post",
        method="post",
        url=lambda w: _assignments(w, "api-keys"),
        body=lambda w: {"api_key": w.key3.pk},
        status=201,
        gained=lambda w: through_role(w, w.key3),
        lost=nothing,
    ),
    Case(
        id="role-api-keys-delete",
        method="delete",
        url=lambda w: _assignments(w, "api-keys", "key"),
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_role(w, w.key),
    ),
    # Roles
    Case(
        id="role-delete",
        method="delete",
        url=lambda w: f"{w.role_url(w.role)}/",
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: [c for p in (w.alice, w.bob, w.key) for c in through_role(w, p)],
    ),
    # Groups
    Case(
        id="group-post",
        method="post",
        url=lambda w: f"{w.org_url}/groups/",
        body=lambda w: {"name": "newcomers", "users": [w.erin.pk]},
        status=201,
        gained=nothing,  # a new group holds nothing
        lost=nothing,
    ),
    Case(
        id="group-put",
        method="put",
        url=lambda w: f"{w.org_url}/groups/{w.group.pk}/",
        body=lambda w: {"name": w.group.name, "users": [w.bob.pk, w.erin.pk]},
        status=200,
        gained=lambda w: through_group(w, w.erin),
        lost=nothing,
    ),
    Case(
        id="group-patch",
        method="patch",
        url=lambda w: f"{w.org_url}/groups/{w.group.pk}/",
        body=lambda w: {"users": []},
        status=200,
        gained=nothing,
        lost=lambda w: through_group(w, w.bob),
    ),
    Case(
        id="group-delete",
        method="delete",
        url=lambda w: f"{w.org_url}/groups/{w.group.pk}/",
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_group(w, w.bob),
    ),
    # Members
    Case(
        id="member-post",
        method="post",
        url=lambda w: f"{w.org_url}/users/",
        body=lambda w: {"user": w.outsider.pk, "role": MembershipRole.ADMIN},
        status=201,
        gained=lambda w: everything(w, w.outsider),
        lost=nothing,
    ),
    Case(
        id="member-patch",
        method="patch",
        url=lambda w: f"{w.org_url}/users/{w.erin.pk}/",
        body=lambda w: {"role": MembershipRole.ADMIN},
        status=200,
        gained=lambda w: everything(w, w.erin),
        lost=nothing,
    ),
    # Removing a member takes their own grants, group memberships and roles with them.
    Case(
        id="member-delete",
        method="delete",
        url=lambda w: f"{w.org_url}/users/{w.alice.pk}/",
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_group(w, w.alice),  # her own grants are the group's keys
    ),
    # API keys
    Case(
        id="api-key-patch-revoked",
        method="patch",
        url=lambda w: f"{w.org_url}/api-keys/{w.key.pk}/",
        body=lambda w: {"revoked": True},
        status=200,
        gained=nothing,
        lost=lambda w: through_role(w, w.key),
    ),
    Case(
        id="api-key-patch-expired",
        method="patch",
        url=lambda w: f"{w.org_url}/api-keys/{w.key.pk}/",
        body=lambda w: {"expires_at": (timezone.now() - timedelta(days=1)).isoformat()},
        status=200,
        gained=nothing,
        lost=lambda w: through_role(w, w.key),
    ),
    Case(
        id="api-key-patch-renamed",
        method="patch",
        url=lambda w: f"{w.org_url}/api-keys/{w.key.pk}/",
        body=lambda w: {"name": "renamed"},
        status=200,
        gained=nothing,
        lost=nothing,
    ),
    Case(
        id="api-key-delete",
        method="delete",
        url=lambda w: f"{w.org_url}/api-keys/{w.key.pk}/",
        body=None,
        status=204,
        gained=nothing,
        lost=lambda w: through_role(w, w.key),
    ),
]
BY_ID = {case.id: case for case in CASES}

w = world_fixture  # the organisation of tests/support/dry_run.py, fresh for every test

(
    test_dry_run__impact_and_nothing_saved__then_applied_with_that_impact_audited,
    test_dry_run__junk_value__400_naming_dry_run_nothing_saved,
    test_dry_run__false__applied,
) = contract_tests(
    CASES,
    junk=(
        "role-users-post",
        "role-delete",
        "group-put",
        "member-delete",
        "api-key-patch-revoked",
    ),
    applies=(
        "role-api-keys-post",
        "group-patch",
        "member-delete",
    ),
)


def test_dry_run__api_key_principal__named_with_api_key_id(w: World) -> None:
    response = send(BY_ID["role-api-keys-post"], w, query="dry_run=true")
    gained = response.json()["impact"]["gained"]
    assert {(c.get("api_key"), c.get("user"), c["email"], c["name"]) for c in gained} == {
        (w.key3.pk, None, None, w.key3.name)
    }


# --------------------------------------------------------------------------------------
# Refusals come first, the same with a dry run
# --------------------------------------------------------------------------------------


def _bad(method: str, url: Any, body: Any) -> Case:
    return Case(id="bad", method=method, url=url, body=body, status=0, gained=nothing, lost=nothing)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        (
            _bad("post", lambda w: _assignments(w, "users"), lambda w: {"user": w.outsider.pk}),
            "user",
        ),
        (_bad("post", lambda w: _assignments(w, "groups"), lambda w: {"group": 10**9}), "group"),
        (
            _bad(
                "put",
                lambda w: f"{w.org_url}/groups/{w.group.pk}/",
                lambda w: {"name": "g", "users": [w.outsider.pk]},
            ),
            "users",
        ),
        (
            _bad(
                "post",
                lambda w: f"{w.org_url}/users/",
                lambda w: {"user": w.erin.pk, "role": "KING"},
            ),
            "role",
        ),
        # Only the service knows the caller is the last ADMIN: refused inside the preview.
        (_bad("delete", lambda w: f"{w.org_url}/users/{w.admin.pk}/", None), "user"),
    ],
    ids=["assign-non-member", "assign-unknown-group", "group-non-member", "bad-role", "last-admin"],
)
def test_dry_run__invalid__400_naming_the_field__nothing_saved(
    w: World, case: Case, field: str
) -> None:
    response = check_refused(case, w, w.admin, 400)
    assert field in response.json()


def test_dry_run__unrevoke__400_naming_revoked(w: World) -> None:
    w.key.revoked = True
    w.key.save()
    case = _bad(
        "patch", lambda w: f"{w.org_url}/api-keys/{w.key.pk}/", lambda w: {"revoked": False}
    )
    response = check_refused(case, w, w.admin, 400)
    assert "revoked" in response.json()


@pytest.mark.parametrize(
    "case",
    pick(CASES, "role-users-post", "role-delete", "member-patch", "api-key-delete", "group-put"),
)
def test_dry_run__member_not_admin__403(case: Case, w: World) -> None:
    check_refused(case, w, w.carol, 403)


def test_dry_run__group_manager_on_a_group_holding_access__403(w: World) -> None:
    # alice holds MANAGE_USER_GROUPS, but `group` holds grants and a role: only organisation
    # admins may delete it; the service says so inside the preview.
    response = check_refused(BY_ID["group-delete"], w, w.alice, 403)
    assert response.json()["code"] == "group_holds_access"


def test_dry_run__group_manager_on_a_new_group__previews_nothing_gained(w: World) -> None:
    before = db_state()
    response = send(BY_ID["group-post"], w, caller=w.alice, query="dry_run=true")
    assert response.status_code == 200
    assert response.json() == {
        "impact": {"gained": [], "lost": [], "summary": [], "truncated": False}
    }
    assert db_state() == before


@pytest.mark.parametrize("case", pick(CASES, "role-groups-post", "group-patch", "member-post"))
def test_dry_run__not_a_member__404(case: Case, w: World) -> None:
    check_refused(case, w, w.outsider, 404)


# --------------------------------------------------------------------------------------
# The audit log shows the impact
# --------------------------------------------------------------------------------------


def test_audit_log__entry_of_an_applied_write__has_its_impact(w: World) -> None:
    send(BY_ID["role-users-delete"], w)
    response = client_for(w.admin).get(
        f"{w.org_url}/audit-log/", {"object_type": "role_assignment"}
    )
    assert response.status_code == 200
    [item] = response.json()["results"]
    impact = item["impact"]
    assert canonical(impact["lost"]) == canonical(through_role(w, w.alice))
    assert impact["gained"] == []
    assert (impact["gained_total"], impact["lost_total"], impact["principals"]) == (0, 3, 1)
    assert impact["truncated"] is False


def test_audit_log__entry_of_a_write_outside_permissions__impact_null(w: World) -> None:
    client = client_for(w.admin)
    assert client.patch(f"{w.role_url(w.role)}/", {"name": "renamed"}).status_code == 200
    response = client.get(f"{w.org_url}/audit-log/", {"object_type": "role"})
    [item] = response.json()["results"]
    assert item["action"] == "updated"
    assert item["impact"] is None
