"""Admin for environments: writes through `environments.services`; each environment links to
its permission matrix (`permissions.admin.views`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from environments import services
from environments.models import Environment
from permissions.admin import views as admin_views
from projects.admin import require_membership
from tagwarden.admin.base import MemberScopedMixin, TagwardenAdmin, actor_of


@admin.register(Environment)
class EnvironmentAdmin(MemberScopedMixin, TagwardenAdmin):
    """Members see the environments they may view; organisation admins change them and
    open their permission matrix (everyone's rights: not for members)."""

    scope_level = "environment"
    scope_lookup = "pk"
    organisation_lookup = "project__organisation"
    change_form_template = "admin/permissions/environment_change_form.html"
    list_display = [
        "name",
        "project",
        "organisation",
        "api_key",
        "minimum_change_request_approvals",
        "matrix_link",
    ]
    list_filter = [
        ("project__organisation", admin.RelatedOnlyFieldListFilter),
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["project__organisation"]
    search_fields = ["name", "api_key", "project__name"]
    autocomplete_fields = ["project"]

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(super().get_list_display(request))
        if not self.in_scope(request):
            shown.remove("matrix_link")
        return shown

    @admin.display(ordering="project__organisation__name")
    def organisation(self, obj: Environment) -> Any:
        return obj.project.organisation

    @admin.display(description="permission matrix")
    def matrix_link(self, obj: Environment) -> str:
        return format_html('<a href="{}">matrix</a>', self.matrix_url(obj))

    def matrix_url(self, obj: Environment) -> str:
        return reverse(f"{self.admin_site.name}:environments_environment_matrix", args=[obj.pk])

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["project", "name", "minimum_change_request_approvals"]
        return ["project", "name", "api_key", "minimum_change_request_approvals", "matrix_link"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project", "api_key", "matrix_link"] if obj else []

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/permission-matrix/",
                wrap(self.matrix_view),
                name="environments_environment_matrix",
            ),
            path(
                "<path:object_id>/permission-matrix/explain/",
                wrap(self.matrix_explain_view),
                name="environments_environment_matrix_explain",
            ),
            *super().get_urls(),
        ]

    def matrix_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.permission_matrix_view(request, model_admin=self, object_id=object_id)

    def matrix_explain_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.matrix_cell_explain_redirect(
            request, model_admin=self, object_id=object_id
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        site = self.admin_site.name
        extra_context = {
            **(extra_context or {}),
            "matrix_url": reverse(f"{site}:environments_environment_matrix", args=[object_id])
            if self.in_scope(request)
            else None,
            "states_url": reverse(f"{site}:features_featurestate_changelist")
            + f"?environment__id__exact={object_id}",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _service_fields(form: Any) -> dict[str, Any]:
        """What the form writes, as `environment_create` and `environment_update` take it."""
        data = form.cleaned_data
        return {
            "name": data["name"],
            "minimum_change_request_approvals": data.get("minimum_change_request_approvals"),
        }

    def service_create(self, request: HttpRequest, form: Any) -> Environment:
        project = form.cleaned_data["project"]
        require_membership(request, project.organisation)
        return services.environment_create(
            project=project, **self._service_fields(form), actor=actor_of(request)
        )

    def service_update(self, request: HttpRequest, obj: Environment, form: Any) -> None:
        services.environment_update(
            environment=obj, **self._service_fields(form), actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: Environment) -> None:
        services.environment_delete(environment=obj, actor=actor_of(request))
