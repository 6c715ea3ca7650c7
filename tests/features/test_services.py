"""features.services.feature_create: name unique per project, tags of the project, default
states in every environment, one audit entry."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLogEntry
from features.models import Feature, FeatureState
from features.services import feature_create
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_feature_create__environments_exist__default_states_tags_and_one_audit_entry(
    project: Any,
) -> None:
    staging = f.EnvironmentFactory(project=project)
    production = f.EnvironmentFactory(project=project)
    tag = f.TagFactory(project=project)
    feature = feature_create(project=project, name="apple_pay", tags=[tag], actor=None)
    assert list(feature.tags.all()) == [tag]
    assert sorted(
        FeatureState.objects.filter(feature=feature).values_list(
            "environment_id", "enabled", "value", "version", "segment_override"
        )
    ) == sorted([(staging.pk, False, None, 1, None), (production.pk, False, None, 1, None)])
    entry = AuditLogEntry.objects.get()
    assert (entry.object_type, entry.action, entry.project_id) == ("feature", "created", project.pk)
    assert entry.after["tags"] == [tag.pk]
    assert entry.after["default_states_created"] == 2


def test_feature_create__name_taken__400_on_name(project: Any) -> None:
    feature_create(project=project, name="apple_pay", actor=None)
    with pytest.raises(ValidationError) as excinfo:
        feature_create(project=project, name="apple_pay", actor=None)
    assert list(excinfo.value.message_dict) == ["name"]
    assert Feature.objects.count() == 1
    assert AuditLogEntry.objects.count() == 1


def test_feature_create__name_taken_in_another_project__accepted(project: Any) -> None:
    feature_create(
        project=f.ProjectFactory(organisation=project.organisation), name="apple_pay", actor=None
    )
    feature_create(project=project, name="apple_pay", actor=None)
    assert Feature.objects.count() == 2


def test_feature_create__tag_of_another_project__400_on_tags(project: Any) -> None:
    foreign = f.TagFactory(project=f.ProjectFactory(organisation=project.organisation))
    with pytest.raises(ValidationError) as excinfo:
        feature_create(project=project, name="apple_pay", tags=[foreign], actor=None)
    assert list(excinfo.value.message_dict) == ["tags"]
    assert str(foreign.pk) in excinfo.value.message_dict["tags"][0]
    assert not Feature.objects.exists()
    assert not AuditLogEntry.objects.exists()
