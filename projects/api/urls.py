from django.urls import URLPattern, URLResolver

from projects.api.views import ProjectViewSet, TagViewSet
from tagwarden.api.routes import resource_routes

urlpatterns: list[URLPattern | URLResolver] = [
    *resource_routes("projects", ProjectViewSet, "project"),
    *resource_routes("projects/<id:project_pk>/tags", TagViewSet, "project-tag"),
]
