"""Parsing and rendering of projects and tags. Decisions are the engine's; writes go through
projects.services."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from rest_framework import serializers

from organisations.models import Organisation
from permissions import engine
from projects.models import DEFAULT_TAG_COLOR, Project, Tag
from tagwarden.api.base import ErrorResponseSerializer


class TagInUseSerializer(ErrorResponseSerializer):
    roles = serializers.ListField(child=serializers.DictField(), help_text="[{id, name}]")


class ViewableScopeField(serializers.PrimaryKeyRelatedField):
    """An integer id of an organisation or project the caller may view; anything else
    (a non-integer, an unknown id, one the caller cannot view) is a 400 on the field."""

    default_error_messages = {
        "does_not_exist": "Unknown id {pk_value}, or not one you may view.",
        "incorrect_type": "Incorrect type. Expected an integer id, received {data_type}.",
    }

    def __init__(self, model: type[Model], **kwargs: Any) -> None:
        self.model = model
        kwargs.setdefault("queryset", model._default_manager.all())
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        obj = super().to_internal_value(data)
        request = self.context.get("request")
        if request is None or not engine.can_view(request.user, obj):
            self.fail("does_not_exist", pk_value=data)
        return obj


def reject_changed_reference(
    serializer: serializers.Serializer, field: str, current: int | None
) -> None:
    """A reference that cannot change (a project's organisation, an environment's project):
    sending a different one is a 400, not silently ignored."""
    initial = getattr(serializer, "initial_data", None)
    if isinstance(initial, dict) and field in initial and initial[field] != current:
        raise serializers.ValidationError({field: ["This cannot be changed."]})


# --------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ("id", "name", "organisation", "created_at")
        read_only_fields = fields


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    organisation = ViewableScopeField(Organisation)


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        project: Project = self.context["project"]
        reject_changed_reference(self, "organisation", project.organisation_id)
        return attrs


# --------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------


class TagSerializer(serializers.ModelSerializer):
    is_protected = serializers.SerializerMethodField(
        help_text="Restricted, or named by a role grant: only project admins may attach, "
        "detach or delete it."
    )

    class Meta:
        model = Tag
        fields = ("id", "label", "color", "description", "is_restricted", "is_protected")
        read_only_fields = fields

    def get_is_protected(self, tag: Tag) -> bool:
        # Annotated by projects.selectors.tags_of_project (no query per tag).
        return bool(tag.is_protected)  # type: ignore[attr-defined]


class TagWriteSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)  # type: ignore[assignment]
    color = serializers.CharField(max_length=16, default=DEFAULT_TAG_COLOR)
    description = serializers.CharField(allow_blank=True, default="")
    is_restricted = serializers.BooleanField(default=False)

    def validate_label(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value
