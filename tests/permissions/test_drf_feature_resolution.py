"""Every action of a tag-supported key names how its feature is resolved (docs/PERMISSIONS.md,
"Every action names its feature"; Flagsmith #4287: collection actions passed the permission
class unchecked and each view had to remember to call the engine).

The route walk reads every registered API route from the URL resolver; a viewset that maps a
tag-supported key bare (or names a resolver it lacks) cannot even be created; the resolvers
are what decides, on a create path (the request's feature), on an object path (the object's
feature) and on a filtered list (the engine's SQL filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from environments.models import Environment
from features.models import Feature, FeatureState, SegmentOverride
from permissions.catalogue import (
    CREATE_FEATURE,
    DELETE_FEATURE,
    MANAGE_SEGMENT_OVERRIDES,
    TAG_SUPPORTED_KEYS,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
)
from permissions.drf import (
    FeatureRequirement,
    Resolution,
    environment_or_404,
    filtered_by_feature,
    on_object_feature,
    on_request_feature,
)
from tagwarden.api.base import ActionViewSet
from tests import factories as f
from tests.support.clients import client_for

# ---------------------------------------------------------------------------------------
# Every registered route
# ---------------------------------------------------------------------------------------


def api_routes() -> Iterator[tuple[str, URLPattern]]:
    """(route, pattern) for every URL pattern of the project, nested includes walked."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for item in patterns:
            if isinstance(item, URLResolver):
                yield from walk(item.url_patterns, prefix + str(item.pattern))
            elif isinstance(item, URLPattern):
                yield prefix + str(item.pattern), item

    yield from walk(get_resolver().url_patterns, "")


def routed_actions() -> list[tuple[str, str, type, str, Any]]:
    """(route, method, viewset class, action, requirement) of every viewset action routed."""
    out = []
    for route, pattern in api_routes():
        view_class = getattr(pattern.callback, "cls", None)
        actions = getattr(pattern.callback, "actions", None)
        if view_class is None or not actions:
            continue
        for method, action in actions.items():
            requirement = getattr(view_class, "action_requirements", {}).get(action)
            out.append((route, method, view_class, action, requirement))
    return out


def test_every_routed_action__tag_supported_key__declares_its_feature_resolution() -> None:
    declared = set()
    for route, method, view_class, action, requirement in routed_actions():
        where = (route, method, view_class.__name__, action)
        if isinstance(requirement, str):
            assert requirement not in TAG_SUPPORTED_KEYS, where
            continue
        if not isinstance(requirement, FeatureRequirement):
            continue
        assert requirement.key in TAG_SUPPORTED_KEYS, where
        lookup = view_class.lookup_url_kwarg or view_class.lookup_field
        if requirement.resolution == Resolution.OBJECT:
            # an object to take the feature from: only on a route naming one
            assert f"<id:{lookup}>" in route or f"<{lookup}>" in route, where
            assert callable(getattr(view_class, "get_permission_feature", None)), where
        elif requirement.resolution == Resolution.REQUEST:
            assert callable(getattr(view_class, "get_request_feature", None)), where
        else:
            assert method == "get" and f"<int:{lookup}>" not in route, where
        declared.add((view_class.__name__, action, requirement.key))
    # The walk is not vacuous: the routes of tag-supported keys known today are all there.
    assert {
        ("FeatureViewSet", "destroy", DELETE_FEATURE),
        ("FeatureStateViewSet", "partial_update", UPDATE_FEATURE_STATE),
        ("SegmentOverrideViewSet", "create", MANAGE_SEGMENT_OVERRIDES),
        ("SegmentOverrideViewSet", "partial_update", MANAGE_SEGMENT_OVERRIDES),
        ("SegmentOverrideViewSet", "destroy", MANAGE_SEGMENT_OVERRIDES),
    } <= declared


def test_every_routed_viewset__is_an_action_viewset() -> None:
    """The check runs at class creation of ActionViewSet subclasses: every API viewset must
    be one (the bench's naive views are plain Django views, not viewsets)."""
    for route, _, view_class, _, _ in routed_actions():
        assert issubclass(view_class, ActionViewSet), route


