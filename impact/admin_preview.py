"""The admin's "Preview impact" step, and the impact recorded by the admin's real saves
(docs/PERMISSIONS.md, "Seeing a change before making it").

Admins of objects whose writes can move permissions (roles with their inlines, grants,
groups, tags, features, memberships, role assignments, API keys) derive from `ImpactAdmin`:

- Their change forms have a **Preview impact** button beside Save. Pressing it validates the
  form and its inlines as a Save would (errors are shown as usual, nothing saved), then runs
  the very save a Save makes (model and inlines, through the services) inside
  `impact.impact_preview`, which rolls it back, and shows the same form again, with the
  submitted data still in it, above a table of who gains and who loses what. Nothing is
  saved: no object, no audit entry, no admin log entry, no success message.
- A real Save (or a delete) runs inside `impact.impact_apply`: its audit entries carry the
  summary of its impact.

How: `save_model` leaves the object to `save_related`, which runs both saves as one change
with its impact (Django calls them back to back, once the form and every inline are valid).
For a preview, `save_related` raises `ImpactPreviewed` after the rollback; it leaves
Django's `_changeform_view` before the admin log and the success message, and the form is
then processed once more in "render only" mode: validated again, never saved, rendered with
the impact in its context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from environments.models import Environment
from impact.changes import Impact
from impact.previews import impact_apply, impact_preview
from permissions import engine
from projects.models import Project
from tagwarden.admin.base import TagwardenAdmin, organisation_id_of

#: The name of the "Preview impact" submit button.
PREVIEW_FIELD = "_preview_impact"
#: How many changes of each direction a page shows (the totals are always shown).
DISPLAY_LIMIT = 200

_PREVIEW_ATTR = "_tagwarden_impact_preview"  # this request previews: never save
_RENDER_ATTR = "_tagwarden_impact_render"  # validate and render the submitted form only
_PENDING_ATTR = "_tagwarden_impact_pending"  # the object `save_model` left to `save_related`


class ImpactPreviewed(Exception):
    """Raised by a previewing save once its change was rolled back."""

    def __init__(self, impact: Impact) -> None:
        super().__init__("impact previewed")
        self.impact = impact


# --------------------------------------------------------------------------------------
# The impact as a table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactRow:
    who: str
    kind: str  # "user" or "API key"
    permission: str
    project: str
    environment: str
    features: int | None


def impact_table(data: dict[str, Any] | None, *, limit: int = DISPLAY_LIMIT) -> dict[str, Any]:
    """What the impact table shows, from an IMPACT object (`Impact.as_dict()`) or an audit
    entry's summary (`Impact.summary()`): the rows of each direction (at most `limit`), the
    totals, and project and environment names (2 queries; ids of deleted ones stay ids)."""
    data = data or {}
    gained, lost = list(data.get("gained") or []), list(data.get("lost") or [])
    gained_total = int(data.get("gained_total", len(gained)))
    lost_total = int(data.get("lost_total", len(lost)))
    gained, lost = gained[:limit], lost[:limit]
    changes = [*gained, *lost]
    project_ids = {c["project"] for c in changes if c.get("project") is not None}
    environment_ids = {c["environment"] for c in changes if c.get("environment") is not None}
    projects = (
        dict(Project.objects.filter(pk__in=project_ids).values_list("pk", "name"))
        if project_ids
        else {}
    )
    environments = (
        dict(Environment.objects.filter(pk__in=environment_ids).values_list("pk", "name"))
        if environment_ids
        else {}
    )

    def row(change: dict[str, Any]) -> ImpactRow:
        project, environment = change.get("project"), change.get("environment")
        is_key = change.get("api_key") is not None
        return ImpactRow(
            who=(change.get("name") if is_key else change.get("email")) or "",
            kind="API key" if is_key else "user",
            permission=change.get("permission", ""),
            project="" if project is None else projects.get(project, f"#{project}"),
            environment=""
            if environment is None
            else environments.get(environment, f"#{environment}"),
            features=change.get("features"),
        )

    return {
        "gained": [row(c) for c in gained],
        "lost": [row(c) for c in lost],
        "gained_total": gained_total,
        "lost_total": lost_total,
        "gained_more": gained_total - len(gained),
        "lost_more": lost_total - len(lost),
        "nothing": not (gained_total or lost_total),
    }


def impact_table_html(data: dict[str, Any] | None) -> SafeString:
    return SafeString(render_to_string("admin/impact/table.html", {"impact": impact_table(data)}))


# --------------------------------------------------------------------------------------
# The admin
# --------------------------------------------------------------------------------------


def _render_only(form_class: type[Any]) -> type[Any]:
    """The admin's form, validated as usual but never valid: Django's change view then shows
    it again, bound to the submitted data, and saves nothing."""

    class RenderOnly(form_class):
        def is_valid(self) -> bool:
            super().is_valid()
            return False

    RenderOnly.__name__ = form_class.__name__
    return RenderOnly


class ImpactAdmin(TagwardenAdmin):
    """A `TagwardenAdmin` whose saves preview (the "Preview impact" button) and record their
    impact on permissions."""

    change_form_template = "admin/impact/change_form.html"

    def impact_organisation_id(self, obj: Any, form: Any, change: bool) -> int | None:
        """The organisation a save changes: the object's, or for a new object the one its
        form names (the first step of `organisation_lookup`, a required field)."""
        if change:
            return organisation_id_of(obj, self.organisation_lookup)
        first, _, rest = self.organisation_lookup.partition("__")
        value = form.cleaned_data.get(first)
        if value is None:
            return None
        return organisation_id_of(value, rest) if rest else value.pk

    # -- the save: model and related together, with its impact ----------------------------
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saved by `save_related` (called right after, with the inlines): one change.
        setattr(request, _PENDING_ATTR, obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        obj = getattr(request, _PENDING_ATTR, None)
        if obj is None:  # not after our save_model: the related objects only
            super().save_related(request, form, formsets, change)
            return
        delattr(request, _PENDING_ATTR)

        def save() -> None:
            super(ImpactAdmin, self).save_model(request, obj, form, change)
            super(ImpactAdmin, self).save_related(request, form, formsets, change)

        self._run_with_impact(request, self.impact_organisation_id(obj, form, change), save)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        organisation_id = organisation_id_of(obj, self.organisation_lookup)
        self._run_with_impact(
            request, organisation_id, lambda: super(ImpactAdmin, self).delete_model(request, obj)
        )

    def _run_with_impact(
        self, request: HttpRequest, organisation_id: int | None, change: Callable[[], None]
    ) -> None:
        if organisation_id is None:
            raise ValidationError("Choose the organisation (or project) first.")
        if getattr(request, _PREVIEW_ATTR, False):
            raise ImpactPreviewed(impact_preview(organisation_id=organisation_id, change=change))
        _, impact = impact_apply(organisation_id=organisation_id, change=change)
        if impact:
            self.message_user(
                request,
                f"Impact: {len(impact.gained)} gained, {len(impact.lost)} lost "
                "(recorded in the audit log).",
                messages.INFO,
            )

    # -- the preview -------------------------------------------------------------------------
    def _changeform_view(
        self, request: HttpRequest, object_id: Any, form_url: str, extra_context: Any
    ) -> HttpResponse:
        if request.method != "POST" or PREVIEW_FIELD not in request.POST:
            return super()._changeform_view(request, object_id, form_url, extra_context)
        setattr(request, _PREVIEW_ATTR, True)
        try:
            # Permissions, validation and service errors exactly as for a Save: an invalid
            # form, a service error or a refusal comes back from here, nothing saved.
            return super()._changeform_view(request, object_id, form_url, extra_context)
        except ImpactPreviewed as previewed:
            impact = previewed.impact
        # Policies the engine memoised on the user inside the rolled-back change are stale.
        engine.forget(request.user)
        setattr(request, _RENDER_ATTR, True)
        context = {**(extra_context or {}), "impact": impact_table(impact.as_dict())}
        return super()._changeform_view(request, object_id, form_url, context)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if getattr(request, _RENDER_ATTR, False):
            form = _render_only(form)
        return form
