"""Parsing and rendering of organisations, members, groups, roles, role assignments and API
keys. Writes go through organisations.services; decisions are the engine's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from organisations import models

User = get_user_model()


# --------------------------------------------------------------------------------------
# Reference fields: integer ids, a 400 naming the field for anything else
# --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class IdField(serializers.PrimaryKeyRelatedField):
    """An integer id of an object in `queryset_for(context)`; a non-integer, an unknown id or
    one of another organisation is a 400 on the field."""

    default_error_messages = {
        "does_not_exist": "Unknown id {pk_value}.",
        "incorrect_type": "Incorrect type. Expected an integer id, received {data_type}.",
    }

    def __init__(
        self,
        queryset_for: Callable[[dict[str, Any]], QuerySet[Any]] | None = None,
        model: type[Model] | None = None,
        **kwargs: Any,
    ) -> None:
        self.queryset_for = queryset_for
        if kwargs.get("read_only"):
            super().__init__(**kwargs)
            return
        kwargs["queryset"] = (model or User)._default_manager.all()
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        if self.queryset_for is not None:
            return self.queryset_for(self.context)
        return cast(QuerySet[Any], super().get_queryset())

    def to_internal_value(self, data: Any) -> Any:
        if not _is_int(data):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class IdListField(serializers.Field):
    """A list of distinct integer ids of objects in `queryset_for(context)`, returned as the
    objects in the given order. Null, non-integer, unknown and duplicate ids are a 400 on the
    field: a list read from the API round-trips exactly."""

    default_error_messages = {
        "not_a_list": "Expected a list of integer ids.",
        "invalid_id": "Every item must be an integer id; got {value!r}.",
        "duplicate": "Id {value} is listed more than once.",
        "unknown": "Unknown id(s): {ids}.",
    }

    def __init__(self, queryset_for: Callable[[dict[str, Any]], QuerySet[Any]], **kwargs: Any):
        self.queryset_for = queryset_for
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        seen: set[int] = set()
        for value in data:
            if not _is_int(value):
                self.fail("invalid_id", value=value)
            if value in seen:
                self.fail("duplicate", value=value)
            seen.add(value)
        found = {obj.pk: obj for obj in self.queryset_for(self.context).filter(pk__in=data)}
        unknown = [value for value in data if value not in found]
        if unknown:
            self.fail("unknown", ids=", ".join(map(str, unknown)))
        return [found[value] for value in data]

    def to_representation(self, value: Any) -> list[int]:
        return sorted(obj.pk for obj in value.all())


def _organisation(context: dict[str, Any]) -> models.Organisation:
    return context["organisation"]


def reject_read_only(serializer: serializers.Serializer, *names: str) -> None:
    """Fields that exist but cannot be written: sending them is a 400, never ignored."""
    initial = getattr(serializer, "initial_data", None)
    if not isinstance(initial, dict):
        return
    errors = {name: ["This field cannot be changed."] for name in names if name in initial}
    if errors:
        raise serializers.ValidationError(errors)


def reject_changed(serializer: serializers.Serializer, field: str, current: Any) -> None:
    initial = getattr(serializer, "initial_data", None)
    if isinstance(initial, dict) and field in initial and initial[field] != current:
        raise serializers.ValidationError({field: ["This cannot be changed."]})


# The body of an edit, which may repeat the edited object's `id` but not change it (the object
# is in the context under `edited`; a create has none). A comment, not a docstring: the schema
# would publish it as the description of every body.
class SameIdSerializer(serializers.Serializer):
    edited = ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.context.get(self.edited)
        if current is not None:
            reject_changed(self, "id", current.pk)
        return attrs


# --------------------------------------------------------------------------------------
# Organisations
# --------------------------------------------------------------------------------------


class OrganisationSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.Organisation
        fields = ("id", "name", "created_at")
        read_only_fields = fields


class OrganisationWriteSerializer(SameIdSerializer):
    edited = "organisation"
    name = serializers.CharField(max_length=200)


# --------------------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    """A member: the user's id, email and username, and the membership role."""

    id = serializers.IntegerField(source="user_id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=models.MembershipRole.choices, read_only=True)

    class Meta:
        model = models.OrganisationMembership
        fields = ("id", "email", "username", "role")


class MemberCreateSerializer(serializers.Serializer):
    user = IdField(help_text="The id of an existing user.")
    role = serializers.ChoiceField(
        choices=models.MembershipRole.choices, default=models.MembershipRole.USER
    )


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=models.MembershipRole.choices)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        reject_read_only(self, "email", "username")
        reject_changed(self, "id", self.context["membership"].user_id)
        return attrs


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------


