"""Reads for the Flagsmith SDKs (docs/API.md "Flags for applications").

Shapes follow what the `flagsmith` SDK parses (its `models.py` `Flag.from_api_flag`, and its
`mappers.py` `map_environment_document_to_context` for the environment document). Segment
rules are evaluated by `flagsmith-flag-engine` (`engine.get_evaluation_result`), the
package the SDKs' local evaluation runs, so remote and local evaluation agree.

Queries: resolving the key is one query; every flag of the environment, default and
segment-override states with their features and segments, is one more. Nothing here reads
grants, members or any other environment.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from django.utils import timezone
from flag_engine import engine
from flag_engine.context.types import (
    EvaluationContext,
    FeatureContext,
    SegmentCondition,
    SegmentContext,
    SegmentRule,
)

from environments.models import Environment
from features.models import FeatureState, Segment
from features.segment_rules import segment_rules_errors
from sdk.models import SERVER_KEY_PREFIX, ServerKey

#: A fixed namespace for the `featurestate_uuid` the environment document carries.
_STATE_UUID_NAMESPACE = uuid.UUID("6d1c1b83-5a55-4a5c-9a57-0b7a8f0e7c11")


@dataclass(frozen=True)
class EnvironmentKey:
    """The environment a request's `X-Environment-Key` names, and whether the key is a
    server-side one (only those read the environment document)."""

    environment: Environment
    server_key: ServerKey | None

    @property
    def is_server_key(self) -> bool:
        return self.server_key is not None


def environment_key_resolve(*, key: str) -> EnvironmentKey | None:
    """The environment of a client key (`Environment.api_key`) or of a live server-side key
    (`ser.`…, checked with djangorestframework-api-key's hasher); None for anything else.
    One query."""
    if not key or len(key) > 200 or "\x00" in key:
        return None
    if key.startswith(SERVER_KEY_PREFIX):
        try:
            server_key = cast(
                ServerKey, ServerKey.objects.get_from_key(key[len(SERVER_KEY_PREFIX) :])
            )
        except ServerKey.DoesNotExist:
            return None
        if server_key.has_expired:
            return None
        return EnvironmentKey(environment=server_key.environment, server_key=server_key)
    environment = (
        Environment.objects.select_related("project__organisation").filter(api_key=key).first()
    )
    return None if environment is None else EnvironmentKey(environment=environment, server_key=None)


def server_keys_of_environment(*, environment: Environment) -> Any:
    return ServerKey.objects.filter(environment=environment).order_by("-created", "-id")


# --------------------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------------------


def sdk_value(value: Any) -> Any:
    """A state's value as the SDKs type it (string, number, boolean or null): a JSON object
    or list, which Flagsmith stores as text, is sent as its JSON encoding."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


class StateRow(NamedTuple):
    """One feature state as the SDK endpoints need it (plain values: no model instances,
    which cost more than the query at 10,000 features)."""

    pk: int
    enabled: bool
    value: Any
    environment_id: int
    feature_id: int
    feature_name: str
    feature_description: str
    override_id: int | None
    priority: int | None
    segment_id: int | None
    segment_name: str | None
    segment_rules: Any


def environment_states(*, environment: Environment) -> list[StateRow]:
    """Every state of the environment, default and override, with its feature and (for an
    override) its segment: one query whatever the number of features and segments."""
    rows = (
        FeatureState.objects.filter(environment=environment)
        .order_by(
            "feature__name", "feature_id", "segment_override__priority", "segment_override_id"
        )
        .values_list(
            "pk",
            "enabled",
            "value",
            "environment_id",
            "feature_id",
            "feature__name",
            "feature__description",
            "segment_override_id",
            "segment_override__priority",
            "segment_override__segment_id",
            "segment_override__segment__name",
            "segment_override__segment__rules",
        )
    )
    return [StateRow(*row) for row in rows]


def flag_payload(
    state: StateRow, *, enabled: bool | None = None, value: Any = None, **extra: Any
) -> dict[str, Any]:
    """One flag in the shape of Flagsmith's `/flags/` (what `Flag.from_api_flag` reads).
    The feature's `created_date`, which no SDK reads, is left out: converting 10,000
    timestamps cost a fifth of the response."""
    return {
        "id": state.pk,
        "feature": {
            "id": state.feature_id,
            "name": state.feature_name,
            "description": state.feature_description,
            "initial_value": None,
            "default_enabled": False,
            "type": "STANDARD",
        },
        "feature_state_value": sdk_value(state.value if enabled is None else value),
        "enabled": state.enabled if enabled is None else enabled,
        "environment": state.environment_id,
        "identity": None,
        "feature_segment": None,
        **extra,
    }


def environment_flags(*, environment: Environment) -> list[dict[str, Any]]:
    """The environment's default flags, by feature name."""
    return [
        flag_payload(state)
        for state in environment_states(environment=environment)
        if state.override_id is None
    ]


# --------------------------------------------------------------------------------------
# Identities: evaluation through flagsmith-flag-engine
# --------------------------------------------------------------------------------------


def _context_rules(rules: Iterable[Mapping[str, Any]]) -> list[SegmentRule]:
    """Stored rules (features/segment_rules.py) as the engine's context rules."""
    out: list[SegmentRule] = []
    for rule in rules:
        conditions: list[SegmentCondition] = [
            {
                "property": condition.get("property") or "",
                "operator": condition["operator"],
                "value": condition.get("value") or "",
            }
            for condition in rule.get("conditions") or []
        ]
        out.append(
            {
                "type": rule["type"],
                "conditions": conditions,
                "rules": _context_rules(rule.get("rules") or []),
            }
        )
    return out


def _valid_rules(segment_id: int, rules: Any, checked: dict[int, bool]) -> bool:
    # A segment whose rules predate the format and could not be converted matches no one
    # (docs/API.md "Segments and their rules"): fail closed.
    if segment_id not in checked:
        checked[segment_id] = bool(rules) and not segment_rules_errors(rules)
    return checked[segment_id]


def _feature_context(state: StateRow) -> FeatureContext[Any]:
    context: FeatureContext[Any] = {
        "key": str(state.pk),
        "name": state.feature_name,
        "enabled": state.enabled,
        "value": sdk_value(state.value),
        "metadata": {"id": state.feature_id},
    }
    if state.priority is not None:
        context["priority"] = state.priority
    return context


def evaluation_context(
    *, environment: Environment, states: list[StateRow], identifier: str, traits: dict[str, Any]
) -> EvaluationContext[Any, Any]:
    """The engine's context: default states as features, and each segment that overrides a
    feature here, with its rules and its overrides (lower `priority` wins, as in Flagsmith;
    on a tie, the override created first)."""
    features: dict[str, FeatureContext[Any]] = {}
    segments: dict[str, SegmentContext[Any, Any]] = {}
    checked: dict[int, bool] = {}
    for state in states:
        if state.override_id is None or state.segment_id is None:
            features[state.feature_name] = _feature_context(state)
            continue
        if not _valid_rules(state.segment_id, state.segment_rules, checked):
            continue
        key = str(state.segment_id)
        if key not in segments:
            segments[key] = {
                "key": key,
                "name": state.segment_name or "",
                "rules": _context_rules(state.segment_rules),
                "overrides": [],
                "metadata": {"id": state.segment_id, "source": "api"},
            }
        segments[key]["overrides"].append(_feature_context(state))
    return {
        "environment": {"key": environment.api_key, "name": environment.name},
        "identity": {"identifier": identifier, "traits": traits},
        "features": features,
        "segments": segments,
    }


def identity_flags(
    *, environment: Environment, identifier: str, traits: dict[str, Any]
) -> list[dict[str, Any]]:
    """The identity's flags: each feature's default state, or the override of the segment
    with the lowest `priority` whose rules the traits match. One query."""
    states = environment_states(environment=environment)
    context = evaluation_context(
        environment=environment, states=states, identifier=identifier, traits=traits
    )
    result = engine.get_evaluation_result(context)
    flags = []
    for state in states:
        if state.override_id is not None:
            continue
        flag = result["flags"][state.feature_name]
        # The engine's values are already in the SDK's types (sdk_value): passed as they are.
        flags.append(
            flag_payload(state, enabled=flag["enabled"], value=flag["value"], reason=flag["reason"])
        )
    return flags


# --------------------------------------------------------------------------------------
# The environment document (local evaluation)
# --------------------------------------------------------------------------------------


def _document_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rules as the document spells them (`property_`, as Flagsmith's engine models did)."""
    return [
        {
            "type": rule["type"],
            "conditions": [
                {
                    "operator": condition["operator"],
                    "property_": condition.get("property") or None,
                    "value": condition.get("value") or "",
                }
                for condition in rule.get("conditions") or []
            ],
            "rules": _document_rules(rule.get("rules") or []),
        }
        for rule in rules
    ]


def _document_state(state: StateRow) -> dict[str, Any]:
    return {
        "django_id": state.pk,
        "featurestate_uuid": str(uuid.uuid5(_STATE_UUID_NAMESPACE, str(state.pk))),
        "feature": {"id": state.feature_id, "name": state.feature_name, "type": "STANDARD"},
        "enabled": state.enabled,
        "feature_state_value": sdk_value(state.value),
        "multivariate_feature_state_values": [],
        "feature_segment": None if state.override_id is None else {"priority": state.priority},
    }


def environment_document(*, environment: Environment) -> dict[str, Any]:
    """What the SDKs' local evaluation reads (`GET /environment-document/`): the default
    states, and every segment of the project with its rules and its overrides here.
    Two queries."""
    states = environment_states(environment=environment)
    overrides: dict[int, list[dict[str, Any]]] = {}
    for state in states:
        if state.segment_id is not None:
            overrides.setdefault(state.segment_id, []).append(_document_state(state))
    checked: dict[int, bool] = {}
    segments = [
        {
            "id": segment.pk,
            "name": segment.name,
            "rules": _document_rules(segment.rules),
            "feature_states": overrides.get(segment.pk, []),
        }
        for segment in Segment.objects.filter(project_id=environment.project_id).order_by("pk")
        if _valid_rules(segment.pk, segment.rules, checked)
    ]
    project = environment.project
    organisation = project.organisation
    return {
        "id": environment.pk,
        "api_key": environment.api_key,
        "name": environment.name,
        "project": {
            "id": project.pk,
            "name": project.name,
            "organisation": {
                "id": organisation.pk,
                "name": organisation.name,
                "feature_analytics": False,
                "stop_serving_flags": False,
                "persist_trait_data": True,
            },
            "hide_disabled_flags": False,
            "segments": segments,
            "enable_realtime_updates": False,
            "server_key_only_feature_ids": [],
        },
        "feature_states": [_document_state(s) for s in states if s.override_id is None],
        "identity_overrides": [],
        "updated_at": timezone.now().isoformat(),
    }
