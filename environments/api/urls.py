from django.urls import URLPattern, URLResolver

from environments.api.views import EnvironmentViewSet
from tagwarden.api.routes import resource_routes

urlpatterns: list[URLPattern | URLResolver] = [
    *resource_routes("environments", EnvironmentViewSet, "environment", lookup="<env_key:api_key>")
]
