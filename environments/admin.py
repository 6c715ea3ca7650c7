from django.contrib import admin

from environments.models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "api_key", "minimum_change_request_approvals"]
    list_filter = ["project__organisation", "project"]
    list_select_related = ["project"]
    search_fields = ["name", "api_key", "project__name"]
    autocomplete_fields = ["project"]
    readonly_fields = ["api_key"]
