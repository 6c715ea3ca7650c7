"""Parsing and rendering of features and segments."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from features.models import Feature, Segment
from features.segment_rules import segment_rules_errors
from permissions import engine
from projects.models import Project, Tag
from tagwarden.api.base import ErrorResponseSerializer, StoredJSONField


class TagIdsField(serializers.ListField):
    """A list of tag ids of the project in `context["project"]`, resolved to tags. Unknown
    ids, ids of another project, nulls and duplicates are a 400 on the field."""

    child = serializers.IntegerField()

    def to_internal_value(self, data: Any) -> list[Tag]:
        if isinstance(data, str | dict):
            self.fail("not_a_list", input_type=type(data).__name__)
        if isinstance(data, list) and any(isinstance(i, bool) for i in data):
            raise serializers.ValidationError("Tag ids must be integers.")
        ids: list[int] = super().to_internal_value(data)
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise serializers.ValidationError(
                f"Duplicate tag id(s): {', '.join(map(str, duplicates))}."
            )
        project: Project = self.context["project"]
        found = {t.pk: t for t in Tag.objects.filter(project=project, pk__in=ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise serializers.ValidationError(
                f"Unknown tag id(s) for this project: {', '.join(map(str, missing))}."
            )
        return [found[i] for i in ids]


class FeatureSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    my_permissions = serializers.SerializerMethodField(
        help_text="The project-level keys the caller holds on this feature."
    )

    class Meta:
        model = Feature
        fields = ("id", "name", "description", "tags", "created_at", "my_permissions")
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_tags(self, feature: Feature) -> list[int]:
        return sorted(t.pk for t in feature.tags.all())  # prefetched

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_my_permissions(self, feature: Feature) -> list[str]:
        request = self.context["request"]
        project: Project = self.context["project"]
        return engine.keys_on_feature(request.user, project, feature)


class FeatureWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    description = serializers.CharField(allow_blank=True, default="")
    tags = TagIdsField(default=list)

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ("id", "name", "rules")
        read_only_fields = fields


class SegmentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    rules = StoredJSONField(
        default=list,  # type: ignore[arg-type]
        help_text=(
            "A JSON list of rules in Flagsmith's format: "
            '[{"type": "ALL"|"ANY"|"NONE", "rules": [...], "conditions": '
            '[{"property", "operator", "value"}]}], at most 64 KiB (docs/API.md).'
        ),
    )

    def validate_rules(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a JSON list of rules.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Errors keyed by the path of the bad part: {"rules[0].conditions[1].operator": [...]}.
        if "rules" in attrs:
            errors = segment_rules_errors(attrs["rules"])
            if errors:
                raise serializers.ValidationError(errors)
        return attrs


class SegmentInUseSerializer(ErrorResponseSerializer):
    """409 `segment_in_use`: the overrides that still use the segment, by id only."""

    environments = serializers.ListField(child=serializers.IntegerField())
    features = serializers.ListField(child=serializers.IntegerField())
    overrides = serializers.ListField(
        child=serializers.DictField(), help_text="[{id, environment, feature}]"
    )
