"""Shared admin behaviour: scoping decided by the engine, and writes through services.

Two rules hold for every model admin of the project (they all derive from `TagwardenAdmin`;
docs/ADMIN.md says who sees what):

- **Scoping.** Superusers see and change everything. Every other member signs in
  (`tagwarden.admin.site`, no `is_staff` needed) and sees what the engine lets them see:
  - configuration (organisations, members, groups, roles, grants, API keys, audit) only in
    the organisations they administer (`user.has_perm("organisations.change_organisation",
    organisation)`, answered by the rules predicate `is_scope_admin`, i.e.
    `engine.is_admin`);
  - the daily work (projects, environments, tags, features, segments, feature states,
    segment overrides, change requests: `MemberScopedMixin`) wherever they may view the
    project or environment (the engine's SQL filters `viewable_projects_q` and
    `viewable_environments_q`), changed only where the engine allows each object.
  Django's model permissions are not consulted: access is the engine's to decide. An object
  the member may not view is a 404, as in the API. Choice fields pointing at other models
  are limited to what the related admin shows the same user.
- **Writes.** Every add, change and delete calls the domain's service function, exactly as
  the API does (same validation, same audit entries, same transaction). A service error
  raised while saving rolls the whole save back (main object and inlines) and shows the
  form again with the error; a service error while deleting is shown as a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.forms import BaseForm
from django.forms.fields import InvalidJSONInput
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from organisations.models import Organisation
from tagwarden.errors import DomainError
from tagwarden.storable import json_too_large, unstorable

SERVICE_ERRORS: tuple[type[Exception], ...] = (ValidationError, DomainError)

_ADMIN_ORGS_ATTR = "_tagwarden_admin_organisation_ids"
_SERVICE_ERRORS_ATTR = "_tagwarden_service_errors"


# --------------------------------------------------------------------------------------
# Scoping
# --------------------------------------------------------------------------------------


def admin_organisation_ids(request: HttpRequest) -> frozenset[int] | None:
    """The organisations the request's user administers; None means "every one"
    (superusers). One query for the memberships plus the engine's decision per organisation
    (memoised on the request)."""
    user: Any = request.user
    if not (user.is_active and user.is_authenticated):
        return frozenset()
    if user.is_superuser:
        return None
    cached = getattr(request, _ADMIN_ORGS_ATTR, None)
    if cached is not None:
        return cached
    organisations = Organisation.objects.filter(memberships__user_id=user.pk)
    ids = frozenset(
        o.pk for o in organisations if user.has_perm("organisations.change_organisation", o)
    )
    setattr(request, _ADMIN_ORGS_ATTR, ids)
    return ids


def organisation_id_of(obj: Any, lookup: str) -> int | None:
    """Follow `lookup` ("project__organisation", "pk") from `obj` to an organisation id."""
    if lookup == "pk":
        return obj.pk
    *path, last = lookup.split("__")
    target = obj
    for part in path:
        target = getattr(target, part, None)
        if target is None:
            return None
    return getattr(target, f"{last}_id", None)


def scoped_queryset(
    site: admin.AdminSite, model: type[models.Model], request: HttpRequest
) -> models.QuerySet[Any] | None:
    """What the registered admin of `model` shows this request's user (None: not scoped)."""
    if admin_organisation_ids(request) is None:
        return None
    model_admin = site._registry.get(model)
    if model_admin is None:
        return None
    return model_admin.get_queryset(request)


def actor_of(request: HttpRequest) -> Any:
    """The service `actor` of an admin request: its (authenticated) user."""
    return request.user


# --------------------------------------------------------------------------------------
# Service errors
# --------------------------------------------------------------------------------------


def error_messages(exc: Exception) -> dict[str, list[str]]:
    """A service error as `{field: [messages]}` (NON_FIELD_ERRORS for the others)."""
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return {field: list(msgs) for field, msgs in exc.message_dict.items()}
        return {NON_FIELD_ERRORS: list(exc.messages)}
    if isinstance(exc, DomainError):
        return {NON_FIELD_ERRORS: [str(exc.detail)]}
    return {NON_FIELD_ERRORS: [str(exc)]}


def flat_messages(exc: Exception, prefix: str = "") -> list[str]:
    """Every message of a service error, each naming its field."""
    out = []
    for field, msgs in error_messages(exc).items():
        for msg in msgs:
            label = "" if field in (NON_FIELD_ERRORS, "non_field_errors") else f"{field}: "
            out.append(f"{prefix}{label}{msg}")
    return out


@contextmanager
def service_context(prefix: str) -> Iterator[None]:
    """Re-raise a service error with `prefix` on every message (which inline row failed)."""
    try:
        yield
    except SERVICE_ERRORS as exc:
        raise ValidationError(flat_messages(exc, prefix)) from exc


