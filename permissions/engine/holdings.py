"""Policies built from what each holder holds, for builders of many policies at once (impact
previews compare two per principal reached; docs/PERFORMANCE.md, "How the costs follow the
work").

A holder's (user's, group's or role's) grant rows on one project are summarised once as
`Holdings`; a principal's policy is then the union of its holders' holdings, by the same rules
as `policy_from_rows` builds it from those rows (without the entries reports read), so its
cost follows the holders' distinct entries, not their rows one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from permissions.catalogue import CATALOGUE, Level
from permissions.engine.policy import NO_TAGS, KeyState, Policy, ScopeRights

T = TypeVar("T")

# A project or environment scope: (is an environment, its id).
_Scope = tuple[bool, int]


@dataclass(frozen=True, slots=True)
class Holdings:
    """What one holder's grant rows on one project (or the organisation level) hold, by the
    rules of `policy_from_rows`: rows are per entry tag, so a row with a key and no tag is an
    untagged entry and a row with a tag adds it to its key's tags on the row's scope; any
    admin row makes its scope an admin scope; organisation-level rows hold their keys."""

    organisation_keys: frozenset[str]
    admin_scopes: frozenset[_Scope]
    untagged: tuple[tuple[_Scope, frozenset[str]], ...]
    tagged: tuple[tuple[_Scope, str, frozenset[int]], ...]
    environment_projects: dict[int, int]
    # The same, by scope: (admin, untagged keys, key -> tags) for one-key lookups.
    by_scope: dict[_Scope, tuple[bool, frozenset[str], dict[str, frozenset[int]]]]


def holdings_from_rows(rows: Iterable[tuple[Any, ...]]) -> Holdings:
    """The holdings of grant rows in the shape of `organisation_grant_rows` (one holder's, on
    one project or the organisation level)."""
    organisation_keys: set[str] = set()
    admin_scopes: set[_Scope] = set()
    untagged: dict[_Scope, set[str]] = defaultdict(set)
    tagged: dict[tuple[_Scope, str], set[int]] = defaultdict(set)
    environment_projects: dict[int, int] = {}
    for _, project_id, environment_id, admin, key, tag_id, *_ in rows:
        if project_id is None:
            if key is not None:
                organisation_keys.add(key)
            continue
        scope = (True, environment_id) if environment_id is not None else (False, project_id)
        if environment_id is not None and (key is not None or admin):
            environment_projects[environment_id] = project_id
        if admin:
            admin_scopes.add(scope)
        if key is None:
            continue
        if tag_id is None:
            untagged[scope].add(key)
        else:
            tagged[(scope, key)].add(tag_id)
    untagged_of = {scope: frozenset(keys) for scope, keys in untagged.items()}
    tagged_of = {scope_key: frozenset(tags) for scope_key, tags in tagged.items()}
    by_scope: dict[_Scope, tuple[bool, frozenset[str], dict[str, frozenset[int]]]] = {
        scope: (scope in admin_scopes, untagged_of.get(scope, frozenset()), {})
        for scope in admin_scopes | untagged_of.keys() | {scope for scope, _ in tagged_of}
    }
    for (scope, key), tags in tagged_of.items():
        by_scope[scope][2][key] = tags
    return Holdings(
        organisation_keys=frozenset(organisation_keys),
        admin_scopes=frozenset(admin_scopes),
        untagged=tuple(untagged_of.items()),
        tagged=tuple((scope, key, tags) for (scope, key), tags in tagged_of.items()),
        environment_projects=environment_projects,
        by_scope=by_scope,
    )


def holdings_key_state(
    key: str,
    *,
    project_id: int | None,
    environment_id: int | None,
    is_organisation_admin: bool,
    holdings: Iterable[Holdings],
) -> KeyState:
    """A member's `KeyState` for one key on one scope from its holders' holdings there: the
    same as `policy_from_holdings(...).key_state(key, ...)`, without building the policy
    (impact previews read a few keys of many principals)."""
    (state,) = holdings_key_states(
        (key,),
        project_id=project_id,
        environment_id=environment_id,
        is_organisation_admin=is_organisation_admin,
        holdings=holdings,
    )
    return state


def holdings_key_states(
    keys: Sequence[str],
    *,
    project_id: int | None,
    environment_id: int | None,
    is_organisation_admin: bool,
    holdings: Iterable[Holdings],
) -> list[KeyState]:
    """`holdings_key_state` of several keys of one level on one scope, in one pass over the
    holdings."""
    if is_organisation_admin:
        return [_ADMIN] * len(keys)
    levels = {CATALOGUE[key].level for key in keys}
    if len(levels) > 1:
        raise ValueError(f"Keys of more than one level: {sorted(keys)}")
    if levels == {Level.ORGANISATION}:
        organisation_keys = [held.organisation_keys for held in holdings]
        return [
            KeyState(admin=False, untagged=any(key in k for k in organisation_keys), tags=NO_TAGS)
            for key in keys
        ]
    assert project_id is not None
    scope: _Scope = (False, project_id)
    if levels == {Level.ENVIRONMENT}:
        assert environment_id is not None
        scope = (True, environment_id)
    project_admin: _Scope = (False, project_id)
    rights_there = []
    for held in holdings:
        if project_admin in held.admin_scopes:
            return [_ADMIN] * len(keys)
        rights = held.by_scope.get(scope)
        if rights is None:
            continue
        if rights[0]:  # an environment admin of its environment (a project's: above)
            return [_ADMIN] * len(keys)
        rights_there.append(rights)
    return _states(keys, rights_there)


def holdings_scope_key_states(
    project_id: int,
    scope_keys: Sequence[tuple[int | None, Sequence[str]]],
    *,
    holdings: Iterable[Holdings],
) -> list[list[KeyState]]:
    """`holdings_key_states` on several scopes of one project, for a member who is not an
    organisation admin: for each (environment id, or None for the project itself; its keys,
    all of that scope's level), the keys' states, in one pass over the holdings."""
    project_scope: _Scope = (False, project_id)
    on_scope: dict[_Scope, list[tuple[bool, frozenset[str], dict[str, frozenset[int]]]]] = {}
    admin_of: set[_Scope] = set()
    for held in holdings:
        if project_scope in held.admin_scopes:
            return [[_ADMIN] * len(keys) for _, keys in scope_keys]
        admin_of |= held.admin_scopes
        for scope, rights in held.by_scope.items():
            on_scope.setdefault(scope, []).append(rights)
    found: list[list[KeyState]] = []
    for environment_id, keys in scope_keys:
        scope = (True, environment_id) if environment_id is not None else project_scope
        rights_there = on_scope.get(scope)
        if rights_there is None:
            found.append([_NOTHING] * len(keys))
        elif scope in admin_of:
            found.append([_ADMIN] * len(keys))
        else:
            found.append(_states(keys, rights_there))
    return found


def _states(
    keys: Sequence[str], rights: list[tuple[bool, frozenset[str], dict[str, frozenset[int]]]]
) -> list[KeyState]:
    """The states of `keys` from what non-admin holders hold on one scope."""
    untagged = [keys for _, keys, _ in rights if keys]
    tagged = [by_key for _, _, by_key in rights if by_key]
    if not untagged and not tagged:
        return [_NOTHING] * len(keys)
    untagged_keys: frozenset[str] = frozenset()
    if untagged:
        untagged_keys = untagged[0] if len(untagged) == 1 else frozenset().union(*untagged)
    tags_of: dict[str, frozenset[int]] = {}
    if len(tagged) == 1:
        tags_of = tagged[0]
    else:
        for by_key in tagged:
            for key, tags in by_key.items():
                held = tags_of.get(key)
                tags_of[key] = tags if held is None else held | tags
    states = []
    for key in keys:
        key_tags = tags_of.get(key)
        if key_tags is None:
            states.append(_UNTAGGED if key in untagged_keys else _NOTHING)
        else:
            states.append(KeyState(False, key in untagged_keys, key_tags))
    return states


_ADMIN = KeyState(admin=True, untagged=False, tags=NO_TAGS)
_NOTHING = KeyState(admin=False, untagged=False, tags=NO_TAGS)
_UNTAGGED = KeyState(admin=False, untagged=True, tags=NO_TAGS)


def policy_from_holdings(
    organisation_id: int, *, is_organisation_admin: bool, holdings: Iterable[Holdings]
) -> Policy:
    """A member's policy: the union of `holdings` (its holders', on the projects to decide
    on). The same policy as `policy_from_rows(..., keep_entries=False)` of their rows."""
    organisation_keys: set[str] = set()
    admin_scopes: set[_Scope] = set()
    # What each holder contributes, united once all are known: most keys come from one
    # holder, whose sets are then used as they are.
    untagged: dict[_Scope, list[frozenset[str]]] = {}
    tagged: dict[_Scope, dict[str, list[frozenset[int]]]] = {}
    environment_projects: dict[int, int] = {}
    for held in holdings:
        organisation_keys |= held.organisation_keys
        admin_scopes |= held.admin_scopes
        environment_projects.update(held.environment_projects)
        for scope, keys in held.untagged:
            untagged.setdefault(scope, []).append(keys)
        for scope, key, tags in held.tagged:
            tagged.setdefault(scope, {}).setdefault(key, []).append(tags)
    rights: dict[bool, dict[int, ScopeRights]] = {False: {}, True: {}}
    for scope in admin_scopes | untagged.keys() | tagged.keys():
        rights[scope[0]][scope[1]] = ScopeRights(
            admin=scope in admin_scopes,
            untagged=_union(untagged.get(scope, ())),
            tagged={key: _union(parts) for key, parts in tagged.get(scope, {}).items()},
        )
    return Policy(
        organisation_id=organisation_id,
        is_member=True,
        is_organisation_admin=is_organisation_admin,
        organisation_keys=frozenset(organisation_keys),
        projects=rights[False],
        environments=rights[True],
        environment_projects=environment_projects,
    )


def _union(parts: Iterable[frozenset[T]]) -> frozenset[T]:
    together = list(parts)
    return together[0] if len(together) == 1 else frozenset().union(*together)
