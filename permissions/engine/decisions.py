"""Decisions on one scope: `allowed`, `is_admin`, `can_view`, `keys_on_feature`
(docs/PERMISSIONS.md, "How one decision is made")."""

from __future__ import annotations

from environments.models import Environment
from features.models import Feature
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.engine.loader import policy_for, policy_for_scope, scope_ids
from permissions.engine.policy import Principal, Scope
from permissions.engine.tags import feature_tags
from projects.models import Project

# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------


def allowed(principal: Principal, key: str, scope: Scope, feature: Feature | None = None) -> bool:
    """Whether `principal` holds `key` on `scope` (for `feature`, if given).

    `key` must be of the scope's level. `feature` must be a feature of the scope's project,
    loaded from the database; a feature of another project is never allowed.
    """
    level, _, project_id, environment_id = scope_ids(scope)
    spec = CATALOGUE.get(key)
    if spec is None:
        raise ValueError(f"Unknown permission key {key!r}")
    if spec.level != level:
        raise ValueError(f"{key} is a {spec.level} key; it was checked on a {level}")
    if feature is not None and feature.project_id != project_id:
        return False
    policy = policy_for_scope(principal, scope)
    if not policy.is_member:
        return False
    tags = feature_tags(feature) if feature is not None and key in TAG_SUPPORTED_KEYS else None
    return policy.decide(
        key, project_id=project_id, environment_id=environment_id, feature_tags=tags
    )


def is_admin(principal: Principal, scope: Scope) -> bool:
    """Organisation admin; project admin (rules 1–2); environment admin."""
    level, _, project_id, environment_id = scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    return policy.is_scope_admin(level, project_id, environment_id)


def can_view(principal: Principal, scope: Scope) -> bool:
    """Viewing: members view their organisation; any key or admin on a scope, tagged or not,
    shows that scope and its parents."""
    level, _, project_id, environment_id = scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    if level == Level.ORGANISATION:
        return policy.is_member
    if level == Level.PROJECT:
        assert project_id is not None
        return policy.can_view_project(project_id)
    assert project_id is not None and environment_id is not None
    return policy.can_view_environment(project_id, environment_id)


def keys_on_feature(
    principal: Principal, scope: Project | Environment, feature: Feature
) -> list[str]:
    """The keys of the scope's level that `principal` holds on `feature` (sorted).

    For lists: with the policy warm and the feature's tags prefetched (`feature_tags_load`)
    this costs no query, and the key states are read once per policy and scope.
    """
    level, organisation_id, project_id, environment_id = scope_ids(scope)
    if feature.project_id != project_id:
        return []
    policy = policy_for(principal, organisation_id, project_id=project_id)
    tags = feature_tags(feature)
    return [
        key
        for key, state in policy.key_states(level, project_id, environment_id)
        if state.decides(key, tags)
    ]
