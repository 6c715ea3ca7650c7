"""Database constraints of environments.models: a unique API key per environment and a
change-request threshold that is null or a non-negative integer."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from environments.models import Environment
from features.models import FeatureState
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_environment__api_key__generated_and_distinct(project: Any) -> None:
    a = Environment.objects.create(project=project, name="Staging")
    b = Environment.objects.create(project=project, name="Production")
    assert a.api_key and b.api_key
    assert a.api_key != b.api_key


def test_environment__api_key_of_another_environment__rejected_by_db(project: Any) -> None:
    a = Environment.objects.create(project=project, name="Staging")
    other_project = f.ProjectFactory(organisation=project.organisation)
    with pytest.raises(IntegrityError), transaction.atomic():
        Environment.objects.create(project=other_project, name="Production", api_key=a.api_key)
    assert Environment.objects.count() == 1


@pytest.mark.parametrize("threshold", [None, 0, 1, 5])
def test_environment__threshold_null_or_non_negative__accepted(
    project: Any, threshold: int | None
) -> None:
    environment = Environment.objects.create(
        project=project, name="Production", minimum_change_request_approvals=threshold
    )
    environment.refresh_from_db()
    assert environment.minimum_change_request_approvals == threshold
    assert environment.change_requests_enabled is (threshold is not None)


def test_environment__negative_threshold__rejected_by_db(project: Any) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Environment.objects.create(
            project=project, name="Production", minimum_change_request_approvals=-1
        )
    assert not Environment.objects.exists()


def test_environment__created_after_features__one_default_state_per_feature(
    project: Any,
) -> None:
    features = [f.FeatureFactory(project=project) for _ in range(3)]
    f.FeatureFactory()  # another project's feature gets no state here
    environment = Environment.objects.create(project=project, name="Staging")
    states = FeatureState.objects.filter(environment=environment)
    assert sorted(s.feature_id for s in states) == sorted(x.pk for x in features)
    assert {(s.enabled, s.value, s.version, s.segment_override_id) for s in states} == {
        (False, None, 1, None)
    }


def test_environment__delete__deletes_its_states(project: Any) -> None:
    feature = f.FeatureFactory(project=project)
    staging = f.EnvironmentFactory(project=project)
    production = f.EnvironmentFactory(project=project)
    staging.delete()
    assert list(FeatureState.objects.values_list("feature_id", "environment_id")) == [
        (feature.pk, production.pk)
    ]
