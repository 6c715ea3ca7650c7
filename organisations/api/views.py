"""Organisations, members, groups, roles, role assignments and API keys (docs/API.md,
"Organisations and members").

Views are thin: parse with a serializer, call one service or selector, render. Who may do
what is decided by the engine (through permissions.drf) and, for groups, by the service
guard `group_require_manager` (docs/PERMISSIONS.md, "Who may change grants"). Writes that can move permissions (members,
groups, role deletion and assignments, API keys) run inside `tagwarden.api.base.write_with_impact`
(`?dry_run=true` previews their impact, saving nothing).
"""

from __future__ import annotations

import functools
from typing import Any, cast

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from organisations import selectors, services
from organisations.api.serializers import (
    ASSIGNMENT_SERIALIZERS,
    APIKeyAssignmentSerializer,
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeySerializer,
    APIKeyUpdateSerializer,
    GroupAssignmentSerializer,
    GroupSerializer,
    GroupWriteSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrganisationSerializer,
    OrganisationWriteSerializer,
    RoleSerializer,
    RoleWriteSerializer,
    UserAssignmentSerializer,
)
from organisations.models import (
    Organisation,
    OrganisationAPIKey,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions.drf import ADMIN, VIEW, Requirement, organisation_or_404
from tagwarden.api.base import (
    ADMIN_LIST_ERRORS,
    ADMIN_READ_ERRORS,
    BAD_REQUEST,
    DELETE_ERRORS,
    DRY_RUN_PARAMETER,
    FORBIDDEN,
    IMPACT_RESPONSE,
    LIST_ERRORS,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ActionViewSet,
    actor_of,
    no_content,
    write_with_impact,
)
from tagwarden.api.dry_run import DRY_RUN_DELETE_ERRORS, or_impact


class OrganisationScopedViewSet(ActionViewSet):
    """Base of the resources nested under `/organisations/{organisation_pk}/`: the
    organisation is the scope (404 when the caller is not a member)."""

    scope_kwarg = "organisation_pk"

    scope_context_key = "organisation"

    def load_scope(self) -> Organisation:
        return organisation_or_404(self.request, self.kwargs[self.scope_kwarg])


# --------------------------------------------------------------------------------------
# Organisations
# --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Organisations the caller is a member of",
        responses={200: OrganisationSerializer, 400: BAD_REQUEST, 401: UNAUTHENTICATED},
    ),
    create=extend_schema(
        summary="Create an organisation (any user; the creator becomes an ADMIN member)",
        request=OrganisationWriteSerializer,
        responses={
            201: OrganisationSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    ),
    retrieve=extend_schema(responses={200: OrganisationSerializer, **READ_ERRORS}),
    partial_update=extend_schema(
        summary="Rename an organisation (organisation admin)",
        request=OrganisationWriteSerializer,
        responses={200: OrganisationSerializer, **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete an organisation and everything in it (organisation admin)",
        responses={204: None, **DELETE_ERRORS},
    ),
)
class OrganisationViewSet(OrganisationScopedViewSet):
    serializer_class = OrganisationSerializer
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    scope_kwarg = "pk"
    action_requirements = {"retrieve": VIEW, "partial_update": ADMIN, "destroy": ADMIN}
    authenticated_actions = ("list", "create")

    def get_queryset(self) -> QuerySet[Organisation]:
        if self.schema_only:
            return Organisation.objects.none()
        return selectors.organisations_of(principal=self.request.user)

    def list(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), OrganisationSerializer)

    def create(self, request: Request) -> Response:
        if isinstance(request.user, OrganisationAPIKey):
            raise PermissionDenied("API keys cannot create organisations.")
        data = self.parse(OrganisationWriteSerializer)
        organisation = services.organisation_create(
            name=data["name"], creator=cast(Any, request.user)
        )
        return Response(OrganisationSerializer(organisation).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: int) -> Response:
        return Response(OrganisationSerializer(self.get_scope()).data)

    def partial_update(self, request: Request, pk: int) -> Response:
        data = self.parse(OrganisationWriteSerializer, partial=True)
        organisation = services.organisation_update(
            organisation=self.get_scope(), **data, actor=actor_of(request)
        )
        return Response(OrganisationSerializer(organisation).data)

    def destroy(self, request: Request, pk: int) -> Response:
        services.organisation_delete(organisation=self.get_scope(), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Members of the organisation (every member may read)",
        responses={200: MemberSerializer, **LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Add a member (organisation admin)",
        parameters=[DRY_RUN_PARAMETER],
        request=MemberCreateSerializer,
        responses={201: MemberSerializer, 200: IMPACT_RESPONSE, **WRITE_ERRORS},
    ),
    partial_update=extend_schema(
        summary="Change a member's role (organisation admin; the last ADMIN stays)",
        parameters=[DRY_RUN_PARAMETER],
        request=MemberUpdateSerializer,
        responses={200: or_impact(MemberSerializer), **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Remove a member with their grants, group memberships and role assignments "
        "in the organisation (organisation admin; the last ADMIN stays)",
        parameters=[DRY_RUN_PARAMETER],
        responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS},
    ),
)
class MemberViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"create", "partial_update", "destroy"})
    serializer_class = MemberSerializer
    filterset_fields = ["role"]
    ordering_fields = ["user_id", "role", "created_at"]
    ordering = ["user_id"]
    action_requirements = {
        "list": VIEW,
        "create": ADMIN,
        "partial_update": ADMIN,
        "destroy": ADMIN,
    }

    def get_queryset(self) -> QuerySet[OrganisationMembership]:
        if self.schema_only:
            return OrganisationMembership.objects.none()
        return selectors.members_of(organisation=self.get_scope())

    def get_membership(self) -> OrganisationMembership:
        membership = selectors.membership_get(
            organisation=self.get_scope(), user_id=self.kwargs["user_id"]
        )
        if membership is None:
            raise Http404
        return membership

    def list(self, request: Request, organisation_pk: int) -> Response:
        return self.paginated(self.get_queryset(), MemberSerializer)

    def create(self, request: Request, organisation_pk: int) -> Response:
        data = self.parse(MemberCreateSerializer)
        organisation = self.get_scope()
        return write_with_impact(
            request,
            organisation_id=organisation.pk,
            change=functools.partial(
                services.membership_create,
                organisation=organisation,
                user=data["user"],
                role=data["role"],
                actor=actor_of(request),
            ),
            respond=lambda membership: Response(
                MemberSerializer(membership).data, status=status.HTTP_201_CREATED
            ),
        )

    def partial_update(self, request: Request, organisation_pk: int, user_id: int) -> Response:
        membership = self.get_membership()
        data = self.parse(MemberUpdateSerializer, context={"membership": membership})
        return write_with_impact(
            request,
            organisation_id=membership.organisation_id,
            change=functools.partial(
                services.membership_update,
                membership=membership,
                role=data["role"],
                actor=actor_of(request),
            ),
            respond=lambda updated: Response(MemberSerializer(updated).data),
        )

    def destroy(self, request: Request, organisation_pk: int, user_id: int) -> Response:
        membership = self.get_membership()
        return write_with_impact(
            request,
            organisation_id=membership.organisation_id,
            change=functools.partial(
                services.membership_delete, membership=membership, actor=actor_of(request)
            ),
            respond=no_content,
        )


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------

