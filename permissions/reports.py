"""Reports built from the engine's decisions: my-permissions, explain, per-user detailed
permissions (docs/API.md, "Permissions in responses"; docs/PERMISSIONS.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from environments.models import Environment
from features.models import Feature
from organisations.models import Role, UserGroup
from permissions.catalogue import CATALOGUE, KEYS_BY_LEVEL, TAG_SUPPORTED_KEYS, Level
from permissions.engine import (
    EntryRecord,
    Policy,
    Principal,
    PrincipalPaths,
    Scope,
    ScopeRights,
    entry_reaches,
    feature_tags,
    load_policy,
    policy_for_scope,
    principal_paths,
    scope_ids,
)
from permissions.engine.policy import NO_TAGS
from projects.models import Project, Tag

# --------------------------------------------------------------------------------------
# Reports: my-permissions, per-user details, explain
# --------------------------------------------------------------------------------------


def _tag_based(rights: ScopeRights | None) -> list[dict[str, list[Any]]]:
    if rights is None:
        return []
    by_tags: dict[frozenset[int], list[str]] = defaultdict(list)
    for key, tags in rights.tagged.items():
        if tags:
            by_tags[tags].append(key)
    return sorted(
        ({"permissions": sorted(keys), "tags": sorted(tags)} for tags, keys in by_tags.items()),
        key=lambda item: (item["permissions"], item["tags"]),
    )


def my_permissions(principal: Principal, scope: Scope) -> dict[str, Any]:
    """The my-permissions payload (docs/API.md) for one scope."""
    level, _, project_id, environment_id = scope_ids(scope)
    policy = policy_for_scope(principal, scope)
    admin = policy.is_scope_admin(level, project_id, environment_id)
    if level == Level.ORGANISATION:
        keys = (
            set(KEYS_BY_LEVEL[level])
            if admin
            else set(policy.organisation_keys if policy.is_member else ())
        )
        return {
            "admin": admin,
            "permissions": sorted(keys),
            "tag_based_permissions": [],
            "restricted_tags": [],
        }
    rights = policy.scope_rights(level, project_id, environment_id) if policy.is_member else None
    keys = set(KEYS_BY_LEVEL[level]) if admin else set(rights.untagged if rights else ())
    restricted = sorted(
        Tag.objects.filter(project_id=int(project_id or 0), is_restricted=True).values_list(
            "id", flat=True
        )
    )
    return {
        "admin": admin,
        "permissions": sorted(keys),
        "tag_based_permissions": _tag_based(rights),
        "restricted_tags": restricted,
    }


Via = Literal["user", "group", "role"]


def _vias(entry: EntryRecord, paths: PrincipalPaths) -> list[tuple[Via, int | None, int | None]]:
    """(via, group id, role id) for each way the entry reaches the principal."""
    if entry.user_id is not None:
        return [("user", None, None)]
    if entry.group_id is not None:
        return [("group", entry.group_id, None)]
    assert entry.role_id is not None
    return [
        ("role", group_id, entry.role_id)
        for group_id in sorted(
            paths.role_paths.get(entry.role_id, ()), key=lambda g: (g is not None, g or 0)
        )
    ] or [("role", None, entry.role_id)]


def explain(
    principal: Principal, key: str, environment: Environment, feature: Feature
) -> dict[str, Any]:
    """Why `principal` may or may not use `key` on `feature` in `environment`
    (docs/PERMISSIONS.md: the worked example's explain, `blocked_by` and `granted_by`)."""
    if CATALOGUE[key].level != Level.ENVIRONMENT:
        raise ValueError(f"{key} is not an environment key")
    if feature.project_id != environment.project_id:
        raise ValueError("The feature is not in the environment's project")
    _, organisation_id, project_id, environment_id = scope_ids(environment)
    policy = load_policy(principal, organisation_id, project_id=project_id)
    ftags = feature_tags(feature)
    decision = policy.decide(
        key, project_id=project_id, environment_id=environment_id, feature_tags=ftags
    )
    granted: list[dict[str, Any]] = []
    blocked: list[dict[str, Any]] = []
    # Restricted tags narrow tag-supported keys only.
    restricted = ftags.restricted if key in TAG_SUPPORTED_KEYS else NO_TAGS
    restricted_uncovered = bool(restricted)
    if policy.is_member:
        paths = principal_paths(principal, policy.organisation_id)
        if policy.is_organisation_admin:
            granted.append(_granted("organisation_admin", None, None, "organisation", []))
        for entry in policy.entries:
            reaches_env = entry.environment_id == environment_id or (
                entry.level == Level.PROJECT and entry.project_id == project_id
            )
            if not reaches_env or not entry.admin:
                continue
            via = "project_admin" if entry.level == Level.PROJECT else "environment_admin"
            for _, group_id, role_id in _vias(entry, paths):
                granted.append(_granted(via, group_id, role_id, str(entry.level), []))
        key_entries = [
            e for e in policy.entries if e.environment_id == environment_id and e.key == key
        ]
        # The key's tagged entries decide together (docs/PERMISSIONS.md, "Restricted tags").
        held_tags = frozenset(t for e in key_entries for t in e.tags)
        covered = restricted <= held_tags
        restricted_uncovered = not covered
        for entry in key_entries:
            if restricted:
                # Only entries naming a restricted tag count, and only when together they
                # name every one.
                reached = covered and bool(entry.tags & restricted)
            else:
                reached = entry_reaches(
                    key, untagged=not entry.tags, tags=entry.tags, feature_tags=ftags
                )
            for via, group_id, role_id in _vias(entry, paths):
                if reached:
                    matched = entry.tags & (restricted or ftags.tags)
                    granted.append(_granted(via, group_id, role_id, "environment", sorted(matched)))
                else:
                    blocked.append(
                        {
                            "via": via,
                            "group": group_id,
                            "role": role_id,
                            "tags": sorted(entry.tags),
                            "why": "restricted_tag"
                            if not covered and bool(entry.tags & ftags.tags)
                            else "tag_mismatch",
                        }
                    )
    return {
        "permission": key,
        "allowed": decision,
        "reason": _reason(
            decision,
            policy,
            granted,
            blocked,
            key,
            restricted_uncovered=restricted_uncovered,
        ),
        "granted_by": granted,
        "blocked_by": blocked,
    }


def _granted(
    via: str, group_id: int | None, role_id: int | None, scope: str, tags_matched: list[int]
) -> dict[str, Any]:
    return {
        "via": via,
        "group": group_id,
        "role": role_id,
        "scope": scope,
        "tags_matched": tags_matched,
    }


def _reason(
    decision: bool,
    policy: Policy,
    granted: list[Any],
    blocked: list[Any],
    key: str,
    *,
    restricted_uncovered: bool,
) -> str:
    if not policy.is_member:
        return "Not a member of the organisation: no permission applies."
    if decision:
        first = granted[0]["via"].replace("_", " ")
        return f"Allowed: {key} is held through {first}" + (
            f" and {len(granted) - 1} more path(s)." if len(granted) > 1 else "."
        )
    if restricted_uncovered and blocked:
        return (
            f"Denied: the feature carries restricted tags that the entries holding {key}, "
            "taken together, do not all name."
        )
    if blocked:
        return f"Denied: every entry holding {key} is tagged with tags the feature does not carry."
    return f"Denied: no grant holds {key} on this environment."


def explain_all(
    principal: Principal, environment: Environment, feature: Feature
) -> list[dict[str, Any]]:
    """`explain` for every environment key, in catalogue order."""
    return [
        explain(principal, key, environment, feature) for key in KEYS_BY_LEVEL[Level.ENVIRONMENT]
    ]


def user_detailed_permissions(user: Any, scope: Project | Environment) -> dict[str, Any]:
    """Where each of a user's keys on a project or environment, and admin, come from
    (docs/API.md, "Permissions in responses")."""
    level, organisation_id, project_id, environment_id = scope_ids(scope)
    policy = load_policy(user, organisation_id, project_id=project_id)
    admin = policy.is_scope_admin(level, project_id, environment_id)
    if not policy.is_member:
        return {
            "admin": False,
            "is_directly_granted": False,
            "derived_from": {"groups": [], "roles": []},
            "permissions": [],
        }
    paths = principal_paths(user, policy.organisation_id)
    scope_id = project_id if level == Level.PROJECT else environment_id

    def in_scope(entry: EntryRecord) -> bool:
        if level == Level.PROJECT:
            return entry.level == Level.PROJECT and entry.project_id == scope_id
        return entry.level == Level.ENVIRONMENT and entry.environment_id == scope_id

    def makes_admin(entry: EntryRecord) -> bool:
        """An admin grant on the scope, or, for an environment, on its project (which makes
        the user admin of every environment of it)."""
        if not entry.admin:
            return False
        return in_scope(entry) or (
            level == Level.ENVIRONMENT
            and entry.level == Level.PROJECT
            and entry.project_id == project_id
        )

    entries = [e for e in policy.entries if in_scope(e)]
    admin_entries = [e for e in policy.entries if makes_admin(e)]
    named = [*entries, *admin_entries]
    group_names = dict(
        UserGroup.objects.filter(
            pk__in={g for e in named for _, g, _ in _vias(e, paths) if g is not None}
        ).values_list("id", "name")
    )
    role_names = dict(
        Role.objects.filter(pk__in={e.role_id for e in named if e.role_id}).values_list(
            "id", "name"
        )
    )

    def derived(selected: list[EntryRecord], with_tags: bool) -> tuple[bool, dict[str, Any]]:
        direct = False
        groups: dict[int, dict[str, Any]] = {}
        roles: dict[int, dict[str, Any]] = {}
        for entry in selected:
            for via, group_id, role_id in _vias(entry, paths):
                if via == "user":
                    direct = True
                if group_id is not None:
                    groups[group_id] = {"id": group_id, "name": group_names.get(group_id, "")}
                if role_id is not None:
                    tags = sorted(entry.tags) if with_tags else []
                    known = roles.get(role_id)
                    merged = sorted(set(tags) | set(known["tags"])) if known else tags
                    roles[role_id] = {
                        "id": role_id,
                        "name": role_names.get(role_id, ""),
                        "tags": merged,
                    }
        return direct, {
            "groups": [groups[g] for g in sorted(groups)],
            "roles": [roles[r] for r in sorted(roles)],
        }

    admin_direct, admin_from = derived(admin_entries, with_tags=False)
    by_key: dict[str, list[EntryRecord]] = defaultdict(list)
    for entry in entries:
        if entry.key is not None:
            by_key[entry.key].append(entry)
    permissions = []
    for key in sorted(by_key):
        direct, from_ = derived(by_key[key], with_tags=True)
        permissions.append(
            {"permission_key": key, "is_directly_granted": direct, "derived_from": from_}
        )
    return {
        "admin": admin,
        "is_directly_granted": admin_direct,
        "derived_from": admin_from,
        "permissions": permissions,
    }
