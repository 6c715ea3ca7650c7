"""The catalogue, the permission reports (my-permissions, user-detailed-permissions, explain)
and grants: user and group grants of organisations, projects and environments, and role
grants (docs/PERMISSIONS.md, "The catalogue" and
"Who may change grants"; docs/API.md).

Every decision is the engine's; every write goes through `permissions.services`, inside
`tagwarden.api.base.write_with_impact`: `?dry_run=true` previews its impact and saves nothing.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from features.models import Feature
from impact.grant_writes import grant_holder
from organisations.api.views import RoleScopedViewSet
from organisations.models import OrganisationAPIKey
from organisations.selectors import is_member
from permissions import engine, reports, selectors, services
from permissions.api.serializers import (
    CatalogueEntrySerializer,
    ExplainQuerySerializer,
    ExplainSerializer,
    GroupGrantSerializer,
    GroupScopeGrantSerializer,
    MyPermissionsSerializer,
    RoleEnvironmentGrantSerializer,
    RoleOrganisationPermissionsSerializer,
    RoleProjectGrantSerializer,
    UserDetailedPermissionsSerializer,
    UserGrantSerializer,
    UserScopeGrantSerializer,
)
from permissions.catalogue import CATALOGUE, Level, specs_for
from permissions.drf import (
    ADMIN,
    environment_or_404,
    organisation_or_404,
    project_or_404,
)
from permissions.models import Grant
from tagwarden.api.base import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    READ_ERRORS,
    UNAUTHENTICATED,
    OrganisationScopedViewSet,
    no_content,
    organisation_id_of,
)
from tagwarden.api.schema import crud_schema
from tagwarden.storable import INT64_MAX, INT64_MIN

User = get_user_model()

Scope = Any  # Organisation | Project | Environment


# --------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------


class CatalogueView(APIView):
    """`GET /{organisations|projects|environments}/permissions/`: the keys of one level."""

    level: Level = Level.ORGANISATION
    pagination_class = None

    @extend_schema(
        summary="The permission catalogue of one level (plain list)",
        responses={200: CatalogueEntrySerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "key": spec.key,
                    "description": spec.description,
                    "supports_tag": spec.supports_tag,
                }
                for spec in specs_for(self.level)
            ]
        )


# --------------------------------------------------------------------------------------
# my-permissions, user-detailed-permissions, explain
# --------------------------------------------------------------------------------------


def _scope_from_kwargs(request: Request, kwargs: dict[str, Any]) -> Any:
    """The scope addressed by the URL (404 when the caller cannot view it)."""
    if "api_key" in kwargs:
        return environment_or_404(request, kwargs["api_key"])
    if "project_pk" in kwargs:
        return project_or_404(request, kwargs["project_pk"])
    return organisation_or_404(request, kwargs["organisation_pk"])


class MyPermissionsView(APIView):
    """`GET .../my-permissions/`: what the caller holds on the scope."""

    @extend_schema(
        summary="The caller's permissions on this scope",
        responses={200: MyPermissionsSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, **kwargs: Any) -> Response:
        scope = _scope_from_kwargs(request, kwargs)
        return Response(reports.my_permissions(request.user, scope))


def _is_self(request: Request, user_id: int) -> bool:
    return not isinstance(request.user, OrganisationAPIKey) and request.user.pk == user_id


def _member_or_404(scope: Any, user_id: int) -> Any:
    user = User.objects.filter(pk=user_id).first()
    if user is None or not is_member(organisation=organisation_id_of(scope), user_id=user_id):
        raise Http404
    return user


class UserDetailedPermissionsView(APIView):
    """`GET .../user-detailed-permissions/{user_id}/`: where each of a user's keys on a
    project or environment comes from. The user themself, or an admin of that scope."""

    @extend_schema(
        summary="Where each of a user's keys on this scope comes from",
        description="Readable by the user themself and by the admins of the scope.",
        responses={
            200: UserDetailedPermissionsSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, user_id: int, **kwargs: Any) -> Response:
        scope = _scope_from_kwargs(request, kwargs)
        if not (_is_self(request, user_id) or engine.is_admin(request.user, scope)):
            raise PermissionDenied("Only the user themself and admins of this scope may read this.")
        user = _member_or_404(scope, user_id)
        return Response(reports.user_detailed_permissions(user, scope))


class ExplainView(APIView):
    """`GET /environments/{api_key}/features/{feature_id}/explain/?user=&permission=`."""

    @extend_schema(
        summary="Why a user may or may not use a key on a feature in this environment",
        description=(
            "Readable by the user themself and by environment admins. Without `permission`: "
            "a plain list with one explanation per environment key."
        ),
        parameters=[
            OpenApiParameter(
                "user", OpenApiTypes.INT, description="A user id (default: the caller)."
            ),
            OpenApiParameter(
                "permission",
                OpenApiTypes.STR,
                description="An environment key (default: every environment key).",
            ),
        ],
        responses={
            # Without `permission`, a plain list of these (docs/API.md): the schema says
            # oneOf(Explain, [Explain]) through tagwarden.api.schema.explain_one_or_many.
            200: ExplainSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, api_key: str, feature_id: int) -> Response:
        environment = environment_or_404(request, api_key)
        feature = Feature.objects.filter(pk=feature_id, project_id=environment.project_id).first()
        if feature is None:
            raise Http404
        query = ExplainQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user_id = query.validated_data.get("user")
        if user_id is None:
            if isinstance(request.user, OrganisationAPIKey):
                raise ValidationError({"user": ["Give the id of the user to explain."]})
            user_id = request.user.pk
        if not (_is_self(request, user_id) or engine.is_admin(request.user, environment)):
            raise PermissionDenied("Only the user themself and environment admins may read this.")
        user = _member_or_404(environment, user_id)
        key = query.validated_data.get("permission", request.query_params.get("permission"))
        if key is None:
            return Response(reports.explain_all(user, environment, feature))
        spec = CATALOGUE.get(key)
        if spec is None or spec.level != Level.ENVIRONMENT:
            raise ValidationError(
                {"permission": [f"{key!r} is not an environment permission key."]}
            )
        return Response(reports.explain(user, key, environment, feature))


# --------------------------------------------------------------------------------------
# User and group grants of a scope
# --------------------------------------------------------------------------------------


class GrantViewSet(OrganisationScopedViewSet):
    """What every grant endpoint shares (user, group and role grants): read one, list, edit,
    delete, all answering with `serializer_class`; subclasses say how a grant is created."""

    dry_run_actions = frozenset({"create", "update", "partial_update", "destroy"})
    model = Grant
    action_requirements = dict.fromkeys(
        ("list", "create", "retrieve", "update", "partial_update", "destroy"), ADMIN
    )
    ordering_fields = ["id"]
    ordering = ["id"]

    def _render(self, grant: Grant, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=grant.pk)
        return Response(self.get_serializer_class()(fresh).data, status=status_code)

    def update(self, request: Request, **kwargs: Any) -> Response:
        return self._write(partial=False)

    def partial_update(self, request: Request, **kwargs: Any) -> Response:
        return self._write(partial=True)

    def _write(self, *, partial: bool) -> Response:
        grant = self.get_object()
        data = self.parse(self.get_serializer_class(), partial=partial, context={"grant": grant})
        return self.write(
            services.grant_update,
            grant=grant,
            entries=data.get("entries"),
            admin=data.get("admin"),
            respond=self._render,
            organisation_id=grant.organisation_id,
            grants_of=grant_holder(grant),
        )

    def destroy(self, request: Request, **kwargs: Any) -> Response:
        grant = self.get_object()
        return self.write(
            services.grant_delete,
            grant=grant,
            respond=no_content,
            organisation_id=grant.organisation_id,
            grants_of=grant_holder(grant),
        )


class PrincipalGrantViewSet(GrantViewSet):
    """`.../user-permissions/` and `.../user-group-permissions/` of an organisation, a project
    or an environment. Read and written by the admins of that scope only."""

    principal_kind = "user"
    serializer_class: type[BaseSerializer] = UserGrantSerializer

    scope_context_key = ""  # the scope's organisation instead, below

    def load_scope(self) -> Any:
        return _scope_from_kwargs(self.request, self.kwargs)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not self.schema_only:
            scope = self.get_scope()
            context["organisation"] = services.scope_parts(scope).organisation
        return context

    def rows(self) -> QuerySet[Grant]:
        return selectors.grants_of_scope(scope=self.get_scope(), principal_kind=self.principal_kind)

    def create(self, request: Request, **kwargs: Any) -> Response:
        data = self.parse(self.serializer_class)
        return self.write(
            services.grant_create,
            principal=data[self.principal_kind],
            scope=self.get_scope(),
            entries=data["entries"],
            admin=data.get("admin", False),
            respond=lambda grant: self._render(grant, status.HTTP_201_CREATED),
            grants_of=(self.principal_kind, data[self.principal_kind].pk),
        )


def _principal_grant_viewset(level: Level, principal_kind: str) -> type[PrincipalGrantViewSet]:
    """The user or group grants of one scope level, written by that scope's admins."""
    serializers = {
        (Level.ORGANISATION, "user"): UserGrantSerializer,
        (Level.ORGANISATION, "group"): GroupGrantSerializer,
    }
    serializer = serializers.get(
        (level, principal_kind),
        UserScopeGrantSerializer if principal_kind == "user" else GroupScopeGrantSerializer,
    )
    viewset = type(
        f"{level.title()}{principal_kind.title()}GrantViewSet",
        (PrincipalGrantViewSet,),
        {"__module__": __name__, "principal_kind": principal_kind, "serializer_class": serializer},
    )
    who = f"{level} admin"
    summaries = {
        "list": f"Grants of this scope ({who})",
        "create": f"Create a grant ({who})",
        "update": f"Replace a grant ({who})",
        "partial_update": f"Change a grant ({who})",
        "destroy": f"Delete a grant ({who})",
    }
    return cast(type[PrincipalGrantViewSet], crud_schema(summaries)(viewset))


