"""The permission catalogue (docs/PERMISSIONS.md, "The catalogue"): the single source of truth
for permission keys.

Every other module refers to keys through the constants below; the catalogue endpoints,
validation, docs and the admin read `CATALOGUE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    ORGANISATION = "organisation"
    PROJECT = "project"
    ENVIRONMENT = "environment"


@dataclass(frozen=True, slots=True)
class PermissionSpec:
    key: str
    level: Level
    description: str
    supports_tag: bool


# Organisation level
CREATE_PROJECT = "CREATE_PROJECT"
MANAGE_USER_GROUPS = "MANAGE_USER_GROUPS"
# Project level
VIEW_PROJECT = "VIEW_PROJECT"
CREATE_ENVIRONMENT = "CREATE_ENVIRONMENT"
CREATE_FEATURE = "CREATE_FEATURE"
DELETE_FEATURE = "DELETE_FEATURE"
MANAGE_SEGMENTS = "MANAGE_SEGMENTS"
MANAGE_TAGS = "MANAGE_TAGS"
VIEW_AUDIT_LOG = "VIEW_AUDIT_LOG"
# Environment level
VIEW_ENVIRONMENT = "VIEW_ENVIRONMENT"
UPDATE_FEATURE_STATE = "UPDATE_FEATURE_STATE"
CREATE_CHANGE_REQUEST = "CREATE_CHANGE_REQUEST"
APPROVE_CHANGE_REQUEST = "APPROVE_CHANGE_REQUEST"
MANAGE_SEGMENT_OVERRIDES = "MANAGE_SEGMENT_OVERRIDES"

_SPECS = (
    PermissionSpec(
        CREATE_PROJECT, Level.ORGANISATION, "Create projects in the organisation.", False
    ),
    PermissionSpec(
        MANAGE_USER_GROUPS,
        Level.ORGANISATION,
        "Create, rename and delete user groups that hold no grant and no role, and manage "
        "their members.",
        False,
    ),
    PermissionSpec(VIEW_PROJECT, Level.PROJECT, "View the project.", False),
    PermissionSpec(CREATE_ENVIRONMENT, Level.PROJECT, "Create environments in the project.", False),
    PermissionSpec(CREATE_FEATURE, Level.PROJECT, "Create and edit features.", False),
    PermissionSpec(DELETE_FEATURE, Level.PROJECT, "Delete features.", True),
    PermissionSpec(MANAGE_SEGMENTS, Level.PROJECT, "Create, edit and delete segments.", False),
    PermissionSpec(MANAGE_TAGS, Level.PROJECT, "Create, edit and delete tags.", False),
    PermissionSpec(VIEW_AUDIT_LOG, Level.PROJECT, "Read the project's audit log.", False),
    PermissionSpec(VIEW_ENVIRONMENT, Level.ENVIRONMENT, "View the environment.", False),
    PermissionSpec(
        UPDATE_FEATURE_STATE, Level.ENVIRONMENT, "Update feature states directly.", True
    ),
    PermissionSpec(CREATE_CHANGE_REQUEST, Level.ENVIRONMENT, "Create change requests.", True),
    PermissionSpec(APPROVE_CHANGE_REQUEST, Level.ENVIRONMENT, "Approve change requests.", True),
    PermissionSpec(
        MANAGE_SEGMENT_OVERRIDES,
        Level.ENVIRONMENT,
        "Create, edit and delete segment overrides.",
        True,
    ),
)

CATALOGUE: dict[str, PermissionSpec] = {spec.key: spec for spec in _SPECS}

TAG_SUPPORTED_KEYS: frozenset[str] = frozenset(s.key for s in _SPECS if s.supports_tag)

KEYS_BY_LEVEL: dict[Level, tuple[str, ...]] = {
    level: tuple(s.key for s in _SPECS if s.level == level) for level in Level
}


def specs_for(level: Level) -> list[PermissionSpec]:
    """The catalogue of one level, in catalogue order."""
    return [s for s in _SPECS if s.level == level]


def level_of(key: str) -> Level:
    """The level of a known key; KeyError for an unknown one."""
    return CATALOGUE[key].level


def supports_tag(key: str) -> bool:
    return key in TAG_SUPPORTED_KEYS