GROUP_WRITE = (
    "Organisation admins; MANAGE_USER_GROUPS holders for groups holding no grant and no role."
)


@extend_schema_view(
    list=extend_schema(
        summary="Groups of the organisation (every member may read)",
        responses={200: GroupSerializer, **LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Create a group (organisation admin or MANAGE_USER_GROUPS)",
        parameters=[DRY_RUN_PARAMETER],
        request=GroupWriteSerializer,
        responses={201: GroupSerializer, 200: IMPACT_RESPONSE, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: GroupSerializer, **READ_ERRORS}),
    update=extend_schema(
        summary="Replace a group's name and members",
        description=GROUP_WRITE,
        parameters=[DRY_RUN_PARAMETER],
        request=GroupWriteSerializer,
        responses={200: or_impact(GroupSerializer), **WRITE_ERRORS},
    ),
    partial_update=extend_schema(
        summary="Rename a group or replace its members",
        description=GROUP_WRITE,
        parameters=[DRY_RUN_PARAMETER],
        request=GroupWriteSerializer,
        responses={200: or_impact(GroupSerializer), **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a group with its grants and role assignments",
        description=GROUP_WRITE,
        parameters=[DRY_RUN_PARAMETER],
        responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS},
    ),
)
class GroupViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"create", "update", "partial_update", "destroy"})
    serializer_class = GroupSerializer
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    # Writes: the service guard decides (it depends on the group's grants and roles).
    action_requirements = {
        "list": VIEW,
        "retrieve": VIEW,
        "create": VIEW,
        "update": VIEW,
        "partial_update": VIEW,
        "destroy": VIEW,
    }

    def get_queryset(self) -> QuerySet[UserGroup]:
        if self.schema_only:
            return UserGroup.objects.none()
        return selectors.groups_of(organisation=self.get_scope())

    def _render(self, group: UserGroup, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=group.pk)
        return Response(GroupSerializer(fresh).data, status=status_code)

    def list(self, request: Request, organisation_pk: int) -> Response:
        return self.paginated(self.get_queryset(), GroupSerializer)

    def create(self, request: Request, organisation_pk: int) -> Response:
        organisation = self.get_scope()
        services.group_require_manager(actor=actor_of(request), organisation=organisation)
        data = self.parse(GroupWriteSerializer)
        return write_with_impact(
            request,
            organisation_id=organisation.pk,
            change=functools.partial(
                services.group_create,
                organisation=organisation,
                name=data["name"],
                users=data.get("users", []),
                actor=actor_of(request),
            ),
            respond=lambda group: self._render(group, status.HTTP_201_CREATED),
        )

    def retrieve(self, request: Request, organisation_pk: int, pk: int) -> Response:
        return Response(GroupSerializer(self.get_object()).data)

    def update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        return self._write(partial=False)

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        return self._write(partial=True)

    def _write(self, *, partial: bool) -> Response:
        group = self.get_object()
        services.group_require_manager(
            actor=actor_of(self.request), organisation=self.get_scope(), group=group
        )
        data = self.parse(GroupWriteSerializer, partial=partial, context={"group": group})
        if not partial and "users" not in data:
            data["users"] = []
        return write_with_impact(
            self.request,
            organisation_id=group.organisation_id,
            change=functools.partial(
                services.group_update, group=group, **data, actor=actor_of(self.request)
            ),
            respond=lambda updated: self._render(updated),
        )

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        group = self.get_object()
        return write_with_impact(
            request,
            organisation_id=group.organisation_id,
            change=functools.partial(services.group_delete, group=group, actor=actor_of(request)),
            respond=no_content,
        )


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

