"""`?dry_run=true` on tag writes (docs/PERMISSIONS.md, "Seeing a change before making it"): creating,
editing (`is_restricted`) and deleting tags. The organisation is described in
tests/support/dry_run.py: f1 [A], f2 [A, B], f3 [C]; `role` (alice, `group` = {bob}, `key`)
holds DELETE_FEATURE tagged B and UPDATE_FEATURE_STATE tagged A; alice and `group` hold
CREATE_CHANGE_REQUEST untagged on the environment."""

from __future__ import annotations

from typing import Any

import pytest

from permissions.catalogue import CREATE_CHANGE_REQUEST, DELETE_FEATURE, MANAGE_TAGS
from tests import factories as f
from tests.support.dry_run import (
    Case,
    World,
    change,
    check_preview_then_apply,
    check_refused,
    contract_tests,
    nothing,
    pick,
    world_fixture,
)

pytestmark = pytest.mark.django_db


def _tags(w: World, tag: Any = None) -> str:
    return f"{w.project_url}/tags/" + (f"{tag.pk}/" if tag is not None else "")


def _restricting_a(w: World) -> list[dict[str, Any]]:
    """Restricting A: f1 and f2 are reached only through entries naming A. Untagged
    CREATE_CHANGE_REQUEST keeps f3 only; DELETE_FEATURE tagged B loses f2; UPDATE_FEATURE_STATE
    tagged A keeps both."""
    return [
        change(w.alice, CREATE_CHANGE_REQUEST, w.project, w.environment, features=2),
        change(w.bob, CREATE_CHANGE_REQUEST, w.project, w.environment, features=2),
        *(change(p, DELETE_FEATURE, w.project, features=1) for p in (w.alice, w.bob, w.key)),
    ]


CASES = [
    Case(
        id="tag-post",
        method="post",
        url=_tags,
        body=lambda w: {"label": "new"},
        status=201,
        gained=nothing,  # attached to no feature
        lost=nothing,
    ),
    Case(
        id="tag-post-restricted",
        method="post",
        url=_tags,
        body=lambda w: {"label": "locked", "is_restricted": True},
        status=201,
        gained=nothing,
        lost=nothing,
    ),
    Case(
        id="tag-patch-restricted",
        method="patch",
        url=lambda w: _tags(w, w.tag_a),
        body=lambda w: {"is_restricted": True},
        status=200,
        gained=nothing,
        lost=_restricting_a,
    ),
    Case(
        id="tag-patch-label",
        method="patch",
        url=lambda w: _tags(w, w.tag_a),
        body=lambda w: {"label": "alpha"},
        status=200,
        gained=nothing,
        lost=nothing,
    ),
    # C is named by no grant and not restricted: detaching it from f3 moves nothing.
    Case(
        id="tag-delete",
        method="delete",
        url=lambda w: _tags(w, w.tag_c),
        body=None,
        status=204,
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
    junk=(
        "tag-post",
        "tag-patch-restricted",
        "tag-delete",
    ),
    applies=("tag-patch-restricted",),
)


def test_dry_run__lifting_a_restriction__gains_what_restricting_lost(w: World) -> None:
    w.tag_a.is_restricted = True
    w.tag_a.save()
    case = Case(
        id="unrestrict",
        method="patch",
        url=lambda w: _tags(w, w.tag_a),
        body=lambda w: {"is_restricted": False},
        status=200,
        gained=_restricting_a,
        lost=nothing,
    )
    check_preview_then_apply(case, w)


# --------------------------------------------------------------------------------------
# Refusals come first, the same with a dry run
# --------------------------------------------------------------------------------------


def test_dry_run__label_taken__400_naming_label(w: World) -> None:
    case = Case("dup", "post", _tags, lambda w: {"label": "A"}, 201, nothing, nothing)
    response = check_refused(case, w, w.admin, 400)
    assert "label" in response.json()


def test_dry_run__viewer_without_manage_tags__403(w: World) -> None:
    check_refused(BY_ID["tag-post"], w, w.alice, 403)  # alice views the project


def test_dry_run__manage_tags_not_project_admin__restricting__403(w: World) -> None:
    f.grant(w.erin, w.project, [MANAGE_TAGS])
    check_refused(BY_ID["tag-patch-restricted"], w, w.erin, 403)


def test_dry_run__tag_named_by_a_grant__409_tag_in_use(w: World) -> None:
    case = Case("named", "delete", lambda w: _tags(w, w.tag_b), None, 204, nothing, nothing)
    response = check_refused(case, w, w.admin, 409)
    assert response.json()["code"] == "tag_in_use"


@pytest.mark.parametrize("case", pick(CASES, "tag-delete", "tag-patch-restricted"))
def test_dry_run__cannot_view_the_project__404(case: Case, w: World) -> None:
    check_refused(case, w, w.carol, 404)
