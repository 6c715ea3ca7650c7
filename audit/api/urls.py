from django.urls import URLPattern, URLResolver, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)
from audit.api.views import OrganisationAuditLogViewSet, ProjectAuditLogViewSet

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "organisations/<id:organisation_pk>/audit-log/",
        OrganisationAuditLogViewSet.as_view({"get": "list"}),
        name="organisation-audit-log",
    ),
    path(
        "projects/<id:project_pk>/audit-log/",
        ProjectAuditLogViewSet.as_view({"get": "list"}),
        name="project-audit-log",
    ),
]