def _with_service_errors(form_class: type[BaseForm], errors: dict[str, list[str]]) -> type:
    class WithServiceErrors(form_class):  # type: ignore[valid-type,misc]
        def clean(self) -> Any:
            data = super().clean()
            for field, msgs in errors.items():
                if field in self.fields and field != NON_FIELD_ERRORS:
                    self.add_error(field, msgs)
                else:
                    label = "" if field in (NON_FIELD_ERRORS, "non_field_errors") else f"{field}: "
                    self.add_error(None, [f"{label}{m}" for m in msgs])
            return data

    WithServiceErrors.__name__ = form_class.__name__
    return WithServiceErrors


# --------------------------------------------------------------------------------------
# The base admin
# --------------------------------------------------------------------------------------


class NotFoundFirstMixin:
    """As in the API, "cannot view" comes first: the change and delete pages of an object
    the user may not view (or that does not exist) are a 404, before any 403 about changing
    or deleting it (Django's admin checks the permission first, then redirects to the
    index). docs/ADMIN.md."""

    def _require_visible(self, request: HttpRequest, object_id: str) -> Any:
        from django.contrib.admin.utils import unquote

        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404("No such object that you may view.")
        return obj

    def change_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        """What the change page of `obj` (one the user may view) shows besides the form."""
        return {}

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra = self.change_context(request, self._require_visible(request, object_id))
        return super().change_view(  # type: ignore[misc]
            request, object_id, form_url, {**extra, **(extra_context or {})}
        )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self._require_visible(request, object_id)
        return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]


class ServiceModelForm(forms.ModelForm):
    """A model form validated by its fields and then by the service that writes it.

    Model-level validation (unique constraints, check constraints) is the service's: it runs
    when the admin saves, and its errors come back on this form (see `TagwardenAdmin`), so
    the admin and the API answer with the same messages.
    """

    def _post_clean(self) -> None:
        # Not even `construct_instance`: the services compare the object they are given with
        # the new values (a tag's `is_restricted`, a membership's role), so the instance
        # must stay as read from the database. The values travel in `cleaned_data`.
        pass


class StoredJSONFormField(forms.JSONField):
    """The admin's JSON fields (a segment's `rules`) refuse what the API refuses: values the
    databases cannot store as sent and encodings over 64 KiB (docs/API.md, Conventions)."""

    def prepare_value(self, value: Any) -> Any:
        # The form shown again with the error holds the refused value: escape it (`\ud800`)
        # rather than fail to encode the page.
        if not isinstance(value, InvalidJSONInput) and unstorable(value) is not None:
            return json.dumps(value, cls=self.encoder)
        return super().prepare_value(value)

    def validate(self, value: Any) -> None:
        super().validate(value)
        problem = unstorable(value)
        if problem is not None:
            raise ValidationError(f"Cannot be stored as sent: {problem}.", code="unstorable")
        too_large = json_too_large(value)
        if too_large is not None:
            raise ValidationError(too_large, code="too_large")


