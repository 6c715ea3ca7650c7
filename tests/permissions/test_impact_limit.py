"""IMPACT answers are summarised (docs/PERMISSIONS.md, "Seeing a change before making it"): the
complete `summary` of principals gaining or losing each key on each scope, `gained`/`lost`
cut at `?impact_limit=` rows (default 1000, at most 10000) with `truncated`, and a junk limit
is a 400 naming the field that runs nothing."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditLogEntry
from impact import changes
from permissions.catalogue import CREATE_PROJECT, MANAGE_USER_GROUPS
from permissions.models import Grant
from tests import factories as f
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db


def world(organisation: Any, members: int = 3) -> dict[str, Any]:
    """A role held by `members` members; the admin who writes its grants."""
    role = f.RoleFactory(organisation=organisation)
    holders = [f.member(organisation) for _ in range(members)]
    for user in holders:
        f.RoleAssignmentFactory(role=role, user=user)
    url = f"/api/v1/organisations/{organisation.pk}/roles/{role.pk}/organisation-permissions/"
    return {
        "role": role,
        "holders": holders,
        "url": url,
        "admin": f.member(organisation, admin=True),
    }


def dry_run(w: dict[str, Any], query: str = "") -> Any:
    return client_for(w["admin"]).put(
        f"{w['url']}?dry_run=true{query}",
        {"permissions": [CREATE_PROJECT, MANAGE_USER_GROUPS]},
        format="json",
    )


def test_dry_run__default_limit__every_change_listed_with_complete_summary(
    organisation: Any,
) -> None:
    w = world(organisation)

    body = dry_run(w).json()["impact"]

    assert len(body["gained"]) == 6 and body["lost"] == []
    assert body["truncated"] is False
    assert body["summary"] == [
        {"permission": key, "project": None, "environment": None, "gained": 3, "lost": 0}
        for key in sorted((CREATE_PROJECT, MANAGE_USER_GROUPS))
    ]


def test_dry_run__impact_limit_below_the_changes__lists_cut_summary_complete_truncated(
    organisation: Any,
) -> None:
    w = world(organisation)

    body = dry_run(w, "&impact_limit=2").json()["impact"]

    assert len(body["gained"]) == 2
    assert body["truncated"] is True
    assert sum(row["gained"] for row in body["summary"]) == 6


def test_dry_run__impact_limit_zero__summary_only(organisation: Any) -> None:
    w = world(organisation)

    body = dry_run(w, "&impact_limit=0").json()["impact"]

    assert body["gained"] == [] and body["truncated"] is True
    assert sum(row["gained"] for row in body["summary"]) == 6


@pytest.mark.parametrize("junk", ["-1", "abc", "10001", "1.5", ""])
def test_dry_run__impact_limit_junk__400_naming_it_nothing_saved(
    organisation: Any, junk: str
) -> None:
    w = world(organisation)

    response = dry_run(w, f"&impact_limit={junk}")

    assert response.status_code == 400
    assert "impact_limit" in response.json()
    assert not Grant.objects.filter(role=w["role"]).exists()


def test_write__impact_limit_junk__400_nothing_saved_no_audit(organisation: Any) -> None:
    w = world(organisation)

    response = client_for(w["admin"]).put(
        f"{w['url']}?impact_limit=many", {"permissions": [CREATE_PROJECT]}, format="json"
    )

    assert response.status_code == 400 and "impact_limit" in response.json()
    assert not Grant.objects.filter(role=w["role"]).exists()
    assert not AuditLogEntry.objects.filter(object_type="grant").exists()


def test_impact_limit__maximum_accepted(organisation: Any) -> None:
    w = world(organisation)

    response = dry_run(w, f"&impact_limit={changes.IMPACT_LIMIT_MAX}")

    assert response.status_code == 200
    assert response.json()["impact"]["truncated"] is False


def test_plan__impact_limit__cuts_the_document_plan_impact(organisation: Any) -> None:
    w = world(organisation, members=2)
    admin = client_for(w["admin"])
    base = f"/api/v1/organisations/{organisation.pk}/permissions-document"
    document = admin.get(f"{base}/").json()
    document["roles"][0]["organisation"] = [CREATE_PROJECT]

    cut = admin.post(f"{base}/plan/?impact_limit=1", document, format="json").json()["impact"]
    junk = admin.post(f"{base}/plan/?impact_limit=x", document, format="json")

    assert len(cut["gained"]) == 1 and cut["truncated"] is True
    assert cut["summary"] == [
        {"permission": CREATE_PROJECT, "project": None, "environment": None, "gained": 2, "lost": 0}
    ]
    assert junk.status_code == 400 and "impact_limit" in junk.json()