def _organisation_members(context: dict[str, Any]) -> QuerySet[Any]:
    # Every existing user: non-members are a 400 from the service, which names them.
    return User.objects.all()


class GroupSerializer(serializers.ModelSerializer):
    users = serializers.SerializerMethodField()

    class Meta:
        model = models.UserGroup
        fields = ("id", "name", "users")
        read_only_fields = fields

    def get_users(self, group: models.UserGroup) -> list[int]:
        return sorted(user.pk for user in group.users.all())


class GroupWriteSerializer(SameIdSerializer):
    edited = "group"
    name = serializers.CharField(max_length=200)
    users = IdListField(
        _organisation_members,
        required=False,
        help_text="Ids of members of the organisation (distinct, no nulls).",
    )


# --------------------------------------------------------------------------------------
# Roles and role assignments
# --------------------------------------------------------------------------------------


class RoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.Role
        fields = ("id", "name", "description")
        read_only_fields = fields


class RoleWriteSerializer(SameIdSerializer):
    edited = "role"
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")


def _in_organisation(model: type[Model]) -> Callable[[dict[str, Any]], QuerySet[Any]]:
    """An `IdField`'s rows: those of `model` in the context's organisation."""
    return lambda context: model._default_manager.filter(organisation=_organisation(context))


def _assignment_serializer(
    name: str, kind: str, principal: serializers.Field
) -> type[serializers.ModelSerializer]:
    """A role assignment to a principal of one kind: its id and the principal's."""
    meta = type(
        "Meta",
        (),
        {"model": models.RoleAssignment, "fields": ("id", kind), "read_only_fields": ("id",)},
    )
    attributes = {"__module__": __name__, kind: principal, "Meta": meta}
    return cast(
        type[serializers.ModelSerializer],
        serializers.SerializerMetaclass(name, (serializers.ModelSerializer,), attributes),
    )


ASSIGNMENT_SERIALIZERS: dict[str, type[serializers.ModelSerializer]] = {
    "user": _assignment_serializer(
        "UserAssignmentSerializer",
        "user",
        IdField(help_text="A member of the role's organisation."),
    ),
    "group": _assignment_serializer(
        "GroupAssignmentSerializer",
        "group",
        IdField(
            _in_organisation(models.UserGroup),
            model=models.UserGroup,
            help_text="A group of the role's organisation.",
        ),
    ),
    "api_key": _assignment_serializer(
        "APIKeyAssignmentSerializer",
        "api_key",
        IdField(
            _in_organisation(models.OrganisationAPIKey),
            model=models.OrganisationAPIKey,
            help_text="An API key of the role's organisation.",
        ),
    ),
}


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


class APIKeySerializer(serializers.ModelSerializer):
    expires_at = serializers.DateTimeField(source="expiry_date", allow_null=True, read_only=True)

    class Meta:
        model = models.OrganisationAPIKey
        fields: tuple[str, ...] = ("id", "name", "prefix", "is_admin", "expires_at", "revoked")
        read_only_fields: tuple[str, ...] = fields


class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key: shown this once only.")

    class Meta(APIKeySerializer.Meta):
        fields = (*APIKeySerializer.Meta.fields, "key")
        read_only_fields = fields


class APIKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    is_admin = serializers.BooleanField(default=False)
    expires_at = serializers.DateTimeField(allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        reject_read_only(self, "id", "prefix", "revoked", "key")
        return attrs


class APIKeyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50, required=False)
    revoked = serializers.BooleanField(required=False)
    expires_at = serializers.DateTimeField(allow_null=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        api_key = self.context["api_key"]
        reject_read_only(self, "key")
        for name in ("id", "prefix", "is_admin"):
            reject_changed(self, name, getattr(api_key, name))
        return attrs
