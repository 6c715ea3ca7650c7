"""Root URLs: the API under /api/v1/, the Django admin at /admin/, health checks at /health/.

Order matters: the catalogue routes (`/projects/permissions/`, `/environments/permissions/`)
must win over detail routes, so permissions.api.urls comes first.
"""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tagwarden import health
from tagwarden.api.auth import LoginView, LogoutView
from tagwarden.throttling import throttled

api_patterns: list[URLPattern | URLResolver] = [
    path("auth/login/", LoginView.as_view(), name="auth-login"),
    path("auth/logout/", LogoutView.as_view(), name="auth-logout"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("permissions.api.urls")),
    # The busiest routes next (Django tries the patterns in order, about a microsecond each):
    # applications' flags, then feature states. No other route matches their paths.
    path("", include("sdk.api.urls")),
    path("", include("features.workflow.api.urls")),
    path("", include("organisations.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("projects.api.urls")),
    path("", include("environments.api.urls")),
    path("", include("features.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # The admin's login form is throttled like the API login (tagwarden/throttling.py).
    path("admin/login/", throttled(admin.site.login), name="admin-login-throttled"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_patterns)),
]

handler404 = "tagwarden.api.exceptions.api_not_found"
handler500 = "tagwarden.api.exceptions.api_server_error"
