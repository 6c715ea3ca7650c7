"""Shared API building blocks: the base viewset, the actor of a request, the error responses
every view documents in the OpenAPI schema, and the input policy every request body goes
through (docs/API.md, Conventions: "No input gives a 500"; with tagwarden.api.parsers)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from environments.models import Environment
from impact.api.serializers import ImpactResponseSerializer
from impact.changes import IMPACT_LIMIT_DEFAULT, IMPACT_LIMIT_MAX, Impact
from impact.feature_writes import FeatureWrite
from impact.previews import impact_apply, impact_preview
from impact.snapshots import Holder
from permissions.drf import (
    ADMIN,
    VIEW,
    Requirement,
    ScopedActionPermission,
    assert_filtered,
    check_action_requirements,
    environment_or_404,
    filter_by_requirement,
    organisation_or_404,
    project_or_404,
)
from projects.models import Project
from tagwarden.api.autoschema import ActionSchema
from tagwarden.storable import json_too_large, unstorable

T = TypeVar("T")


class ErrorResponseSerializer(serializers.Serializer):
    """`{"detail", "code"}`: every error that is not a 400 (docs/API.md, Errors)."""

    detail = serializers.CharField()
    code = serializers.CharField()


def actor_of(request: Request) -> Actor:
    """The authenticated principal (a user or an organisation API key) as a service actor."""
    return cast(Actor, request.user)


def organisation_id_of(scope: Any) -> int:
    """The organisation of an organisation, a project or an environment (its project loaded)."""
    if isinstance(scope, Environment):
        return int(scope.project.organisation_id)
    if isinstance(scope, Project):
        return int(scope.organisation_id)
    return int(scope.pk)


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


BAD_REQUEST = OpenApiResponse(OpenApiTypes.OBJECT, description='Invalid input: {"field": [...]}')
UNAUTHENTICATED = error_response("No credentials.")
FORBIDDEN = error_response("The caller may view the scope but not do this.")
NOT_FOUND = error_response("Not found, or the caller may not view it.")
READ_ERRORS = {401: UNAUTHENTICATED, 404: NOT_FOUND}
LIST_ERRORS = {400: BAD_REQUEST, **READ_ERRORS}
WRITE_ERRORS = {400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}
DELETE_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}
# What only a scope's admins read: a member who is not one gets a 403.
ADMIN_READ_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}
ADMIN_LIST_ERRORS = {400: BAD_REQUEST, **ADMIN_READ_ERRORS}


# --------------------------------------------------------------------------------------
# Input policy: what the databases cannot store never reaches a service (the body as a
# whole: tagwarden.api.parsers; JSON values stored as sent: StoredJSONField)
# --------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "description": "Any JSON value, null included; its compact UTF-8 encoding is at "
        "most 64 KiB.",
        "nullable": True,
    }
)
class StoredJSONField(serializers.JSONField):
    """A JSON value stored as sent (a feature state's `value`, a segment's `rules`): beyond
    the body's policy, at most 64 KiB encoded (`tagwarden.storable.MAX_JSON_BYTES`)."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        problem = unstorable(value)
        if problem is not None:
            raise serializers.ValidationError(f"Cannot be stored as sent: {problem}.")
        too_large = json_too_large(value)
        if too_large is not None:
            raise serializers.ValidationError(too_large)
        return value


#: How a scope is found from the request and its URL keyword (404 when the caller cannot view
#: it: docs/API.md, Errors).
SCOPE_LOOKUPS: dict[str, Callable[[Request, Any], Any]] = {
    "organisation": organisation_or_404,
    "project": project_or_404,
    "environment": environment_or_404,
}


def viewers_read(write: Requirement | None = None, **writes: Requirement) -> dict[str, Requirement]:
    """`action_requirements` where VIEW on the scope lists and retrieves, and `write` (or
    `writes[action]`) allows create, partial_update and destroy."""
    every_write = dict.fromkeys(("create", "partial_update", "destroy"), write) if write else {}
    return {"list": VIEW, "retrieve": VIEW, **every_write, **writes}