#: Roles and API keys are read and written by organisation admins only (docs/API.md).
ADMIN_ONLY: dict[str, Requirement] = {
    "list": ADMIN,
    "create": ADMIN,
    "retrieve": ADMIN,
    "partial_update": ADMIN,
    "destroy": ADMIN,
}


@extend_schema_view(
    list=extend_schema(
        summary="Roles of the organisation (organisation admin)",
        responses={200: RoleSerializer, **ADMIN_LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Create a role (organisation admin)",
        request=RoleWriteSerializer,
        responses={201: RoleSerializer, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: RoleSerializer, **ADMIN_READ_ERRORS}),
    partial_update=extend_schema(
        summary="Edit a role (organisation admin)",
        request=RoleWriteSerializer,
        responses={200: RoleSerializer, **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a role with its grants and assignments (organisation admin)",
        parameters=[DRY_RUN_PARAMETER],
        responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS},
    ),
)
class RoleViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"destroy"})
    serializer_class = RoleSerializer
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    action_requirements = ADMIN_ONLY

    def get_queryset(self) -> QuerySet[Role]:
        if self.schema_only:
            return Role.objects.none()
        return selectors.roles_of(organisation=self.get_scope())

    def list(self, request: Request, organisation_pk: int) -> Response:
        return self.paginated(self.get_queryset(), RoleSerializer)

    def create(self, request: Request, organisation_pk: int) -> Response:
        data = self.parse(RoleWriteSerializer)
        role = services.role_create(organisation=self.get_scope(), **data, actor=actor_of(request))
        return Response(RoleSerializer(role).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, organisation_pk: int, pk: int) -> Response:
        return Response(RoleSerializer(self.get_object()).data)

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        role = self.get_object()
        data = self.parse(RoleWriteSerializer, partial=True, context={"role": role})
        role = services.role_update(role=role, **data, actor=actor_of(request))
        return Response(RoleSerializer(role).data)

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        role = self.get_object()
        return write_with_impact(
            request,
            organisation_id=role.organisation_id,
            change=functools.partial(services.role_delete, role=role, actor=actor_of(request)),
            respond=no_content,
        )


