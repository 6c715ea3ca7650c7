"""Feature states, segment overrides and change requests under `/environments/{api_key}/`."""

from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from features.workflow.api.views import (
    ChangeRequestViewSet,
    FeatureStateViewSet,
    SegmentOverrideViewSet,
)

_ENV = "environments/<env_key:api_key>/"
_OVERRIDES = _ENV + "features/<id:feature_pk>/segment-overrides/"
_CHANGE_REQUESTS = _ENV + "change-requests/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        _ENV + "featurestates/",
        FeatureStateViewSet.as_view({"get": "list"}),
        name="environment-featurestate-list",
    ),
    path(
        _ENV + "featurestates/<id:pk>/",
        FeatureStateViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="environment-featurestate-detail",
    ),
    path(
        _OVERRIDES,
        SegmentOverrideViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-segment-override-list",
    ),
    path(
        _OVERRIDES + "<id:pk>/",
        SegmentOverrideViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-segment-override-detail",
    ),
    path(
        _CHANGE_REQUESTS,
        ChangeRequestViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-change-request-list",
    ),
    path(
        _CHANGE_REQUESTS + "<id:pk>/",
        ChangeRequestViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-change-request-detail",
    ),
    path(
        _CHANGE_REQUESTS + "<id:pk>/approve/",
        ChangeRequestViewSet.as_view({"post": "approve"}),
        name="environment-change-request-approve",
    ),
    path(
        _CHANGE_REQUESTS + "<id:pk>/commit/",
        ChangeRequestViewSet.as_view({"post": "commit"}),
        name="environment-change-request-commit",
    ),
]
