"""Organisations, members, groups, roles, role assignments and API keys (docs/API.md,
"Organisations and members").

Views are thin: parse with a serializer, call one service or selector, render. Who may do
what is decided by the engine (through permissions.drf) and, for groups, by the service
guard `group_require_manager` (docs/PERMISSIONS.md, "Who may change grants"). Writes that can move permissions (members,
groups, role deletion and assignments, API keys) run inside `tagwarden.api.base.write_with_impact`
(`?dry_run=true` previews their impact, saving nothing).
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from organisations import models, selectors, services
from organisations.api import serializers
from permissions.drf import ADMIN, VIEW, Requirement
from tagwarden.api.base import (
    OrganisationScopedViewSet,
    ScopeViewSet,
    actor_of,
    no_content,
)
from tagwarden.api.schema import crud_schema

# --------------------------------------------------------------------------------------
# Organisations
# --------------------------------------------------------------------------------------


@crud_schema(
    {"list": "Organisations the caller is a member of"},
    bodies={
        "create": serializers.OrganisationWriteSerializer,
        "partial_update": serializers.OrganisationWriteSerializer,
    },
)
class OrganisationViewSet(ScopeViewSet, OrganisationScopedViewSet):
    scope_kwarg = "pk"
    model = models.Organisation
    serializer_class = serializers.OrganisationSerializer

    def rows(self) -> QuerySet[models.Organisation]:
        return selectors.organisations_of(principal=self.request.user)

    def create(self, request: Request) -> Response:
        """Create an organisation (any user; the creator becomes an ADMIN member)"""
        if isinstance(request.user, models.OrganisationAPIKey):
            raise PermissionDenied("API keys cannot create organisations.")
        data = self.parse(serializers.OrganisationWriteSerializer)
        organisation = services.organisation_create(
            name=data["name"], creator=cast(Any, request.user)
        )
        return self.created(organisation)

    def partial_update(self, request: Request, pk: int) -> Response:
        """Rename an organisation (organisation admin)"""
        data = self.parse(serializers.OrganisationWriteSerializer, partial=True)
        organisation = services.organisation_update(
            organisation=self.get_scope(), **data, actor=actor_of(request)
        )
        return self.answer(organisation)

    def destroy(self, request: Request, pk: int) -> Response:
        """Delete an organisation and everything in it (organisation admin)"""
        services.organisation_delete(organisation=self.get_scope(), actor=actor_of(request))
        return no_content()


# --------------------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------------------


@crud_schema(
    {"list": "Members of the organisation (every member may read)"},
    bodies={
        "create": serializers.MemberCreateSerializer,
        "partial_update": serializers.MemberUpdateSerializer,
    },
)
class MemberViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"create", "partial_update", "destroy"})
    model = models.OrganisationMembership
    serializer_class = serializers.MemberSerializer
    filterset_fields = ["role"]
    ordering_fields = ["user_id", "role", "created_at"]
    ordering = ["user_id"]
    action_requirements = {
        "list": VIEW,
        "create": ADMIN,
        "partial_update": ADMIN,
        "destroy": ADMIN,
    }

    def rows(self) -> QuerySet[models.OrganisationMembership]:
        return selectors.members_of(organisation=self.get_scope())

    def get_membership(self) -> models.OrganisationMembership:
        membership = selectors.membership_get(
            organisation=self.get_scope(), user_id=self.kwargs["user_id"]
        )
        if membership is None:
            raise Http404
        return membership

    def create(self, request: Request, organisation_pk: int) -> Response:
        """Add a member (organisation admin)"""
        data = self.parse(serializers.MemberCreateSerializer)
        return self.write(
            services.membership_create,
            organisation=self.get_scope(),
            user=data["user"],
            role=data["role"],
            respond=self.created,
        )

    def partial_update(self, request: Request, organisation_pk: int, user_id: int) -> Response:
        """Change a member's role (organisation admin; the last ADMIN stays)"""
        membership = self.get_membership()
        data = self.parse(serializers.MemberUpdateSerializer, context={"membership": membership})
        return self.write(
            services.membership_update,
            membership=membership,
            role=data["role"],
            respond=self.answer,
        )

    def destroy(self, request: Request, organisation_pk: int, user_id: int) -> Response:
        """Remove a member with their grants, group memberships and role assignments in the
        organisation (organisation admin; the last ADMIN stays)"""
        return self.write(
            services.membership_delete, membership=self.get_membership(), respond=no_content
        )


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------

