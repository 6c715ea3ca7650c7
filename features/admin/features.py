"""Admin for features and segments (docs/ADMIN.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from features import services
from features.admin.common import (
    has_projects_holding,
    may_write,
    projects_holding,
    require_key,
    superuser,
)
from features.models import (
    Feature,
    Segment,
)
from features.segment_rules import segment_rules_errors
from impact.admin_preview import ImpactAdmin
from permissions.catalogue import (
    CREATE_FEATURE,
    DELETE_FEATURE,
    MANAGE_SEGMENTS,
)
from tagwarden.admin.base import (
    MemberScopedMixin,
    ServiceModelForm,
    TagwardenAdmin,
    actor_of,
)


class ProjectRowsMixin:
    """Rows of a project, created there by holders of `create_key`: the project choices are
    those projects, and the add page needs one of them."""

    create_key: ClassVar[str]
    organisation_lookup = "project__organisation"

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = projects_holding(request, self.create_key)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return superuser(request) or has_projects_holding(request, self.create_key)


@admin.register(Feature)
class FeatureAdmin(ProjectRowsMixin, MemberScopedMixin, ImpactAdmin):
    """Tag changes go through `feature_update`: protected tags need project admin."""

    create_key = CREATE_FEATURE
    list_display = ["name", "project", "tag_list", "created_at"]
    list_filter = [
        ("project__organisation", admin.RelatedOnlyFieldListFilter),
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["project"]
    search_fields = ["name", "description", "project__name"]
    autocomplete_fields = ["project", "tags"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="tags")
    def tag_list(self, obj: Feature) -> str:
        return ", ".join(t.label for t in obj.tags.all())

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project", "name", "description", "tags"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["project", "name", "description", "tags"]
        return ["project"] if obj else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_write(request, obj, "project", CREATE_FEATURE, lambda f: (f.project,))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_write(request, obj, "project", DELETE_FEATURE, lambda f: (f.project, f))

    @staticmethod
    def _service_fields(form: Any) -> dict[str, Any]:
        """What the form writes, as `feature_create` and `feature_update` take it."""
        data = form.cleaned_data
        return {
            "name": data["name"],
            "description": data.get("description") or "",
            "tags": list(data.get("tags") or []),
        }

    def service_create(self, request: HttpRequest, form: Any) -> Feature:
        project = form.cleaned_data["project"]
        require_key(request, CREATE_FEATURE, project, what="this project")
        return services.feature_create(
            project=project, **self._service_fields(form), actor=actor_of(request)
        )

    def service_update(self, request: HttpRequest, obj: Feature, form: Any) -> None:
        services.feature_update(feature=obj, **self._service_fields(form), actor=actor_of(request))

    def service_delete(self, request: HttpRequest, obj: Feature) -> None:
        services.feature_delete(feature=obj, actor=actor_of(request))


class SegmentAdminForm(ServiceModelForm):
    """Rules in Flagsmith's format (features/segment_rules.py); each error names its path."""

    class Meta:
        model = Segment
        fields = ["project", "name", "rules"]

    def clean_rules(self) -> Any:
        rules = self.cleaned_data.get("rules")
        errors = segment_rules_errors(rules)
        if errors:
            raise forms.ValidationError(
                [
                    message if path == "rules" else f"{path}: {message}"
                    for path, messages in errors.items()
                    for message in messages
                ]
            )
        return rules


@admin.register(Segment)
class SegmentAdmin(ProjectRowsMixin, MemberScopedMixin, TagwardenAdmin):
    """MANAGE_SEGMENTS on the project to create, edit and delete."""

    form = SegmentAdminForm
    create_key = MANAGE_SEGMENTS
    list_display = ["name", "project"]
    list_filter = [
        ("project__organisation", admin.RelatedOnlyFieldListFilter),
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    autocomplete_fields = ["project"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project", "name", "rules"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project"] if obj else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_write(request, obj, "project", MANAGE_SEGMENTS, lambda s: (s.project,))

    has_delete_permission = has_change_permission

    def service_create(self, request: HttpRequest, form: Any) -> Segment:
        data = form.cleaned_data
        require_key(request, MANAGE_SEGMENTS, data["project"], what="this project")
        return services.segment_create(
            project=data["project"],
            name=data["name"],
            rules=data.get("rules"),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: Segment, form: Any) -> None:
        data = form.cleaned_data
        services.segment_update(
            segment=obj, name=data["name"], rules=data.get("rules"), actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: Segment) -> None:
        services.segment_delete(segment=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# Feature states
# --------------------------------------------------------------------------------------
