from django.urls import URLPattern, URLResolver

from organisations.api import views
from tagwarden.api.routes import REPLACEABLE_ITEM, resource_routes

org = "organisations/<id:organisation_pk>"
role = f"{org}/roles/<id:role_pk>"
removable = {"delete": "destroy"}

urlpatterns: list[URLPattern | URLResolver] = [
    *resource_routes("organisations", views.OrganisationViewSet, "organisation"),
    *resource_routes(
        f"{org}/users",
        views.MemberViewSet,
        "organisation-user",
        item={"patch": "partial_update", "delete": "destroy"},
        lookup="<id:user_id>",
    ),
    *resource_routes(
        f"{org}/groups", views.GroupViewSet, "organisation-group", item=REPLACEABLE_ITEM
    ),
    *resource_routes(f"{org}/roles", views.RoleViewSet, "organisation-role"),
    *resource_routes(f"{role}/users", views.RoleUserAssignmentViewSet, "role-user", item=removable),
    *resource_routes(
        f"{role}/groups", views.RoleGroupAssignmentViewSet, "role-group", item=removable
    ),
    *resource_routes(
        f"{role}/api-keys", views.RoleAPIKeyAssignmentViewSet, "role-api-key", item=removable
    ),
    *resource_routes(f"{org}/api-keys", views.APIKeyViewSet, "organisation-api-key"),
]
