"""Reads for features and segments."""

from __future__ import annotations

from django.db.models import QuerySet

from features.models import Feature, Segment
from projects.models import Project


def features_of_project(*, project: Project) -> QuerySet[Feature]:
    """The project's features with their tags prefetched (the engine reads them from the
    prefetch cache: no query per feature)."""
    return (
        Feature.objects.filter(project=project)
        .select_related("project")
        .prefetch_related("tags")
        .order_by("name", "id")
    )


def feature_get(*, project: Project, feature_id: int) -> Feature | None:
    return features_of_project(project=project).filter(pk=feature_id).first()


def segments_of_project(*, project: Project) -> QuerySet[Segment]:
    return Segment.objects.filter(project=project).select_related("project").order_by("name", "id")
