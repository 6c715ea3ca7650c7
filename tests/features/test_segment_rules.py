"""Segment rules in Flagsmith's format: validated on write (a 400 naming the path of the bad
part), free-form rules converted by the data migration or reported (docs/API.md "Segments
and their rules")."""

from __future__ import annotations

import importlib
from io import StringIO
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command

from audit.models import AuditLogEntry
from features.models import Segment
from features.segment_rules import segment_rules_errors
from features.segment_rules_migration import converted_rules
from permissions.catalogue import MANAGE_SEGMENTS
from tests import factories as f
from tests.support.clients import client_for

VALID = [
    {
        "type": "ALL",
        "rules": [
            {
                "type": "ANY",
                "conditions": [
                    {"property": "plan", "operator": "EQUAL", "value": "pro"},
                    {"property": "age", "operator": "GREATER_THAN", "value": "17"},
                ],
            }
        ],
        "conditions": [{"property": "email", "operator": "IS_SET", "value": None}],
    },
    {"type": "NONE", "conditions": [{"operator": "PERCENTAGE_SPLIT", "value": "25"}]},
]


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ({"type": "ALL"}, "rules"),
        (["ALL"], "rules[0]"),
        (
            [
                {
                    "type": "SOME",
                    "conditions": [{"property": "a", "operator": "EQUAL", "value": "1"}],
                }
            ],
            "rules[0].type",
        ),
        ([{"type": "ALL"}], "rules[0]"),
        (
            [{"type": "ALL", "rules": [{"type": "ANY", "conditions": [{}]}]}],
            "rules[0].rules[0].conditions[0].operator",
        ),
        (
            [
                {
                    "type": "ALL",
                    "conditions": [
                        {"property": "a", "operator": "EQUAL", "value": "1"},
                        {"property": "b", "operator": "LIKE", "value": "x"},
                    ],
                }
            ],
            "rules[0].conditions[1].operator",
        ),
        (
            [{"type": "ALL", "conditions": [{"operator": "EQUAL", "value": "1"}]}],
            "rules[0].conditions[0].property",
        ),
        (
            [{"type": "ALL", "conditions": [{"property": "a", "operator": "EQUAL", "value": 1}]}],
            "rules[0].conditions[0].value",
        ),
        (
            [{"type": "ALL", "conditions": [{"property": "a", "operator": "EQUAL"}]}],
            "rules[0].conditions[0].value",
        ),
        (
            [{"type": "ALL", "conditions": [{"property": "a", "operator": "REGEX", "value": "("}]}],
            "rules[0].conditions[0].value",
        ),
        (
            [{"type": "ALL", "conditions": [{"operator": "PERCENTAGE_SPLIT", "value": "150"}]}],
            "rules[0].conditions[0].value",
        ),
        (
            [
                {
                    "type": "ALL",
                    "conditions": [{"property": "a", "operator": "MODULO", "value": "0|1"}],
                }
            ],
            "rules[0].conditions[0].value",
        ),
        (
            [
                {
                    "type": "ALL",
                    "conditions": [{"property": "a", "operator": "EQUAL", "value": "1", "x": 1}],
                }
            ],
            "rules[0].conditions[0].x",
        ),
        ([{"type": "ALL", "conditions": "a"}], "rules[0].conditions"),
    ],
)
def test_segment_rules_errors__bad_part__named_by_path(rules: Any, path: str) -> None:
    assert path in segment_rules_errors(rules)


def test_segment_rules_errors__flagsmith_format__none() -> None:
    assert segment_rules_errors(VALID) == {}
    assert segment_rules_errors([]) == {}


def test_segment_rules_errors__nesting_bomb__refused_without_recursion_error() -> None:
    rules: Any = {
        "type": "ALL",
        "conditions": [{"property": "a", "operator": "EQUAL", "value": "1"}],
    }
    for _ in range(5000):
        rules = {"type": "ALL", "rules": [rules]}
    assert segment_rules_errors([rules])


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "patch"])
def test_segment_write__bad_operator__400_naming_path_nothing_stored(
    method, organisation, project
) -> None:
    # Given
    manager = f.member(organisation)
    f.grant(manager, project, [MANAGE_SEGMENTS])
    segment = f.SegmentFactory(project=project, rules=VALID)
    bad = [
        {
            "type": "ALL",
            "conditions": [
                {"property": "a", "operator": "EQUAL", "value": "1"},
                {"property": "b", "operator": "LIKE", "value": "x"},
            ],
        }
    ]
    target = f"/api/v1/projects/{project.pk}/segments/"
    if method == "patch":
        target += f"{segment.pk}/"
    # When
    response = getattr(client_for(manager), method)(
        target, {"name": "s", "rules": bad}, format="json"
    )
    # Then
    assert response.status_code == 400
    assert list(response.json()) == ["rules[0].conditions[1].operator"]
    assert Segment.objects.get().rules == VALID
    assert not AuditLogEntry.objects.exists()


