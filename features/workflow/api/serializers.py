"""Parsing and rendering of feature states, segment overrides and change requests.

Inputs are strict: `enabled` must be a JSON boolean and ids JSON integers (`"1"`, `1.0`,
`true` are a 400 on the field); `value` is any JSON value, null included. References that
cannot change through an endpoint (a state's `feature`, an override's `segment`) are a 400
when sent with another value, never silently ignored.
"""

from __future__ import annotations

import functools
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from environments.models import Environment
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestChange,
    FeatureState,
    SegmentOverride,
)
from features.workflow.services import ChangeInput
from permissions import engine
from projects.api.serializers import reject_changed_reference
from tagwarden.api.base import StoredJSONField
from tagwarden.storable import INT32_MAX


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean only (DRF's own also takes "yes", 1, "on"...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (DRF's own also takes "5" and 5.0; `true` is not an integer)."""

    default_error_messages = {"invalid": "A valid integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class AnyJSONField(StoredJSONField):
    """Any JSON value, null included, that the databases can store (at most 64 KiB)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


def _json_value_field(**kwargs: Any) -> AnyJSONField:
    return AnyJSONField(**kwargs)


# --------------------------------------------------------------------------------------
# Feature states
# --------------------------------------------------------------------------------------


#: The serializer context key of a list page's `my_permissions`, state id -> keys.
MY_PERMISSIONS = "my_permissions"


class FeatureStateSerializer(serializers.ModelSerializer):
    value = _json_value_field(read_only=True)
    my_permissions = serializers.SerializerMethodField(
        help_text="The environment keys the caller holds on this state's feature."
    )

    class Meta:
        model = FeatureState
        fields = (
            "id",
            "feature",
            "environment",
            "enabled",
            "value",
            "version",
            "updated_at",
            "my_permissions",
        )
        read_only_fields = fields

    @functools.cached_property
    def _page_permissions(self) -> dict[int, list[str]] | None:
        # read once per page: the list's one child serializer renders every state
        return self.context.get(MY_PERMISSIONS)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_my_permissions(self, state: FeatureState) -> list[str]:
        page = self._page_permissions
        if page is not None:  # decided for the whole page by the list view
            return page[state.pk]
        environment: Environment = self.context["environment"]
        return engine.keys_on_feature(self.context["request"].user, environment, state.feature)


# The body of an edit of the object in the context under `edited`: it may repeat the
# references named in `unchanged` but not change them (a 400 naming the field). A comment, not
# a docstring: the schema would publish it as the description of every such body.
class _EditSerializer(serializers.Serializer):
    edited = ""
    unchanged: tuple[str, ...] = ()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.context[self.edited]
        for field in self.unchanged:
            reject_changed_reference(self, field, getattr(current, f"{field}_id"))
        return attrs


class FeatureStateUpdateSerializer(_EditSerializer):
    edited, unchanged = "state", ("feature", "environment")
    enabled = StrictBooleanField(required=False)
    value = _json_value_field(required=False)
    version = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=INT32_MAX,
        help_text="The version you read; if it is no longer the current one: 409 stale.",
    )


# --------------------------------------------------------------------------------------
# Segment overrides
# --------------------------------------------------------------------------------------


class SegmentOverrideSerializer(serializers.ModelSerializer):
    enabled = serializers.BooleanField(source="feature_state.enabled", read_only=True)
    value = _json_value_field(source="feature_state.value", read_only=True)

    class Meta:
        model = SegmentOverride
        fields = ("id", "segment", "priority", "enabled", "value")
        read_only_fields = fields


