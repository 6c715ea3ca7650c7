"""Catalogue, permission reports and grant routes. Included first in the root URLs so the
catalogue routes win over detail routes (notably `environments/<env_key:api_key>/`)."""

from django.urls import URLPattern, URLResolver, path

from permission_documents.api import views as document_views
from permissions.api import views
from permissions.catalogue import Level
from tagwarden.api.routes import REPLACEABLE_ITEM, resource_routes

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
        *resource_routes(
            f"{prefix}/user-permissions", user_view, f"{name}-user", item=REPLACEABLE_ITEM
        ),
        *resource_routes(
            f"{prefix}/user-group-permissions", group_view, f"{name}-group", item=REPLACEABLE_ITEM
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
    *resource_routes(
        f"{role}/projects-permissions",
        views.RoleProjectGrantViewSet,
        "role-project-grant",
        item=REPLACEABLE_ITEM,
    ),
    *resource_routes(
        f"{role}/environments-permissions",
        views.RoleEnvironmentGrantViewSet,
        "role-environment-grant",
        item=REPLACEABLE_ITEM,
    ),
]
