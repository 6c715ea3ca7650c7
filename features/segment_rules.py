"""Segment rules in Flagsmith's rule format (docs/API.md "Segments and their rules").

A segment's `rules` is a JSON list of rules; a rule is
`{"type": "ALL"|"ANY"|"NONE", "rules": [rule, ...], "conditions": [condition, ...]}` and a
condition is `{"property": trait key, "operator": one of flagsmith-flag-engine's operators,
"value": string or null, "description"?: string}`. The rules are evaluated by the
`flagsmith-flag-engine` package (see `sdk/selectors.py`); this module only checks their shape
on write, so that every stored rule is one the engine (and the SDKs' local evaluation) reads
the way its author meant. Errors name the path of the bad part, e.g.
`rules[0].conditions[1].operator`.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from flag_engine.segments.types import ConditionOperator, RuleType

RULE_TYPES: tuple[str, ...] = typing.get_args(RuleType)
OPERATORS: tuple[str, ...] = typing.get_args(ConditionOperator)
#: Operators that read no value.
VALUELESS_OPERATORS = frozenset({"IS_SET", "IS_NOT_SET"})
_RULE_KEYS = frozenset({"type", "rules", "conditions"})
_CONDITION_KEYS = frozenset({"property", "operator", "value", "description"})
#: Nesting deeper than this is refused (a guard against recursion bombs, far beyond what
#: Flagsmith's own editor builds: two levels).
MAX_DEPTH = 8
#: Flagsmith's limit on a condition value.
MAX_VALUE_LENGTH = 1000
MAX_PROPERTY_LENGTH = 1000
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def segment_rules_errors(rules: Any, *, path: str = "rules") -> dict[str, list[str]]:
    """Every problem of `rules`, keyed by its path (empty when the rules are valid)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(rules, list):
        errors[path] = ["Must be a JSON list of rules."]
        return errors
    for index, rule in enumerate(rules):
        _check_rule(rule, f"{path}[{index}]", 1, errors)
    return errors


def _add(errors: dict[str, list[str]], path: str, message: str) -> None:
    errors.setdefault(path, []).append(message)


def _check_rule(rule: Any, path: str, depth: int, errors: dict[str, list[str]]) -> None:
    if not isinstance(rule, dict):
        _add(errors, path, 'Must be a rule: {"type", "rules", "conditions"}.')
        return
    if depth > MAX_DEPTH:
        _add(errors, path, f"Rules may be nested at most {MAX_DEPTH} deep.")
        return
    for key in sorted(set(rule) - _RULE_KEYS):
        _add(errors, f"{path}.{key}", "Unknown key in a rule.")
    if rule.get("type") not in RULE_TYPES:
        _add(errors, f"{path}.type", f"Must be one of {', '.join(RULE_TYPES)}.")
    sub_rules = rule.get("rules", [])
    if not isinstance(sub_rules, list):
        _add(errors, f"{path}.rules", "Must be a JSON list of rules.")
    else:
        for index, sub_rule in enumerate(sub_rules):
            _check_rule(sub_rule, f"{path}.rules[{index}]", depth + 1, errors)
    conditions = rule.get("conditions", [])
    if not isinstance(conditions, list):
        _add(errors, f"{path}.conditions", "Must be a JSON list of conditions.")
    else:
        for index, condition in enumerate(conditions):
            _check_condition(condition, f"{path}.conditions[{index}]", errors)
    if sub_rules == [] and conditions == []:
        _add(errors, path, "A rule needs at least one condition or nested rule.")


def _check_condition(condition: Any, path: str, errors: dict[str, list[str]]) -> None:
    if not isinstance(condition, dict):
        _add(errors, path, 'Must be a condition: {"property", "operator", "value"}.')
        return
    for key in sorted(set(condition) - _CONDITION_KEYS):
        _add(errors, f"{path}.{key}", "Unknown key in a condition.")
    operator = condition.get("operator")
    if operator not in OPERATORS:
        _add(errors, f"{path}.operator", f"Must be one of {', '.join(OPERATORS)}.")
    prop = condition.get("property")
    if prop is None or prop == "":
        if operator != "PERCENTAGE_SPLIT":  # a split of identities needs no trait
            _add(errors, f"{path}.property", "Required: the trait key the condition reads.")
    elif not isinstance(prop, str):
        _add(errors, f"{path}.property", "Must be a string.")
    elif len(prop) > MAX_PROPERTY_LENGTH:
        _add(errors, f"{path}.property", f"At most {MAX_PROPERTY_LENGTH} characters.")
    description = condition.get("description")
    if description is not None and not isinstance(description, str):
        _add(errors, f"{path}.description", "Must be a string.")
    value = condition.get("value")
    value_path = f"{path}.value"
    if value is None:
        if operator in OPERATORS and operator not in VALUELESS_OPERATORS:
            _add(errors, value_path, f"Required for {operator}.")
        return
    if not isinstance(value, str):
        # Flagsmith stores condition values as strings; "true", "42" compare with boolean and
        # numeric traits as the engine casts them.
        _add(errors, value_path, 'Must be a string (e.g. "42", "true").')
        return
    if len(value) > MAX_VALUE_LENGTH:
        _add(errors, value_path, f"At most {MAX_VALUE_LENGTH} characters.")
    elif operator == "REGEX":
        try:
            re.compile(value)
        except re.error as error:
            _add(errors, value_path, f"Not a valid regular expression: {error}.")
    elif operator == "PERCENTAGE_SPLIT":
        if not _NUMBER.fullmatch(value) or not 0 <= float(value) <= 100:
            _add(errors, value_path, "Must be a percentage between 0 and 100.")
    elif operator == "MODULO":
        divisor, _, remainder = value.partition("|")
        if not (_NUMBER.fullmatch(divisor) and _NUMBER.fullmatch(remainder)):
            _add(errors, value_path, 'Must be "divisor|remainder", e.g. "2|0".')
        elif float(divisor) == 0:
            _add(errors, value_path, "The divisor must not be 0.")
