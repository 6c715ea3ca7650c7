from typing import Any

from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from projects.api.views import ProjectViewSet, TagViewSet

collection: dict[str, Any] = {"get": "list", "post": "create"}
detail: dict[str, Any] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/", ProjectViewSet.as_view(collection), name="project-list"),
    path("projects/<id:pk>/", ProjectViewSet.as_view(detail), name="project-detail"),
    path(
        "projects/<id:project_pk>/tags/",
        TagViewSet.as_view(collection),
        name="project-tag-list",
    ),
    path(
        "projects/<id:project_pk>/tags/<id:pk>/",
        TagViewSet.as_view(detail),
        name="project-tag-detail",
    ),
]
