"""Decisions on one scope: `allowed`, `is_admin`, `can_view`, `keys_on_feature(s)`
(docs/PERMISSIONS.md, "How one decision is made")."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from environments.models import Environment
from features.models import Feature
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.engine.loader import policy_for, policy_for_scope, scope_ids
from permissions.engine.policy import FeatureTags, Principal, Scope
from permissions.engine.tags import feature_tags, tags_from_codes
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

    With the policy warm and the feature's tags loaded (prefetched, or remembered with
    `feature_tags_remember`) this costs no query, and the key states are read once per policy and scope.
    """
    return keys_on_features(principal, scope, [feature])[0]


def keys_on_features(
    principal: Principal, scope: Project | Environment, features: Iterable[Feature]
) -> list[list[str]]:
    """`keys_on_feature` for each of `features`, in their order (a list page): the policy's
    key states are read once, and each distinct set of feature tags is decided once. With the
    policy warm and the features' tags loaded, no query."""
    keys_for, project_id = _keys_by_tags(principal, scope)
    return [
        list(keys_for(feature_tags(feature))) if feature.project_id == project_id else []
        for feature in features
    ]


def keys_on_tag_codes(
    principal: Principal, scope: Project | Environment, codes: Iterable[str | None]
) -> dict[str | None, list[str]]:
    """The keys of the scope's level held on features of the scope's project whose tags were
    read as `codes` (`feature_tags_subquery`), by code string: each distinct string is
    decided once, without a feature object (a list page of rows that carry the codes)."""
    keys_for, _ = _keys_by_tags(principal, scope)
    return {text: list(keys_for(tags_from_codes(text))) for text in set(codes)}


def _keys_by_tags(
    principal: Principal, scope: Project | Environment
) -> tuple[Callable[[FeatureTags], list[str]], int | None]:
    """(the keys held on a feature of the scope's project, from its tags; memoised per
    distinct tags, the project id)."""
    level, organisation_id, project_id, environment_id = scope_ids(scope)
    policy = policy_for(principal, organisation_id, project_id=project_id)
    states = policy.key_states(level, project_id, environment_id)
    # Without a tagged entry, a feature's tags matter only by whether one of them is
    # restricted (no untagged entry reaches it): every feature gets one of two answers.
    untagged_only = not any(state.tags for _, state in states)
    keys_by_tags: dict[FeatureTags, list[str]] = {}

    def keys_for(tags: FeatureTags) -> list[str]:
        if untagged_only:
            tags = _RESTRICTED if tags.restricted else _UNRESTRICTED
        keys = keys_by_tags.get(tags)
        if keys is None:
            keys = keys_by_tags[tags] = [key for key, state in states if state.decides(key, tags)]
        return keys

    return keys_for, project_id


# Stand-ins for a feature's tags where only whether one is restricted matters (tag id 0 is no
# tag's id, and no entry names it).
_UNRESTRICTED = FeatureTags(tags=frozenset(), restricted=frozenset())
_RESTRICTED = FeatureTags(tags=frozenset({0}), restricted=frozenset({0}))
