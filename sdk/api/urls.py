from django.urls import URLPattern, URLResolver, path

from sdk.api.views import EnvironmentDocumentView, FlagsView, IdentitiesView, ServerKeyViewSet
from tagwarden.api.routes import resource_routes

urlpatterns: list[URLPattern | URLResolver] = [
    path("flags/", FlagsView.as_view(), name="sdk-flags"),
    path("identities/", IdentitiesView.as_view(), name="sdk-identities"),
    path(
        "environment-document/", EnvironmentDocumentView.as_view(), name="sdk-environment-document"
    ),
    *resource_routes(
        "environments/<env_key:api_key>/server-keys", ServerKeyViewSet, "environment-server-key"
    ),
]
