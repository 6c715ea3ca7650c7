from django.contrib import admin

from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from tagwarden.admin_utils import ReadOnlyAdmin, ReadOnlyInline


@admin.register(Feature)
class FeatureAdmin(ReadOnlyAdmin):
    # Tag changes are permission changes (protected tags): written through the API.
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project"]
    search_fields = ["name", "description", "project__name"]


@admin.register(FeatureState)
class FeatureStateAdmin(ReadOnlyAdmin):
    list_display = [
        "feature",
        "environment",
        "segment_override",
        "enabled",
        "version",
        "updated_at",
    ]
    list_filter = ["enabled", "environment__project"]
    list_select_related = ["feature", "environment", "segment_override"]
    search_fields = ["feature__name", "environment__name"]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_filter = ["project"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    autocomplete_fields = ["project"]


@admin.register(SegmentOverride)
class SegmentOverrideAdmin(ReadOnlyAdmin):
    list_display = ["feature", "environment", "segment", "priority"]
    list_select_related = ["feature", "environment", "segment"]
    search_fields = ["feature__name", "segment__name"]


class ChangeInline(ReadOnlyInline):
    model = ChangeRequestChange
    fields = ["feature", "segment_override", "enabled", "value", "recorded_version"]
    readonly_fields = fields


class ApprovalInline(ReadOnlyInline):
    model = ChangeRequestApproval
    fields = ["user", "api_key", "approved_at"]
    readonly_fields = fields


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyAdmin):
    list_display = ["title", "environment", "author_user", "status", "created_at", "committed_at"]
    list_filter = ["status", "environment__project"]
    list_select_related = ["environment", "author_user"]
    search_fields = ["title", "description", "author_user__username"]
    inlines = [ChangeInline, ApprovalInline]
