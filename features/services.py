"""Writes for features, segments, feature states, overrides and change requests."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, audit_record
from features.models import Feature
from projects.models import Project, Tag


def feature_create(
    *,
    project: Project,
    name: str,
    description: str = "",
    tags: Sequence[Tag] = (),
    actor: Actor,
) -> Feature:
    """Creating a feature also creates its default state in every environment of the project
    (features.signals)."""
    foreign = sorted(t.pk for t in tags if t.project_id != project.pk)
    if foreign:
        raise ValidationError(
            {"tags": [f"Tags not in this project: {', '.join(map(str, foreign))}."]}
        )
    if Feature.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": ["A feature with this name already exists in the project."]})
    with transaction.atomic():
        feature = Feature.objects.create(project=project, name=name, description=description)
        feature.tags.set(tags)
        audit_record(
            actor=actor,
            action=AuditAction.CREATED,
            obj=feature,
            organisation_id=project.organisation_id,
            project_id=project.pk,
            after={
                "name": name,
                "description": description,
                "tags": sorted(t.pk for t in tags),
                "default_states_created": feature.states.count(),
            },
        )
    return feature
