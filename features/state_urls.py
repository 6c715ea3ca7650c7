"""Feature states, segment overrides and change requests under `/environments/{api_key}/`."""

from django.urls import URLPattern, URLResolver, path

from features.state_views import ChangeRequestViewSet, FeatureStateViewSet, SegmentOverrideViewSet

_ENV = "environments/<str:api_key>/"
_OVERRIDES = _ENV + "features/<int:feature_pk>/segment-overrides/"
_CHANGE_REQUESTS = _ENV + "change-requests/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        _ENV + "featurestates/",
        FeatureStateViewSet.as_view({"get": "list"}),
        name="environment-featurestate-list",
    ),
    path(
        _ENV + "featurestates/<int:pk>/",
        FeatureStateViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="environment-featurestate-detail",
    ),
    path(
        _OVERRIDES,
        SegmentOverrideViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-segment-override-list",
    ),
    path(
        _OVERRIDES + "<int:pk>/",
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
        _CHANGE_REQUESTS + "<int:pk>/",
        ChangeRequestViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-change-request-detail",
    ),
    path(
        _CHANGE_REQUESTS + "<int:pk>/approve/",
        ChangeRequestViewSet.as_view({"post": "approve"}),
        name="environment-change-request-approve",
    ),
    path(
        _CHANGE_REQUESTS + "<int:pk>/commit/",
        ChangeRequestViewSet.as_view({"post": "commit"}),
        name="environment-change-request-commit",
    ),
]
