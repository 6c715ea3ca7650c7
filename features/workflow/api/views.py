"""Feature states, segment overrides and change requests of an environment (docs/API.md,
"Feature states, overrides, change requests").

Every route sits under `/environments/{api_key}/`: an environment the caller may not view
is a 404 before anything else. Every action on a feature resolves the feature from the
database under the environment's project (a feature, state, override or change request
reached through another environment is a 404) and hands it to the engine, so tag-scoped
roles are matched against the feature's real tags on every write path (Flagsmith #4287).
Change-request rules depend on the features a request touches and on its author; the
services check them, through the engine, in the order docs/API.md fixes.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from features.models import ChangeRequest, Feature, FeatureState, SegmentOverride
from features.workflow import selectors, services
from features.workflow.api.filters import (
    ChangeRequestFilter,
    FeatureStateFilter,
    SegmentOverrideFilter,
)
from features.workflow.api.serializers import (
    MY_PERMISSIONS,
    ChangeRequestCreateSerializer,
    ChangeRequestSerializer,
    ChangeRequestUpdateSerializer,
    FeatureStateSerializer,
    FeatureStateUpdateSerializer,
    SegmentOverrideCreateSerializer,
    SegmentOverrideSerializer,
    SegmentOverrideUpdateSerializer,
)
from permissions import catalogue as keys
from permissions import engine
from permissions.drf import VIEW, on_object_feature, on_request_feature
from tagwarden.api.base import (
    BAD_REQUEST,
    UNAUTHENTICATED,
    EnvironmentScopedViewSet,
    actor_of,
    error_response,
    no_content,
    viewers_read,
)
from tagwarden.api.schema import crud_schema

# --------------------------------------------------------------------------------------
# Schema helpers
# --------------------------------------------------------------------------------------


_NOT_FOUND = error_response("Not found, or the caller may not view the environment.")
_FORBIDDEN = error_response("The caller may view the environment but not do this.")
#: The environment's own 404 and 403 (crud_schema's `errors`).
_ERRORS = {404: _NOT_FOUND, 403: _FORBIDDEN}

_API_KEY = OpenApiParameter(
    "api_key", str, OpenApiParameter.PATH, description="The environment's api_key."
)
_FEATURE_ID = OpenApiParameter(
    "feature_pk", int, OpenApiParameter.PATH, description="A feature of the environment's project."
)
_ID = OpenApiParameter("id", int, OpenApiParameter.PATH)
_ORDERING = OpenApiParameter(
    "ordering", str, description="One of the ordering fields; prefix with - to reverse."
)


# --------------------------------------------------------------------------------------
# Feature states
# --------------------------------------------------------------------------------------

_STATE_PATCH_ERRORS = {
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: error_response(
        "No UPDATE_FEATURE_STATE on this feature (`permission_denied`), or change requests "
        "are on in this environment (`change_request_required`, admins included)."
    ),
    404: _NOT_FOUND,
    409: error_response("`stale`: the `version` sent is not the current one."),
}


#: The list's filter parameters (`FeatureStateFilter`).
FILTER_NAMES = frozenset(FeatureStateFilter.base_filters)
#: The list's parameters that narrow nothing: a request with no other is unfiltered.
UNFILTERED_PARAMETERS = frozenset({"page", "page_size", "ordering"})


@crud_schema(
    {"list": "The environment's default feature states, with the caller's keys on each"},
    bodies={"partial_update": FeatureStateUpdateSerializer},
    parameters=[_API_KEY],
    item_parameters=[_ID],
    errors=_ERRORS,
    list={"parameters": [_ORDERING]},
    partial_update={"responses": _STATE_PATCH_ERRORS},
)
class FeatureStateViewSet(EnvironmentScopedViewSet):
    model = FeatureState
    serializer_class = FeatureStateSerializer
    filterset_class = FeatureStateFilter
    ordering_fields = ["id", "feature", "feature__name", "updated_at", "version"]
    ordering = list(selectors.DEFAULT_STATES_ORDER)
    action_requirements = viewers_read(partial_update=on_object_feature(keys.UPDATE_FEATURE_STATE))

    def rows(self) -> QuerySet[FeatureState]:
        if self.action == "partial_update":  # one state: its feature's tags in the same query
            return selectors.default_states_for_write(environment=self.get_scope())
        if self.action == "list":
            return selectors.default_states_for_list(environment=self.get_scope())
        return selectors.default_states_of_environment(environment=self.get_scope())

    @property
    def filter_backends(self) -> list[Any]:  # type: ignore[override]
        # A request naming none of the list's filters is filtered by none of them: django-filter
        # would still build and validate its form (about a millisecond of a list page).
        backends = list(api_settings.DEFAULT_FILTER_BACKENDS)
        query = getattr(getattr(self, "request", None), "query_params", None)
        if not self.schema_only and query is not None and query.keys().isdisjoint(FILTER_NAMES):
            backends.remove(DjangoFilterBackend)
        return backends

    def get_permission_feature(self, obj: FeatureState) -> Feature:
        if hasattr(obj, selectors.FEATURE_TAG_CODES):
            engine.feature_tags_remember(obj.feature, getattr(obj, selectors.FEATURE_TAG_CODES))
        return obj.feature

    def list(self, request: Request, api_key: str) -> Response:
        # StatesPage reads a page as a queryset would (DRF's stubs only know querysets)
        # The page reads of its features' tags what the caller's my_permissions need: none
        # (an admin), whether one is restricted (no tagged entry), or all of them.
        rows: Any = selectors.StatesPage(
            self.filter_queryset(self.get_queryset()),
            environment=self.get_scope(),
            filtered=not request.query_params.keys() <= UNFILTERED_PARAMETERS,
            tags=engine.tags_needed(request.user, self.get_scope()),
        )
        states: list[FeatureState] = self.paginate_queryset(rows) or []
        # my_permissions for the whole page at once, each distinct set of tags decided once
        codes = [getattr(state, selectors.FEATURE_TAG_CODES, None) for state in states]
        held = engine.keys_on_tag_codes(request.user, self.get_scope(), codes)
        context = {
            **self.get_serializer_context(),
            MY_PERMISSIONS: {
                state.pk: held[text] for state, text in zip(states, codes, strict=True)
            },
        }
        return self.get_paginated_response(
            FeatureStateSerializer(states, many=True, context=context).data
        )

    def partial_update(self, request: Request, api_key: str, pk: int) -> Response:
        """Write a default state directly (UPDATE_FEATURE_STATE on its feature)"""
        state = self.get_object()
        data = self.parse(FeatureStateUpdateSerializer, context={"state": state}, partial=True)
        written = services.feature_state_update(state=state, **data, actor=actor_of(request))
        if written is not state:
            # Written under a lock, on a fresh row: answer with what this request wrote (read
            # again after the commit, the row may carry a later writer's version), on the
            # state whose feature and tags are already loaded.
            state.enabled, state.value = written.enabled, written.value
            state.version, state.updated_at = written.version, written.updated_at
        return self.answer(state)


# --------------------------------------------------------------------------------------
# Segment overrides
# --------------------------------------------------------------------------------------

_OVERRIDE_WRITE_ERRORS = {
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: error_response(
        "No MANAGE_SEGMENT_OVERRIDES on this feature (`permission_denied`), or change "
        "requests are on and enabled/value would change (`change_request_required`)."
    ),
    404: _NOT_FOUND,
}


@crud_schema(
    {"list": "The feature's segment overrides in this environment"},
    bodies={
        "create": SegmentOverrideCreateSerializer,
        "partial_update": SegmentOverrideUpdateSerializer,
    },
    descriptions={
        "create": "Where change requests are on, the override must start with enabled false "
        "and value null (403 `change_request_required` otherwise).",
        "partial_update": "`priority` is always a direct write; `enabled` and `value` only "
        "where change requests are off.",
    },
    parameters=[_API_KEY, _FEATURE_ID],
    item_parameters=[_ID],
    errors=_ERRORS,
    list={"parameters": [_ORDERING]},
    create={"responses": _OVERRIDE_WRITE_ERRORS},
    partial_update={"responses": _OVERRIDE_WRITE_ERRORS},
)
class SegmentOverrideViewSet(EnvironmentScopedViewSet):
    model = SegmentOverride
    serializer_class = SegmentOverrideSerializer
    filterset_class = SegmentOverrideFilter
    ordering_fields = ["id", "priority", "segment"]
    ordering = ["priority", "id"]
    action_requirements = viewers_read(
        # create: the URL's feature, resolved from the database (get_request_feature);
        # object actions: the override's feature
        create=on_request_feature(keys.MANAGE_SEGMENT_OVERRIDES),
        partial_update=on_object_feature(keys.MANAGE_SEGMENT_OVERRIDES),
        destroy=on_object_feature(keys.MANAGE_SEGMENT_OVERRIDES),
    )

    def get_feature(self) -> Feature:
        """The URL's feature, of the environment's project (another project's: 404)."""
        feature: Feature | None = getattr(self, "_feature", None)
        if feature is None:
            feature = selectors.feature_of_environment_get(
                environment=self.get_scope(), feature_id=self.kwargs["feature_pk"]
            )
            if feature is None:
                raise Http404
            self._feature = feature
        return feature

    def get_request_feature(self) -> Feature:
        return self.get_feature()

    def rows(self) -> QuerySet[SegmentOverride]:
        return selectors.overrides_of_feature(
            environment=self.get_scope(), feature=self.get_feature()
        )

    def get_permission_feature(self, obj: SegmentOverride) -> Feature:
        return obj.feature

    def create(self, request: Request, api_key: str, feature_pk: int) -> Response:
        """Create a segment override (MANAGE_SEGMENT_OVERRIDES on this feature)"""
        # MANAGE_SEGMENT_OVERRIDES on this feature was checked by the permission class with
        # get_request_feature() (docs/PERMISSIONS.md, "Every action names its feature").
        environment, feature = self.get_scope(), self.get_feature()
        data = self.parse(SegmentOverrideCreateSerializer, context={"feature": feature})
        override = services.segment_override_create(
            environment=environment,
            feature=feature,
            segment_id=data.pop("segment"),
            **data,
            actor=actor_of(request),
        )
        fresh = self.get_queryset().get(pk=override.pk)
        return self.created(fresh)

    def partial_update(self, request: Request, api_key: str, feature_pk: int, pk: int) -> Response:
        """Edit a segment override (MANAGE_SEGMENT_OVERRIDES on this feature)"""
        override = self.get_object()
        data = self.parse(
            SegmentOverrideUpdateSerializer, context={"override": override}, partial=True
        )
        override = services.segment_override_update(
            override=override, **data, actor=actor_of(request)
        )
        fresh = self.get_queryset().get(pk=override.pk)
        return self.answer(fresh)

    def destroy(self, request: Request, api_key: str, feature_pk: int, pk: int) -> Response:
        """Delete a segment override and its state (MANAGE_SEGMENT_OVERRIDES)"""
        services.segment_override_delete(override=self.get_object(), actor=actor_of(request))
        return no_content()


# --------------------------------------------------------------------------------------
# Change requests
# --------------------------------------------------------------------------------------

_CR_FORBIDDEN = error_response(
    "`permission_denied` (a key missing on one of the features, not the author, ...) or "
    "`cannot_approve_own`."
)
_CR_ALREADY_COMMITTED = error_response("`already_committed`: the change request is not open.")
_CR_ERRORS = {
    401: UNAUTHENTICATED,
    403: _CR_FORBIDDEN,
    404: _NOT_FOUND,
}


@crud_schema(
    {"list": "The environment's change requests, newest first"},
    bodies={
        "create": ChangeRequestCreateSerializer,
        "partial_update": ChangeRequestUpdateSerializer,
    },
    descriptions={"create": "400 `change_requests_disabled` where change requests are off."},
    parameters=[_API_KEY],
    item_parameters=[_ID],
    errors={**_ERRORS, 403: _CR_FORBIDDEN},
    list={"parameters": [_ORDERING]},
    partial_update={"responses": {409: _CR_ALREADY_COMMITTED}},
    destroy={"responses": {409: _CR_ALREADY_COMMITTED}},
)
class ChangeRequestViewSet(EnvironmentScopedViewSet):
    """Reading needs only to view the environment; every write rule (keys on each feature,
    author, admin) is the service's, so the errors come in the order of docs/API.md."""

    model = ChangeRequest
    serializer_class = ChangeRequestSerializer
    filterset_class = ChangeRequestFilter
    ordering_fields = ["id", "created_at", "updated_at", "committed_at", "title"]
    ordering = ["-created_at", "-id"]
    action_requirements = dict.fromkeys(
        ("list", "retrieve", "create", "partial_update", "destroy", "approve", "commit"), VIEW
    )

    def rows(self) -> QuerySet[ChangeRequest]:
        return selectors.change_requests_of_environment(environment=self.get_scope())

    def _render(self, change_request: ChangeRequest, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.change_request_get(
            environment=self.get_scope(), change_request_id=change_request.pk
        )
        return self.answer(fresh, code)

    def create(self, request: Request, api_key: str) -> Response:
        """Open a change request (CREATE_CHANGE_REQUEST on every feature it touches)"""
        data = self.parse(ChangeRequestCreateSerializer)
        change_request = services.change_request_create(
            environment=self.get_scope(), **data, actor=actor_of(request)
        )
        return self._render(change_request, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, api_key: str, pk: int) -> Response:
        """Edit an open change request (its author); resets the approvals"""
        change_request = self.get_object()
        # Who may edit, and whether it is open, come before the body: 404, 403, 409, then 400.
        services.change_request_require_editable(
            change_request=change_request, actor=actor_of(request)
        )
        data = self.parse(
            ChangeRequestUpdateSerializer, context={"change_request": change_request}, partial=True
        )
        change_request = services.change_request_update(
            change_request=change_request, **data, actor=actor_of(request)
        )
        return self._render(change_request)

    def destroy(self, request: Request, api_key: str, pk: int) -> Response:
        """Delete an open change request (its author or an environment admin)"""
        services.change_request_delete(change_request=self.get_object(), actor=actor_of(request))
        return no_content()

    @extend_schema(
        summary="Approve (APPROVE_CHANGE_REQUEST on every feature; never the author)",
        description="Approving twice is a no-op 200.",
        parameters=[_API_KEY, _ID],
        request=None,
        responses={200: ChangeRequestSerializer, **_CR_ERRORS, 409: _CR_ALREADY_COMMITTED},
    )
    def approve(self, request: Request, api_key: str, pk: int) -> Response:
        change_request = services.change_request_approve(
            change_request=self.get_object(), actor=actor_of(request)
        )
        return self._render(change_request)

    @extend_schema(
        summary="Apply every change in one transaction (the author, or anyone who may approve)",
        description="400 `not_enough_approvals` when fewer valid approvals than the "
        "environment's threshold; 409 `stale` when a target changed since recorded.",
        parameters=[_API_KEY, _ID],
        request=None,
        responses={
            200: ChangeRequestSerializer,
            400: error_response("`not_enough_approvals`."),
            **_CR_ERRORS,
            409: error_response("`already_committed`, or `stale`."),
        },
    )
    def commit(self, request: Request, api_key: str, pk: int) -> Response:
        change_request = services.change_request_commit(
            change_request=self.get_object(), actor=actor_of(request)
        )
        return self._render(change_request)
