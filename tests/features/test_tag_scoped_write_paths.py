"""Every write path that touches a feature, with a role scoped to tag A (docs/PERMISSIONS.md, "Every action names its feature"; Flagsmith
#4287: one path that forgot the feature's tags let a tag-scoped role change any feature;
#5225: tag-scoped approvers must be able to approve their features).

For each path: allowed on a feature tagged A, denied (403, nothing written) on a feature
tagged B, denied with an untagged key on a feature carrying a restricted tag, and allowed
for a role naming that restricted tag. Each through a role assigned to the user, a role
assigned to one of the user's groups, and an API key holding the role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from audit.models import AuditLogEntry
from features.models import (
    ChangeRequest,
    ChangeRequestApproval,
    ChangeRequestStatus,
    FeatureState,
    SegmentOverride,
)
from features.workflow.services import ChangeInput, change_request_create
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    MANAGE_SEGMENT_OVERRIDES,
    UPDATE_FEATURE_STATE,
)
from tests import factories as f
from tests.support.clients import client_for
from tests.support.feature_states import (
    default_state,
    env_url,
)
from tests.support.principals import role_principal
from tests.support.worlds import tags_a_b_restricted

pytestmark = pytest.mark.django_db

VIAS = ["user", "group", "api_key"]


@dataclass
class World:
    organisation: Any
    project: Any
    environment: Any  # change requests off: direct writes
    cr_environment: Any  # change requests on, threshold 0
    tags: dict[str, Any]
    features: dict[str, Any]  # "a", "b", "restricted" (tagged restricted and a), "untagged"
    admin: Any


@pytest.fixture
def world(organisation: Any, project: Any) -> World:
    environment = f.EnvironmentFactory(project=project, name="direct")
    cr_environment = f.EnvironmentFactory(
        project=project, name="reviewed", minimum_change_request_approvals=0
    )
    tags = tags_a_b_restricted(project)
    features = {
        "a": f.FeatureFactory(project=project, name="fa", tags=[tags["a"]]),
        "b": f.FeatureFactory(project=project, name="fb", tags=[tags["b"]]),
        "restricted": f.FeatureFactory(
            project=project, name="fr", tags=[tags["restricted"], tags["a"]]
        ),
        "untagged": f.FeatureFactory(project=project, name="fu"),
    }
    return World(
        organisation,
        project,
        environment,
        cr_environment,
        tags,
        features,
        f.member(organisation, admin=True),
    )


# Who holds the key, and which feature is touched → expected outcome.
#   ("a", "a")                 role tagged [A] on a feature tagged A            → allowed
#   ("a", "b")                 role tagged [A] on a feature tagged B            → 403
#   ("a", "untagged")          role tagged [A] on an untagged feature           → 403
#   ("untagged", "restricted") untagged key on a feature with a restricted tag  → 403
#   ("untagged", "untagged")   untagged key on an untagged feature              → allowed
#   ("restricted", "restricted") role naming the restricted tag                 → allowed
CASES = [
    ("a", "a", True),
    ("a", "b", False),
    ("a", "untagged", False),
    ("untagged", "restricted", False),
    ("untagged", "untagged", True),
    ("restricted", "restricted", True),
]


def holder(world: World, environment: Any, key: str, scope: str, via: str) -> Any:
    tags = [] if scope == "untagged" else [world.tags[scope]]
    return role_principal(world.organisation, environment, {key: tags}, via=via)


def audit_count() -> int:
    return AuditLogEntry.objects.count()


def check(
    response: Any, allowed: bool, ok_status: int, unchanged: Callable[[], bool], before: int
) -> None:
    if allowed:
        assert response.status_code == ok_status, response.data
        assert audit_count() > before
    else:
        assert response.status_code == 403, response.data
        assert response.data["code"] == "permission_denied"
        assert unchanged()
        assert audit_count() == before


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_feature_state_patch__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.environment
    principal = holder(world, env, UPDATE_FEATURE_STATE, scope, via)
    state = default_state(world.features[target], env)
    before = audit_count()
    response = client_for(principal).patch(
        env_url(env, f"featurestates/{state.pk}/"), {"enabled": True}, format="json"
    )
    check(
        response,
        allowed,
        200,
        lambda: FeatureState.objects.get(pk=state.pk).version == 1,
        before,
    )


def _overrides_url(env: Any, feature: Any, override: Any | None = None) -> str:
    base = env_url(env, f"features/{feature.pk}/segment-overrides/")
    return base if override is None else f"{base}{override.pk}/"


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_segment_override_create__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.environment
    principal = holder(world, env, MANAGE_SEGMENT_OVERRIDES, scope, via)
    segment = f.SegmentFactory(project=world.project)
    before = audit_count()
    response = client_for(principal).post(
        _overrides_url(env, world.features[target]),
        {"segment": segment.pk, "enabled": True},
        format="json",
    )
    check(response, allowed, 201, lambda: not SegmentOverride.objects.exists(), before)


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_segment_override_update__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.environment
    principal = holder(world, env, MANAGE_SEGMENT_OVERRIDES, scope, via)
    feature = world.features[target]
    override = f.SegmentOverrideFactory(feature=feature, environment=env)
    before = audit_count()
    response = client_for(principal).patch(
        _overrides_url(env, feature, override), {"priority": 3, "enabled": True}, format="json"
    )
    check(
        response,
        allowed,
        200,
        lambda: (
            SegmentOverride.objects.get(pk=override.pk).priority == 0
            and FeatureState.objects.get(segment_override=override).version == 1
        ),
        before,
    )


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_segment_override_delete__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.environment
    principal = holder(world, env, MANAGE_SEGMENT_OVERRIDES, scope, via)
    feature = world.features[target]
    override = f.SegmentOverrideFactory(feature=feature, environment=env)
    before = audit_count()
    response = client_for(principal).delete(_overrides_url(env, feature, override))
    check(
        response,
        allowed,
        204,
        lambda: SegmentOverride.objects.filter(pk=override.pk).exists(),
        before,
    )


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_change_request_create__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.cr_environment
    principal = holder(world, env, CREATE_CHANGE_REQUEST, scope, via)
    before = audit_count()
    response = client_for(principal).post(
        env_url(env, "change-requests/"),
        {"title": "t", "changes": [{"feature": world.features[target].pk, "enabled": True}]},
        format="json",
    )
    check(response, allowed, 201, lambda: not ChangeRequest.objects.exists(), before)


@pytest.mark.parametrize("via", VIAS)
def test_change_request_create__a_feature_and_a_b_feature__403(world: World, via: str) -> None:
    """Every feature it touches: one feature out of scope refuses the whole request."""
    env = world.cr_environment
    principal = holder(world, env, CREATE_CHANGE_REQUEST, "a", via)
    response = client_for(principal).post(
        env_url(env, "change-requests/"),
        {
            "title": "t",
            "changes": [
                {"feature": world.features["a"].pk, "enabled": True},
                {"feature": world.features["b"].pk, "enabled": True},
            ],
        },
        format="json",
    )
    assert response.status_code == 403
    assert not ChangeRequest.objects.exists()


def _open_request(world: World, *targets: str) -> ChangeRequest:
    env = world.cr_environment
    env.refresh_from_db()
    return change_request_create(
        environment=env,
        title="by the admin",
        changes=[ChangeInput(feature=world.features[t].pk, enabled=True) for t in targets],
        actor=world.admin,
    )


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_change_request_approve__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    env = world.cr_environment
    principal = holder(world, env, APPROVE_CHANGE_REQUEST, scope, via)
    cr = _open_request(world, target)
    before = audit_count()
    response = client_for(principal).post(env_url(env, f"change-requests/{cr.pk}/approve/"))
    check(response, allowed, 200, lambda: not ChangeRequestApproval.objects.exists(), before)


@pytest.mark.parametrize("via", VIAS)
def test_change_request_approve__a_feature_and_a_b_feature__403(world: World, via: str) -> None:
    env = world.cr_environment
    principal = holder(world, env, APPROVE_CHANGE_REQUEST, "a", via)
    cr = _open_request(world, "a", "b")
    response = client_for(principal).post(env_url(env, f"change-requests/{cr.pk}/approve/"))
    assert response.status_code == 403
    assert not ChangeRequestApproval.objects.exists()


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_change_request_commit__role_scoped_by_tag__allowed_only_where_its_tags_reach(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    """Committing someone else's request needs what approving it needs (threshold 0 here,
    so only that rule decides)."""
    env = world.cr_environment
    principal = holder(world, env, APPROVE_CHANGE_REQUEST, scope, via)
    cr = _open_request(world, target)
    state = default_state(world.features[target], env)
    before = audit_count()
    response = client_for(principal).post(env_url(env, f"change-requests/{cr.pk}/commit/"))
    check(
        response,
        allowed,
        200,
        lambda: (
            ChangeRequest.objects.get(pk=cr.pk).status == ChangeRequestStatus.OPEN
            and FeatureState.objects.get(pk=state.pk).version == 1
        ),
        before,
    )
    if allowed:
        assert FeatureState.objects.get(pk=state.pk).enabled is True


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("scope,target,allowed", CASES)
def test_change_request_commit__approval_by_tag_scoped_role_counts_only_in_scope(
    world: World, via: str, scope: str, target: str, allowed: bool
) -> None:
    """A valid approval is one whose principal holds APPROVE_CHANGE_REQUEST on every
    feature with its tags; the author commits with a threshold of 1."""
    env = world.cr_environment
    env.minimum_change_request_approvals = 1
    env.save()
    approver = holder(world, env, APPROVE_CHANGE_REQUEST, scope, via)
    cr = _open_request(world, target)
    # An approval written directly: the API would refuse it when out of scope, but it may
    # have been given before the feature's tags changed.
    if via == "api_key":
        ChangeRequestApproval.objects.create(change_request=cr, api_key=approver)
    else:
        ChangeRequestApproval.objects.create(change_request=cr, user=approver)
    response = client_for(world.admin).post(env_url(env, f"change-requests/{cr.pk}/commit/"))
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert response.data["code"] == "not_enough_approvals"
