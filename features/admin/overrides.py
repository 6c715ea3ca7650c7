"""Admin for segment overrides: MANAGE_SEGMENT_OVERRIDES on the feature (docs/ADMIN.md)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from features.admin.common import (
    json_field,
    may_write,
    require_key,
)
from features.models import (
    SegmentOverride,
)
from features.workflow import services as workflow_services
from permissions.catalogue import (
    MANAGE_SEGMENT_OVERRIDES,
)
from tagwarden.admin.base import (
    MemberScopedMixin,
    ServiceModelForm,
    TagwardenAdmin,
    actor_of,
    reaches,
)


class SegmentOverrideForm(ServiceModelForm):
    enabled = forms.BooleanField(required=False)
    value = json_field()

    class Meta:
        model = SegmentOverride
        fields = ["environment", "feature", "segment", "priority"]


@admin.register(SegmentOverride)
class SegmentOverrideAdmin(MemberScopedMixin, TagwardenAdmin):
    """Create, re-prioritise and delete under MANAGE_SEGMENT_OVERRIDES on the feature;
    `enabled`/`value` changes follow the change-request rule (the service refuses them where
    change requests are on)."""

    form = SegmentOverrideForm
    organisation_lookup = "environment__project__organisation"
    scope_level = "environment"
    scope_lookup = "environment"
    list_display = ["feature", "environment", "segment", "priority", "state_enabled"]
    list_filter = [("environment", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["feature", "environment__project", "segment", "feature_state"]
    search_fields = ["feature__name", "segment__name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("feature", "environment__project", "segment", "feature_state")
        )

    @admin.display(boolean=True, description="enabled")
    def state_enabled(self, obj: SegmentOverride) -> bool:
        return obj.feature_state.enabled

    @admin.display(description="value")
    def state_value(self, obj: SegmentOverride) -> str:
        return json.dumps(obj.feature_state.value)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["environment", "feature", "segment", "priority", "state_enabled", "state_value"]
        return ["environment", "feature", "segment", "priority", "enabled", "value"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            return ["environment", "feature", "segment", "priority", "state_enabled", "state_value"]
        return ["environment", "feature", "segment"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            state = obj.feature_state
            form.base_fields["enabled"].initial = state.enabled
            form.base_fields["value"].initial = state.value
        return form

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return reaches(request, "environment")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        key = MANAGE_SEGMENT_OVERRIDES
        return may_write(request, obj, "environment", key, lambda o: (o.environment, o.feature))

    has_delete_permission = has_change_permission

    @staticmethod
    def _service_fields(form: Any) -> dict[str, Any]:
        """What the form writes, as `segment_override_create` and `…_update` take it."""
        data = form.cleaned_data
        return {
            "priority": data.get("priority") or 0,
            "enabled": bool(data.get("enabled")),
            "value": data.get("value"),
        }

    def service_create(self, request: HttpRequest, form: Any) -> SegmentOverride:
        data = form.cleaned_data
        environment, feature = data["environment"], data["feature"]
        require_key(
            request,
            MANAGE_SEGMENT_OVERRIDES,
            environment,
            feature,
            what=f"the feature {feature.name!r}",
        )
        return workflow_services.segment_override_create(
            environment=environment,
            feature=feature,
            segment_id=data["segment"].pk,
            **self._service_fields(form),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: SegmentOverride, form: Any) -> None:
        workflow_services.segment_override_update(
            override=obj, **self._service_fields(form), actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: SegmentOverride) -> None:
        workflow_services.segment_override_delete(override=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------
