"""Projects and tags (docs/API.md; protected tags:
docs/PERMISSIONS.md).

Views are thin: parse with a serializer, call one service or selector, render. Decisions are
the engine's (through permissions.drf); rules about protected tags live in the services.
Tag writes run inside `tagwarden.api.base.write_with_impact` (`?dry_run=true` previews).
"""

from __future__ import annotations

import functools

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from permissions import catalogue as keys
from permissions.drf import ADMIN, VIEW, project_or_404, require
from projects import selectors, services
from projects.api.filters import ProjectFilter, TagFilter
from projects.api.serializers import (
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    TagInUseSerializer,
    TagSerializer,
    TagWriteSerializer,
)
from projects.models import Project, Tag
from tagwarden.api.base import (
    BAD_REQUEST,
    DELETE_ERRORS,
    DRY_RUN_PARAMETER,
    FORBIDDEN,
    IMPACT_RESPONSE,
    LIST_ERRORS,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ActionViewSet,
    actor_of,
    no_content,
    write_with_impact,
)
from tagwarden.api.dry_run import DRY_RUN_DELETE_ERRORS, or_impact


class ProjectScopedViewSet(ActionViewSet):
    """Base of the resources nested under `/projects/{project_pk}/`: the project is the
    scope (404 when the caller cannot view it); `action_requirements` maps actions to keys."""

    scope_kwarg = "project_pk"
    scope_context_key = "project"

    def load_scope(self) -> Project:
        return project_or_404(self.request, self.kwargs[self.scope_kwarg])


# --------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Projects the caller may view", responses={200: ProjectSerializer, **LIST_ERRORS}
    ),
    create=extend_schema(
        summary="Create a project (CREATE_PROJECT on the organisation)",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, 400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN},
    ),
    retrieve=extend_schema(responses={200: ProjectSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Rename a project (project admin)",
        request=ProjectUpdateSerializer,
        responses={200: ProjectSerializer, **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a project and everything in it (project admin)",
        responses={204: None, **DELETE_ERRORS},
    ),
)
class ProjectViewSet(ActionViewSet):
    serializer_class = ProjectSerializer
    filterset_class = ProjectFilter
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    action_requirements = {"retrieve": VIEW, "partial_update": ADMIN, "destroy": ADMIN}
    authenticated_actions = ("list", "create")

    scope_kwarg = "pk"

    def load_scope(self) -> Project:
        return project_or_404(self.request, self.kwargs[self.scope_kwarg])

    def get_queryset(self) -> QuerySet[Project]:
        if self.schema_only:
            return Project.objects.none()
        return selectors.projects_viewable(principal=self.request.user)

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        serializer = ProjectCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        organisation = serializer.validated_data["organisation"]
        require(request, keys.CREATE_PROJECT, organisation)
        project = services.project_create(
            organisation=organisation,
            name=serializer.validated_data["name"],
            actor=actor_of(request),
        )
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: int) -> Response:
        return Response(ProjectSerializer(self.get_scope()).data)

    def partial_update(self, request: Request, pk: int) -> Response:
        project = self.get_scope()
        serializer = ProjectUpdateSerializer(
            data=request.data, partial=True, context={"request": request, "project": project}
        )
        serializer.is_valid(raise_exception=True)
        project = services.project_update(
            project=project, **serializer.validated_data, actor=actor_of(request)
        )
        return Response(ProjectSerializer(project).data)

    def destroy(self, request: Request, pk: int) -> Response:
        services.project_delete(project=self.get_scope(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------

TAG_IN_USE = OpenApiResponse(
    TagInUseSerializer,
    description="`tag_in_use`: named by a grant (the roles are listed), or restricted and "
    "still attached to a feature.",
)


@extend_schema_view(
    list=extend_schema(summary="The project's tags", responses={200: TagSerializer, **LIST_ERRORS}),
    create=extend_schema(
        summary="Create a tag (MANAGE_TAGS; a restricted one: project admin)",
        parameters=[DRY_RUN_PARAMETER],
        request=TagWriteSerializer,
        responses={201: TagSerializer, 200: IMPACT_RESPONSE, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: TagSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Edit a tag (MANAGE_TAGS; changing is_restricted: project admin)",
        parameters=[DRY_RUN_PARAMETER],
        request=TagWriteSerializer,
        responses={200: or_impact(TagSerializer), **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a tag (MANAGE_TAGS; a protected one: project admin)",
        parameters=[DRY_RUN_PARAMETER],
        responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS, 409: TAG_IN_USE},
    ),
)
class TagViewSet(ProjectScopedViewSet):
    dry_run_actions = frozenset({"create", "partial_update", "destroy"})
    serializer_class = TagSerializer
    filterset_class = TagFilter
    ordering_fields = ["label", "id"]
    ordering = ["label", "id"]
    action_requirements = {
        "list": VIEW,
        "retrieve": VIEW,
        "create": keys.MANAGE_TAGS,
        "partial_update": keys.MANAGE_TAGS,
        "destroy": keys.MANAGE_TAGS,
    }

    def get_queryset(self) -> QuerySet[Tag]:
        if self.schema_only:
            return Tag.objects.none()
        return selectors.tags_of_project(project=self.get_scope())

    def _render(self, tag: Tag, status_code: int = status.HTTP_200_OK) -> Response:
        annotated = selectors.tag_get(project=self.get_scope(), tag_id=tag.pk)
        return Response(TagSerializer(annotated).data, status=status_code)

    def list(self, request: Request, project_pk: int) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TagSerializer(page, many=True).data)

    def create(self, request: Request, project_pk: int) -> Response:
        data = self.parse(TagWriteSerializer)
        project = self.get_scope()
        return write_with_impact(
            request,
            organisation_id=project.organisation_id,
            change=functools.partial(
                services.tag_create, project=project, **data, actor=actor_of(request)
            ),
            respond=lambda tag: self._render(tag, status.HTTP_201_CREATED),
        )

    def retrieve(self, request: Request, project_pk: int, pk: int) -> Response:
        return Response(TagSerializer(self.get_object()).data)

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        tag = self.get_object()
        data = self.parse(TagWriteSerializer, partial=True)
        return write_with_impact(
            request,
            organisation_id=self.get_scope().organisation_id,
            change=functools.partial(services.tag_update, tag=tag, **data, actor=actor_of(request)),
            respond=lambda updated: self._render(updated),
            # A label, colour or description edit decides nothing (no snapshots needed).
            may_move_permissions="is_restricted" in data,
        )

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        tag = self.get_object()
        return write_with_impact(
            request,
            organisation_id=self.get_scope().organisation_id,
            change=functools.partial(services.tag_delete, tag=tag, actor=actor_of(request)),
            respond=no_content,
        )
