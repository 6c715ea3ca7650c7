"""Admin for features and segments (written through `features.services`) and, read-only,
feature states, segment overrides and change requests: their writes carry versions and the
change-request workflow of DESIGN.md §7, which the API drives."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from features import services
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from features.segment_rules import segment_rules_errors
from permissions.admin_impact import ImpactAdmin
from tagwarden.admin_utils import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ServiceModelForm,
    TagwardenAdmin,
    actor_of,
)


@admin.register(Feature)
class FeatureAdmin(ImpactAdmin):
    """Tag changes go through `feature_update`: protected tags need project admin."""

    organisation_lookup = "project__organisation"
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
        return ["project"] if obj else []

    def service_create(self, request: HttpRequest, form: Any) -> Feature:
        data = form.cleaned_data
        return services.feature_create(
            project=data["project"],
            name=data["name"],
            description=data.get("description") or "",
            tags=list(data.get("tags") or []),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: Feature, form: Any) -> None:
        data = form.cleaned_data
        services.feature_update(
            feature=obj,
            name=data["name"],
            description=data.get("description") or "",
            tags=list(data.get("tags") or []),
            actor=actor_of(request),
        )

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
class SegmentAdmin(TagwardenAdmin):
    form = SegmentAdminForm
    organisation_lookup = "project__organisation"
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

    def service_create(self, request: HttpRequest, form: Any) -> Segment:
        data = form.cleaned_data
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


@admin.register(FeatureState)
class FeatureStateAdmin(ReadOnlyAdmin):
    organisation_lookup = "environment__project__organisation"
    list_display = [
        "feature",
        "environment",
        "segment_override",
        "enabled",
        "version",
        "updated_at",
    ]
    list_filter = ["enabled", ("environment__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["feature", "environment", "segment_override"]
    search_fields = ["feature__name", "environment__name"]


@admin.register(SegmentOverride)
class SegmentOverrideAdmin(ReadOnlyAdmin):
    organisation_lookup = "environment__project__organisation"
    list_display = ["feature", "environment", "segment", "priority"]
    list_filter = [("environment__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["feature", "environment", "segment"]
    search_fields = ["feature__name", "segment__name"]


class ChangeInline(ReadOnlyInline):
    model = ChangeRequestChange
    readonly_fields = (
        "feature",
        "segment_override",
        "enabled",
        "value",
        "recorded_version",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("feature", "segment_override")


class ApprovalInline(ReadOnlyInline):
    model = ChangeRequestApproval
    readonly_fields = (
        "user",
        "api_key",
        "approved_at",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("user", "api_key")


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyAdmin):
    organisation_lookup = "environment__project__organisation"
    list_display = ["title", "environment", "author_user", "status", "created_at", "committed_at"]
    list_filter = ["status", ("environment__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["environment", "author_user"]
    search_fields = ["title", "description", "author_user__username"]
    inlines = [ChangeInline, ApprovalInline]
