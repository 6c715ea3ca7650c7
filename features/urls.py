from typing import Any

from django.urls import URLPattern, URLResolver, path

from features.views import FeatureViewSet, SegmentViewSet

collection: dict[str, Any] = {"get": "list", "post": "create"}
detail: dict[str, Any] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<int:project_pk>/features/",
        FeatureViewSet.as_view(collection),
        name="project-feature-list",
    ),
    path(
        "projects/<int:project_pk>/features/<int:pk>/",
        FeatureViewSet.as_view(detail),
        name="project-feature-detail",
    ),
    path(
        "projects/<int:project_pk>/segments/",
        SegmentViewSet.as_view(collection),
        name="project-segment-list",
    ),
    path(
        "projects/<int:project_pk>/segments/<int:pk>/",
        SegmentViewSet.as_view(detail),
        name="project-segment-detail",
    ),
]
