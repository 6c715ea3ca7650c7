"""Admin for feature states: edit where UPDATE_FEATURE_STATE holds, else propose a change request (docs/ADMIN.md)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from environments.models import Environment
from features.admin.common import (
    json_field,
    superuser,
)
from features.models import (
    FeatureState,
)
from features.workflow import services as workflow_services
from features.workflow.services import ChangeInput
from permissions import engine
from permissions.admin.views import MATRIX_KEYS, keys_cell
from permissions.catalogue import (
    CREATE_CHANGE_REQUEST,
    UPDATE_FEATURE_STATE,
)
from tagwarden.admin.base import (
    SERVICE_ERRORS,
    MemberScopedMixin,
    ServiceModelForm,
    TagwardenAdmin,
    actor_of,
    flat_messages,
    reaches,
)
from tagwarden.errors import Conflict


def state_write_key(environment: Environment) -> str:
    """The key that lets a member change a default state's `enabled`/`value` in the admin:
    where change requests are on, the form proposes a change request."""
    return CREATE_CHANGE_REQUEST if environment.change_requests_enabled else UPDATE_FEATURE_STATE


class FeatureStateForm(ServiceModelForm):
    """`enabled`, `value` as JSON, and the version the form was opened at (hidden): a form
    opened before someone else's write is refused by the service (stale)."""

    value = json_field()
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta:
        model = FeatureState
        fields = ["enabled", "value", "version"]


