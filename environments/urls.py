from django.urls import URLPattern, URLResolver, path

from environments.views import EnvironmentViewSet

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "environments/",
        EnvironmentViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-list",
    ),
    path(
        "environments/<str:api_key>/",
        EnvironmentViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="environment-detail",
    ),
]
