"""Converting free-form segment rules, stored before rules followed Flagsmith's format, into
that format (docs/API.md "Segments and their rules").

Used by the data migration `features/migrations/0003_segment_rules_flagsmith_format.py` and
by `manage.py segment_rules`. A list of flat conditions such as
`[{"trait": "plan", "operator": "EQUAL", "value": "pro"}]` (also spelled with `attribute` or
`property`, an operator like `eq`/`==`, a default of EQUAL, and non-string values) becomes
one `ALL` rule over those conditions. Anything else is left as it is and reported: a segment
whose rules are not valid matches no identity (the SDK endpoints skip it) until someone
rewrites its rules.
"""

from __future__ import annotations

import json
from typing import Any

from features.segment_rules import OPERATORS, segment_rules_errors

_OPERATOR_ALIASES = {
    "eq": "EQUAL",
    "=": "EQUAL",
    "==": "EQUAL",
    "equals": "EQUAL",
    "ne": "NOT_EQUAL",
    "!=": "NOT_EQUAL",
    "not_equals": "NOT_EQUAL",
    "gt": "GREATER_THAN",
    ">": "GREATER_THAN",
    "gte": "GREATER_THAN_INCLUSIVE",
    ">=": "GREATER_THAN_INCLUSIVE",
    "lt": "LESS_THAN",
    "<": "LESS_THAN",
    "lte": "LESS_THAN_INCLUSIVE",
    "<=": "LESS_THAN_INCLUSIVE",
    "in": "IN",
    "contains": "CONTAINS",
    "not_contains": "NOT_CONTAINS",
    "regex": "REGEX",
}
_PROPERTY_KEYS = ("property", "trait", "attribute", "trait_key", "key")


def _value_as_string(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(str(v) for v in value)  # IN reads a comma-separated list
    return None


def _condition(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    names = [key for key in _PROPERTY_KEYS if key in item]
    if len(names) != 1:
        return None
    known = {names[0], "operator", "value", "description"}
    if set(item) - known:
        return None
    prop = item[names[0]]
    raw_operator = item.get("operator", "EQUAL")
    if not isinstance(prop, str) or not isinstance(raw_operator, str):
        return None
    operator = raw_operator.upper() if raw_operator.upper() in OPERATORS else None
    operator = operator or _OPERATOR_ALIASES.get(raw_operator.lower())
    if operator is None:
        return None
    condition: dict[str, Any] = {"property": prop, "operator": operator}
    if "value" in item and item["value"] is not None:
        value = _value_as_string(item["value"])
        if value is None:
            return None
        condition["value"] = value
    if isinstance(item.get("description"), str):
        condition["description"] = item["description"]
    return condition


def converted_rules(rules: Any) -> Any | None:
    """`rules` in Flagsmith's format: themselves when already valid, their conversion when
    they are a list of flat conditions, else None (cannot be converted)."""
    if not segment_rules_errors(rules):
        return rules
    if not isinstance(rules, list) or not rules:
        return None
    conditions = [_condition(item) for item in rules]
    if any(c is None for c in conditions):
        return None
    candidate = [{"type": "ALL", "rules": [], "conditions": conditions}]
    return None if segment_rules_errors(candidate) else candidate
