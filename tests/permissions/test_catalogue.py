"""The permission catalogue is exactly the table of docs/PERMISSIONS.md, "The catalogue".

The expected table is written out literally here, from docs/PERMISSIONS.md, so that a change to the
catalogue has to be a deliberate change to this test as well."""

from __future__ import annotations

import pytest

from permissions import catalogue
from permissions.catalogue import (
    CATALOGUE,
    KEYS_BY_LEVEL,
    TAG_SUPPORTED_KEYS,
    Level,
    level_of,
    specs_for,
    supports_tag,
)

# docs/PERMISSIONS.md "The catalogue", row by row: (level, key, supports_tag).
DESIGN_TABLE: list[tuple[str, str, bool]] = [
    ("organisation", "CREATE_PROJECT", False),
    ("organisation", "MANAGE_USER_GROUPS", False),
    ("project", "VIEW_PROJECT", False),
    ("project", "CREATE_ENVIRONMENT", False),
    ("project", "CREATE_FEATURE", False),
    ("project", "MANAGE_SEGMENTS", False),
    ("project", "MANAGE_TAGS", False),
    ("project", "VIEW_AUDIT_LOG", False),
    ("project", "DELETE_FEATURE", True),
    ("environment", "VIEW_ENVIRONMENT", False),
    ("environment", "UPDATE_FEATURE_STATE", True),
    ("environment", "CREATE_CHANGE_REQUEST", True),
    ("environment", "APPROVE_CHANGE_REQUEST", True),
    ("environment", "MANAGE_SEGMENT_OVERRIDES", True),
]


def test_catalogue__holds_exactly_the_keys_of_design_table() -> None:
    assert set(CATALOGUE) == {key for _, key, _ in DESIGN_TABLE}
    assert len(CATALOGUE) == len(DESIGN_TABLE) == 14


@pytest.mark.parametrize(("level", "key", "tag_support"), DESIGN_TABLE)
def test_catalogue__key_has_design_level_and_tag_support(
    level: str, key: str, tag_support: bool
) -> None:
    spec = CATALOGUE[key]
    assert spec.key == key
    assert spec.level == Level(level)
    assert spec.level.value == level
    assert spec.supports_tag is tag_support
    assert level_of(key) == Level(level)
    assert supports_tag(key) is tag_support
    assert spec.description.strip(), f"{key} needs a description"


@pytest.mark.parametrize(("level", "key", "tag_support"), DESIGN_TABLE)
def test_catalogue__constant_of_the_same_name_is_the_key(
    level: str, key: str, tag_support: bool
) -> None:
    assert getattr(catalogue, key) == key


def test_catalogue__tag_supported_keys_are_exactly_the_yes_rows() -> None:
    assert {key for _, key, tags in DESIGN_TABLE if tags} == TAG_SUPPORTED_KEYS
    assert {
        "DELETE_FEATURE",
        "UPDATE_FEATURE_STATE",
        "CREATE_CHANGE_REQUEST",
        "APPROVE_CHANGE_REQUEST",
        "MANAGE_SEGMENT_OVERRIDES",
    } == TAG_SUPPORTED_KEYS


@pytest.mark.parametrize("level", list(Level))
def test_catalogue__keys_by_level_and_specs_for_match_the_table(level: Level) -> None:
    expected = [key for row_level, key, _ in DESIGN_TABLE if row_level == level.value]
    assert sorted(KEYS_BY_LEVEL[level]) == sorted(expected)
    assert sorted(s.key for s in specs_for(level)) == sorted(expected)
    # Both follow catalogue order, and agree with each other.
    assert [s.key for s in specs_for(level)] == list(KEYS_BY_LEVEL[level])


def test_catalogue__levels_are_organisation_project_environment() -> None:
    assert [lv.value for lv in Level] == ["organisation", "project", "environment"]


def test_catalogue__organisation_keys_never_support_tags() -> None:
    assert not any(s.supports_tag for s in specs_for(Level.ORGANISATION))


@pytest.mark.parametrize("key", ["ADMIN", "admin", "view_project", "", "DELETE_FEATURES"])
def test_catalogue__unknown_key__not_in_catalogue(key: str) -> None:
    assert key not in CATALOGUE
    assert supports_tag(key) is False
    with pytest.raises(KeyError):
        level_of(key)


def test_catalogue__specs_are_immutable() -> None:
    spec = CATALOGUE["VIEW_PROJECT"]
    with pytest.raises((AttributeError, TypeError)):
        spec.supports_tag = True  # type: ignore[misc]


def test_grant_entry_key_choices__are_the_catalogue() -> None:
    from permissions.models import GrantEntry

    choices = GrantEntry._meta.get_field("key").choices
    assert [value for value, _ in choices] == list(CATALOGUE)
