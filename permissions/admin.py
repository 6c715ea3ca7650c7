from django.contrib import admin

from permissions.models import Grant, GrantEntry
from tagwarden.admin_utils import ReadOnlyAdmin, ReadOnlyInline


class GrantEntryInline(ReadOnlyInline):
    model = GrantEntry
    fields = ["key", "tags"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    """Read-only until the admin writes through permissions.services (validation + audit)."""

    list_display = [
        "id",
        "organisation",
        "project",
        "environment",
        "user",
        "group",
        "role",
        "admin",
    ]
    list_filter = ["admin", "organisation"]
    list_select_related = ["organisation", "project", "environment", "user", "group", "role"]
    search_fields = ["user__username", "group__name", "role__name", "project__name"]
    inlines = [GrantEntryInline]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("entries__tags")
