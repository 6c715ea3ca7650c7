"""Parsing and rendering of the catalogue, the permission reports and grants.

Keys are validated against the catalogue by `permissions.services` (one place, every write
path); these serializers only check shapes, so that every malformed payload is a 400 naming
its field (`{"permissions": [...]}`), never a 500 and never silently ignored.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from environments.models import Environment
from organisations.api.serializers import IdField, reject_changed
from organisations.models import UserGroup
from permissions.models import Grant
from permissions.services import EntryInput
from projects.models import Project
from tagwarden.storable import INT64_MAX

User = get_user_model()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------
# The catalogue and the reports (read-only; used for rendering and the schema)
# --------------------------------------------------------------------------------------


class CatalogueEntrySerializer(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()
    supports_tag = serializers.BooleanField()


class TagBasedPermissionsSerializer(serializers.Serializer):
    permissions = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.IntegerField())


class MyPermissionsSerializer(serializers.Serializer):
    admin = serializers.BooleanField()
    permissions = serializers.ListField(
        child=serializers.CharField(), help_text="Keys held untagged or through admin."
    )
    tag_based_permissions = TagBasedPermissionsSerializer(many=True)
    restricted_tags = serializers.ListField(child=serializers.IntegerField())


class DerivedGroupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class DerivedRoleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    tags = serializers.ListField(child=serializers.IntegerField())


class DerivedFromSerializer(serializers.Serializer):
    groups = DerivedGroupSerializer(many=True)
    roles = DerivedRoleSerializer(many=True)


class DetailedPermissionSerializer(serializers.Serializer):
    permission_key = serializers.CharField()
    is_directly_granted = serializers.BooleanField()
    derived_from = DerivedFromSerializer()


class UserDetailedPermissionsSerializer(serializers.Serializer):
    admin = serializers.BooleanField()
    is_directly_granted = serializers.BooleanField()
    derived_from = DerivedFromSerializer()
    permissions = DetailedPermissionSerializer(many=True)


class GrantedBySerializer(serializers.Serializer):
    via = serializers.ChoiceField(
        choices=[
            "organisation_admin",
            "project_admin",
            "environment_admin",
            "user",
            "group",
            "role",
        ]
    )
    group = serializers.IntegerField(allow_null=True)
    role = serializers.IntegerField(allow_null=True)
    scope = serializers.ChoiceField(choices=["organisation", "project", "environment"])
    tags_matched = serializers.ListField(child=serializers.IntegerField())


class BlockedBySerializer(serializers.Serializer):
    via = serializers.ChoiceField(choices=["user", "group", "role"])
    group = serializers.IntegerField(allow_null=True)
    role = serializers.IntegerField(allow_null=True)
    tags = serializers.ListField(child=serializers.IntegerField())
    why = serializers.ChoiceField(choices=["tag_mismatch", "restricted_tag"])


class ExplainSerializer(serializers.Serializer):
    permission = serializers.CharField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    granted_by = GrantedBySerializer(many=True)
    blocked_by = BlockedBySerializer(many=True)


class ExplainQuerySerializer(serializers.Serializer):
    """`?user=` (default: the caller) and `?permission=` (default: every environment key)."""

    user = serializers.IntegerField(required=False, min_value=1, max_value=INT64_MAX)
    permission = serializers.CharField(required=False)


# --------------------------------------------------------------------------------------
# Shapes of grant payloads
# --------------------------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class KeyListField(serializers.Field):
    """A list of permission keys (strings). The catalogue check is the service's."""

    default_error_messages = {
        "not_a_list": "Expected a list of permission keys.",
        "not_a_key": "Every permission must be a key string; got {value!r}.",
    }

    def to_internal_value(self, data: Any) -> list[EntryInput]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        for value in data:
            if not isinstance(value, str):
                self.fail("not_a_key", value=value)
        return [EntryInput(key=value) for value in data]

    def to_representation(self, value: Any) -> list[str]:
        return sorted(entry.key for entry in value.all())


@extend_schema_field(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "permission_key": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["permission_key"],
        },
    }
)
class EntryListField(serializers.Field):
    """A list of `{"permission_key", "tags": [ids]}` entries (tags default to none)."""

    default_error_messages = {
        "not_a_list": "Expected a list of {{permission_key, tags}} objects.",
        "not_an_entry": "Every entry must be an object with permission_key and tags; got {value!r}.",
        "unknown_fields": "Unknown field(s) in an entry: {names}.",
        "not_a_key": "permission_key must be a key string; got {value!r}.",
        "bad_tags": "tags of {name} must be a list of distinct integer tag ids; got {value!r}.",
    }

    def to_internal_value(self, data: Any) -> list[EntryInput]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        entries = []
        for item in data:
            if not isinstance(item, dict) or "permission_key" not in item:
                self.fail("not_an_entry", value=item)
            unknown = sorted(set(item) - {"permission_key", "tags"})
            if unknown:
                self.fail("unknown_fields", names=", ".join(unknown))
            key = item["permission_key"]
            if not isinstance(key, str):
                self.fail("not_a_key", value=key)
            tags = item.get("tags", [])
            if (
                not isinstance(tags, list)
                or not all(_is_int(t) for t in tags)
                or len(set(tags)) != len(tags)
            ):
                self.fail("bad_tags", name=key, value=tags)
            entries.append(EntryInput(key=key, tags=tuple(tags)))
        return entries

    def to_representation(self, value: Any) -> list[dict[str, Any]]:
        return sorted(
            (
                {
                    "permission_key": entry.key,
                    "tags": sorted(et.tag_id for et in entry.entry_tags.all()),
                }
                for entry in value.all()
            ),
            key=lambda e: e["permission_key"],
        )