#: The user and group grants of each scope level: `[level, principal kind]`.
PRINCIPAL_GRANT_VIEWSETS = {
    (level, kind): _principal_grant_viewset(level, kind)
    for level in Level
    for kind in ("user", "group")
}


# --------------------------------------------------------------------------------------
# Role grants
# --------------------------------------------------------------------------------------


@crud_schema({})
class RoleOrganisationPermissionsViewSet(RoleScopedViewSet):
    dry_run_actions = frozenset({"update"})
    serializer_class = RoleOrganisationPermissionsSerializer
    action_requirements = {"retrieve": ADMIN, "update": ADMIN}
    pagination_class = None

    def _render(self) -> Response:
        return Response({"permissions": selectors.role_organisation_keys(role=self.get_role())})

    def retrieve(self, request: Request, **kwargs: Any) -> Response:
        """The role's organisation keys (organisation admin)"""
        return self._render()

    def update(self, request: Request, **kwargs: Any) -> Response:
        """Replace the role's organisation keys (organisation admin)"""
        data = self.parse(RoleOrganisationPermissionsSerializer)
        role = self.get_role()
        return self.write(
            services.role_organisation_permissions_set,
            role=role,
            keys=[e.key for e in data["permissions"]],
            respond=lambda _: self._render(),
            grants_of=("role", role.pk),
        )