def test_every_api_route__path_parameters__bounded_converters() -> None:
    """Every id in an API path is an `<id:...>` and every api_key an `<env_key:...>`
    (tagwarden/api/converters.py; docs/API.md, "No input gives a 500"): a NUL or a 20-digit
    number matches no route (404) instead of reaching a lookup PostgreSQL refuses (500)."""
    allowed = {"IdConverter", "EnvironmentKeyConverter"}
    checked = 0
    for route, pattern in api_routes():
        if not route.startswith("api/"):
            continue
        for name, converter in pattern.pattern.converters.items():
            checked += 1
            assert type(converter).__name__ in allowed, (route, name, converter)
    assert checked > 50


# ---------------------------------------------------------------------------------------
# A viewset that does not say how its feature is resolved fails to load
# ---------------------------------------------------------------------------------------


def test_viewset__bare_tag_supported_key_on_create__fails_to_load() -> None:
    with pytest.raises(ImproperlyConfigured, match="without naming how its feature"):

        class Forgetful(ActionViewSet):
            action_requirements = {"create": MANAGE_SEGMENT_OVERRIDES}


def test_viewset__bare_tag_supported_key_on_list__fails_to_load() -> None:
    with pytest.raises(ImproperlyConfigured, match="without naming how its feature"):

        class Forgetful(ActionViewSet):
            action_requirements = {"list": UPDATE_FEATURE_STATE}


def test_viewset__object_resolution_without_get_permission_feature__fails_to_load() -> None:
    with pytest.raises(ImproperlyConfigured, match="get_permission_feature"):

        class Forgetful(ActionViewSet):
            action_requirements = {"destroy": on_object_feature(DELETE_FEATURE)}


def test_viewset__request_resolution_without_get_request_feature__fails_to_load() -> None:
    with pytest.raises(ImproperlyConfigured, match="get_request_feature"):

        class Forgetful(ActionViewSet):
            action_requirements = {"create": on_request_feature(MANAGE_SEGMENT_OVERRIDES)}


def test_viewset__feature_requirement_on_key_without_tags__fails_to_load() -> None:
    with pytest.raises(ImproperlyConfigured, match="not narrowed by tags"):

        class Confused(ActionViewSet):
            action_requirements = {"create": on_request_feature(CREATE_FEATURE)}

            def get_request_feature(self) -> Feature:
                raise NotImplementedError


def test_viewset__keys_without_tags_and_declared_resolutions__load() -> None:
    class Fine(ActionViewSet):
        action_requirements = {
            "list": filtered_by_feature(UPDATE_FEATURE_STATE, feature_ref="feature_id"),
            "create": on_request_feature(MANAGE_SEGMENT_OVERRIDES),
            "destroy": on_object_feature(DELETE_FEATURE),
            "retrieve": VIEW_ENVIRONMENT,
        }

        def get_request_feature(self) -> Feature:
            raise NotImplementedError

        def get_permission_feature(self, obj: Any) -> Feature:
            raise NotImplementedError

    assert Fine.action_requirements["retrieve"] == VIEW_ENVIRONMENT


# ---------------------------------------------------------------------------------------
# The resolvers decide: create (the request's feature), object actions, filtered lists
# ---------------------------------------------------------------------------------------


@pytest.fixture
def tagged(organisation: Any, project: Any, environment: Any) -> dict[str, Any]:
    """Features tagged a and b, a segment, and a member whose role holds
    MANAGE_SEGMENT_OVERRIDES and UPDATE_FEATURE_STATE tagged a on the environment."""
    a, b = f.TagFactory(project=project, label="a"), f.TagFactory(project=project, label="b")
    role = f.RoleFactory(organisation=organisation)
    user = f.member(organisation)
    f.RoleAssignmentFactory(role=role, user=user)
    f.grant(
        role,
        environment,
        {MANAGE_SEGMENT_OVERRIDES: [a], UPDATE_FEATURE_STATE: [a], VIEW_ENVIRONMENT: []},
    )
    return {
        "user": user,
        "feature_a": f.FeatureFactory(project=project, tags=[a]),
        "feature_b": f.FeatureFactory(project=project, tags=[b]),
        "segment": f.SegmentFactory(project=project),
    }


def overrides_url(environment: Any, feature: Any) -> str:
    return f"/api/v1/environments/{environment.api_key}/features/{feature.pk}/segment-overrides/"


