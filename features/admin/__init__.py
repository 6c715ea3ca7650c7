"""Admin for features, segments, feature states, segment overrides and change requests: the
pages members work in (docs/ADMIN.md).

Every page shows what the engine lets the signed-in member view (`MemberScopedMixin`: the
engine's SQL filters), and every write goes through the same services as the API
(`features.services`, `features.workflow.services`) with the member as the actor. Which object
a member may change is the engine's decision, asked per object with the feature's own tags:

- features: CREATE_FEATURE on the project to create and edit (protected tags: the service
  asks for project admin), DELETE_FEATURE on the feature to delete;
- feature states: UPDATE_FEATURE_STATE on the feature, or, where change requests are on,
  CREATE_CHANGE_REQUEST (the form then proposes a change request);
- segment overrides: MANAGE_SEGMENT_OVERRIDES on the feature;
- change requests: the rules of docs/ADMIN.md "Change requests", checked by the
  services in their order; approve and commit are POST buttons.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from environments.models import Environment
from features import services
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    ChangeRequestStatus,
    Feature,
    FeatureState,
    Segment,
    SegmentOverride,
)
from features.segment_rules import segment_rules_errors
from features.workflow import services as workflow_services
from features.workflow.services import ChangeInput
from impact.admin_preview import ImpactAdmin
from permissions import engine
from permissions.admin.views import MATRIX_KEYS, keys_cell
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_FEATURE,
    DELETE_FEATURE,
    MANAGE_SEGMENT_OVERRIDES,
    MANAGE_SEGMENTS,
    UPDATE_FEATURE_STATE,
)
from projects.models import Project
from tagwarden.admin.base import (
    SERVICE_ERRORS,
    MemberScopedMixin,
    ServiceModelForm,
    TagwardenAdmin,
    _viewable,
    actor_of,
    flat_messages,
    reaches,
)
from tagwarden.errors import Conflict, DomainPermissionDenied

JSON_HELP = 'JSON: true, 42, "text", {"a": 1}, or null for no value.'
JSON_ERROR = 'value: not valid JSON. Write JSON, e.g. true, 42, "text", {"a": 1} or null.'


def json_field(**kwargs: Any) -> forms.JSONField:
    return forms.JSONField(
        required=False,
        help_text=JSON_HELP,
        error_messages={"invalid": JSON_ERROR},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        **kwargs,
    )


def _superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


def _refuse(key: str, what: str) -> DomainPermissionDenied:
    return DomainPermissionDenied(f"You need {key} on {what}.", code="permission_denied")


# --------------------------------------------------------------------------------------
# Features and segments
# --------------------------------------------------------------------------------------


def _projects_holding(request: HttpRequest, key: str) -> QuerySet[Project]:
    """The viewable projects on which the engine grants the project key `key` (untagged:
    CREATE_FEATURE, MANAGE_SEGMENTS do not support tags). One query for the projects, the
    decisions from the memoised policies."""
    if _superuser(request):
        return Project.objects.all()
    cache: dict[str, list[int]] = request.__dict__.setdefault("_tagwarden_projects_holding", {})
    if key not in cache:
        viewable = _viewable(request, "project")
        cache[key] = [p.pk for p in viewable if engine.allowed(request.user, key, p)]
    return Project.objects.filter(pk__in=cache[key])


def _has_projects_holding(request: HttpRequest, key: str) -> bool:
    if not reaches(request, "project"):
        return False
    _projects_holding(request, key)
    return bool(request.__dict__["_tagwarden_projects_holding"][key])


@admin.register(Feature)
class FeatureAdmin(MemberScopedMixin, ImpactAdmin):
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
        if obj is not None and not self.has_change_permission(request, obj):
            return ["project", "name", "description", "tags"]
        return ["project"] if obj else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = _projects_holding(request, CREATE_FEATURE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return _superuser(request) or (_has_projects_holding(request, CREATE_FEATURE))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _superuser(request):
            return True
        if obj is None:
            return reaches(request, "project")
        return engine.allowed(request.user, CREATE_FEATURE, obj.project)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _superuser(request):
            return True
        if obj is None:
            return reaches(request, "project")
        return engine.allowed(request.user, DELETE_FEATURE, obj.project, obj)

    def service_create(self, request: HttpRequest, form: Any) -> Feature:
        data = form.cleaned_data
        if not _superuser(request) and not engine.allowed(
            request.user, CREATE_FEATURE, data["project"]
        ):
            raise _refuse(CREATE_FEATURE, "this project")
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
class SegmentAdmin(MemberScopedMixin, TagwardenAdmin):
    """MANAGE_SEGMENTS on the project to create, edit and delete."""

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

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = _projects_holding(request, MANAGE_SEGMENTS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return _superuser(request) or _has_projects_holding(request, MANAGE_SEGMENTS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _superuser(request):
            return True
        if obj is None:
            return reaches(request, "project")
        return engine.allowed(request.user, MANAGE_SEGMENTS, obj.project)

    has_delete_permission = has_change_permission

    def service_create(self, request: HttpRequest, form: Any) -> Segment:
        data = form.cleaned_data
        if not _superuser(request) and not engine.allowed(
            request.user, MANAGE_SEGMENTS, data["project"]
        ):
            raise _refuse(MANAGE_SEGMENTS, "this project")
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


def _state_keys(request: HttpRequest, state: FeatureState) -> list[str]:
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
            return keys_cell(_state_keys(request, obj))

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
        if _superuser(request):
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

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if obj is not None:
            keys = _state_keys(request, obj)
            extra["your_keys"] = keys_cell(keys)
            if obj.environment.change_requests_enabled:
                extra["subtitle"] = (
                    "Change requests are on in this environment: saving proposes a change "
                    "request, committed once approved."
                )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

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
            if not _superuser(request) and not engine.allowed(
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
        if _superuser(request):
            return True
        if obj is None:
            return reaches(request, "environment")
        return engine.allowed(request.user, MANAGE_SEGMENT_OVERRIDES, obj.environment, obj.feature)

    has_delete_permission = has_change_permission

    def service_create(self, request: HttpRequest, form: Any) -> SegmentOverride:
        data = form.cleaned_data
        environment, feature = data["environment"], data["feature"]
        if not _superuser(request) and not engine.allowed(
            request.user, MANAGE_SEGMENT_OVERRIDES, environment, feature
        ):
            raise _refuse(MANAGE_SEGMENT_OVERRIDES, f"the feature {feature.name!r}")
        return workflow_services.segment_override_create(
            environment=environment,
            feature=feature,
            segment_id=data["segment"].pk,
            priority=data.get("priority") or 0,
            enabled=bool(data.get("enabled")),
            value=data.get("value"),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: SegmentOverride, form: Any) -> None:
        data = form.cleaned_data
        workflow_services.segment_override_update(
            override=obj,
            priority=data.get("priority") or 0,
            enabled=bool(data.get("enabled")),
            value=data.get("value"),
            actor=actor_of(request),
        )

    def service_delete(self, request: HttpRequest, obj: SegmentOverride) -> None:
        workflow_services.segment_override_delete(override=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------


class ChangeRowForm(ServiceModelForm):
    value = json_field()

    class Meta:
        model = ChangeRequestChange
        fields = ["feature", "segment_override", "enabled", "value"]


class ChangeInline(admin.TabularInline):
    """The changes of a change request: rows written with the request by its service."""

    model = ChangeRequestChange
    form = ChangeRowForm
    extra = 1
    fields = ["feature", "segment_override", "enabled", "value"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("feature", "segment_override")

    def _parent(self) -> Any:
        return self.admin_site._registry[ChangeRequest]

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_view_permission(request, obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "feature":
            kwargs["queryset"] = self.admin_site._registry[Feature].get_queryset(request)
        if db_field.name == "segment_override":
            kwargs["queryset"] = self.admin_site._registry[SegmentOverride].get_queryset(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def approval_summary(change_request: ChangeRequest) -> dict[str, Any]:
    """Each approval with whether it still counts (its principal is a member holding
    APPROVE_CHANGE_REQUEST on every feature of the request, and not its author), the
    threshold and how many more are needed. The users' policies are loaded together by the
    engine (`policies_for_members`): a constant number of queries."""
    environment = change_request.environment
    features = list(
        Feature.objects.filter(
            pk__in=ChangeRequestChange.objects.filter(change_request=change_request).values(
                "feature_id"
            )
        ).prefetch_related("tags")
    )
    approvals = list(
        ChangeRequestApproval.objects.filter(change_request=change_request).select_related(
            "user", "api_key"
        )
    )
    user_ids = [a.user_id for a in approvals if a.user_id is not None]
    policies = engine.policies_for_members(environment.project.organisation_id, user_ids)
    rows = []
    for approval in approvals:
        if approval.user_id is not None:
            policy = policies.get(approval.user_id)
            holds = policy is not None and all(
                policy.decide(
                    APPROVE_CHANGE_REQUEST,
                    project_id=environment.project_id,
                    environment_id=environment.pk,
                    feature_tags=engine.feature_tags(f),
                )
                for f in features
            )
            valid = holds and approval.user_id != change_request.author_user_id
            who = approval.user.get_username() if approval.user else "?"
        else:
            key = approval.api_key
            valid = key is not None and all(
                engine.allowed(key, APPROVE_CHANGE_REQUEST, environment, f) for f in features
            )
            who = f"API key {key.name}" if key else "?"
        rows.append({"who": who, "approved_at": approval.approved_at, "valid": valid})
    threshold = environment.minimum_change_request_approvals or 0
    valid_count = sum(1 for r in rows if r["valid"])
    return {
        "approvals": rows,
        "valid": valid_count,
        "threshold": threshold,
        "needed": max(0, threshold - valid_count),
        "change_requests_on": environment.change_requests_enabled,
    }


@admin.register(ChangeRequest)
class ChangeRequestAdmin(MemberScopedMixin, TagwardenAdmin):
    """Change requests of the environments the member may view. Created by whoever holds
    CREATE_CHANGE_REQUEST on every feature it touches; edited by their author (approvals
    reset); deleted by the author or an environment admin; approved and committed with the
    buttons of the change page (POST `<id>/approve/`, `<id>/commit/`)."""

    organisation_lookup = "environment__project__organisation"
    scope_level = "environment"
    scope_lookup = "environment"
    change_form_template = "admin/features/changerequest/change_form.html"
    list_display = ["title", "environment", "author_user", "status", "created_at", "committed_at"]
    list_filter = ["status", ("environment", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["environment__project", "author_user"]
    search_fields = ["title", "description", "author_user__username"]
    inlines = [ChangeInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("environment__project", "author_user")

    def _is_author(self, request: HttpRequest, obj: ChangeRequest) -> bool:
        return obj.author_user_id is not None and obj.author_user_id == request.user.pk

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["environment", "title", "description"]
        if self.has_change_permission(request, obj):
            return ["environment", "author_user", "status", "title", "description"]
        return [
            "environment",
            "author_user",
            "status",
            "title",
            "description",
            "created_at",
            "committed_at",
            "committed_by_user",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return ["environment", "author_user", "status", "created_at", "committed_at"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return reaches(request, "environment")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return reaches(request, "environment")
        # Only the author edits, while open (the service checks it again).
        return obj.status == ChangeRequestStatus.OPEN and self._is_author(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return reaches(request, "environment")
        return obj.status == ChangeRequestStatus.OPEN and (
            self._is_author(request, obj) or engine.is_admin(request.user, obj.environment)
        )

    # -- writes ------------------------------------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The change request and its rows are one service call (`save_related`).
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        changes: list[ChangeInput] = []
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            if formset.model is not ChangeRequestChange:
                continue
            for row in formset.forms:
                data = getattr(row, "cleaned_data", None) or {}
                if not data or data.get("DELETE") or data.get("feature") is None:
                    continue
                override = data.get("segment_override")
                changes.append(
                    ChangeInput(
                        feature=data["feature"].pk,
                        enabled=bool(data.get("enabled")),
                        value=data.get("value"),
                        segment_override=override.pk if override else None,
                    )
                )
        if not changes:
            raise ValidationError({"changes": ["A change request needs at least one change."]})
        data = form.cleaned_data
        obj = form.instance
        if change:
            before = ChangeRequestApproval.objects.filter(change_request=obj).count()
            workflow_services.change_request_update(
                change_request=obj,
                title=data["title"],
                description=data.get("description") or "",
                changes=changes,
                actor=actor_of(request),
            )
            if before and not ChangeRequestApproval.objects.filter(change_request=obj).exists():
                self.message_user(
                    request,
                    f"The change request was edited: its {before} approval(s) were reset.",
                    messages.WARNING,
                )
            return
        created = workflow_services.change_request_create(
            environment=data["environment"],
            title=data["title"],
            description=data.get("description") or "",
            changes=changes,
            actor=actor_of(request),
        )
        state = obj._state
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state = state
        obj._state.adding = False
        obj._state.db = created._state.db

    def service_delete(self, request: HttpRequest, obj: ChangeRequest) -> None:
        workflow_services.change_request_delete(change_request=obj, actor=actor_of(request))

    # -- the change page, approve and commit -------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        return [
            path(
                "<path:object_id>/approve/",
                site.admin_view(require_POST(self.approve_view)),
                name="features_changerequest_approve",
            ),
            path(
                "<path:object_id>/commit/",
                site.admin_view(require_POST(self.commit_view)),
                name="features_changerequest_commit",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if obj is not None:
            site = self.admin_site.name
            extra = {
                "summary": approval_summary(obj),
                "is_open": obj.status == ChangeRequestStatus.OPEN,
                "is_author": self._is_author(request, obj),
                "approve_url": reverse(f"{site}:features_changerequest_approve", args=[obj.pk]),
                "commit_url": reverse(f"{site}:features_changerequest_commit", args=[obj.pk]),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def _act(
        self,
        request: HttpRequest,
        object_id: str,
        action: Callable[..., ChangeRequest],
        done: str,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No change request with this id that you may view.")
        try:
            with transaction.atomic():
                action(change_request=obj, actor=actor_of(request))
        except SERVICE_ERRORS as exc:
            code = getattr(exc, "code", None)
            prefix = f"Refused ({code}): " if isinstance(code, str) else "Refused: "
            for msg in flat_messages(exc):
                self.message_user(request, prefix + msg, messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:features_changerequest_change", args=[obj.pk])
        )

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._act(
            request, object_id, workflow_services.change_request_approve, "You approved it."
        )

    def commit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._act(
            request,
            object_id,
            workflow_services.change_request_commit,
            "Committed: every change was applied.",
        )