GROUP_WRITE = (
    "Organisation admins; MANAGE_USER_GROUPS holders for groups holding no grant and no role."
)


@crud_schema(
    {"list": "Groups of the organisation (every member may read)"},
    bodies=dict.fromkeys(("create", "update", "partial_update"), serializers.GroupWriteSerializer),
    descriptions=dict.fromkeys(("update", "partial_update", "destroy"), GROUP_WRITE),
)
class GroupViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"create", "update", "partial_update", "destroy"})
    model = models.UserGroup
    serializer_class = serializers.GroupSerializer
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    # Writes: the service guard decides (it depends on the group's grants and roles).
    action_requirements = dict.fromkeys(
        ("list", "retrieve", "create", "update", "partial_update", "destroy"), VIEW
    )

    def rows(self) -> QuerySet[models.UserGroup]:
        return selectors.groups_of(organisation=self.get_scope())

    def _render(self, group: models.UserGroup, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=group.pk)
        return self.answer(fresh, status_code)

    def create(self, request: Request, organisation_pk: int) -> Response:
        """Create a group (organisation admin or MANAGE_USER_GROUPS)"""
        organisation = self.get_scope()
        services.group_require_manager(actor=actor_of(request), organisation=organisation)
        data = self.parse(serializers.GroupWriteSerializer)
        return self.write(
            services.group_create,
            organisation=organisation,
            name=data["name"],
            users=data.get("users", []),
            respond=lambda group: self._render(group, status.HTTP_201_CREATED),
        )

    def update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Replace a group's name and members"""
        return self._write(partial=False)

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Rename a group or replace its members"""
        return self._write(partial=True)

    def _write(self, *, partial: bool) -> Response:
        group = self.get_object()
        services.group_require_manager(
            actor=actor_of(self.request), organisation=self.get_scope(), group=group
        )
        data = self.parse(
            serializers.GroupWriteSerializer, partial=partial, context={"group": group}
        )
        if not partial and "users" not in data:
            data["users"] = []
        return self.write(services.group_update, group=group, **data, respond=self._render)

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Delete a group with its grants and role assignments"""
        return self.write(services.group_delete, group=self.get_object(), respond=no_content)


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

#: Roles and API keys are read and written by organisation admins only (docs/API.md).
ADMIN_ONLY: dict[str, Requirement] = dict.fromkeys(
    ("list", "create", "retrieve", "partial_update", "destroy"), ADMIN
)


@crud_schema(
    {"list": "Roles of the organisation (organisation admin)"},
    bodies=dict.fromkeys(("create", "partial_update"), serializers.RoleWriteSerializer),
)
class RoleViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"destroy"})
    model = models.Role
    serializer_class = serializers.RoleSerializer
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    action_requirements = ADMIN_ONLY

    def rows(self) -> QuerySet[models.Role]:
        return selectors.roles_of(organisation=self.get_scope())

    def create(self, request: Request, organisation_pk: int) -> Response:
        """Create a role (organisation admin)"""
        data = self.parse(serializers.RoleWriteSerializer)
        role = services.role_create(organisation=self.get_scope(), **data, actor=actor_of(request))
        return self.created(role)

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Edit a role (organisation admin)"""
        role = self.get_object()
        data = self.parse(serializers.RoleWriteSerializer, partial=True, context={"role": role})
        role = services.role_update(role=role, **data, actor=actor_of(request))
        return self.answer(role)

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Delete a role with its grants and assignments (organisation admin)"""
        return self.write(services.role_delete, role=self.get_object(), respond=no_content)


