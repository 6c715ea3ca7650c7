"""Projects and tags (docs/API.md; protected tags:
docs/PERMISSIONS.md).

Views are thin: parse with a serializer, call one service or selector, render. Decisions are
the engine's (through permissions.drf); rules about protected tags live in the services.
Tag writes run inside `tagwarden.api.base.write_with_impact` (`?dry_run=true` previews).
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from impact.feature_writes import FeatureWrite
from permissions import catalogue as keys
from permissions.drf import require
from projects import selectors, services
from projects.api import serializers
from projects.api.filters import ProjectFilter, TagFilter
from projects.models import Project, Tag
from tagwarden.api.base import (
    NOT_FOUND,
    ProjectScopedViewSet,
    ScopeViewSet,
    actor_of,
    no_content,
    viewers_read,
)
from tagwarden.api.schema import crud_schema

# --------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------


@crud_schema(
    {"list": "Projects the caller may view"},
    bodies={
        "create": serializers.ProjectCreateSerializer,
        "partial_update": serializers.ProjectUpdateSerializer,
    },
    list={"responses": {404: NOT_FOUND}},
)
class ProjectViewSet(ScopeViewSet, scope="project", scope_kwarg="pk"):
    model = Project
    serializer_class = serializers.ProjectSerializer
    filterset_class = ProjectFilter

    def rows(self) -> QuerySet[Project]:
        return selectors.projects_viewable(principal=self.request.user)

    def create(self, request: Request) -> Response:
        """Create a project (CREATE_PROJECT on the organisation)"""
        data = self.parse(serializers.ProjectCreateSerializer)
        require(request, keys.CREATE_PROJECT, data["organisation"])
        project = services.project_create(
            organisation=data["organisation"], name=data["name"], actor=actor_of(request)
        )
        return self.created(project)

    def partial_update(self, request: Request, pk: int) -> Response:
        """Rename a project (project admin)"""
        data = self.parse(serializers.ProjectUpdateSerializer, partial=True)
        project = services.project_update(project=self.get_scope(), **data, actor=actor_of(request))
        return self.answer(project)

    def destroy(self, request: Request, pk: int) -> Response:
        """Delete a project and everything in it (project admin)"""
        services.project_delete(project=self.get_scope(), actor=actor_of(request))
        return no_content()


# --------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------

TAG_IN_USE = OpenApiResponse(
    serializers.TagInUseSerializer,
    description="`tag_in_use`: named by a grant (the roles are listed), or restricted and "
    "still attached to a feature.",
)


@crud_schema(
    {"list": "The project's tags"},
    bodies=dict.fromkeys(("create", "partial_update"), serializers.TagWriteSerializer),
    destroy={"responses": {409: TAG_IN_USE}},
)
class TagViewSet(ProjectScopedViewSet):
    dry_run_actions = frozenset({"create", "partial_update", "destroy"})
    model = Tag
    serializer_class = serializers.TagSerializer
    filterset_class = TagFilter
    ordering_fields = ["label", "id"]
    ordering = ["label", "id"]
    action_requirements = viewers_read(keys.MANAGE_TAGS)

    def rows(self) -> QuerySet[Tag]:
        return selectors.tags_of_project(project=self.get_scope())

    def _render(self, tag: Tag, status_code: int = status.HTTP_200_OK) -> Response:
        annotated = selectors.tag_get(project=self.get_scope(), tag_id=tag.pk)
        return Response(serializers.TagSerializer(annotated).data, status=status_code)

    def create(self, request: Request, project_pk: int) -> Response:
        """Create a tag (MANAGE_TAGS; a restricted one: project admin)"""
        data = self.parse(serializers.TagWriteSerializer)
        return self.write(
            services.tag_create,
            project=self.get_scope(),
            **data,
            respond=lambda tag: self._render(tag, status.HTTP_201_CREATED),
        )

    def partial_update(self, request: Request, project_pk: int, pk: int) -> Response:
        """Edit a tag (MANAGE_TAGS; changing is_restricted: project admin)"""
        tag = self.get_object()
        data = self.parse(serializers.TagWriteSerializer, partial=True)
        return self.write(
            services.tag_update,
            tag=tag,
            **data,
            respond=self._render,
            # A label, colour or description edit decides nothing (no snapshots needed);
            # a restriction changes only the features carrying the tag.
            may_move_permissions="is_restricted" in data,
            features_of=FeatureWrite(project_id=tag.project_id, tag_ids=(tag.pk,)),
        )

    def destroy(self, request: Request, project_pk: int, pk: int) -> Response:
        """Delete a tag (MANAGE_TAGS; a protected one: project admin)"""
        tag = self.get_object()
        return self.write(
            services.tag_delete,
            tag=tag,
            respond=no_content,
            features_of=FeatureWrite(project_id=tag.project_id, tag_ids=(tag.pk,)),
        )
