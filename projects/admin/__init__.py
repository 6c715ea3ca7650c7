"""Admin for projects and tags: writes through `projects.services`, scoped by the engine."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from impact.admin_preview import ImpactAdmin
from permissions import engine
from permissions.models import GrantEntryTag
from projects import services
from projects.models import Project, Tag
from tagwarden.admin.base import MemberScopedMixin, TagwardenAdmin, actor_of


def require_membership(request: HttpRequest, organisation: Any) -> None:
    """Creating a project or an environment gives the creating user an admin grant on it,
    which needs membership: a superuser acting in an organisation it is not a member of
    gets a clear error instead of the grant service's."""
    if not engine.can_view(actor_of(request), organisation):
        raise ValidationError(
            {
                "__all__": [
                    f"You are not a member of {organisation.name!r}: its creator receives an "
                    "admin grant, which needs membership. Add yourself as a member first."
                ]
            }
        )


@admin.register(Project)
class ProjectAdmin(MemberScopedMixin, TagwardenAdmin):
    """Members see the projects they may view; organisation admins change them."""

    scope_lookup = "pk"
    ordering = ["name", "id"]  # Meta.ordering does not apply to annotated (GROUP BY) queries
    list_display = ["name", "organisation", "environment_count", "created_at"]
    list_filter = [("organisation", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organisation"]
    search_fields = ["name", "organisation__name"]
    autocomplete_fields = ["organisation"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(_environments=Count("environments"))

    @admin.display(description="environments", ordering="_environments")
    def environment_count(self, obj: Project) -> int:
        return getattr(obj, "_environments", 0)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation", "name", "created_at"] if obj else ["organisation", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["organisation", "created_at"] if obj else []

    def service_create(self, request: HttpRequest, form: Any) -> Project:
        organisation = form.cleaned_data["organisation"]
        require_membership(request, organisation)
        return services.project_create(
            organisation=organisation, name=form.cleaned_data["name"], actor=actor_of(request)
        )

    def service_update(self, request: HttpRequest, obj: Project, form: Any) -> None:
        services.project_update(
            project=obj, name=form.cleaned_data["name"], actor=actor_of(request)
        )

    def service_delete(self, request: HttpRequest, obj: Project) -> None:
        services.project_delete(project=obj, actor=actor_of(request))


@admin.register(Tag)
class TagAdmin(MemberScopedMixin, ImpactAdmin):
    """Members see the tags of the projects they may view (to pick them on features);
    organisation admins change them."""

    organisation_lookup = "project__organisation"
    list_display = ["label", "project", "colour", "is_restricted", "is_protected"]
    list_filter = [
        "is_restricted",
        ("project__organisation", admin.RelatedOnlyFieldListFilter),
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["project"]
    search_fields = ["label", "description", "project__name"]
    autocomplete_fields = ["project"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        named = Exists(GrantEntryTag.objects.filter(tag_id=OuterRef("pk")))
        return (
            super()
            .get_queryset(request)
            .annotate(
                _protected=ExpressionWrapper(
                    Q(is_restricted=True) | named, output_field=BooleanField()
                )
            )
        )

    @admin.display(boolean=True, description="protected", ordering="_protected")
    def is_protected(self, obj: Tag) -> bool:
        """Restricted, or named by a grant: only project admins attach or detach it."""
        return bool(getattr(obj, "_protected", obj.is_restricted))

    @admin.display(ordering="color")
    def colour(self, obj: Tag) -> str:
        return format_html(
            '<span style="display:inline-block;width:1em;height:1em;background:{};'
            'border:1px solid #999;vertical-align:middle"></span> {}',
            obj.color,
            obj.color,
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project", "label", "color", "description", "is_restricted"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["project"] if obj else []

    @staticmethod
    def _service_fields(form: Any) -> dict[str, Any]:
        """What the form writes, as `tag_create` and `tag_update` take it."""
        data = form.cleaned_data
        return {
            "label": data["label"],
            "color": data["color"],
            "description": data.get("description") or "",
            "is_restricted": bool(data.get("is_restricted")),
        }

    def service_create(self, request: HttpRequest, form: Any) -> Tag:
        return services.tag_create(
            project=form.cleaned_data["project"],
            **self._service_fields(form),
            actor=actor_of(request),
        )

    def service_update(self, request: HttpRequest, obj: Tag, form: Any) -> None:
        services.tag_update(tag=obj, **self._service_fields(form), actor=actor_of(request))

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # A tag named by grant entries is protected from deletion (RESTRICT): the service
        # refuses it with a message naming the roles, more useful than Django's list of
        # protected rows, so the confirmation page leaves the decision to it.
        deleted, counts, perms_needed, _protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, []

    def service_delete(self, request: HttpRequest, obj: Tag) -> None:
        services.tag_delete(tag=obj, actor=actor_of(request))
