"""Features and segments of a project (docs/API.md; docs/PERMISSIONS.md,
"Every action names its feature").

Every action on a feature resolves it from the database under the URL's project (a feature
of another project is a 404) and passes it to the engine: DELETE_FEATURE supports tags.
Feature edits (which may change its tags) run inside `tagwarden.api.base.write_with_impact`
(`?dry_run=true` previews their impact, saving nothing).
"""

from __future__ import annotations

import functools
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from features import selectors, services
from features.api.filters import FeatureFilter, SegmentFilter
from features.api.serializers import (
    FeatureSerializer,
    FeatureWriteSerializer,
    SegmentInUseSerializer,
    SegmentSerializer,
    SegmentWriteSerializer,
)
from features.models import Feature, Segment
from permissions import catalogue as keys
from permissions.drf import VIEW, on_object_feature
from projects.api.views import ProjectScopedViewSet
from tagwarden.api.base import (
    DELETE_ERRORS,
    DRY_RUN_PARAMETER,
    LIST_ERRORS,
    READ_ERRORS,
    WRITE_ERRORS,
    actor_of,
    write_with_impact,
)
from tagwarden.api.dry_run import or_impact

_ORDERING = OpenApiParameter(
    "ordering", str, description="name, created_at or id; prefix with - to reverse."
)


@extend_schema_view(
    list=extend_schema(
        summary="The project's features, with the caller's keys on each",
        parameters=[_ORDERING],
        responses={200: FeatureSerializer, **LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Create a feature (CREATE_FEATURE; protected tags: project admin)",
        request=FeatureWriteSerializer,
        responses={201: FeatureSerializer, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: FeatureSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Edit a feature (CREATE_FEATURE; protected tags: project admin)",
        parameters=[DRY_RUN_PARAMETER],
        request=FeatureWriteSerializer,
        responses={200: or_impact(FeatureSerializer), **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a feature (DELETE_FEATURE on this feature: its tags apply)",
        responses={204: None, **DELETE_ERRORS},
    ),
)
class FeatureViewSet(ProjectScopedViewSet):
    dry_run_actions = frozenset({"partial_update"})
    serializer_class = FeatureSerializer
    filterset_class = FeatureFilter
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name", "id"]
    action_requirements = {
        "list": VIEW,
        "retrieve": VIEW,
        "create": keys.CREATE_FEATURE,
        "partial_update": keys.CREATE_FEATURE,
        "destroy": on_object_feature(keys.DELETE_FEATURE),  # with the feature's own tags
    }

    def get_queryset(self) -> QuerySet[Feature]:
        if self.schema_only:
            return Feature.objects.none()
        return selectors.features_of_project(project=self.get_scope())

    def get_permission_feature(self, obj: Feature) -> Feature:
        return obj

    def _render(self, feature: Feature, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.feature_get(project=self.get_scope(), feature_id=feature.pk)
        return Response(
            FeatureSerializer(fresh, context=self.get_serializer_context()).data,
            status=status_code,
        )

    def list(self, request: Request, project_pk: int) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = FeatureSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(serializer.data)

    def create(self, request: Request, project_pk: int) -> Response:
        data = self.parse(FeatureWriteSerializer)
        feature = services.feature_create(project=self.get_scope(), **data, actor=actor_of(request))
        return self._render(feature, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, project_pk: int, pk: int) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        feature = self.get_object()
        data = self.parse(FeatureWriteSerializer, partial=True)
        return write_with_impact(
            request,
            organisation_id=self.get_scope().organisation_id,
            change=functools.partial(
                services.feature_update, feature=feature, **data, actor=actor_of(request)
            ),
            respond=lambda updated: self._render(updated),
            # A name or description edit (everyday work of CREATE_FEATURE holders) decides
            # nothing: skip the two organisation snapshots an impact costs.
            may_move_permissions="tags" in data,
        )

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        services.feature_delete(feature=self.get_object(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="The project's segments", responses={200: SegmentSerializer, **LIST_ERRORS}
    ),
    create=extend_schema(
        summary="Create a segment (MANAGE_SEGMENTS)",
        request=SegmentWriteSerializer,
        responses={201: SegmentSerializer, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: SegmentSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Edit a segment (MANAGE_SEGMENTS)",
        request=SegmentWriteSerializer,
        responses={200: SegmentSerializer, **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a segment no override uses (MANAGE_SEGMENTS)",
        responses={
            204: None,
            **DELETE_ERRORS,
            409: OpenApiResponse(
                SegmentInUseSerializer,
                description="`segment_in_use`: overrides still use the segment; they are listed.",
            ),
        },
    ),
)
class SegmentViewSet(ProjectScopedViewSet):
    serializer_class = SegmentSerializer
    filterset_class = SegmentFilter
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    action_requirements = {
        "list": VIEW,
        "retrieve": VIEW,
        "create": keys.MANAGE_SEGMENTS,
        "partial_update": keys.MANAGE_SEGMENTS,
        "destroy": keys.MANAGE_SEGMENTS,
    }

    def get_queryset(self) -> QuerySet[Segment]:
        if self.schema_only:
            return Segment.objects.none()
        return selectors.segments_of_project(project=self.get_scope())

    def list(self, request: Request, project_pk: int) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(SegmentSerializer(page, many=True).data)

    def create(self, request: Request, project_pk: int) -> Response:
        data = self.parse(SegmentWriteSerializer)
        segment = services.segment_create(project=self.get_scope(), **data, actor=actor_of(request))
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, project_pk: int, pk: int) -> Response:
        return Response(SegmentSerializer(self.get_object()).data)

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        segment = self.get_object()
        data: dict[str, Any] = self.parse(SegmentWriteSerializer, partial=True)
        segment = services.segment_update(segment=segment, **data, actor=actor_of(request))
        return Response(SegmentSerializer(segment).data)

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        services.segment_delete(segment=self.get_object(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
