"""The feature-state list decided the naive way, for comparison with the real endpoint.

Same URL shape, authentication, middleware, 404 rule, pagination and fields as
`GET /api/v1/environments/{api_key}/featurestates/`, but `my_permissions` is decided one
feature at a time with the engine's single-object check, `engine.allowed(user, key,
environment, feature)`, the way code built on per-object checkers (django-rules predicates,
django-guardian's `has_perm(perm, obj)`) decides a list:

- `cold` (the comparison the targets use): nothing is shared between objects, as with a
  per-object checker that keeps no per-request policy: every feature pays the cold single
  decision (the principal's grants, then the feature's tags);
- `memo`: the policy memoised on the request's user is reused across features (the engine's
  own memo, as `user.has_perm` through `permissions.rules` would get): every feature still
  pays for its tags, because the page is not prefetched.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from environments.models import Environment
from features.models import FeatureState
from features.workflow.api.serializers import FeatureStateSerializer
from features.workflow.api.views import UNFILTERED_PARAMETERS, FeatureStateViewSet
from features.workflow.selectors import DEFAULT_STATES_ORDER, StatesPage
from permissions import engine
from permissions.catalogue import KEYS_BY_LEVEL, Level
from permissions.drf import environment_or_404
from tagwarden.api.pagination import PageNumberPagination

ENVIRONMENT_KEYS = KEYS_BY_LEVEL[Level.ENVIRONMENT]


class NaiveFeatureStateSerializer(serializers.ModelSerializer):
    my_permissions = serializers.SerializerMethodField()

    class Meta:
        model = FeatureState
        fields = ["id", "feature", "environment", "enabled", "value", "version", "updated_at"]
        fields += ["my_permissions"]

    def get_my_permissions(self, state: FeatureState) -> list[str]:
        return self.context["my_permissions"][state.pk]


def _default_states(environment: Environment) -> Any:
    """The environment's default states, counted and paged by the same queries as the real
    list's, less its features' tags."""
    states = FeatureState.objects.defaults_of(environment).order_by(*DEFAULT_STATES_ORDER)
    return StatesPage(states, environment=environment, filtered=False, tags=engine.TagsNeeded.NONE)


class NaiveFeatureStateList(APIView):
    share_policy = False

    def get(self, request: Request, api_key: str) -> Response:
        environment = environment_or_404(request, api_key)
        states = _default_states(environment)
        paginator = PageNumberPagination()
        page: Any = paginator.paginate_queryset(states, request, view=self)
        user = request.user
        mine: dict[int, list[str]] = {}
        for state in page:
            if not self.share_policy:
                engine.forget(user)  # nothing carried over from the previous object
            mine[state.pk] = [
                key
                for key in ENVIRONMENT_KEYS
                if engine.allowed(user, key, environment, state.feature)
            ]
        data = NaiveFeatureStateSerializer(page, many=True, context={"my_permissions": mine}).data
        return paginator.get_paginated_response(data)


class NaiveMemoFeatureStateList(NaiveFeatureStateList):
    share_policy = True


class FloorFeatureStateSerializer(FeatureStateSerializer):
    """The real list's serializer (fields, value field) without `my_permissions`."""

    my_permissions = None  # type: ignore[assignment]

    class Meta(FeatureStateSerializer.Meta):
        fields = tuple(f for f in FeatureStateSerializer.Meta.fields if f != "my_permissions")
        read_only_fields = fields


class FloorFeatureStateViewSet(FeatureStateViewSet):
    """The floor: the real list view (its URL's place among the routes, authentication,
    middleware, view class, query, ordering, pagination, fields) less its authorisation, as
    the PATCH rows' AllowAny view is: AllowAny, the environment read without the 404 rule, no
    permission filter, no `my_permissions` (so its page reads no features' tags). What the
    page costs before any permission work."""

    permission_classes = [AllowAny]

    def get_permissions(self) -> list[Any]:
        return [AllowAny()]

    def load_scope(self) -> Environment:
        environments = Environment.objects.select_related("project").filter(
            api_key=self.kwargs[self.scope_kwarg]
        )
        environment = next(iter(environments[:1]), None)  # as the real scope lookup reads it
        if environment is None:
            raise Http404
        return environment

    def filter_queryset(self, queryset: Any) -> Any:
        return GenericAPIView.filter_queryset(self, queryset)  # ordering only: no permission filter

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # the real view asserts there that its permission filter ran: here none does
        return GenericAPIView.finalize_response(self, request, response, *args, **kwargs)

    def list(self, request: Request, api_key: str) -> Response:
        rows: Any = StatesPage(
            self.filter_queryset(self.get_queryset()),
            environment=self.get_scope(),
            filtered=not request.query_params.keys() <= UNFILTERED_PARAMETERS,
            tags=engine.TagsNeeded.NONE,
        )
        states = self.paginate_queryset(rows) or []
        return self.get_paginated_response(
            FloorFeatureStateSerializer(
                states, many=True, context=self.get_serializer_context()
            ).data
        )
