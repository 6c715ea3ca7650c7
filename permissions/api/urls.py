"""Catalogue, permission reports and grant routes. Included first in the root URLs so the
catalogue routes win over detail routes (notably `environments/<env_key:api_key>/`)."""

from django.urls import URLPattern, URLResolver, path

from permission_documents.api import views as document_views
from permissions.api import views
from permissions.catalogue import Level
from tagwarden.api.routes import REPLACEABLE_ITEM, resource_routes

org = "organisations/<id:organisation_pk>"
role = f"{org}/roles/<id:role_pk>"
#: Where each scope level's routes start.
prefixes = {
    Level.ORGANISATION: org,
    Level.PROJECT: "projects/<id:project_pk>",
    Level.ENVIRONMENT: "environments/<env_key:api_key>",
}
environment = prefixes[Level.ENVIRONMENT]
document = f"{org}/permissions-document/"


def _grant_routes(level: Level) -> list[URLPattern]:
    """`.../user-permissions/` and `.../user-group-permissions/` of one scope level."""
    return [
        *resource_routes(
            f"{prefixes[level]}/user-permissions",
            views.PRINCIPAL_GRANT_VIEWSETS[level, "user"],
            f"{level}-user",
            item=REPLACEABLE_ITEM,
        ),
        *resource_routes(
            f"{prefixes[level]}/user-group-permissions",
            views.PRINCIPAL_GRANT_VIEWSETS[level, "group"],
            f"{level}-group",
            item=REPLACEABLE_ITEM,
        ),
    ]


urlpatterns: list[URLPattern | URLResolver] = [
    # Catalogues first: they win over every detail route.
    *(
        path(
            f"{level}s/permissions/",
            views.CatalogueView.as_view(level=level),
            name=f"{level}-permission-catalogue",
        )
        for level in Level
    ),
    # Permissions as code: the organisation's document, its plan and its application.
    path(
        document,
        document_views.PermissionsDocumentViewSet.as_view({"get": "retrieve"}),
        name="organisation-permissions-document",
    ),
    *(
        path(
            f"{document}{action}/",
            document_views.PermissionsDocumentViewSet.as_view({"post": action}),
            name=f"organisation-permissions-document-{action}",
        )
        for action in ("plan", "apply")
    ),
    # What the caller holds, where a user's keys come from, and why.
    *(
        path(
            f"{prefixes[level]}/my-permissions/",
            views.MyPermissionsView.as_view(),
            name=f"{level}-my",
        )
        for level in Level
    ),
    *(
        path(
            f"{prefixes[level]}/user-detailed-permissions/<id:user_id>/",
            views.UserDetailedPermissionsView.as_view(),
            name=f"{level}-user-detailed",
        )
        for level in (Level.PROJECT, Level.ENVIRONMENT)
    ),
    path(
        f"{environment}/features/<id:feature_id>/explain/",
        views.ExplainView.as_view(),
        name="environment-feature-explain",
    ),
    # User and group grants.
    *(route for level in Level for route in _grant_routes(level)),
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
