"""Database constraints of features.models: each with a row it accepts and one it rejects.

The central invariant: exactly one default state per (feature, environment), made
automatically with whichever of the two comes second, starting disabled, valueless, at
version 1 (docs/API.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from tests import factories as f

pytestmark = pytest.mark.django_db


@contextmanager
def rejected_by_db() -> Iterator[None]:
    with pytest.raises(IntegrityError), transaction.atomic():
        yield


def default_states(feature: Feature) -> list[tuple[int, bool, Any, int]]:
    return sorted(
        (s.environment_id, s.enabled, s.value, s.version)
        for s in FeatureState.objects.filter(feature=feature, segment_override__isnull=True)
    )


# --------------------------------------------------------------------------------------
# Feature: name unique per project.
# --------------------------------------------------------------------------------------


def test_feature__same_name_in_two_projects__accepted(project: Any) -> None:
    other = f.ProjectFactory(organisation=project.organisation)
    Feature.objects.create(project=project, name="apple_pay")
    Feature.objects.create(project=other, name="apple_pay")
    assert Feature.objects.filter(name="apple_pay").count() == 2


def test_feature__same_name_twice_in_one_project__rejected_by_db(project: Any) -> None:
    Feature.objects.create(project=project, name="apple_pay")
    with rejected_by_db():
        Feature.objects.create(project=project, name="apple_pay")
    assert project.features.count() == 1


# --------------------------------------------------------------------------------------
# Default feature states.
# --------------------------------------------------------------------------------------


def test_default_state__feature_created_after_environments__one_per_environment(
    project: Any,
) -> None:
    staging = Environment.objects.create(project=project, name="Staging")
    production = Environment.objects.create(project=project, name="Production")
    f.EnvironmentFactory()  # another project's environment gets no state
    feature = Feature.objects.create(project=project, name="apple_pay")
    assert default_states(feature) == sorted(
        [(staging.pk, False, None, 1), (production.pk, False, None, 1)]
    )


def test_default_state__environment_created_after_feature__one_for_it(project: Any) -> None:
    feature = Feature.objects.create(project=project, name="apple_pay")
    assert default_states(feature) == []
    staging = Environment.objects.create(project=project, name="Staging")
    assert default_states(feature) == [(staging.pk, False, None, 1)]


def test_default_state__fresh_state__disabled_null_version_one_not_an_override(
    environment: Any,
) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    state = FeatureState.objects.get(feature=feature, environment=environment)
    assert state.enabled is False
    assert state.value is None
    assert state.version == 1
    assert state.segment_override is None
    assert state.is_default


def test_default_state__n_features_times_m_environments__n_times_m_states(project: Any) -> None:
    for i in range(2):
        Environment.objects.create(project=project, name=f"env {i}")
    for i in range(3):
        Feature.objects.create(project=project, name=f"feature_{i}")
    Environment.objects.create(project=project, name="late")
    assert FeatureState.objects.filter(feature__project=project).count() == 3 * 3
    assert not FeatureState.objects.exclude(segment_override=None).exists()


def test_default_state__saving_feature_again__no_second_state(environment: Any) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    feature.description = "edited"
    feature.save()
    environment.name = "renamed"
    environment.save()
    assert FeatureState.objects.filter(feature=feature).count() == 1


def test_default_state__second_for_same_feature_and_environment__rejected_by_db(
    environment: Any,
) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    with rejected_by_db():
        FeatureState.objects.create(feature=feature, environment=environment, enabled=True)
    assert FeatureState.objects.filter(feature=feature).count() == 1


def test_override_state__beside_the_default_state__accepted(environment: Any) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    segment = f.SegmentFactory(project=environment.project)
    override = SegmentOverride.objects.create(
        feature=feature, environment=environment, segment=segment
    )
    state = FeatureState.objects.create(
        feature=feature, environment=environment, segment_override=override, enabled=True
    )
    assert not state.is_default
    assert FeatureState.objects.filter(feature=feature, environment=environment).count() == 2


def test_override_state__second_for_same_override__rejected_by_db(environment: Any) -> None:
    override = f.SegmentOverrideFactory(
        feature=f.FeatureFactory(project=environment.project), environment=environment
    )
    with rejected_by_db():
        FeatureState.objects.create(
            feature=override.feature, environment=environment, segment_override=override
        )
    assert FeatureState.objects.filter(segment_override=override).count() == 1


@pytest.mark.parametrize("version", [1, 2, 100])
def test_feature_state__version_at_least_one__accepted(environment: Any, version: int) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    FeatureState.objects.filter(feature=feature).update(version=version)
    assert FeatureState.objects.get(feature=feature).version == version


def test_feature_state__version_zero__rejected_by_db(environment: Any) -> None:
    feature = Feature.objects.create(project=environment.project, name="apple_pay")
    with rejected_by_db():
        FeatureState.objects.filter(feature=feature).update(version=0)
    assert FeatureState.objects.get(feature=feature).version == 1


# --------------------------------------------------------------------------------------
# Segment: name unique per project. SegmentOverride: one per feature, environment and
# segment.
# --------------------------------------------------------------------------------------


def test_segment__same_name_in_two_projects__accepted(project: Any) -> None:
    Segment.objects.create(project=project, name="beta users")
    Segment.objects.create(
        project=f.ProjectFactory(organisation=project.organisation), name="beta users"
    )
    assert Segment.objects.count() == 2


def test_segment__same_name_twice_in_one_project__rejected_by_db(project: Any) -> None:
    Segment.objects.create(project=project, name="beta users")
    with rejected_by_db():
        Segment.objects.create(project=project, name="beta users")
    assert Segment.objects.count() == 1


def test_segment_override__two_segments_on_one_feature_state__accepted(environment: Any) -> None:
    feature = f.FeatureFactory(project=environment.project)
    for _ in range(2):
        SegmentOverride.objects.create(
            feature=feature,
            environment=environment,
            segment=f.SegmentFactory(project=environment.project),
        )
    assert SegmentOverride.objects.count() == 2


def test_segment_override__same_segment_twice__rejected_by_db(environment: Any) -> None:
    feature = f.FeatureFactory(project=environment.project)
    segment = f.SegmentFactory(project=environment.project)
    SegmentOverride.objects.create(feature=feature, environment=environment, segment=segment)
    with rejected_by_db():
        SegmentOverride.objects.create(
            feature=feature, environment=environment, segment=segment, priority=1
        )
    assert SegmentOverride.objects.count() == 1


# --------------------------------------------------------------------------------------
# ChangeRequest: at most one author; a known status.
# --------------------------------------------------------------------------------------


@pytest.fixture
def cr_environment(project: Any) -> Any:
    return f.EnvironmentFactory(project=project, minimum_change_request_approvals=1)


@pytest.mark.parametrize("author", ["user", "api_key", "none"])
def test_change_request__at_most_one_author__accepted(
    organisation: Any, cr_environment: Any, author: str
) -> None:
    kwargs: dict[str, Any] = {}
    if author == "user":
        kwargs["author_user"] = f.member(organisation)
    elif author == "api_key":
        kwargs["author_api_key"] = f.APIKeyFactory(organisation=organisation)
    cr = ChangeRequest.objects.create(environment=cr_environment, title="t", **kwargs)
    assert cr.status == "open"


def test_change_request__two_authors__rejected_by_db(
    organisation: Any, cr_environment: Any
) -> None:
    with rejected_by_db():
        ChangeRequest.objects.create(
            environment=cr_environment,
            title="t",
            author_user=f.member(organisation),
            author_api_key=f.APIKeyFactory(organisation=organisation),
        )
    assert not ChangeRequest.objects.exists()


@pytest.mark.parametrize("status", ["open", "committed"])
def test_change_request__known_status__accepted(cr_environment: Any, status: str) -> None:
    ChangeRequest.objects.create(environment=cr_environment, title="t", status=status)
    assert ChangeRequest.objects.get().status == status


@pytest.mark.parametrize("status", ["draft", "OPEN", ""])
def test_change_request__unknown_status__rejected_by_db(cr_environment: Any, status: str) -> None:
    with rejected_by_db():
        ChangeRequest.objects.create(environment=cr_environment, title="t", status=status)
    assert not ChangeRequest.objects.exists()


# --------------------------------------------------------------------------------------
# ChangeRequestApproval: exactly one principal; one approval per principal.
# --------------------------------------------------------------------------------------


@pytest.fixture
def approvers(organisation: Any, cr_environment: Any) -> dict[str, Any]:
    return {
        "change_request": ChangeRequest.objects.create(environment=cr_environment, title="t"),
        "user": f.member(organisation),
        "api_key": f.APIKeyFactory(organisation=organisation),
    }


@pytest.mark.parametrize("kind", ["user", "api_key"])
def test_approval__one_principal__accepted(approvers: dict[str, Any], kind: str) -> None:
    ChangeRequestApproval.objects.create(
        change_request=approvers["change_request"], **{kind: approvers[kind]}
    )
    assert ChangeRequestApproval.objects.count() == 1


@pytest.mark.parametrize("kinds", [(), ("user", "api_key")], ids=["none", "both"])
def test_approval__not_exactly_one_principal__rejected_by_db(
    approvers: dict[str, Any], kinds: tuple[str, ...]
) -> None:
    with rejected_by_db():
        ChangeRequestApproval.objects.create(
            change_request=approvers["change_request"], **{k: approvers[k] for k in kinds}
        )
    assert not ChangeRequestApproval.objects.exists()


@pytest.mark.parametrize("kind", ["user", "api_key"])
def test_approval__same_principal_twice__rejected_by_db(
    approvers: dict[str, Any], kind: str
) -> None:
    cr = approvers["change_request"]
    ChangeRequestApproval.objects.create(change_request=cr, **{kind: approvers[kind]})
    with rejected_by_db():
        ChangeRequestApproval.objects.create(change_request=cr, **{kind: approvers[kind]})
    assert ChangeRequestApproval.objects.count() == 1


def test_approval__one_user_and_one_key_on_one_request__accepted(
    approvers: dict[str, Any],
) -> None:
    cr = approvers["change_request"]
    ChangeRequestApproval.objects.create(change_request=cr, user=approvers["user"])
    ChangeRequestApproval.objects.create(change_request=cr, api_key=approvers["api_key"])
    assert cr.approvals.count() == 2
