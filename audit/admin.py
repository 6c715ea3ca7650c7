from django.contrib import admin

from audit.models import AuditLogEntry
from tagwarden.admin_utils import ReadOnlyAdmin


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    """Append-only: no add, change or delete through the admin."""

    list_display = [
        "created_at",
        "organisation",
        "actor_name",
        "action",
        "object_type",
        "object_id",
    ]
    list_filter = ["action", "object_type", "organisation"]
    list_select_related = ["organisation"]
    search_fields = ["actor_name", "object_type", "object_id"]
    date_hierarchy = "created_at"