# Base of every API viewset: actions map to requirements (`action_requirements`, checked by
# the engine through ScopedActionPermission); a method the route does not map is a 405 (not a
# 403 from the permission class, which denies unmapped actions); OPTIONS only needs
# authentication. A subclass names the scope its URL addresses in its class line
# (`class X(ActionViewSet, scope="project", scope_kwarg="pk")`): `get_scope` finds it once
# per request and the serializers get it in their context under its name. Reads answer
# `rows()` (none of `model` while the schema is built); `list` and `retrieve` serialise them
# with `serializer_class`. (A comment, not a docstring: drf-spectacular would publish a
# docstring as the description of every operation that has none.)
class ActionViewSet(viewsets.GenericViewSet):
    schema = ActionSchema()
    action_requirements: dict[str, Requirement] = {}
    #: actions checked by authentication alone (their handlers check what they need)
    authenticated_actions: tuple[str, ...] = ()
    #: write actions that honour `?dry_run=true` (through `write_with_impact`)
    dry_run_actions: frozenset[str] = frozenset()
    #: the scope's level (a key of SCOPE_LOOKUPS; "" none) and the URL keyword naming it
    scope_level: str = ""
    scope_kwarg: str = ""
    #: the serializer context key the scope is passed under ("": not passed)
    scope_context_key: str = ""
    #: the model of the rows read (`get_queryset` answers none of them for the schema)
    model: type[Model]

    def __init_subclass__(cls, scope: str = "", scope_kwarg: str = "", **kwargs: Any) -> None:
        # A tag-supported key must name how its feature is resolved: refused at import
        # (docs/PERMISSIONS.md, "Every action names its feature").
        super().__init_subclass__(**kwargs)
        if scope:
            cls.scope_level = cls.scope_context_key = scope
            cls.scope_kwarg = scope_kwarg or f"{scope}_pk"
        check_action_requirements(cls)

    @property
    def schema_only(self) -> bool:
        """Whether drf-spectacular is building the schema (no user, no URL keywords)."""
        return bool(getattr(self, "swagger_fake_view", False))

    def load_scope(self) -> Any:
        """The scope the URL addresses (404 when the caller cannot view it)."""
        return SCOPE_LOOKUPS[self.scope_level](self.request, self.kwargs[self.scope_kwarg])

    def get_scope(self) -> Any:
        """`load_scope`, once per request (the permission class and the view both ask)."""
        if "_scope" not in self.__dict__:
            self.__dict__["_scope"] = self.load_scope()
        return self.__dict__["_scope"]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if self.scope_context_key and not self.schema_only and self.scope_kwarg in self.kwargs:
            context[self.scope_context_key] = self.get_scope()
        return context

    def parse(
        self,
        serializer_class: type[serializers.BaseSerializer],
        *,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The request body validated by `serializer_class` (a 400 naming the field)."""
        serializer = serializer_class(
            data=self.request.data,
            context={**self.get_serializer_context(), **(context or {})},
            **kwargs,
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def get_queryset(self) -> QuerySet[Any]:
        if self.schema_only:
            return self.model._default_manager.none()
        return self.rows()

    def rows(self) -> QuerySet[Any]:
        """The rows the request reads (the scope's, or what the caller may view)."""
        raise NotImplementedError

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.paginated(self.get_queryset(), self.get_serializer_class())

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.answer(self.get_object())

    def answer(self, instance: Any, status_code: int = status.HTTP_200_OK) -> Response:
        """`instance` serialised by `serializer_class` (with the request's context)."""
        return Response(self.get_serializer(instance).data, status=status_code)

    def created(self, instance: Any) -> Response:
        """The 201 of a create: `instance` serialised by `serializer_class`."""
        return self.answer(instance, status.HTTP_201_CREATED)

    def paginated(
        self, queryset: Any, serializer_class: type[serializers.BaseSerializer]
    ) -> Response:
        """One page of `queryset`, filtered and serialised."""
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(
            serializer_class(page, many=True, context=self.get_serializer_context()).data
        )

    def write(
        self,
        service: Callable[..., T],
        *,
        respond: Callable[[T], Response],
        organisation_id: int | None = None,
        may_move_permissions: bool = True,
        grants_of: Holder | None = None,
        features_of: FeatureWrite | None = None,
        **arguments: Any,
    ) -> Response:
        """`service(**arguments, actor=<the caller>)`, a write that can move permissions in
        the scope's organisation (or `organisation_id`'s), run the way the request asks: see
        `write_with_impact` (`?dry_run=true` previews its impact and saves nothing)."""
        return write_with_impact(
            self.request,
            organisation_id=organisation_id or organisation_id_of(self.get_scope()),
            change=functools.partial(service, **arguments, actor=actor_of(self.request)),
            respond=respond,
            may_move_permissions=may_move_permissions,
            grants_of=grants_of,
            features_of=features_of,
        )

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        method = (request.method or "").lower()
        if method != "options" and method not in getattr(self, "action_map", {}):
            raise MethodNotAllowed(request.method or "")
        super().initial(request, *args, **kwargs)
        # A client asking for a dry run where there is none must not get a real write: refuse
        # (after authentication and the scope checks, so 401/404/403 keep their order).
        if (
            method not in ("get", "head", "options")
            and self.action not in self.dry_run_actions
            and dry_run_requested(request)
        ):
            raise serializers.ValidationError(
                {"dry_run": ["This endpoint has no dry run; nothing was done."]}
            )

    def get_permissions(self) -> Sequence[Any]:
        if self.action is None or self.action in self.authenticated_actions:
            return [permissions.IsAuthenticated()]
        return [ScopedActionPermission()]

    def filter_queryset(self, queryset: Any) -> Any:
        return filter_by_requirement(self, super().filter_queryset(queryset))

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        assert_filtered(self, response.status_code)
        return super().finalize_response(request, response, *args, **kwargs)


# The scopes themselves (`/organisations/`, `/projects/`, `/environments/`): whoever is
# authenticated lists what they may view and creates (the handler checks the parent scope);
# the scope's viewers read it and its admins edit and delete it. (A comment, not a docstring:
# drf-spectacular would publish it.)
class ScopeViewSet(ActionViewSet):
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    action_requirements = {"retrieve": VIEW, "partial_update": ADMIN, "destroy": ADMIN}
    authenticated_actions = ("list", "create")

    def get_object(self) -> Any:
        return self.get_scope()


class OrganisationScopedViewSet(ActionViewSet, scope="organisation"):
    """Base of the resources nested under `/organisations/{organisation_pk}/`: the
    organisation is the scope (404 when the caller is not a member)."""


class ProjectScopedViewSet(ActionViewSet, scope="project"):
    """Base of the resources nested under `/projects/{project_pk}/`: the project is the
    scope (404 when the caller cannot view it); `action_requirements` maps actions to keys."""


class EnvironmentScopedViewSet(ActionViewSet, scope="environment", scope_kwarg="api_key"):
    """Base of the resources nested under `/environments/{api_key}/`."""


# --------------------------------------------------------------------------------------
# ?dry_run=true: impact previews on permission writes (docs/API.md, Dry runs)
# --------------------------------------------------------------------------------------

DRY_RUN_PARAMETER = OpenApiParameter(
    "dry_run",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description=(
        "Validate as usual but save nothing and write no audit entry; answer 200 with "
        '{"impact": {"gained": [...], "lost": [...]}}: who would newly reach or no longer '
        "reach which keys, and on how many features, at most `?impact_limit=` changes each "
        f"way (default {IMPACT_LIMIT_DEFAULT}, at most {IMPACT_LIMIT_MAX}), with the complete "
        "`summary` per key and scope and `truncated`; junk in `impact_limit` is a 400."
    ),
)
IMPACT_RESPONSE = OpenApiResponse(
    ImpactResponseSerializer, description="With ?dry_run=true: the impact; nothing was saved."
)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def dry_run_requested(request: Request) -> bool:
    """Whether the request asks for a preview (`?dry_run=true`); junk is a 400 naming it."""
    raw = request.query_params.get("dry_run")
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise serializers.ValidationError({"dry_run": ["Must be true or false."]})


IMPACT_LIMIT_PARAMETER = OpenApiParameter(
    "impact_limit",
    OpenApiTypes.INT,
    OpenApiParameter.QUERY,
    description=(
        f"How many changes `gained` and `lost` list each (default {IMPACT_LIMIT_DEFAULT}, at "
        f"most {IMPACT_LIMIT_MAX}); `summary` is always complete, `truncated` says whether "
        "some were left out."
    ),
)


def impact_limit_requested(request: Request) -> int:
    """`?impact_limit=` (0 to the maximum; default when absent); junk is a 400 naming it."""
    raw = request.query_params.get("impact_limit")
    if raw is None:
        return IMPACT_LIMIT_DEFAULT
    text = raw.strip()
    if not text.isdigit() or int(text) > IMPACT_LIMIT_MAX:
        raise serializers.ValidationError(
            {"impact_limit": [f"Must be a whole number from 0 to {IMPACT_LIMIT_MAX}."]}
        )
    return int(text)


def impact_response(impact: Impact, *, limit: int = IMPACT_LIMIT_DEFAULT) -> Response:
    return Response({"impact": impact.as_dict(limit)}, status=status.HTTP_200_OK)


def no_content(_: object = None) -> Response:
    """The 204 of a delete (a `respond` for `write_with_impact`)."""
    return Response(status=status.HTTP_204_NO_CONTENT)


def write_with_impact(
    request: Request,
    *,
    organisation_id: int,
    change: Callable[[], T],
    respond: Callable[[T], Response],
    may_move_permissions: bool = True,
    grants_of: Holder | None = None,
    features_of: FeatureWrite | None = None,
) -> Response:
    """Run a permission write the way the request asks.

    `?dry_run=true`: validate and run `change` in a rolled-back transaction and answer 200
    `{"impact"}`. Otherwise run it for real, store its impact on its audit entries and answer
    `respond(result)`, the write's usual response. `may_move_permissions=False` (a rename)
    records the empty impact without reading the organisation twice (`impact_apply`).
    `grants_of` (a grant write: its holder) reads only what that holder's grants reach;
    `features_of` (a tag or feature write) only the features those can touch.
    """
    limit = impact_limit_requested(request)  # before anything runs: junk changes nothing
    if dry_run_requested(request):
        return impact_response(
            impact_preview(
                organisation_id=organisation_id,
                change=change,
                grants_of=grants_of,
                features_of=features_of,
            ),
            limit=limit,
        )
    result, _ = impact_apply(
        organisation_id=organisation_id,
        change=change,
        may_move_permissions=may_move_permissions,
        grants_of=grants_of,
        features_of=features_of,
    )
    return respond(result)
