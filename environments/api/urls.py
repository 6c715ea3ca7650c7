from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from environments.api.views import EnvironmentViewSet

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "environments/",
        EnvironmentViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-list",
    ),
    path(
        "environments/<env_key:api_key>/",
        EnvironmentViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-detail",
    ),
]
