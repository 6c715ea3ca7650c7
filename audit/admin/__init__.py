"""The audit log in the admin: append-only, so read-only for everyone."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditLogEntry
from impact.admin_preview import impact_table_html
from tagwarden.admin.base import ReadOnlyAdmin


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    """No add, change or delete through the admin, superusers included."""

    list_display = [
        "created_at",
        "organisation",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "project_id",
        "environment_id",
        "impact_counts",
    ]
    list_filter = ["action", "object_type", ("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organisation"]
    search_fields = ["actor_name", "object_type", "object_id"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "organisation",
        "project_id",
        "environment_id",
        "actor_name",
        "actor_user",
        "actor_api_key",
        "action",
        "object_type",
        "object_id",
        "before_json",
        "after_json",
        "impact_display",
    )
    fields = readonly_fields

    @staticmethod
    def _json(value: Any) -> str:
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))

    @admin.display(description="before")
    def before_json(self, obj: AuditLogEntry) -> str:
        return self._json(obj.before)

    @admin.display(description="after")
    def after_json(self, obj: AuditLogEntry) -> str:
        return self._json(obj.after)

    @admin.display(description="impact")
    def impact_counts(self, obj: AuditLogEntry) -> str:
        """ "+gained / −lost" keys (blank: the change could not move permissions, or was made
        before impacts were recorded)."""
        if obj.impact is None:
            return ""
        return f"+{obj.impact.get('gained_total', 0)} / −{obj.impact.get('lost_total', 0)}"

    @admin.display(description="impact")
    def impact_display(self, obj: AuditLogEntry) -> str:
        """Who gained and who lost which keys through this change (`impact.previews`)."""
        if obj.impact is None:
            return "—"
        return format_html(
            "{}<details><summary>JSON</summary>{}</details>",
            impact_table_html(obj.impact),
            self._json(obj.impact),
        )
