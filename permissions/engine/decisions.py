"""Decisions on one scope: `allowed`, `is_admin`, `can_view`, `keys_on_feature(s)`
(docs/PERMISSIONS.md, "How one decision is made")."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from environments.models import Environment
from features.models import Feature
from permissions.catalogue import CATALOGUE, TAG_SUPPORTED_KEYS, Level
from permissions.engine.loader import policy_for, policy_for_scope, scope_ids
from permissions.engine.policy import FeatureTags, KeyState, Principal, Scope, entry_reaches
from permissions.engine.tags import TagsNeeded, feature_tags, tags_from_codes
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


def tags_needed(principal: Principal, scope: Project | Environment) -> TagsNeeded:
    """What `keys_on_features` and `keys_on_tag_codes` read of a feature's tags for this
    principal on this scope: a list page reads no more (`feature_tags_subquery(needed=)`)."""
    plan, untagged_only, _ = _plan(principal, scope)
    if all(state is None for _, state, _ in plan):
        return TagsNeeded.NONE
    return TagsNeeded.RESTRICTED if untagged_only else TagsNeeded.ALL


def _plan(
    principal: Principal, scope: Project | Environment
) -> tuple[list[tuple[str, KeyState | None, bool]], bool, int | None]:
    """(for each key of the scope's level: the key, its state if a feature's tags can change
    its answer, else its one answer; whether the policy holds no tagged entry there; the
    project id)."""
    level, organisation_id, project_id, environment_id = scope_ids(scope)
    policy = policy_for(principal, organisation_id, project_id=project_id)
    states = policy.key_states(level, project_id, environment_id)
    # Without a tagged entry, a feature's tags matter only by whether one of them is
    # restricted (no untagged entry reaches it): every feature gets one of two answers.
    untagged_only = not any(state.tags for _, state in states)
    # A key that no feature's tags can change (an admin's, one that supports no tags, one that
    # no entry holds) is decided once; the others for each distinct set of tags.
    plan: list[tuple[str, KeyState | None, bool]] = [
        (key, None, state.decides(key, _UNRESTRICTED))
        if state.admin or key not in TAG_SUPPORTED_KEYS or not (state.untagged or state.tags)
        else (key, state, False)
        for key, state in states
    ]
    return plan, untagged_only, project_id


def _keys_by_tags(
    principal: Principal, scope: Project | Environment
) -> tuple[Callable[[FeatureTags], list[str]], int | None]:
    """(the keys held on a feature of the scope's project, from its tags; the project id)."""
    plan, untagged_only, project_id = _plan(principal, scope)
    if untagged_only:
        answers = {
            restricted: [
                key
                for key, state, held in plan
                if (held if state is None else state.decides(key, tags))
            ]
            for restricted, tags in ((False, _UNRESTRICTED), (True, _RESTRICTED))
        }
        return (lambda tags: answers[bool(tags.restricted)]), project_id
    # Keys no feature's tags can change give their one answer; the others are decided by the
    # rule itself (`entry_reaches`: an admin's keys are among the former).
    steps = [
        (key, held, None, False) if state is None else (key, False, state.tags, state.untagged)
        for key, state, held in plan
    ]

    def keys_for(tags: FeatureTags) -> list[str]:
        return [
            key
            for key, held, reach, untagged in steps
            if (
                held
                if reach is None
                else entry_reaches(key, untagged=untagged, tags=reach, feature_tags=tags)
            )
        ]

    return keys_for, project_id


# Stand-ins for a feature's tags where only whether one is restricted matters (tag id 0 is no
# tag's id, and no entry names it).
_UNRESTRICTED = FeatureTags(tags=frozenset(), restricted=frozenset())
_RESTRICTED = FeatureTags(tags=frozenset({0}), restricted=frozenset({0}))
