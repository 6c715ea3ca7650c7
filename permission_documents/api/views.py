"""Permissions as code over HTTP (docs/PERMISSIONS_AS_CODE.md):

    GET  /organisations/{id}/permissions-document/          the document (JSON, ?format=yaml)
    POST /organisations/{id}/permissions-document/plan/     its changes and impact, nothing saved
    POST /organisations/{id}/permissions-document/apply/    applied in one transaction

Organisation admins only: 404 when the caller cannot view the organisation, 403 when it can
but is not an admin. Bodies are JSON or YAML (`Content-Type: application/yaml`); `?format=yaml`
(or `Accept: application/yaml`) answers YAML. The domain work is in `permission_documents.documents`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from impact.api.serializers import ImpactSerializer
from organisations.models import MembershipRole, Organisation
from permission_documents import documents
from permissions.drf import ADMIN, organisation_or_404
from tagwarden.api.base import (
    ADMIN_READ_ERRORS,
    BAD_REQUEST,
    IMPACT_LIMIT_PARAMETER,
    WRITE_ERRORS,
    ActionViewSet,
    actor_of,
    impact_limit_requested,
)
from tagwarden.api.parsers import JSONParser, StorableBodyMixin

# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------


class YAMLRenderer(BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        # Through JSON first: DRF's error details and return dicts are subclasses of str and
        # dict that the safe dumper refuses.
        plain = json.loads(json.dumps(data, cls=JSONEncoder))
        return documents.yaml_dump(plain).encode(self.charset)


class YAMLParser(StorableBodyMixin, BaseParser):
    media_type = "application/yaml"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return documents.yaml_load(stream.read().decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ParseError(f"YAML parse error - {exc}") from exc


# --------------------------------------------------------------------------------------
# The document's shape, for the OpenAPI schema (reading and checking it is the domain's)
# --------------------------------------------------------------------------------------


def _names(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), required=False, help_text=help_text)


def _permissions() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Permission key → tag labels ([] = untagged; only role grants carry tags).",
    )


class ProjectGrantDocumentSerializer(serializers.Serializer):
    project = serializers.CharField(help_text="Project name.")
    admin = serializers.BooleanField(required=False, default=False)
    permissions = _permissions()


class EnvironmentGrantDocumentSerializer(ProjectGrantDocumentSerializer):
    environment = serializers.CharField(help_text="Environment name within the project.")


class MemberDocumentSerializer(serializers.Serializer):
    email = serializers.CharField()
    role = serializers.ChoiceField(choices=MembershipRole.choices, required=False)


class GroupDocumentSerializer(serializers.Serializer):
    name = serializers.CharField()
    members = _names("Emails of members.")
    roles = _names("Role names (each role must list the group too).")


class RoleDocumentSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)
    users = _names("Emails of members.")
    groups = _names("Group names.")
    api_keys = _names("API key names.")
    organisation = _names("Organisation-level keys.")
    projects = ProjectGrantDocumentSerializer(many=True, required=False)
    environments = EnvironmentGrantDocumentSerializer(many=True, required=False)


class UserGrantsDocumentSerializer(serializers.Serializer):
    email = serializers.CharField()
    organisation = _names("Organisation-level keys.")
    projects = ProjectGrantDocumentSerializer(many=True, required=False)
    environments = EnvironmentGrantDocumentSerializer(many=True, required=False)


class GroupGrantsDocumentSerializer(serializers.Serializer):
    group = serializers.CharField()
    organisation = _names("Organisation-level keys.")
    projects = ProjectGrantDocumentSerializer(many=True, required=False)
    environments = EnvironmentGrantDocumentSerializer(many=True, required=False)


class RestrictedTagsDocumentSerializer(serializers.Serializer):
    project = serializers.CharField()
    tags = _names("Labels of the project's restricted tags.")


class PermissionsDocumentSerializer(serializers.Serializer):
    """The permissions document (docs/permissions-document.schema.json is its JSON Schema)."""

    organisation = serializers.CharField(help_text="The organisation's name (a safety check).")
    members = MemberDocumentSerializer(many=True)
    groups = GroupDocumentSerializer(many=True)
    roles = RoleDocumentSerializer(many=True)
    users = UserGrantsDocumentSerializer(many=True)
    group_grants = GroupGrantsDocumentSerializer(many=True)
    restricted_tags = RestrictedTagsDocumentSerializer(many=True)


class PermissionsDocumentInputSerializer(serializers.Serializer):
    """The document as a request body: its sections; each item's fields are those of the
    `PermissionsDocument` the GET answers (and of docs/permissions-document.schema.json)."""

    organisation = serializers.CharField()
    members = serializers.ListField(child=serializers.DictField())
    groups = serializers.ListField(child=serializers.DictField())
    roles = serializers.ListField(child=serializers.DictField())
    users = serializers.ListField(child=serializers.DictField())
    group_grants = serializers.ListField(child=serializers.DictField())
    restricted_tags = serializers.ListField(child=serializers.DictField())


class DocumentChangeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["create", "update", "delete"])
    object_type = serializers.CharField()
    name = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class DocumentPlanSerializer(serializers.Serializer):
    changes = DocumentChangeSerializer(many=True)
    impact = ImpactSerializer()


# --------------------------------------------------------------------------------------
# The views
# --------------------------------------------------------------------------------------

FORMAT_PARAMETER = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["json", "yaml"],
    description="Answer in YAML with `yaml` (JSON by default).",
)
INVALID_DOCUMENT = (
    "An invalid document, or one the services refuse, is a 400 whose keys are paths in the "
    "document (`roles[2].environments[0].permissions.VIEW_ENVIRONMENT`); nothing is applied."
)


class PermissionsDocumentViewSet(ActionViewSet):
    serializer_class = PermissionsDocumentSerializer
    renderer_classes = [JSONRenderer, YAMLRenderer]
    parser_classes = [JSONParser, YAMLParser]
    pagination_class = None
    filter_backends: list[Any] = []
    action_requirements = {"retrieve": ADMIN, "plan": ADMIN, "apply": ADMIN}

    scope_kwarg = "organisation_pk"

    def load_scope(self) -> Organisation:
        return organisation_or_404(self.request, self.kwargs[self.scope_kwarg])

    @extend_schema(
        summary="The organisation's permissions document (organisation admin)",
        description="Names, never ids; every list sorted, every object's keys sorted.",
        parameters=[FORMAT_PARAMETER],
        responses={200: PermissionsDocumentSerializer, 400: BAD_REQUEST, **ADMIN_READ_ERRORS},
    )
    def retrieve(self, request: Request, organisation_pk: int) -> Response:
        return Response(documents.permissions_document_export(organisation=self.get_scope()))

    @extend_schema(
        summary="The changes a permissions document would make, and their impact; nothing "
        "is saved (organisation admin)",
        description=INVALID_DOCUMENT,
        parameters=[FORMAT_PARAMETER, IMPACT_LIMIT_PARAMETER],
        request=PermissionsDocumentInputSerializer,
        responses={200: DocumentPlanSerializer, **WRITE_ERRORS},
    )
    def plan(self, request: Request, organisation_pk: int) -> Response:
        limit = impact_limit_requested(request)
        plan = documents.permissions_document_plan(
            organisation=self.get_scope(), document=request.data, actor=actor_of(request)
        )
        return Response(plan.as_dict(impact_limit=limit))

    @extend_schema(
        summary="Apply a permissions document in one transaction (organisation admin)",
        description=INVALID_DOCUMENT
        + " Applying the document just read, or the same document twice, changes nothing.",
        parameters=[FORMAT_PARAMETER, IMPACT_LIMIT_PARAMETER],
        request=PermissionsDocumentInputSerializer,
        responses={200: DocumentPlanSerializer, **WRITE_ERRORS},
    )
    def apply(self, request: Request, organisation_pk: int) -> Response:
        limit = impact_limit_requested(request)  # before anything is applied
        plan = documents.permissions_document_apply(
            organisation=self.get_scope(), document=request.data, actor=actor_of(request)
        )
        return Response(plan.as_dict(impact_limit=limit))
