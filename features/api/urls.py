from django.urls import URLPattern, URLResolver

from features.api.views import FeatureViewSet, SegmentViewSet
from tagwarden.api.routes import resource_routes

urlpatterns: list[URLPattern | URLResolver] = [
    *resource_routes("projects/<id:project_pk>/features", FeatureViewSet, "project-feature"),
    *resource_routes("projects/<id:project_pk>/segments", SegmentViewSet, "project-segment"),
]
