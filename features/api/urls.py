from typing import Any

from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from features.api.views import FeatureViewSet, SegmentViewSet

collection: dict[str, Any] = {"get": "list", "post": "create"}
detail: dict[str, Any] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<id:project_pk>/features/",
        FeatureViewSet.as_view(collection),
        name="project-feature-list",
    ),
    path(
        "projects/<id:project_pk>/features/<id:pk>/",
        FeatureViewSet.as_view(detail),
        name="project-feature-detail",
    ),
    path(
        "projects/<id:project_pk>/segments/",
        SegmentViewSet.as_view(collection),
        name="project-segment-list",
    ),
    path(
        "projects/<id:project_pk>/segments/<id:pk>/",
        SegmentViewSet.as_view(detail),
        name="project-segment-detail",
    ),
]