@pytest.mark.django_db
def test_segment_write__flagsmith_format__201(organisation, project) -> None:
    manager = f.member(organisation)
    f.grant(manager, project, [MANAGE_SEGMENTS])
    response = client_for(manager).post(
        f"/api/v1/projects/{project.pk}/segments/", {"name": "s", "rules": VALID}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["rules"] == VALID


# --------------------------------------------------------------------------------------
# Free-form rules: converted or reported
# --------------------------------------------------------------------------------------


def test_converted_rules__flat_conditions__one_all_rule() -> None:
    assert converted_rules(
        [
            {"trait": "beta_tester", "operator": "EQUAL", "value": True},
            {"attribute": "age", "operator": ">=", "value": 18},
        ]
    ) == [
        {
            "type": "ALL",
            "rules": [],
            "conditions": [
                {"property": "beta_tester", "operator": "EQUAL", "value": "true"},
                {"property": "age", "operator": "GREATER_THAN_INCLUSIVE", "value": "18"},
            ],
        }
    ]
    assert converted_rules([{"attribute": "plan", "value": "pro"}]) == [
        {
            "type": "ALL",
            "rules": [],
            "conditions": [{"property": "plan", "operator": "EQUAL", "value": "pro"}],
        }
    ]


def test_converted_rules__valid__unchanged_and_unknown__none() -> None:
    assert converted_rules(VALID) is VALID
    assert converted_rules([{"whatever": 1}]) is None
    assert converted_rules([{"trait": "a", "operator": "SOUNDS_LIKE", "value": "x"}]) is None


@pytest.mark.django_db
def test_data_migration__free_form_rules__converted_or_reported(project, capsys) -> None:
    # Given
    convertible = f.SegmentFactory(project=project, rules=[{"trait": "plan", "value": "pro"}])
    unconvertible = f.SegmentFactory(project=project, name="odd", rules=[{"whatever": 1}])
    valid = f.SegmentFactory(project=project, rules=VALID)
    migration = importlib.import_module("features.migrations.0003_segment_rules_flagsmith_format")
    # When
    migration.convert_segment_rules(django_apps, None)
    # Then
    convertible.refresh_from_db()
    unconvertible.refresh_from_db()
    valid.refresh_from_db()
    assert convertible.rules[0]["conditions"] == [
        {"property": "plan", "operator": "EQUAL", "value": "pro"}
    ]
    assert (unconvertible.rules, valid.rules) == ([{"whatever": 1}], VALID)
    assert f"segment {unconvertible.pk} 'odd'" in capsys.readouterr().out
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("segment_rules", stdout=out, stderr=StringIO())
    assert exit_info.value.code == 1
    assert "rules[0]" in out.getvalue() and "'odd'" in out.getvalue()


@pytest.mark.django_db
def test_segment_rules_command__all_valid__exit_0(project) -> None:
    f.SegmentFactory(project=project, rules=VALID)
    out = StringIO()
    call_command("segment_rules", stdout=out)
    assert "Every segment's rules are in Flagsmith's format." in out.getvalue()


@pytest.mark.django_db
def test_sdk_evaluation__free_form_segment__matches_nobody(environment) -> None:
    from sdk import selectors

    feature = f.FeatureFactory(project=environment.project, name="x")
    segment = f.SegmentFactory(project=environment.project, rules=[{"whatever": 1}])
    f.SegmentOverrideFactory(
        feature=feature, environment=environment, segment=segment, state__enabled=True
    )
    flags = selectors.identity_flags(
        environment=environment, identifier="ada", traits={"whatever": 1}
    )
    assert flags[0]["enabled"] is False
