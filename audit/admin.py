"""The audit log in the admin: append-only, so read-only for everyone."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditLogEntry
from tagwarden.admin_utils import ReadOnlyAdmin


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