class RoleScopeGrantViewSet(RoleScopedViewSet, GrantViewSet):
    """`.../roles/{role_pk}/projects-permissions/` and `.../environments-permissions/`."""

    level = Level.PROJECT
    scope_field = "project"
    serializer_class: type[BaseSerializer] = RoleProjectGrantSerializer

    def rows(self) -> QuerySet[Grant]:
        return selectors.role_grants(role=self.get_role(), level=self.level)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        if self.action != "list":
            return queryset
        value = self.request.query_params.get(self.scope_field)
        if value is None:
            return queryset
        try:
            scope_id = int(value)
            if not INT64_MIN <= scope_id <= INT64_MAX:  # docs/API.md, Conventions
                raise ValueError(value)
        except ValueError:
            raise ValidationError({self.scope_field: ["Expected an integer id."]}) from None
        return queryset.filter(**{f"{self.scope_field}_id": scope_id})

    def create(self, request: Request, **kwargs: Any) -> Response:
        data = self.parse(self.serializer_class)
        role = self.get_role()
        return self.write(
            services.grant_create,
            principal=role,
            scope=data[self.scope_field],
            entries=data["entries"],
            admin=data.get("admin", False),
            respond=lambda grant: self._render(grant, status.HTTP_201_CREATED),
            grants_of=("role", role.pk),
        )


def _role_grant_schema(scope: str) -> Any:
    tagged = (
        "Only role grants carry tags, per key; a tagged entry whose key does not support tags "
        "is a 400 whose `permissions` error names each offending key."
    )
    return crud_schema(
        {
            "list": f"The role's {scope} grants (organisation admin)",
            "create": f"Give the role keys on a {scope} (organisation admin)",
            "update": f"Replace a role's {scope} grant (organisation admin)",
            "partial_update": f"Change a role's {scope} grant (organisation admin)",
            "destroy": f"Delete a role's {scope} grant (organisation admin)",
        },
        descriptions=dict.fromkeys(("create", "update", "partial_update"), tagged),
        list={
            "parameters": [
                OpenApiParameter(scope, OpenApiTypes.INT, description=f"Only this {scope} id.")
            ]
        },
    )


@_role_grant_schema("project")
class RoleProjectGrantViewSet(RoleScopeGrantViewSet):
    level = Level.PROJECT
    scope_field = "project"
    serializer_class = RoleProjectGrantSerializer


@_role_grant_schema("environment")
class RoleEnvironmentGrantViewSet(RoleScopeGrantViewSet):
    level = Level.ENVIRONMENT
    scope_field = "environment"
    serializer_class = RoleEnvironmentGrantSerializer
