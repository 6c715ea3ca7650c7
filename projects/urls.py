from typing import Any

from django.urls import URLPattern, URLResolver, path

from projects.views import ProjectViewSet, TagViewSet

collection: dict[str, Any] = {"get": "list", "post": "create"}
detail: dict[str, Any] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/", ProjectViewSet.as_view(collection), name="project-list"),
    path("projects/<int:pk>/", ProjectViewSet.as_view(detail), name="project-detail"),
    path(
        "projects/<int:project_pk>/tags/",
        TagViewSet.as_view(collection),
        name="project-tag-list",
    ),
    path(
        "projects/<int:project_pk>/tags/<int:pk>/",
        TagViewSet.as_view(detail),
        name="project-tag-detail",
    ),
]