class RoleScopedViewSet(OrganisationScopedViewSet):
    """Base of the resources under `.../roles/{role_pk}/`: organisation admins only; a role
    of another organisation is a 404."""

    def get_role(self) -> models.Role:
        role: models.Role | None = getattr(self, "_role", None)
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
    model = models.RoleAssignment
    principal_kind = "user"
    action_requirements = {"list": ADMIN, "create": ADMIN, "destroy": ADMIN}
    ordering_fields = ["id"]
    ordering = ["id"]

    def get_serializer_class(self) -> type[BaseSerializer]:
        return serializers.ASSIGNMENT_SERIALIZERS[self.principal_kind]

    def rows(self) -> QuerySet[models.RoleAssignment]:
        return selectors.role_assignments_of(role=self.get_role(), kind=self.principal_kind)

    def create(self, request: Request, organisation_pk: int, role_pk: int) -> Response:
        data = self.parse(self.get_serializer_class())
        return self.write(
            services.role_assignment_create,
            role=self.get_role(),
            **{self.principal_kind: data[self.principal_kind]},
            respond=lambda assignment: Response(
                self.get_serializer_class()(assignment).data, status=status.HTTP_201_CREATED
            ),
        )

    def destroy(self, request: Request, organisation_pk: int, role_pk: int, pk: int) -> Response:
        return self.write(
            services.role_assignment_delete, assignment=self.get_object(), respond=no_content
        )


def _assignments(name: str, principal_kind: str, kind: str) -> type[RoleAssignmentViewSet]:
    """The role's assignments to principals of one kind (`kind` as the summaries say it)."""
    viewset = type(
        name,
        (RoleAssignmentViewSet,),
        {
            "__module__": __name__,
            "principal_kind": principal_kind,
            "serializer_class": serializers.ASSIGNMENT_SERIALIZERS[principal_kind],
        },
    )
    summaries = {
        "list": f"The role's assignments to {kind}s (organisation admin)",
        "create": f"Assign the role to a {kind} (organisation admin)",
        "destroy": "Remove an assignment, by its id (organisation admin)",
    }
    return cast(type[RoleAssignmentViewSet], crud_schema(summaries)(viewset))


RoleUserAssignmentViewSet = _assignments("RoleUserAssignmentViewSet", "user", "user")
RoleGroupAssignmentViewSet = _assignments("RoleGroupAssignmentViewSet", "group", "group")
RoleAPIKeyAssignmentViewSet = _assignments("RoleAPIKeyAssignmentViewSet", "api_key", "API key")


# --------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------


@crud_schema(
    {"list": "API keys of the organisation (organisation admin)"},
    bodies={
        "create": serializers.APIKeyCreateSerializer,
        "partial_update": serializers.APIKeyUpdateSerializer,
    },
    created=serializers.APIKeyCreatedSerializer,
)
class APIKeyViewSet(OrganisationScopedViewSet):
    dry_run_actions = frozenset({"partial_update", "destroy"})
    model = models.OrganisationAPIKey
    serializer_class = serializers.APIKeySerializer
    filterset_fields = ["revoked", "is_admin"]
    ordering_fields = ["id", "name", "created"]
    ordering = ["id"]
    action_requirements = ADMIN_ONLY

    def rows(self) -> QuerySet[models.OrganisationAPIKey]:
        return selectors.api_keys_of(organisation=self.get_scope())

    def create(self, request: Request, organisation_pk: int) -> Response:
        """Create an API key; the full key is in `key`, returned this once only"""
        data = self.parse(serializers.APIKeyCreateSerializer)
        api_key, key = services.api_key_create(
            organisation=self.get_scope(), **data, actor=actor_of(request)
        )
        api_key.key = key  # type: ignore[attr-defined]
        return Response(
            serializers.APIKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED
        )

    def partial_update(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Rename, revoke (for good) or change the expiry of a key (organisation admin)"""
        api_key = self.get_object()
        data = self.parse(serializers.APIKeyUpdateSerializer, context={"api_key": api_key})
        return self.write(
            services.api_key_update,
            api_key=api_key,
            **data,
            respond=self.answer,
        )

    def destroy(self, request: Request, organisation_pk: int, pk: int) -> Response:
        """Delete an API key (organisation admin)"""
        return self.write(services.api_key_delete, api_key=self.get_object(), respond=no_content)
