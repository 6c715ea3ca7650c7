"""Admin for change requests: approve and commit buttons, approvals still valid (docs/ADMIN.md, Change requests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from features.admin.common import (
    json_field,
)
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    ChangeRequestStatus,
    Feature,
    SegmentOverride,
)
from features.workflow import services as workflow_services
from features.workflow.services import ChangeInput
from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
)
from tagwarden.admin import base


class ChangeRowForm(base.ServiceModelForm):
    value = json_field()

    class Meta:
        model = ChangeRequestChange
        fields = ["feature", "segment_override", "enabled", "value"]


class ChangeInline(base.ParentScopedInline, admin.TabularInline):
    """The changes of a change request: rows written with the request by its service."""

    model = ChangeRequestChange
    form = ChangeRowForm
    extra = 1
    fields = ["feature", "segment_override", "enabled", "value"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("feature", "segment_override")

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0

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
class ChangeRequestAdmin(base.MemberScopedMixin, base.TagwardenAdmin):
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
        return base.reaches(request, "environment")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return base.reaches(request, "environment")
        # Only the author edits, while open (the service checks it again).
        return obj.status == ChangeRequestStatus.OPEN and self._is_author(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return base.reaches(request, "environment")
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
                actor=base.actor_of(request),
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
            actor=base.actor_of(request),
        )
        state = obj._state
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state = state
        obj._state.adding = False
        obj._state.db = created._state.db

    def service_delete(self, request: HttpRequest, obj: ChangeRequest) -> None:
        workflow_services.change_request_delete(change_request=obj, actor=base.actor_of(request))

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

    def change_context(self, request: HttpRequest, obj: ChangeRequest) -> dict[str, Any]:
        site = self.admin_site.name
        return {
            "summary": approval_summary(obj),
            "is_open": obj.status == ChangeRequestStatus.OPEN,
            "is_author": self._is_author(request, obj),
            "approve_url": reverse(f"{site}:features_changerequest_approve", args=[obj.pk]),
            "commit_url": reverse(f"{site}:features_changerequest_commit", args=[obj.pk]),
        }

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
                action(change_request=obj, actor=base.actor_of(request))
        except base.SERVICE_ERRORS as exc:
            code = getattr(exc, "code", None)
            prefix = f"Refused ({code}): " if isinstance(code, str) else "Refused: "
            for msg in base.flat_messages(exc):
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
