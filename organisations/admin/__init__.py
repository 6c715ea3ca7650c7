"""Admin for organisations, members, groups, roles (with their grants) and API keys.

Every write calls `organisations.services` or `permissions.services`, as the API does;
members who are not superusers see only the organisations they administer
(`tagwarden.admin.base`). Memberships, groups, roles (with their inlines) and role
assignments have the "Preview impact" step and record their impact on their audit entries
(`impact.admin_preview`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from impact.admin_preview import ImpactAdmin
from organisations import services
from organisations.models import (
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.admin.forms import (
    RoleAssignmentForm,
    RoleEnvironmentGrantForm,
    RoleForm,
    RoleProjectGrantForm,
    entry_lines,
    environment_label,
)
from permissions.catalogue import KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.models import Grant
from permissions.services import (
    grant_create,
    grant_delete,
    grant_update,
    role_organisation_permissions_set,
)
from tagwarden.admin.base import (
    NotFoundFirstMixin,
    ReadOnlyInline,
    ServiceInlineMixin,
    TagwardenAdmin,
    actor_of,
    admin_organisation_ids,
    service_context,
)

User = get_user_model()


# --------------------------------------------------------------------------------------
# Users: superusers manage them; organisation admins see their organisations' members
# --------------------------------------------------------------------------------------

admin.site.unregister(User)


@admin.register(User)
class ScopedUserAdmin(NotFoundFirstMixin, DjangoUserAdmin):
    """Users are global: only superusers change them. Organisation admins see the members of
    their organisations, and find any user by exact username or email to add as a member."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        ids = admin_organisation_ids(request)
        if ids is None:
            return qs
        members = OrganisationMembership.objects.filter(organisation_id__in=sorted(ids))
        return qs.filter(pk__in=members.values("user_id"))

    @staticmethod
    def _is_member_lookup(request: HttpRequest) -> bool:
        """The autocomplete of a new membership's user."""
        return (
            request.GET.get("app_label") == "organisations"
            and request.GET.get("model_name") == "organisationmembership"
            and request.GET.get("field_name") == "user"
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if self._is_member_lookup(request) and admin_organisation_ids(request) is not None:
            # Not a directory of every user: an exact username or email finds one.
            term = search_term.strip()
            if not term:
                return queryset.none(), False
            return (
                User.objects.filter(Q(username__iexact=term) | Q(email__iexact=term)).order_by(
                    "pk"
                ),
                False,
            )
        return super().get_search_results(request, queryset, search_term)

    def get_list_filter(self, request: HttpRequest) -> Any:
        # The default filters list every auth group: not for organisation admins.
        return super().get_list_filter(request) if request.user.is_superuser else ("is_active",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser) or bool(admin_organisation_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        ids = admin_organisation_ids(request)
        if ids is None:
            return True
        if not ids:
            return False
        if obj is None:
            return True
        return OrganisationMembership.objects.filter(
            user_id=obj.pk, organisation_id__in=sorted(ids)
        ).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


# --------------------------------------------------------------------------------------
# Organisations and membership
# --------------------------------------------------------------------------------------


class MembershipInline(ReadOnlyInline):
    model = OrganisationMembership
    readonly_fields = (
        "user",
        "role",
        "created_at",
    )
    fields = readonly_fields
    verbose_name_plural = "members (change them under Organisation memberships)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("user")


@admin.register(Organisation)
class OrganisationAdmin(TagwardenAdmin):
    ordering = ["name", "id"]  # Meta.ordering does not apply to annotated (GROUP BY) queries
    organisation_lookup = "pk"
    list_display = ["name", "id", "member_count", "created_at"]
    search_fields = ["name"]
    fields = ["name"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(_members=Count("memberships"))

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Organisation) -> int:
        return getattr(obj, "_members", 0)

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return super().get_inline_instances(request, obj) if obj is not None else []

    def service_create(self, request: HttpRequest, form: Any) -> Organisation:
        # The creator becomes the organisation's ADMIN member, as through the API.
        return services.organisation_create(
            name=form.cleaned_data["name"], creator=actor_of(request)
        )

    def service_update(self, request: HttpRequest, obj: Organisation, form: Any) -> None:
        services.organisation_update(
            organisation=obj, name=form.cleaned_data["name"], actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: Organisation) -> None:
        services.organisation_delete(organisation=obj, actor=actor_of(request))


@admin.register(OrganisationMembership)
class OrganisationMembershipAdmin(ImpactAdmin):
    list_display = ["user", "email", "organisation", "role", "created_at"]
    list_filter = ["role", ("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "organisation"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]

    @admin.display(ordering="user__email")
    def email(self, obj: OrganisationMembership) -> str:
        return obj.user.email

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            ["organisation", "user", "role", "created_at"]
            if obj
            else ["organisation", "user", "role"]
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation", "user", "created_at"] if obj else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            # Any existing user may be added (as through the API); organisation admins who
            # are not superusers find one by exact username or email (ScopedUserAdmin).
            kwargs["queryset"] = User.objects.all()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def service_create(self, request: HttpRequest, form: Any) -> OrganisationMembership:
        data = form.cleaned_data
        return services.membership_create(
            organisation=data["organisation"],
            user=data["user"],
            role=data["role"],
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: OrganisationMembership, form: Any) -> None:
        services.membership_update(
            membership=obj, role=form.cleaned_data["role"], actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: OrganisationMembership) -> None:
        services.membership_delete(membership=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


@admin.register(UserGroup)
class UserGroupAdmin(ImpactAdmin):
    ordering = ["name", "id"]  # Meta.ordering does not apply to annotated (GROUP BY) queries
    list_display = ["name", "organisation", "member_count", "created_at"]
    list_filter = [("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organisation"]
    search_fields = ["name", "organisation__name"]
    autocomplete_fields = ["organisation", "users"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(_members=Count("users"))

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: UserGroup) -> int:
        return getattr(obj, "_members", 0)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation", "name", "users"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation"] if obj else []

    def service_create(self, request: HttpRequest, form: Any) -> UserGroup:
        data = form.cleaned_data
        return services.group_create(
            organisation=data["organisation"],
            name=data["name"],
            users=list(data["users"]),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: UserGroup, form: Any) -> None:
        data = form.cleaned_data
        services.group_update(
            group=obj, name=data["name"], users=list(data["users"]), actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: UserGroup) -> None:
        services.group_delete(group=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# Roles, with their assignments and grants as inlines
# --------------------------------------------------------------------------------------


def _per_request_form(form: type[Any], organisation_id: int) -> type[Any]:
    """The inline's form bound to the role's organisation, with a fresh choice cache (the
    choices of every row are computed once)."""
    return type(form.__name__, (form,), {"organisation_id": organisation_id, "choice_cache": {}})


class RoleAssignmentInline(ServiceInlineMixin, admin.TabularInline):
    model = RoleAssignment
    form = RoleAssignmentForm
    fields = ["user", "group", "api_key"]
    extra = 1
    verbose_name = "assignment"
    verbose_name_plural = "assignments (to users, groups or API keys of the organisation)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("role", "user", "group", "api_key")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["form"] = _per_request_form(self.form, obj.organisation_id if obj else 0)
        return super().get_formset(request, obj, **kwargs)

    def save_via_services(self, request: HttpRequest, parent: Role, formset: Any) -> None:
        actor = actor_of(request)
        for form in formset.initial_forms:
            if formset._should_delete_form(form):
                assignment = form.instance
                with service_context(f"Assignment to {assignment.principal}: "):
                    services.role_assignment_delete(assignment=assignment, actor=actor)
                formset.deleted_objects.append(assignment)
        for form in formset.extra_forms:
            if not form.has_changed() or formset._should_delete_form(form):
                continue
            data = form.cleaned_data
            principal = data.get("user") or data.get("group") or data.get("api_key")
            with service_context(f"Assignment to {principal}: "):
                assignment = services.role_assignment_create(
                    role=parent,
                    user=data.get("user"),
                    group=data.get("group"),
                    api_key=data.get("api_key"),
                    actor=actor,
                )
            formset.new_objects.append(assignment)


class RoleGrantInline(ServiceInlineMixin, admin.StackedInline):
    """A role's grants of one level. Each key: a checkbox (every feature) and tags (only
    features carrying one of them)."""

    model = Grant
    fk_name = "role"
    extra = 1
    level: ClassVar[Level]
    scope_field: ClassVar[str]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if self.level == Level.PROJECT:
            qs = qs.filter(project__isnull=False, environment__isnull=True)
        else:
            qs = qs.filter(environment__isnull=False)
        return qs.select_related("project", "environment__project").prefetch_related(
            "entries__entry_tags"
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        keys = KEYS_BY_LEVEL[self.level]
        supported = ", ".join(k for k in keys if k in TAG_SUPPORTED_KEYS)
        return [
            (None, {"fields": [self.scope_field, "admin"]}),
            (
                "Keys",
                {
                    "fields": entry_lines(keys),
                    "description": "Tick a key to grant it on every feature, or choose tags "
                    "to grant it only on features carrying one of them. Keys that support "
                    f"tags: {supported or 'none'}.",
                },
            ),
        ]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["form"] = _per_request_form(self.form, obj.organisation_id if obj else 0)
        return super().get_formset(request, obj, **kwargs)

    def describe(self, form: Any) -> str:
        scope = form.scope()
        label = environment_label(scope) if self.level == Level.ENVIRONMENT else str(scope)
        return f"{self.level.title()} grant on {label}: "

    def save_via_services(self, request: HttpRequest, parent: Role, formset: Any) -> None:
        actor = actor_of(request)
        for form in formset.initial_forms:
            if formset._should_delete_form(form):
                with service_context(self.describe(form)):
                    grant_delete(grant=form.instance, actor=actor)
                formset.deleted_objects.append(form.instance)
        for form in formset.initial_forms:
            if formset._should_delete_form(form) or not form.has_changed():
                continue
            with service_context(self.describe(form)):
                grant = grant_update(
                    grant=form.instance,
                    entries=form.entries(),
                    admin=bool(form.cleaned_data.get("admin")),
                    actor=actor,
                )
            formset.changed_objects.append((grant, form.changed_data))
        for form in formset.extra_forms:
            if not form.has_changed() or formset._should_delete_form(form):
                continue
            with service_context(self.describe(form)):
                grant = grant_create(
                    principal=parent,
                    scope=form.scope(),
                    entries=form.entries(),
                    admin=bool(form.cleaned_data.get("admin")),
                    actor=actor,
                )
            formset.new_objects.append(grant)


class RoleProjectGrantInline(RoleGrantInline):
    form = RoleProjectGrantForm
    level = Level.PROJECT
    scope_field = "project"
    verbose_name = "project grant"
    verbose_name_plural = "project grants"


class RoleEnvironmentGrantInline(RoleGrantInline):
    form = RoleEnvironmentGrantForm
    level = Level.ENVIRONMENT
    scope_field = "environment"
    verbose_name = "environment grant"
    verbose_name_plural = "environment grants"


@admin.register(Role)
class RoleAdmin(ImpactAdmin):
    ordering = ["name", "id"]  # Meta.ordering does not apply to annotated (GROUP BY) queries
    form = RoleForm
    list_display = ["name", "organisation", "description", "assignment_count", "grant_count"]
    list_filter = [("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organisation"]
    search_fields = ["name", "description", "organisation__name"]
    autocomplete_fields = ["organisation"]
    inlines = [RoleAssignmentInline, RoleProjectGrantInline, RoleEnvironmentGrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _assignments=Count("assignments", distinct=True),
                _grants=Count("grants", distinct=True),
            )
        )

    @admin.display(description="assignments", ordering="_assignments")
    def assignment_count(self, obj: Role) -> int:
        return getattr(obj, "_assignments", 0)

    @admin.display(description="grants", ordering="_grants")
    def grant_count(self, obj: Role) -> int:
        return getattr(obj, "_grants", 0)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation", "name", "description", "organisation_permissions"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation"] if obj else []

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # Assignments and grants name the role's organisation's members, groups, keys,
        # projects and tags: they are edited once the role exists.
        if obj is None:
            return []
        return super().get_inline_instances(request, obj)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            self.message_user(
                request,
                "Open the role to assign it and to add its project and environment grants.",
                messages.INFO,
            )
        return super().response_add(request, obj, post_url_continue)

    def _set_organisation_keys(self, request: HttpRequest, role: Role, form: Any) -> None:
        role_organisation_permissions_set(
            role=role,
            keys=list(form.cleaned_data.get("organisation_permissions") or []),
            actor=actor_of(request),
        )

    @staticmethod
    def _service_fields(form: Any) -> dict[str, Any]:
        """What the form writes, as `role_create` and `role_update` take it."""
        data = form.cleaned_data
        return {"name": data["name"], "description": data.get("description") or ""}

    def service_create(self, request: HttpRequest, form: Any) -> Role:
        role = services.role_create(
            organisation=form.cleaned_data["organisation"],
            **self._service_fields(form),
            actor=actor_of(request),
        )
        self._set_organisation_keys(request, role, form)
        return role

    def service_update(self, request: HttpRequest, obj: Role, form: Any) -> None:
        services.role_update(role=obj, **self._service_fields(form), actor=actor_of(request))
        self._set_organisation_keys(request, obj, form)

    def service_delete(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(role=obj, actor=actor_of(request))


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(ImpactAdmin):
    """Assignments are created and deleted (through the services); never changed."""

    organisation_lookup = "role__organisation"
    list_display = ["role", "principal_display", "kind", "organisation", "created_at"]
    list_filter = [("role__organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["role__organisation", "user", "group", "api_key"]
    search_fields = ["role__name", "user__username", "user__email", "group__name", "api_key__name"]
    autocomplete_fields = ["role", "user", "group", "api_key"]
    fields = ["role", "user", "group", "api_key"]

    @admin.display(description="assigned to")
    def principal_display(self, obj: RoleAssignment) -> str:
        return str(obj.principal)

    @admin.display
    def kind(self, obj: RoleAssignment) -> str:
        return "user" if obj.user_id else "group" if obj.group_id else "API key"

    @admin.display(ordering="role__organisation__name")
    def organisation(self, obj: RoleAssignment) -> Organisation:
        return obj.role.organisation

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def service_create(self, request: HttpRequest, form: Any) -> RoleAssignment:
        data = form.cleaned_data
        given = [n for n in ("user", "group", "api_key") if data.get(n) is not None]
        if len(given) != 1:
            raise ValidationError(
                {"non_field_errors": ["Give exactly one of user, group, api_key."]}
            )
        return services.role_assignment_create(
            role=data["role"],
            user=data.get("user"),
            group=data.get("group"),
            api_key=data.get("api_key"),
            actor=actor_of(request),
        )

    def service_delete(self, request: HttpRequest, obj: RoleAssignment) -> None:
        services.role_assignment_delete(assignment=obj, actor=actor_of(request))


# --------------------------------------------------------------------------------------
# API keys: the prefix is shown, the key itself never (it is not stored)
# --------------------------------------------------------------------------------------


@admin.register(OrganisationAPIKey)
class OrganisationAPIKeyAdmin(ImpactAdmin):
    list_display = [
        "name",
        "prefix",
        "organisation",
        "is_admin",
        "revoked",
        "expiry_date",
        "created",
    ]
    list_filter = ["is_admin", "revoked", ("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organisation"]
    search_fields = ["name", "prefix", "organisation__name"]
    autocomplete_fields = ["organisation"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["organisation", "name", "is_admin", "expiry_date"]
        return ["organisation", "prefix", "name", "is_admin", "revoked", "expiry_date", "created"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        readonly = ["organisation", "prefix", "is_admin", "created"]
        return [*readonly, "revoked"] if obj.revoked else readonly

    def service_create(self, request: HttpRequest, form: Any) -> OrganisationAPIKey:
        data = form.cleaned_data
        api_key, key = services.api_key_create(
            organisation=data["organisation"],
            name=data["name"],
            is_admin=bool(data.get("is_admin")),
            expires_at=data.get("expiry_date"),
            actor=actor_of(request),
        )
        request._tagwarden_new_api_key = key  # type: ignore[attr-defined]
        return api_key

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        key = getattr(request, "_tagwarden_new_api_key", None)
        if key is not None:  # shown once, after the save succeeded
            self.message_user(
                request,
                format_html(
                    "The new API key is <code>{}</code>. Copy it now: only its prefix is "
                    "kept, it will not be shown again.",
                    key,
                ),
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)

    def service_update(self, request: HttpRequest, obj: OrganisationAPIKey, form: Any) -> None:
        data = form.cleaned_data
        services.api_key_update(
            api_key=obj,
            name=data["name"],
            revoked=data.get("revoked"),  # absent once revoked (read-only)
            expires_at=data.get("expiry_date"),
            actor=actor_of(request),
        )

    def service_delete(self, request: HttpRequest, obj: OrganisationAPIKey) -> None:
        services.api_key_delete(api_key=obj, actor=actor_of(request))
