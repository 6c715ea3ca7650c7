"""Admin for grants (any principal, any scope), written through `permissions.services`, and the
"explain a decision" page (`permissions.admin.views`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from impact.admin_preview import ImpactAdmin
from permissions.admin import views as admin_views
from permissions.admin.forms import GRANT_CHANGE_FORMS, GrantAddForm, entry_lines
from permissions.catalogue import KEYS_BY_LEVEL, Level
from permissions.models import Grant, GrantEntry
from permissions.services import grant_create, grant_delete, grant_update
from projects.models import Tag
from tagwarden.admin.base import ReadOnlyAdmin, actor_of, scoped_queryset


def principal_label(grant: Grant) -> str:
    return f"{grant.principal_kind}: {grant.principal}"


def scope_label(grant: Grant) -> str:
    environment = grant.environment
    if environment is not None:
        return f"environment: {environment.project.name} / {environment.name}"
    if grant.project_id is not None:
        return f"project: {grant.project}"
    return f"organisation: {grant.organisation}"


class LevelFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(level.value, level.title()) for level in Level]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == Level.ORGANISATION:
            return queryset.filter(project__isnull=True)
        if value == Level.PROJECT:
            return queryset.filter(project__isnull=False, environment__isnull=True)
        if value == Level.ENVIRONMENT:
            return queryset.filter(environment__isnull=False)
        return queryset


class PrincipalFilter(admin.SimpleListFilter):
    title = "principal"
    parameter_name = "principal"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("user", "User"), ("group", "Group"), ("role", "Role")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in ("user", "group", "role"):
            return queryset.filter(**{f"{value}__isnull": False})
        return queryset


@admin.register(Grant)
class GrantAdmin(ImpactAdmin):
    """Grants of users, groups and roles on an organisation, project or environment. Role
    grants are also edited from their role's page."""

    list_display = ["id", "principal_display", "scope_display", "admin", "keys_display"]
    list_display_links = ["id", "principal_display"]
    list_filter = [
        LevelFilter,
        PrincipalFilter,
        "admin",
        ("organisation", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = [
        "organisation",
        "project",
        "environment__project",
        "user",
        "group",
        "role",
    ]
    search_fields = [
        "user__username",
        "user__email",
        "group__name",
        "role__name",
        "project__name",
        "environment__name",
    ]
    autocomplete_fields = ["organisation", "project", "environment", "user", "group", "role"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("entries__tags")

    @admin.display(description="principal")
    def principal_display(self, obj: Grant) -> str:
        return principal_label(obj)

    @admin.display(description="scope")
    def scope_display(self, obj: Grant) -> str:
        return scope_label(obj)

    @admin.display(description="keys")
    def keys_display(self, obj: Grant) -> str:
        parts = []
        for entry in obj.entries.all():
            tags = [t.label for t in entry.tags.all()]
            parts.append(f"{entry.key} [{', '.join(tags)}]" if tags else entry.key)
        return "; ".join(parts) or "—"

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            tags = scoped_queryset(self.admin_site, Tag, request)
            kwargs["form"] = type("GrantAddForm", (GrantAddForm,), {"tag_queryset": tags})
        else:
            kwargs["form"] = GRANT_CHANGE_FORMS[obj.level]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [
                (
                    "Principal",
                    {"fields": ["user", "group", "role"], "description": "Exactly one."},
                ),
                (
                    "Scope",
                    {
                        "fields": ["organisation", "project", "environment"],
                        "description": "The organisation, or one of its projects, or one of "
                        "its environments. Only keys of that level may be granted.",
                    },
                ),
                (None, {"fields": ["admin"]}),
                *(
                    (f"{level.title()} keys", {"fields": entry_lines(KEYS_BY_LEVEL[level])})
                    for level in Level
                ),
            ]
        return [
            (None, {"fields": ["principal_display", "scope_display", "admin"]}),
            ("Keys", {"fields": entry_lines(KEYS_BY_LEVEL[obj.level])}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["principal_display", "scope_display"] if obj else []

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "explain/",
                self.admin_site.admin_view(self.explain_view),
                name="permissions_explain",
            ),
            *super().get_urls(),
        ]

    def explain_view(self, request: HttpRequest) -> HttpResponse:
        return admin_views.explain_view(request, model_admin=self)

    def service_create(self, request: HttpRequest, form: Any) -> Grant:
        return grant_create(
            principal=form.principal(),
            scope=form.scope(),
            entries=form.entries(),
            admin=bool(form.cleaned_data.get("admin")),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: Grant, form: Any) -> None:
        grant_update(
            grant=obj,
            entries=form.entries(),
            admin=None if obj.level == Level.ORGANISATION else bool(form.cleaned_data.get("admin")),
            actor=actor_of(request),
        )

    def service_delete(self, request: HttpRequest, obj: Grant) -> None:
        grant_delete(grant=obj, actor=actor_of(request))


@admin.register(GrantEntry)
class GrantEntryAdmin(ReadOnlyAdmin):
    """One key of a grant, searchable by tag ("which grants name tag X?"). Written through
    its grant (the grant's page, or its role's)."""

    organisation_lookup = "grant__organisation"
    list_display = ["key", "tag_list", "grant_link", "principal", "scope"]
    list_filter = ["key", ("grant__organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = [
        "grant__organisation",
        "grant__project",
        "grant__environment__project",
        "grant__user",
        "grant__group",
        "grant__role",
    ]
    search_fields = [
        "key",
        "tags__label",
        "grant__role__name",
        "grant__group__name",
        "grant__user__username",
    ]
    readonly_fields = ("grant_link", "key", "tag_list", "principal", "scope")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="tags")
    def tag_list(self, obj: GrantEntry) -> str:
        return ", ".join(t.label for t in obj.tags.all()) or "untagged"

    @admin.display(description="grant")
    def grant_link(self, obj: GrantEntry) -> str:
        url = reverse(f"{self.admin_site.name}:permissions_grant_change", args=[obj.grant_id])
        return format_html('<a href="{}">grant #{}</a>', url, obj.grant_id)

    @admin.display
    def principal(self, obj: GrantEntry) -> str:
        return principal_label(obj.grant)

    @admin.display
    def scope(self, obj: GrantEntry) -> str:
        return scope_label(obj.grant)
