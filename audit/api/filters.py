"""Query-string filters of the audit log (docs/API.md): `action`, `object_type`, `actor` (a user
id), `project`, `environment` (ids), `since`, `until` (ISO datetimes). A malformed value is
a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Sequence

import django_filters

from audit.models import AuditAction, AuditLogEntry
from projects.api.filters import IntegerFilter


class AuditLogFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    object_type = django_filters.CharFilter(help_text="The model name in snake_case.")
    actor = IntegerFilter(field_name="actor_user_id", help_text="A user id.")
    project = IntegerFilter(field_name="project_id", help_text="A project id.")
    environment = IntegerFilter(field_name="environment_id", help_text="An environment id.")
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 datetime, inclusive."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lte", help_text="ISO 8601 datetime, inclusive."
    )

    class Meta:
        model = AuditLogEntry
        fields: Sequence[str] = ()
