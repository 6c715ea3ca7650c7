from django.contrib import admin

from projects.models import Project, Tag


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "created_at"]
    list_filter = ["organisation"]
    list_select_related = ["organisation"]
    search_fields = ["name", "organisation__name"]
    autocomplete_fields = ["organisation"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["label", "project", "color", "is_restricted"]
    list_filter = ["is_restricted", "project"]
    list_select_related = ["project"]
    search_fields = ["label", "description", "project__name"]
    autocomplete_fields = ["project"]
    # Restricting a tag changes who reaches its features: done through the API's services.
    readonly_fields = ["is_restricted"]
