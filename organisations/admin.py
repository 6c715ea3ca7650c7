from django.contrib import admin

from organisations.models import (
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from tagwarden.admin_utils import ReadOnlyAdmin, ReadOnlyInline


class MembershipInline(admin.TabularInline):
    model = OrganisationMembership
    extra = 0
    autocomplete_fields = ["user"]
    list_select_related = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(OrganisationMembership)
class OrganisationMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role", "created_at"]
    list_filter = ["role", "organisation"]
    list_select_related = ["user", "organisation"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]


@admin.register(UserGroup)
class UserGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "created_at"]
    list_filter = ["organisation"]
    list_select_related = ["organisation"]
    search_fields = ["name", "organisation__name"]
    autocomplete_fields = ["organisation", "users"]


class RoleAssignmentInline(ReadOnlyInline):
    model = RoleAssignment
    fields = ["user", "group", "api_key", "created_at"]
    readonly_fields = fields


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "description"]
    list_filter = ["organisation"]
    list_select_related = ["organisation"]
    search_fields = ["name", "description", "organisation__name"]
    autocomplete_fields = ["organisation"]
    inlines = [RoleAssignmentInline]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(ReadOnlyAdmin):
    list_display = ["role", "user", "group", "api_key", "created_at"]
    list_filter = ["role__organisation"]
    list_select_related = ["role", "user", "group", "api_key"]
    search_fields = ["role__name", "user__username", "group__name", "api_key__name"]


@admin.register(OrganisationAPIKey)
class OrganisationAPIKeyAdmin(ReadOnlyAdmin):
    # The key itself is never stored; only its prefix is shown.
    list_display = ["name", "prefix", "organisation", "is_admin", "revoked", "expiry_date"]
    list_filter = ["is_admin", "revoked", "organisation"]
    list_select_related = ["organisation"]
    search_fields = ["name", "prefix", "organisation__name"]
    exclude = ["hashed_key"]
