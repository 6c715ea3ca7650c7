"""environments.services.environment_create: threshold validation, default states, audit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from environments.models import Environment
from environments.services import environment_create
from features.models import FeatureState
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("threshold", [None, 0, 1, 3])
def test_environment_create__threshold_null_or_non_negative_int__accepted(
    project: Any, threshold: int | None
) -> None:
    environment = environment_create(
        project=project, name="Production", minimum_change_request_approvals=threshold, actor=None
    )
    assert environment.minimum_change_request_approvals == threshold


@pytest.mark.parametrize("threshold", [-1, True, False, "1", 1.5])
def test_environment_create__threshold_not_a_non_negative_int__400_on_field(
    project: Any, threshold: Any
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        environment_create(
            project=project,
            name="Production",
            minimum_change_request_approvals=threshold,
            actor=None,
        )
    assert list(excinfo.value.message_dict) == ["minimum_change_request_approvals"]
    assert not Environment.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_environment_create__features_exist__default_states_and_one_audit_entry(
    project: Any,
) -> None:
    f.FeatureFactory(project=project)
    f.FeatureFactory(project=project)
    environment = environment_create(project=project, name="Staging", actor=None)
    assert FeatureState.objects.filter(environment=environment).count() == 2
    entry = AuditLogEntry.objects.get()
    assert (entry.object_type, entry.action) == ("environment", "created")
    assert (entry.project_id, entry.environment_id) == (project.pk, environment.pk)
    assert entry.after == {
        "name": "Staging",
        "minimum_change_request_approvals": None,
        "default_states_created": 2,
    }
