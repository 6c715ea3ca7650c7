"""Root URLs: the API under /api/v1/, the Django admin at /admin/.

Order matters: the catalogue routes (`/projects/permissions/`, `/environments/permissions/`)
must win over detail routes, so permissions.urls comes first.
"""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tagwarden.views import LoginView

api_patterns: list[URLPattern | URLResolver] = [
    path("auth/login/", LoginView.as_view(), name="auth-login"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("permissions.urls")),
    path("", include("organisations.urls")),
    path("", include("audit.urls")),
    path("", include("projects.urls")),
    path("", include("environments.urls")),
    path("", include("features.urls")),
    path("", include("features.state_urls")),
    path("", include("sdk.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_patterns)),
]

handler404 = "tagwarden.exceptions.api_not_found"
