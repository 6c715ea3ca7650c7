"""Features and segments of a project (docs/API.md; docs/PERMISSIONS.md,
"Every action names its feature").

Every action on a feature resolves it from the database under the URL's project (a feature
of another project is a 404) and passes it to the engine: DELETE_FEATURE supports tags.
Feature edits (which may change its tags) run inside `tagwarden.api.base.write_with_impact`
(`?dry_run=true` previews their impact, saving nothing).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from features import selectors, services
from features.api import serializers
from features.api.filters import FeatureFilter, SegmentFilter
from features.models import Feature, Segment
from impact.feature_writes import FeatureWrite
from permissions import catalogue as keys
from permissions.drf import on_object_feature
from tagwarden.api.base import ProjectScopedViewSet, actor_of, no_content, viewers_read
from tagwarden.api.schema import crud_schema

_ORDERING = OpenApiParameter(
    "ordering", str, description="name, created_at or id; prefix with - to reverse."
)


@crud_schema(
    {"list": "The project's features, with the caller's keys on each"},
    bodies=dict.fromkeys(("create", "partial_update"), serializers.FeatureWriteSerializer),
    list={"parameters": [_ORDERING]},
)
class FeatureViewSet(ProjectScopedViewSet):
    dry_run_actions = frozenset({"partial_update"})
    model = Feature
    serializer_class = serializers.FeatureSerializer
    filterset_class = FeatureFilter
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name", "id"]
    action_requirements = viewers_read(
        keys.CREATE_FEATURE,
        destroy=on_object_feature(keys.DELETE_FEATURE),  # with the feature's own tags
    )

    def rows(self) -> QuerySet[Feature]:
        return selectors.features_of_project(project=self.get_scope())

    def get_permission_feature(self, obj: Feature) -> Feature:
        return obj

    def _render(self, feature: Feature, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.feature_get(project=self.get_scope(), feature_id=feature.pk)
        return self.answer(fresh, status_code)

    def create(self, request: Request, project_pk: int) -> Response:
        """Create a feature (CREATE_FEATURE; protected tags: project admin)"""
        data = self.parse(serializers.FeatureWriteSerializer)
        feature = services.feature_create(project=self.get_scope(), **data, actor=actor_of(request))
        return self._render(feature, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        """Edit a feature (CREATE_FEATURE; protected tags: project admin)"""
        feature = self.get_object()
        data = self.parse(serializers.FeatureWriteSerializer, partial=True)
        return self.write(
            services.feature_update,
            feature=feature,
            **data,
            respond=self._render,
            # A name or description edit (everyday work of CREATE_FEATURE holders) decides
            # nothing: skip the impact; a tags edit changes this feature's reach only.
            may_move_permissions="tags" in data,
            features_of=FeatureWrite(project_id=feature.project_id, feature_ids=(feature.pk,)),
        )

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        """Delete a feature (DELETE_FEATURE on this feature: its tags apply)"""
        services.feature_delete(feature=self.get_object(), actor=actor_of(request))
        return no_content()


SEGMENT_IN_USE = OpenApiResponse(
    serializers.SegmentInUseSerializer,
    description="`segment_in_use`: overrides still use the segment; they are listed.",
)


@crud_schema(
    {"list": "The project's segments"},
    bodies=dict.fromkeys(("create", "partial_update"), serializers.SegmentWriteSerializer),
    destroy={"responses": {409: SEGMENT_IN_USE}},
)
class SegmentViewSet(ProjectScopedViewSet):
    model = Segment
    serializer_class = serializers.SegmentSerializer
    filterset_class = SegmentFilter
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    action_requirements = viewers_read(keys.MANAGE_SEGMENTS)

    def rows(self) -> QuerySet[Segment]:
        return selectors.segments_of_project(project=self.get_scope())

    def create(self, request: Request, project_pk: int) -> Response:
        """Create a segment (MANAGE_SEGMENTS)"""
        data = self.parse(serializers.SegmentWriteSerializer)
        segment = services.segment_create(project=self.get_scope(), **data, actor=actor_of(request))
        return self.created(segment)

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        """Edit a segment (MANAGE_SEGMENTS)"""
        segment = self.get_object()
        data: dict[str, Any] = self.parse(serializers.SegmentWriteSerializer, partial=True)
        segment = services.segment_update(segment=segment, **data, actor=actor_of(request))
        return self.answer(segment)

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        """Delete a segment no override uses (MANAGE_SEGMENTS)"""
        services.segment_delete(segment=self.get_object(), actor=actor_of(request))
        return no_content()