class RoleScopedViewSet(OrganisationScopedViewSet):
    """Base of the resources under `.../roles/{role_pk}/`: organisation admins only; a role
    of another organisation is a 404."""

    def get_role(self) -> Role:
        role: Role | None = getattr(self, "_role", None)
        if role is None:
            role = (
                selectors.roles_of(organisation=self.get_scope())
                .filter(pk=self.kwargs["role_pk"])
                .first()
            )
            if role is None:
                raise Http404
            self._role = role
        return role

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not self.schema_only and "role_pk" in self.kwargs:
            context["role"] = self.get_role()
        return context


# --------------------------------------------------------------------------------------
# Role assignments
# --------------------------------------------------------------------------------------


class RoleAssignmentViewSet(RoleScopedViewSet):
    """`.../roles/{role_pk}/users|groups|api-keys/`: the role's assignments of one kind."""

    dry_run_actions = frozenset({"create", "destroy"})

    principal_kind = "user"
    action_requirements = {"list": ADMIN, "create": ADMIN, "destroy": ADMIN}
    ordering_fields = ["id"]
    ordering = ["id"]

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ASSIGNMENT_SERIALIZERS[self.principal_kind]

    def get_queryset(self) -> QuerySet[RoleAssignment]:
        if self.schema_only:
            return RoleAssignment.objects.none()
        return selectors.role_assignments_of(role=self.get_role(), kind=self.principal_kind)

    def list(self, request: Request, organisation_pk: int, role_pk: int) -> Response:
        return self.paginated(self.get_queryset(), self.get_serializer_class())

    def create(self, request: Request, organisation_pk: int, role_pk: int) -> Response:
        data = self.parse(self.get_serializer_class())
        role = self.get_role()
        return write_with_impact(
            request,
            organisation_id=role.organisation_id,
            change=functools.partial(
                services.role_assignment_create,
                role=role,
                **{self.principal_kind: data[self.principal_kind]},
                actor=actor_of(request),
            ),
            respond=lambda assignment: Response(
                self.get_serializer_class()(assignment).data, status=status.HTTP_201_CREATED
            ),
        )

    def destroy(self, request: Request, organisation_pk: int, role_pk: int, pk: int) -> Response:
        assignment = self.get_object()
        return write_with_impact(
            request,
            organisation_id=self.get_role().organisation_id,
            change=functools.partial(
                services.role_assignment_delete, assignment=assignment, actor=actor_of(request)
            ),
            respond=no_content,
        )


