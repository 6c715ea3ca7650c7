"""OpenAPI helpers: the schema of a viewset's standard actions (`crud_schema`), and the
postprocessing of what drf-spectacular cannot say from annotations alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.serializers import BaseSerializer

from permissions.drf import VIEW
from tagwarden.api.base import (
    ADMIN_LIST_ERRORS,
    ADMIN_READ_ERRORS,
    BAD_REQUEST,
    DELETE_ERRORS,
    DRY_RUN_PARAMETER,
    IMPACT_RESPONSE,
    LIST_ERRORS,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ActionViewSet,
)
from tagwarden.api.dry_run import DRY_RUN_DELETE_ERRORS, or_impact


def explain_one_or_many(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """The explain endpoint answers one explanation, or without `?permission=` a plain list
    of them (docs/API.md): its 200 is oneOf(Explain, [Explain])."""
    for path, item in result.get("paths", {}).items():
        if not path.endswith("/explain/") or "get" not in item:
            continue
        content = item["get"]["responses"]["200"]["content"]
        for media in content.values():
            one = media["schema"]
            media["schema"] = {"oneOf": [one, {"type": "array", "items": one}]}
    return result


def unsupported_media_type(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Every operation taking a body answers 415 when the body's Content-Type is none of the
    parsers' (JSON, form, multipart), or missing (docs/API.md, "Conventions"): said on each."""
    answer = {
        "description": "The body's Content-Type is none this operation reads.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["responses"].setdefault("415", answer)
    return result


# --------------------------------------------------------------------------------------
# The OpenAPI of a viewset's standard actions, from what the viewset declares
# --------------------------------------------------------------------------------------

V = TypeVar("V", bound=type[ActionViewSet])
ITEM_ACTIONS = frozenset({"retrieve", "update", "partial_update", "destroy"})


def crud_schema(
    summaries: Mapping[str, str] | None = None,
    *,
    bodies: Mapping[str, type[BaseSerializer]] | None = None,
    created: type[BaseSerializer] | None = None,
    descriptions: Mapping[str, str] | None = None,
    parameters: Sequence[OpenApiParameter] = (),
    item_parameters: Sequence[OpenApiParameter] = (),
    errors: Mapping[int, OpenApiResponse] | None = None,
    **extra: Mapping[str, Any],
) -> Callable[[V], V]:
    """Class decorator documenting the standard actions the viewset has (list, create,
    retrieve, update, partial_update, destroy) from its declarations:

    - what they answer: `serializer_class` (a create: `created` when given);
    - the body of create, update and partial_update: `bodies[action]`, else the answer;
    - `?dry_run=` on the actions in `dry_run_actions` (tagwarden.api.dry_run);
    - the errors: reads whose requirement is more than VIEW answer 403 too; a list or a create
      checked by authentication alone addresses no scope, so answers no 404.

    An action's summary is its method's docstring (tagwarden.api.autoschema), or
    `summaries[action]` (an inherited method: `list`, say). `descriptions[action]` describes
    an action; every action takes `parameters` (path parameters the URL converters cannot
    describe), the actions on one item `item_parameters` too; `errors` replace the default
    answers of their codes (a scope's own 404, say); `extra[action]` holds more `extend_schema` arguments: its `responses` and
    `parameters` add to the defaults, the others replace them.
    """

    def decorate(viewset: V) -> V:
        answer = viewset().get_serializer_class()
        dry_run = viewset.dry_run_actions
        unscoped = viewset.authenticated_actions
        guarded = {a for a, r in viewset.action_requirements.items() if r != VIEW}
        body = {**(bodies or {})}
        write_errors = {code: error for code, error in WRITE_ERRORS.items() if code != 404}
        defaults: dict[str, dict[str, Any]] = {
            "list": {
                "responses": {200: answer, 400: BAD_REQUEST, 401: UNAUTHENTICATED}
                if "list" in unscoped
                else {200: answer, **(ADMIN_LIST_ERRORS if "list" in guarded else LIST_ERRORS)}
            },
            "create": {
                "request": body.get("create", answer),
                "responses": {
                    201: created or answer,
                    **({200: IMPACT_RESPONSE} if "create" in dry_run else {}),
                    **(write_errors if "create" in unscoped else WRITE_ERRORS),
                },
            },
            "retrieve": {
                "responses": {
                    200: answer,
                    **(ADMIN_READ_ERRORS if "retrieve" in guarded else READ_ERRORS),
                }
            },
            "destroy": {
                "responses": {204: None, 200: IMPACT_RESPONSE, **DRY_RUN_DELETE_ERRORS}
                if "destroy" in dry_run
                else {204: None, **DELETE_ERRORS}
            },
        }
        for action in ("update", "partial_update"):
            changed = or_impact(answer) if action in dry_run else answer
            defaults[action] = {
                "request": body.get(action, answer),
                "responses": {200: changed, **WRITE_ERRORS},
            }
        schemas = {}
        for action, arguments in defaults.items():
            if not hasattr(viewset, action):
                continue
            if summaries and action in summaries:
                arguments["summary"] = summaries[action]
            if descriptions and action in descriptions:
                arguments["description"] = descriptions[action]
            arguments["responses"] = {
                code: (errors or {}).get(code, response)
                for code, response in arguments["responses"].items()
            }
            arguments["parameters"] = [
                *parameters,
                *(item_parameters if action in ITEM_ACTIONS else []),
                *([DRY_RUN_PARAMETER] if action in dry_run else []),
            ]
            for name, value in extra.get(action, {}).items():
                if name == "responses":
                    value = {**arguments["responses"], **value}
                elif name == "parameters":
                    value = [*arguments.get("parameters", []), *value]
                arguments[name] = value
            schemas[action] = extend_schema(**arguments)
        return cast(V, extend_schema_view(**schemas)(viewset))

    return decorate
