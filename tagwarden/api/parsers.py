"""The API's request parsers: DRF's, refusing what the databases cannot store.

Set as DRF's DEFAULT_PARSER_CLASSES (tagwarden/settings.py), so every request body of every
view goes through `unstorable_errors` once (docs/API.md, Conventions: "No input gives a
500"). This module imports no DRF view code: DRF imports it while loading its settings.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from tagwarden.storable import unstorable


def unstorable_errors(data: Any) -> dict[str, list[str]]:
    """`{field: [message]}` for each top-level field of a parsed body holding a value the
    databases cannot store as sent (`tagwarden.storable.unstorable`: integers outside the
    64-bit range, `\\u0000`, lone surrogates, in keys too); a body that is not an object is
    reported under `non_field_errors`."""
    errors: dict[str, list[str]] = {}
    if isinstance(data, QueryDict):
        items: list[tuple[Any, Any]] = [(key, v) for key in data for v in data.getlist(key)]
    elif isinstance(data, dict):
        items = list(data.items())
    else:
        items = [("non_field_errors", data)]
    for key, value in items:
        key_problem = unstorable(key) if isinstance(key, str) else None
        if key_problem is not None:
            message = f"Cannot be stored as sent: the field name {key_problem}."
            errors.setdefault("non_field_errors", []).append(message)
        elif (problem := unstorable(value)) is not None:
            errors.setdefault(key, []).append(f"Cannot be stored as sent: {problem}.")
    return errors


class StorableBodyMixin:
    """Refuses, with a 400 naming the field, a body holding what the databases cannot store.
    A parser runs once per request, for every view, whatever reads the body afterwards (a
    serializer, a permission document import), and only when a view first reads the body:
    after authentication and the scope checks, so 401/404/403 keep their order."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        data = parsed.data if isinstance(parsed, parsers.DataAndFiles) else parsed
        errors = unstorable_errors(data)
        if errors:
            raise ValidationError(errors)
        return parsed


class JSONParser(StorableBodyMixin, parsers.JSONParser):
    pass


class FormParser(StorableBodyMixin, parsers.FormParser):
    pass


class MultiPartParser(StorableBodyMixin, parsers.MultiPartParser):
    pass
