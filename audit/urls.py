from django.urls import URLPattern, URLResolver, path

from audit.views import OrganisationAuditLogViewSet, ProjectAuditLogViewSet

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "organisations/<int:organisation_pk>/audit-log/",
        OrganisationAuditLogViewSet.as_view({"get": "list"}),
        name="organisation-audit-log",
    ),
    path(
        "projects/<int:project_pk>/audit-log/",
        ProjectAuditLogViewSet.as_view({"get": "list"}),
        name="project-audit-log",
    ),
]