# --------------------------------------------------------------------------------------
# User and group grants (organisation, project, environment)
# --------------------------------------------------------------------------------------


def _organisation_groups(context: dict[str, Any]) -> Any:
    return UserGroup.objects.filter(organisation=context["organisation"])


# A grant: on update (the grant in the context) its `fixed_field`, what holds it or what it is
# on, cannot change (a different one is a 400) and may be omitted. A comment, not a docstring:
# the schema would publish it as the description of every grant.
class _GrantSerializer(serializers.ModelSerializer):
    fixed_field = "user"

    class Meta:
        model = Grant
        fields: tuple[str, ...] = ()
        read_only_fields = ("id",)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.context.get("grant") is not None:
            fields[self.fixed_field].required = False
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        grant: Grant | None = self.context.get("grant")
        if grant is not None:
            reject_changed(self, self.fixed_field, getattr(grant, f"{self.fixed_field}_id"))
            reject_changed(self, "id", grant.pk)
        return attrs


class _PrincipalGrantSerializer(_GrantSerializer):
    """Reads and writes `{"id", <principal>, ["admin",] "permissions": [keys]}`. On update
    the principal cannot change (a different one is a 400) and may be omitted."""

    permissions = KeyListField(source="entries")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "admin" not in self.fields:
            _reject_organisation_admin(self)
        return super().validate(attrs)


def _reject_organisation_admin(serializer: serializers.Serializer) -> None:
    """Organisation grants hold no `admin` (that is the ADMIN membership): 400, not ignored."""
    initial = getattr(serializer, "initial_data", None)
    if isinstance(initial, dict) and initial.get("admin") not in (None, False):
        raise serializers.ValidationError(
            {"admin": ["Organisation grants cannot hold admin; make the user an ADMIN member."]}
        )


class UserGrantSerializer(_PrincipalGrantSerializer):
    user = IdField(help_text="A member of the organisation.")

    class Meta(_GrantSerializer.Meta):
        fields: tuple[str, ...] = ("id", "user", "permissions")


class GroupGrantSerializer(_PrincipalGrantSerializer):
    fixed_field = "group"
    group = IdField(_organisation_groups, model=UserGroup, help_text="A group of the organisation.")

    class Meta(_GrantSerializer.Meta):
        fields: tuple[str, ...] = ("id", "group", "permissions")


class UserScopeGrantSerializer(UserGrantSerializer):
    admin = serializers.BooleanField(default=False)

    class Meta(UserGrantSerializer.Meta):
        fields = ("id", "user", "admin", "permissions")


class GroupScopeGrantSerializer(GroupGrantSerializer):
    admin = serializers.BooleanField(default=False)

    class Meta(GroupGrantSerializer.Meta):
        fields = ("id", "group", "admin", "permissions")


# --------------------------------------------------------------------------------------
# Role grants
# --------------------------------------------------------------------------------------


class RoleOrganisationPermissionsSerializer(serializers.Serializer):
    permissions = KeyListField(help_text="Organisation keys; PUT replaces the set.")


class _RoleScopeGrantSerializer(_GrantSerializer):
    fixed_field = "project"
    admin = serializers.BooleanField(default=False)
    permissions = EntryListField(source="entries")


class RoleProjectGrantSerializer(_RoleScopeGrantSerializer):
    project = IdField(
        lambda context: Project.objects.filter(organisation=context["organisation"]),
        model=Project,
        help_text="A project of the role's organisation.",
    )

    class Meta(_GrantSerializer.Meta):
        fields = ("id", "project", "admin", "permissions")


class RoleEnvironmentGrantSerializer(_RoleScopeGrantSerializer):
    fixed_field = "environment"
    environment = IdField(
        lambda context: Environment.objects.filter(
            project__organisation=context["organisation"]
        ).select_related("project"),
        model=Environment,
        help_text="The id (not the api_key) of an environment of the role's organisation.",
    )

    class Meta(_GrantSerializer.Meta):
        fields = ("id", "environment", "admin", "permissions")