def _assignment_schema(serializer: type[BaseSerializer], kind: str) -> Any:
    return extend_schema_view(
        list=extend_schema(
            summary=f"The role's assignments to {kind}s (organisation admin)",
            responses={200: serializer, **ADMIN_LIST_ERRORS},
        ),
        create=extend_schema(
            summary=f"Assign the role to a {kind} (organisation admin)",
            parameters=[DRY_RUN_PARAMETER],
            request=serializer,
            responses={201: serializer, 200: IMPACT_RESPONSE, **WRITE_ERRORS},
        ),
        destroy=extend_schema(
            summary="Remove an assignment, by its id (organisation admin)",
            parameters=[DRY_RUN_PARAMETER],
            responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS},
        ),
    )


@_assignment_schema(UserAssignmentSerializer, "user")
class RoleUserAssignmentViewSet(RoleAssignmentViewSet):
    principal_kind = "user"


@_assignment_schema(GroupAssignmentSerializer, "group")
class RoleGroupAssignmentViewSet(RoleAssignmentViewSet):
    principal_kind = "group"


@_assignment_schema(APIKeyAssignmentSerializer, "API key")
class RoleAPIKeyAssignmentViewSet(RoleAssignmentViewSet):
    principal_kind = "api_key"


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="API keys of the organisation (organisation admin)",
        responses={200: APIKeySerializer, **ADMIN_LIST_ERRORS},
    ),
    create=extend_schema(
        summary="Create an API key; the full key is in `key`, returned this once only",
        request=APIKeyCreateSerializer,
        responses={201: APIKeyCreatedSerializer, **WRITE_ERRORS},
    ),
    retrieve=extend_schema(responses={200: APIKeySerializer, **ADMIN_READ_ERRORS}),
    partial_update=extend_schema(
        summary="Rename, revoke (for good) or change the expiry of a key (organisation admin)",
        parameters=[DRY_RUN_PARAMETER],
        request=APIKeyUpdateSerializer,
        responses={200: or_impact(APIKeySerializer), **WRITE_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete an API key (organisation admin)",
        parameters=[DRY_RUN_PARAMETER],
        responses={204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS},
    ),
)
class APIKeyViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"partial_update", "destroy"})
    serializer_class = APIKeySerializer
    filterset_fields = ["revoked", "is_admin"]
    ordering_fields = ["id", "name", "created"]
    ordering = ["id"]
    action_requirements = ADMIN_ONLY

    def get_queryset(self) -> QuerySet[OrganisationAPIKey]:
        if self.schema_only:
            return OrganisationAPIKey.objects.none()
        return selectors.api_keys_of(organisation=self.get_scope())

    def list(self, request: Request, organisation_pk: int) -> Response:
        return self.paginated(self.get_queryset(), APIKeySerializer)

    def create(self, request: Request, organisation_pk: int) -> Response:
        data = self.parse(APIKeyCreateSerializer)
        api_key, key = services.api_key_create(
            organisation=self.get_scope(), **data, actor=actor_of(request)
        )
        api_key.key = key  # type: ignore[attr-defined]
        return Response(APIKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, organisation_pk: int, pk: int) -> Response:
        return Response(APIKeySerializer(self.get_object()).data)

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        api_key = self.get_object()
        data = self.parse(APIKeyUpdateSerializer, context={"api_key": api_key})
        return write_with_impact(
            request,
            organisation_id=api_key.organisation_id,
            change=functools.partial(
                services.api_key_update, api_key=api_key, **data, actor=actor_of(request)
            ),
            respond=lambda updated: Response(APIKeySerializer(updated).data),
        )

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        api_key = self.get_object()
        return write_with_impact(
            request,
            organisation_id=api_key.organisation_id,
            change=functools.partial(
                services.api_key_delete, api_key=api_key, actor=actor_of(request)
            ),
            respond=no_content,
        )
