"""Feature states, segment overrides and change requests under `/environments/{api_key}/`."""

from django.urls import URLPattern, URLResolver, path

from features.workflow.api.views import (
    ChangeRequestViewSet,
    FeatureStateViewSet,
    SegmentOverrideViewSet,
)
from tagwarden.api.routes import resource_routes

_ENV = "environments/<env_key:api_key>/"
_CHANGE_REQUEST = _ENV + "change-requests/<id:pk>/"

urlpatterns: list[URLPattern | URLResolver] = [
    *resource_routes(
        _ENV + "featurestates",
        FeatureStateViewSet,
        "environment-featurestate",
        collection={"get": "list"},
        item={"get": "retrieve", "patch": "partial_update"},
    ),
    *resource_routes(
        _ENV + "features/<id:feature_pk>/segment-overrides",
        SegmentOverrideViewSet,
        "environment-segment-override",
    ),
    *resource_routes(_ENV + "change-requests", ChangeRequestViewSet, "environment-change-request"),
    path(
        _CHANGE_REQUEST + "approve/",
        ChangeRequestViewSet.as_view({"post": "approve"}),
        name="environment-change-request-approve",
    ),
    path(
        _CHANGE_REQUEST + "commit/",
        ChangeRequestViewSet.as_view({"post": "commit"}),
        name="environment-change-request-commit",
    ),
]
