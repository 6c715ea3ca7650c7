"""Catalogue, permission reports and grant routes. Included first in the root URLs so the
catalogue routes win over detail routes (notably `environments/<env_key:api_key>/`)."""

from typing import Any

from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from permission_documents.api import views as document_views
from permissions.api import views
from permissions.catalogue import Level

collection: dict[str, Any] = {"get": "list", "post": "create"}
detail: dict[str, Any] = {
    "get": "retrieve",
    "put": "update",
    "patch": "partial_update",
    "delete": "destroy",
}
org = "organisations/<id:organisation_pk>"
project = "projects/<id:project_pk>"
environment = "environments/<env_key:api_key>"
role = f"{org}/roles/<id:role_pk>"


def _grant_routes(
    prefix: str,
    name: str,
    user_view: type[views.PrincipalGrantViewSet],
    group_view: type[views.PrincipalGrantViewSet],
) -> list[URLPattern]:
    return [
        path(
            f"{prefix}/user-permissions/", user_view.as_view(collection), name=f"{name}-user-list"
        ),
        path(
            f"{prefix}/user-permissions/<id:pk>/",
            user_view.as_view(detail),
            name=f"{name}-user-detail",
        ),
        path(
            f"{prefix}/user-group-permissions/",
            group_view.as_view(collection),
            name=f"{name}-group-list",
        ),
        path(
            f"{prefix}/user-group-permissions/<id:pk>/",
            group_view.as_view(detail),
            name=f"{name}-group-detail",
        ),
    ]


urlpatterns: list[URLPattern | URLResolver] = [
    # Catalogues first: they win over every detail route.
    path(
        "organisations/permissions/",
        views.CatalogueView.as_view(level=Level.ORGANISATION),
        name="organisation-permission-catalogue",
    ),
    path(
        "projects/permissions/",
        views.CatalogueView.as_view(level=Level.PROJECT),
        name="project-permission-catalogue",
    ),
    path(
        "environments/permissions/",
        views.CatalogueView.as_view(level=Level.ENVIRONMENT),
        name="environment-permission-catalogue",
    ),
    # Permissions as code: the organisation's document, its plan and its application.
    path(
        f"{org}/permissions-document/",
        document_views.PermissionsDocumentViewSet.as_view({"get": "retrieve"}),
        name="organisation-permissions-document",
    ),
    path(
        f"{org}/permissions-document/plan/",
        document_views.PermissionsDocumentViewSet.as_view({"post": "plan"}),
        name="organisation-permissions-document-plan",
    ),
    path(
        f"{org}/permissions-document/apply/",
        document_views.PermissionsDocumentViewSet.as_view({"post": "apply"}),
        name="organisation-permissions-document-apply",
    ),
    # What the caller holds, where a user's keys come from, and why.
    path(f"{org}/my-permissions/", views.MyPermissionsView.as_view(), name="organisation-my"),
    path(f"{project}/my-permissions/", views.MyPermissionsView.as_view(), name="project-my"),
    path(
        f"{environment}/my-permissions/",
        views.MyPermissionsView.as_view(),
        name="environment-my",
    ),
    path(
        f"{project}/user-detailed-permissions/<id:user_id>/",
        views.UserDetailedPermissionsView.as_view(),
        name="project-user-detailed",
    ),
    path(
        f"{environment}/user-detailed-permissions/<id:user_id>/",
        views.UserDetailedPermissionsView.as_view(),
        name="environment-user-detailed",
    ),
    path(
        f"{environment}/features/<id:feature_id>/explain/",
        views.ExplainView.as_view(),
        name="environment-feature-explain",
    ),
    # User and group grants.
    *_grant_routes(
        org,
        "organisation",
        views.OrganisationUserGrantViewSet,
        views.OrganisationGroupGrantViewSet,
    ),
    *_grant_routes(
        project, "project", views.ProjectUserGrantViewSet, views.ProjectGroupGrantViewSet
    ),
    *_grant_routes(
        environment,
        "environment",
        views.EnvironmentUserGrantViewSet,
        views.EnvironmentGroupGrantViewSet,
    ),
    # Role grants.
    path(
        f"{role}/organisation-permissions/",
        views.RoleOrganisationPermissionsViewSet.as_view({"get": "retrieve", "put": "update"}),
        name="role-organisation-permissions",
    ),
    path(
        f"{role}/projects-permissions/",
        views.RoleProjectGrantViewSet.as_view(collection),
        name="role-project-grant-list",
    ),
    path(
        f"{role}/projects-permissions/<id:pk>/",
        views.RoleProjectGrantViewSet.as_view(detail),
        name="role-project-grant-detail",
    ),
    path(
        f"{role}/environments-permissions/",
        views.RoleEnvironmentGrantViewSet.as_view(collection),
        name="role-environment-grant-list",
    ),
    path(
        f"{role}/environments-permissions/<id:pk>/",
        views.RoleEnvironmentGrantViewSet.as_view(detail),
        name="role-environment-grant-detail",
    ),
]