class SegmentOverrideCreateSerializer(serializers.Serializer):
    segment = StrictIntegerField(help_text="A segment of the feature's project.")
    priority = StrictIntegerField(min_value=0, max_value=INT32_MAX, default=0)
    enabled = StrictBooleanField(
        default=False,
        help_text="Where change requests are on, only false (then change it through one).",
    )
    value = _json_value_field(
        default=None, help_text="Where change requests are on, only null (see enabled)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        reject_changed_reference(self, "feature", self.context["feature"].pk)
        return attrs


class SegmentOverrideUpdateSerializer(_EditSerializer):
    edited, unchanged = "override", ("segment", "feature")
    priority = StrictIntegerField(min_value=0, max_value=INT32_MAX, required=False)
    enabled = StrictBooleanField(required=False)
    value = _json_value_field(required=False)


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------


class ChangeRequestChangeSerializer(serializers.ModelSerializer):
    value = _json_value_field(read_only=True)

    class Meta:
        model = ChangeRequestChange
        fields = ("feature", "segment_override", "enabled", "value")
        read_only_fields = fields


class ApprovalSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(
        source="user_id", read_only=True, allow_null=True, help_text="null for an API key."
    )
    api_key = serializers.IntegerField(
        source="api_key_id",
        read_only=True,
        allow_null=True,
        help_text="The approving organisation API key's id; null for a user.",
    )

    class Meta:
        model = ChangeRequestApproval
        fields = ("user", "api_key", "approved_at")
        read_only_fields = fields


class ChangeRequestSerializer(serializers.ModelSerializer):
    author = serializers.IntegerField(
        source="author_user_id",
        read_only=True,
        allow_null=True,
        help_text="The authoring user's id; null when an API key is the author.",
    )
    author_api_key = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        source="author_api_key_id",
        help_text="The authoring organisation API key's id; null when a user is the author.",
    )
    changes = ChangeRequestChangeSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(
        many=True,
        read_only=True,
        help_text="`user` is the approving user's id; API-key approvals have `user` null and "
        "`api_key` set.",
    )
    committed_by = serializers.IntegerField(
        source="committed_by_user_id",
        read_only=True,
        allow_null=True,
        help_text="The committing user's id (null if open, or committed by an API key).",
    )
    committed_by_api_key = serializers.IntegerField(
        source="committed_by_api_key_id",
        read_only=True,
        allow_null=True,
        help_text="The committing organisation API key's id, if an API key committed it.",
    )

    class Meta:
        model = ChangeRequest
        fields = (
            "id",
            "title",
            "description",
            "author",
            "author_api_key",
            "changes",
            "approvals",
            "status",
            "committed_at",
            "committed_by",
            "committed_by_api_key",
        )
        read_only_fields = fields


class ChangeInputSerializer(serializers.Serializer):
    """Only for the schema and per-item parsing: see `ChangesField`."""

    feature = StrictIntegerField(help_text="A feature of the environment's project.")
    segment_override = StrictIntegerField(
        allow_null=True,
        default=None,
        help_text="null: the feature's default state; else an override of this feature in "
        "this environment.",
    )
    enabled = StrictBooleanField()
    value = _json_value_field(default=None)


@extend_schema_field(ChangeInputSerializer(many=True))
class ChangesField(serializers.Field):
    """A non-empty list of changes. Errors are flattened to strings naming the item
    (`changes[1].enabled: ...`) so the body stays `{"changes": ["message", ...]}`."""

    def to_internal_value(self, data: Any) -> list[ChangeInput]:
        if not isinstance(data, list):
            raise serializers.ValidationError("Expected a list of changes.")
        if not data:
            raise serializers.ValidationError("At least one change is required.")
        errors: list[str] = []
        parsed: list[ChangeInput] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                errors.append(f"changes[{index}]: expected an object.")
                continue
            child = ChangeInputSerializer(data=item)
            if not child.is_valid():
                for field, messages in child.errors.items():
                    for message in messages if isinstance(messages, list) else [messages]:
                        errors.append(f"changes[{index}].{field}: {message}")
                continue
            parsed.append(ChangeInput(**child.validated_data))
        if errors:
            raise serializers.ValidationError(errors)
        return parsed

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - write-only
        return value


class ChangeRequestCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, default="")
    changes = ChangesField()


class ChangeRequestUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    changes = ChangesField(
        required=False, help_text="Replaces the changes. Any edit resets the approvals."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        change_request: ChangeRequest = self.context["change_request"]
        reject_changed_reference(self, "status", change_request.status)  # type: ignore[arg-type]
        return attrs