class FeatureStateProposalForm(FeatureStateForm):
    """Where change requests are on: the same fields, proposed as a change request."""

    title = forms.CharField(
        max_length=200, help_text="The change request's title (approvers read it)."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    class Meta(FeatureStateForm.Meta):
        fields = ["enabled", "value", "version"]


class TagFilter(admin.SimpleListFilter):
    """The tags of the features shown (one query), by label."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from projects.models import Tag

        features = model_admin.get_queryset(request).values("feature_id")
        tags = (
            Tag.objects.filter(features__in=features)
            .select_related("project")
            .distinct()
            .order_by("project__name", "label", "id")
        )
        return [(str(t.pk), f"{t.project.name}: {t.label}") for t in tags]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(feature__tags=int(value))
        return queryset


def state_keys(request: HttpRequest, state: FeatureState) -> list[str]:
    """The member's tag-supported environment keys on the state's feature (memoised policy,
    prefetched tags: no query per row)."""
    environment = state.environment
    policy = engine.policy_for(request.user, environment.project.organisation_id)
    tags = engine.feature_tags(state.feature)
    return [
        key
        for key in MATRIX_KEYS
        if policy.decide(
            key,
            project_id=environment.project_id,
            environment_id=environment.pk,
            feature_tags=tags,
        )
    ]


@admin.register(FeatureState)
class FeatureStateAdmin(MemberScopedMixin, TagwardenAdmin):
    """The default states of the environments the member may view, each with the member's
    keys on its feature; the change form where UPDATE_FEATURE_STATE (change requests off)
    or CREATE_CHANGE_REQUEST (on) holds on the feature."""

    organisation_lookup = "environment__project__organisation"
    scope_level = "environment"
    scope_lookup = "environment"
    list_filter = [("environment", admin.RelatedOnlyFieldListFilter), TagFilter, "enabled"]
    list_select_related = ["feature", "environment__project"]
    search_fields = ["feature__name"]
    ordering = ["feature__name", "environment__name", "id"]
    actions = ["enable_selected", "disable_selected"]  # type: ignore[assignment]
    readonly_fields = ["feature", "environment", "feature_tags", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(segment_override__isnull=True)
            .select_related("feature", "environment__project")
            .prefetch_related("feature__tags")
        )

    def get_list_display(self, request: HttpRequest) -> Any:
        def your_keys(obj: FeatureState) -> Any:
            return keys_cell(state_keys(request, obj))

        your_keys.short_description = format_html(  # type: ignore[attr-defined]
            '<span title="{}">your keys</span>', ", ".join(MATRIX_KEYS)
        )
        return ["feature", "environment", "enabled", "value_json", your_keys, "version"]

    @admin.display(description="value")
    def value_json(self, obj: FeatureState) -> str:
        return json.dumps(obj.value)

    @admin.display(description="tags")
    def feature_tags(self, obj: FeatureState) -> str:
        return ", ".join(t.label for t in obj.feature.tags.all()) or "—"

    # -- permissions -------------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # default states come with their feature and environment

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if superuser(request):
            return True
        if obj is None:
            return reaches(request, "environment")
        return engine.allowed(
            request.user, state_write_key(obj.environment), obj.environment, obj.feature
        )

    # -- the form ----------------------------------------------------------------------------
    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is not None and obj.environment.change_requests_enabled:
            kwargs["form"] = FeatureStateProposalForm
        else:
            kwargs["form"] = FeatureStateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown = ["feature", "environment", "feature_tags", "enabled", "value", "version"]
        if obj is not None and not self.has_change_permission(request, obj):
            return [*shown[:-1], "updated_at"]
        if obj is not None and obj.environment.change_requests_enabled:
            return ["title", "description", *shown]
        return shown

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return [*self.readonly_fields, "enabled", "value", "version"]
        return self.readonly_fields

    def change_context(self, request: HttpRequest, obj: FeatureState) -> dict[str, Any]:
        extra: dict[str, Any] = {"your_keys": keys_cell(state_keys(request, obj))}
        if obj.environment.change_requests_enabled:
            extra["subtitle"] = (
                "Change requests are on in this environment: saving proposes a change "
                "request, committed once approved."
            )
        return extra

    def service_update(self, request: HttpRequest, obj: FeatureState, form: Any) -> None:
        data = form.cleaned_data
        if obj.environment.change_requests_enabled:
            change_request = workflow_services.change_request_create(
                environment=obj.environment,
                title=data["title"],
                description=data.get("description") or "",
                changes=[
                    ChangeInput(
                        feature=obj.feature_id, enabled=data["enabled"], value=data["value"]
                    )
                ],
                actor=actor_of(request),
            )
            recorded = change_request.changes.get().recorded_version
            if recorded != data["version"]:
                # Proposed on what the member saw: a form opened before someone else's write
                # is refused (the whole save, change request included, rolls back).
                raise Conflict(
                    f"The state changed since you opened this form (version {recorded}, the "
                    f"form was opened at {data['version']}). Reload the page and try again.",
                    code="stale",
                )
            request._tagwarden_proposed = change_request  # type: ignore[attr-defined]
            return
        workflow_services.feature_state_update(
            state=obj,
            enabled=data["enabled"],
            value=data["value"],
            version=data["version"],
            actor=actor_of(request),
        )

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        proposed = getattr(request, "_tagwarden_proposed", None)
        if proposed is None:
            return super().response_change(request, obj)
        self.message_user(
            request,
            f"Change request “{proposed.title}” proposed: it is committed once approved.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:features_changerequest_change", args=[proposed.pk])
        )

    # -- bulk actions ------------------------------------------------------------------------
    def _bulk(self, request: HttpRequest, queryset: QuerySet[Any], enabled: bool) -> None:
        """Row by row, each through the service in its own transaction; the refused rows
        are named with the reason."""
        done: list[str] = []
        refused: list[str] = []
        for state in queryset.order_by("feature__name", "id"):
            label = f"{state.feature.name} ({state.environment.name})"
            if not superuser(request) and not engine.allowed(
                request.user, UPDATE_FEATURE_STATE, state.environment, state.feature
            ):
                refused.append(f"{label}: you need {UPDATE_FEATURE_STATE} on this feature")
                continue
            try:
                workflow_services.feature_state_update(
                    state=state, enabled=enabled, actor=actor_of(request)
                )
            except SERVICE_ERRORS as exc:
                refused.append(f"{label}: {' '.join(flat_messages(exc))}")
                continue
            done.append(label)
        verb = "Enabled" if enabled else "Disabled"
        if done:
            self.message_user(request, f"{verb} {len(done)}: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"Refused {len(refused)}: {'; '.join(refused)}.", messages.ERROR
            )

    @admin.action(description="Enable the selected states", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._bulk(request, queryset, True)

    @admin.action(description="Disable the selected states", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._bulk(request, queryset, False)


# --------------------------------------------------------------------------------------
# Segment overrides
# --------------------------------------------------------------------------------------