@pytest.mark.django_db
def test_create_override__role_tagged_feature_tag__201(
    environment: Any, tagged: dict[str, Any]
) -> None:
    feature = tagged["feature_a"]
    response = client_for(tagged["user"]).post(
        overrides_url(environment, feature), {"segment": tagged["segment"].pk}, format="json"
    )
    assert response.status_code == 201, response.data
    assert SegmentOverride.objects.filter(feature=feature, environment=environment).count() == 1


@pytest.mark.django_db
def test_create_override__role_tagged_other_tag__403_nothing_written(
    environment: Any, tagged: dict[str, Any]
) -> None:
    """The view's create no longer checks the key itself: the permission class does, with
    the feature `get_request_feature()` resolves from the URL."""
    feature = tagged["feature_b"]
    response = client_for(tagged["user"]).post(
        overrides_url(environment, feature), {"segment": tagged["segment"].pk}, format="json"
    )
    assert response.status_code == 403
    assert not SegmentOverride.objects.filter(feature=feature).exists()


@pytest.mark.django_db
def test_create_override__feature_of_another_project__404(
    organisation: Any, environment: Any, tagged: dict[str, Any]
) -> None:
    foreign = f.FeatureFactory(project=f.ProjectFactory(organisation=organisation))
    response = client_for(tagged["user"]).post(
        overrides_url(environment, foreign), {"segment": tagged["segment"].pk}, format="json"
    )
    assert response.status_code == 404


class _StatesOfEnvironment(ActionViewSet):
    """A list of a tag-supported key declared filtered: the base filters it."""

    action_requirements = {
        "list": filtered_by_feature(UPDATE_FEATURE_STATE, feature_ref="feature_id"),
        "create": on_object_feature(UPDATE_FEATURE_STATE),  # wrongly on a collection route
    }

    def get_scope(self) -> Environment:
        return environment_or_404(self.request, self.kwargs["api_key"])

    def get_permission_feature(self, obj: FeatureState) -> Feature:
        return obj.feature

    def get_queryset(self) -> QuerySet[FeatureState]:
        return FeatureState.objects.filter(
            environment__api_key=self.kwargs["api_key"], segment_override__isnull=True
        )

    def list(self, request: Request, api_key: str) -> Response:
        ids = sorted(self.filter_queryset(self.get_queryset()).values_list("feature_id", flat=True))
        return Response(ids)

    def create(self, request: Request, api_key: str) -> Response:
        return Response(status=201)


class _UnfilteredStates(_StatesOfEnvironment):
    def list(self, request: Request, api_key: str) -> Response:
        return Response(list(self.get_queryset().values_list("feature_id", flat=True)))


def call(view_class: type, method: str, user: Any, environment: Any) -> Response:
    request = getattr(APIRequestFactory(), method)("/")
    force_authenticate(request, user=user)
    action = {"get": "list", "post": "create"}[method]
    view = view_class.as_view({method: action})  # type: ignore[attr-defined]
    response: Response = view(request, api_key=environment.api_key)
    return response


@pytest.mark.django_db
def test_filtered_list__role_tagged_a__lists_only_features_tagged_a(
    environment: Any, tagged: dict[str, Any]
) -> None:
    response = call(_StatesOfEnvironment, "get", tagged["user"], environment)
    assert response.status_code == 200
    assert response.data == [tagged["feature_a"].pk]


@pytest.mark.django_db
def test_filtered_list__environment_admin__lists_every_feature(
    organisation: Any, environment: Any, tagged: dict[str, Any]
) -> None:
    admin = f.member(organisation)
    f.grant(admin, environment, [], admin=True)
    response = call(_StatesOfEnvironment, "get", admin, environment)
    assert response.status_code == 200
    assert response.data == sorted([tagged["feature_a"].pk, tagged["feature_b"].pk])


@pytest.mark.django_db
def test_filtered_list__rows_never_filtered__refused_not_answered(
    environment: Any, tagged: dict[str, Any]
) -> None:
    with pytest.raises(ImproperlyConfigured, match="never went through filter_queryset"):
        call(_UnfilteredStates, "get", tagged["user"], environment)


@pytest.mark.django_db
def test_object_resolution_on_a_collection_route__403(
    organisation: Any, environment: Any, tagged: dict[str, Any]
) -> None:
    """No object, so no object check would ever run: refused before the handler."""
    response = call(_StatesOfEnvironment, "post", tagged["user"], environment)
    assert response.status_code == 403