class TagwardenAdmin(NotFoundFirstMixin, admin.ModelAdmin):
    """Scoped to the organisations the user administers; writes through services.

    Subclasses set `organisation_lookup` (the path from the model to its organisation) and
    implement `service_create`, `service_update` and `service_delete`, or set `read_only`.
    """

    form = ServiceModelForm
    formfield_overrides = {models.JSONField: {"form_class": StoredJSONFormField}}
    organisation_lookup: ClassVar[str] = "organisation"
    read_only: ClassVar[bool] = False
    # Deletes go one by one through the service (its audit entry, its checks).
    actions = None

    # -- scoping ---------------------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        qs = super().get_queryset(request)
        ids = admin_organisation_ids(request)
        if ids is None:
            return qs
        return qs.filter(**{f"{self.organisation_lookup}__in": sorted(ids)})

    def in_scope(self, request: HttpRequest, obj: Any = None) -> bool:
        ids = admin_organisation_ids(request)
        if ids is None:
            return True
        if obj is None:
            return bool(ids)
        return organisation_id_of(obj, self.organisation_lookup) in ids

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.in_scope(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.in_scope(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not self.read_only and self.in_scope(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.read_only and self.in_scope(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.read_only and self.in_scope(request, obj)

    def _scoped_choices(
        self, db_field: Any, request: HttpRequest, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The choices of a relation field: the related rows the user may see, unless the
        caller chose them."""
        if "queryset" not in kwargs:
            qs = scoped_queryset(self.admin_site, db_field.related_model, request)
            if qs is not None:
                kwargs["queryset"] = qs
        return kwargs

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs = self._scoped_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs = self._scoped_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # -- writes through services -------------------------------------------------------------
    def service_create(self, request: HttpRequest, form: Any) -> models.Model:
        raise NotImplementedError

    def service_update(self, request: HttpRequest, obj: Any, form: Any) -> None:
        raise NotImplementedError

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            self.service_update(request, obj, form)
            obj.refresh_from_db()
            return
        created = self.service_create(request, form)
        # Django's admin goes on with `obj` (log entry, redirect): make it the created row.
        state = obj._state
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state = state
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # No form.save_m2m(): many-to-many fields are part of the service calls.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        saver = getattr(formset, "service_inline", None)
        if saver is not None:
            saver.save_via_services(request, form.instance, formset)
        elif any(f.has_changed() for f in formset.forms) or formset.deleted_forms:
            raise ValidationError("This inline is read-only.")

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.service_delete(request, obj)

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        # Django redirects to the index with "does not exist"; as in the API, an object the
        # user may not view (or that does not exist) is a 404 (docs/ADMIN.md).
        raise Http404(f"No {opts.verbose_name} with id {object_id!r} that you may view.")

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # The service owns the cascade (and describes it in its audit entry): the confirmation
        # page lists what goes, without asking for delete rights on each related model.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        errors = getattr(request, _SERVICE_ERRORS_ATTR, None)
        if errors:
            form = _with_service_errors(form, errors)
        return form

    def _changeform_view(
        self, request: HttpRequest, object_id: Any, form_url: str, extra_context: Any
    ) -> HttpResponse:
        if request.method != "POST":
            return super()._changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
        try:
            with transaction.atomic():
                return super()._changeform_view(  # type: ignore[misc]
                    request, object_id, form_url, extra_context
                )
        except SERVICE_ERRORS as exc:
            # Everything the save did is rolled back; validate again with the service's
            # errors attached to the form, which shows them and saves nothing.
            setattr(request, _SERVICE_ERRORS_ATTR, error_messages(exc))
            return super()._changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        try:
            with transaction.atomic():
                return super().delete_view(request, object_id, extra_context)
        except SERVICE_ERRORS as exc:
            for msg in flat_messages(exc):
                self.message_user(request, msg, messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(
                    f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                    args=[object_id],
                )
            )


_REACH_ATTR = "_tagwarden_admin_reach"


def _viewable(request: HttpRequest, level: str) -> models.QuerySet[Any]:
    """The projects (`level="project"`) or environments the request's user may view: the
    engine's SQL filter, as one subquery."""
    from environments.models import Environment
    from permissions import engine
    from projects.models import Project

    user: Any = request.user
    if level == "project":
        return Project.objects.filter(engine.viewable_projects_q(user))
    return Environment.objects.filter(engine.viewable_environments_q(user))


def reaches(request: HttpRequest, level: str) -> bool:
    """Whether the user may view at least one project (or environment): whether the sidebar
    shows the member's models of that level. One query per level, memoised on the request."""
    user: Any = request.user
    if user.is_superuser:
        return True
    cache = getattr(request, _REACH_ATTR, None)
    if cache is None:
        cache = {}
        setattr(request, _REACH_ATTR, cache)
    if level not in cache:
        cache[level] = _viewable(request, level).exists()
    return bool(cache[level])


class MemberScopedMixin:
    """For the models members work with: visible wherever the engine lets the user view the
    object's project or environment (docs/ADMIN.md).

    `scope_level` is "project" or "environment"; `scope_lookup` the path from the model to
    that project or environment ("pk" for the scope itself). Writes stay as the base admin
    decides (organisation admins) unless the subclass asks the engine for more.
    """

    scope_level: ClassVar[str] = "project"
    scope_lookup: ClassVar[str] = "project"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        qs: models.QuerySet[Any] = admin.ModelAdmin.get_queryset(
            self,  # type: ignore[arg-type]
            request,
        )
        user: Any = request.user
        if user.is_superuser:
            return qs
        return qs.filter(**{f"{self.scope_lookup}__in": _viewable(request, self.scope_level)})

    def scope_of(self, obj: Any) -> Any:
        if self.scope_lookup == "pk":
            return obj
        target = obj
        for part in self.scope_lookup.split("__"):
            target = getattr(target, part)
        return target

    def has_module_permission(self, request: HttpRequest) -> bool:
        return reaches(request, self.scope_level)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        from permissions import engine

        user: Any = request.user
        if user.is_superuser:
            return True
        if obj is None:
            return reaches(request, self.scope_level)
        return engine.can_view(user, self.scope_of(obj))


class ReadOnlyAdmin(TagwardenAdmin):
    """Visible (scoped), searchable, never written through the admin."""

    read_only = True


class ParentScopedInline:
    """Inline permissions follow the parent admin's (the engine's) decision."""

    admin_site: admin.AdminSite
    parent_model: type[models.Model]

    def _parent(self) -> Any:
        return self.admin_site._registry[self.parent_model]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_view_permission(request, obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self._parent().has_change_permission(request, obj))


class ServiceInlineMixin(ParentScopedInline):
    """An inline whose rows are written through services by `save_via_services`."""

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        formset.service_inline = self
        return formset

    def save_via_services(self, request: HttpRequest, parent: Any, formset: Any) -> None:
        raise NotImplementedError


class ReadOnlyInline(ParentScopedInline, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
