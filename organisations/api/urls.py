from typing import Any

from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from organisations.api import views

collection: dict[str, Any] = {"get": "list", "post": "create"}
org = "organisations/<id:organisation_pk>"
role = f"{org}/roles/<id:role_pk>"

urlpatterns: list[URLPattern | URLResolver] = [
    path("organisations/", views.OrganisationViewSet.as_view(collection), name="organisation-list"),
    path(
        "organisations/<id:pk>/",
        views.OrganisationViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="organisation-detail",
    ),
    path(f"{org}/users/", views.MemberViewSet.as_view(collection), name="organisation-user-list"),
    path(
        f"{org}/users/<id:user_id>/",
        views.MemberViewSet.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="organisation-user-detail",
    ),
    path(f"{org}/groups/", views.GroupViewSet.as_view(collection), name="organisation-group-list"),
    path(
        f"{org}/groups/<id:pk>/",
        views.GroupViewSet.as_view(
            {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
        ),
        name="organisation-group-detail",
    ),
    path(f"{org}/roles/", views.RoleViewSet.as_view(collection), name="organisation-role-list"),
    path(
        f"{org}/roles/<id:pk>/",
        views.RoleViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="organisation-role-detail",
    ),
    path(
        f"{role}/users/",
        views.RoleUserAssignmentViewSet.as_view(collection),
        name="role-user-list",
    ),
    path(
        f"{role}/users/<id:pk>/",
        views.RoleUserAssignmentViewSet.as_view({"delete": "destroy"}),
        name="role-user-detail",
    ),
    path(
        f"{role}/groups/",
        views.RoleGroupAssignmentViewSet.as_view(collection),
        name="role-group-list",
    ),
    path(
        f"{role}/groups/<id:pk>/",
        views.RoleGroupAssignmentViewSet.as_view({"delete": "destroy"}),
        name="role-group-detail",
    ),
    path(
        f"{role}/api-keys/",
        views.RoleAPIKeyAssignmentViewSet.as_view(collection),
        name="role-api-key-list",
    ),
    path(
        f"{role}/api-keys/<id:pk>/",
        views.RoleAPIKeyAssignmentViewSet.as_view({"delete": "destroy"}),
        name="role-api-key-detail",
    ),
    path(
        f"{org}/api-keys/",
        views.APIKeyViewSet.as_view(collection),
        name="organisation-api-key-list",
    ),
    path(
        f"{org}/api-keys/<id:pk>/",
        views.APIKeyViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        name="organisation-api-key-detail",
    ),
]
