from django.urls import URLPattern, URLResolver, path

from sdk.api.views import EnvironmentDocumentView, FlagsView, IdentitiesView, ServerKeyViewSet

urlpatterns: list[URLPattern | URLResolver] = [
    path("flags/", FlagsView.as_view(), name="sdk-flags"),
    path("identities/", IdentitiesView.as_view(), name="sdk-identities"),
    path(
        "environment-document/", EnvironmentDocumentView.as_view(), name="sdk-environment-document"
    ),
    path(
        "environments/<str:api_key>/server-keys/",
        ServerKeyViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-server-key-list",
    ),
    path(
        "environments/<str:api_key>/server-keys/<str:pk>/",
        ServerKeyViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-server-key-detail",
    ),
]
