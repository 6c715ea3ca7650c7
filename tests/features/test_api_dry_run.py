"""`?dry_run=true` on feature edits that change tags (docs/PERMISSIONS.md, "Seeing a
change before making it"). The organisation is described in tests/support/dry_run.py: f1 [A], f2 [A, B],
f3 [C]; `role` (alice, `group` = {bob}, `key`) holds DELETE_FEATURE tagged B and
UPDATE_FEATURE_STATE tagged A on the environment."""

from __future__ import annotations

from typing import Any

import pytest

from permissions.catalogue import DELETE_FEATURE, UPDATE_FEATURE_STATE
from tests.support.dry_run import (
    Case,
    World,
    change,
    check_refused,
    contract_tests,
    nothing,
    world_fixture,
)

pytestmark = pytest.mark.django_db


def _feature(w: World, feature: Any) -> str:
    return f"{w.project_url}/features/{feature.pk}/"


def _role_holders(w: World) -> list[Any]:
    return [w.alice, w.bob, w.key]


CASES = [
    # Attaching A to f3: the role's UPDATE_FEATURE_STATE tagged A reaches it.
    Case(
        id="feature-attach",
        method="patch",
        url=lambda w: _feature(w, w.f3),
        body=lambda w: {"tags": [w.tag_c.pk, w.tag_a.pk]},
        status=200,
        gained=lambda w: [
            change(p, UPDATE_FEATURE_STATE, w.project, w.environment, features=1)
            for p in _role_holders(w)
        ],
        lost=nothing,
    ),
    # Detaching B from f2: the role's DELETE_FEATURE tagged B reaches nothing any more.
    Case(
        id="feature-detach",
        method="patch",
        url=lambda w: _feature(w, w.f2),
        body=lambda w: {"tags": [w.tag_a.pk]},
        status=200,
        gained=nothing,
        lost=lambda w: [change(p, DELETE_FEATURE, w.project, features=1) for p in _role_holders(w)],
    ),
    Case(
        id="feature-rename",
        method="patch",
        url=lambda w: _feature(w, w.f1),
        body=lambda w: {"name": "renamed"},
        status=200,
        gained=nothing,
        lost=nothing,
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
    junk=("feature-attach",),
    applies=("feature-detach",),
)


def test_dry_run__tag_of_nowhere__400_naming_tags(w: World) -> None:
    case = Case(
        "bad",
        "patch",
        lambda w: _feature(w, w.f1),
        lambda w: {"tags": [10**9]},
        200,
        nothing,
        nothing,
    )
    response = check_refused(case, w, w.admin, 400)
    assert "tags" in response.json()


def test_dry_run__create_feature_holder_attaching_a_protected_tag__403_protected_tag(
    w: World,
) -> None:
    # alice holds CREATE_FEATURE, but A is named by a role grant: only project admins may
    # attach it; the service refuses inside the preview.
    response = check_refused(BY_ID["feature-attach"], w, w.alice, 403)
    assert response.json()["code"] == "protected_tag"


def test_dry_run__viewer_without_create_feature__403(w: World) -> None:
    check_refused(BY_ID["feature-rename"], w, w.key, 403)  # the key views through the role


def test_dry_run__cannot_view_the_project__404(w: World) -> None:
    check_refused(BY_ID["feature-detach"], w, w.carol, 404)


def test_rename__no_organisation_snapshot__empty_impact_audited(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name-only edit cannot move permissions: no snapshot is read (they cost two reads of
    the whole organisation), and its audit entry still records the empty impact."""
    from audit.models import AuditLogEntry
    from impact import previews
    from tests.support.clients import client_for

    def no_snapshot(organisation_id: int) -> Any:
        raise AssertionError("a rename must not read the organisation's snapshot")

    monkeypatch.setattr(previews, "snapshot_take", no_snapshot)
    response = client_for(w.admin).patch(_feature(w, w.f1), {"name": "renamed"}, format="json")

    assert response.status_code == 200, response.content
    entry = AuditLogEntry.objects.get(object_type="feature", action="updated")
    assert entry.impact is not None
    assert (entry.impact["gained"], entry.impact["lost"]) == ([], [])
