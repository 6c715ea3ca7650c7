"""Permissions as code, reading step 1: the shape of a document (types, lengths, characters,
duplicates), every error collected and keyed by its path in the document
(docs/PERMISSIONS_AS_CODE.md, "Errors")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from permission_documents.state import (
    _fold,
)


def join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class PathErrors:
    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        messages = self.by_path.setdefault(path, [])
        if message not in messages:
            messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.by_path)


def bad_characters(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


class ShapeReader:
    """Shape checks with path-keyed errors. Each method returns None for a bad value."""

    def __init__(self, errors: PathErrors) -> None:
        self.errors = errors

    def obj(
        self, value: Any, path: str, *, required: Sequence[str], optional: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.errors.add(path or "non_field_errors", "Expected an object.")
            return None
        allowed = {*required, *optional}
        for key in value:
            if key not in allowed:
                self.errors.add(join_path(path, key), "Unknown field.")
        for key in required:
            if key not in value:
                self.errors.add(join_path(path, key), "This field is required.")
        return value

    def string(
        self, value: Any, path: str, *, blank: bool = False, max_length: int | None = None
    ) -> str | None:
        if not isinstance(value, str):
            self.errors.add(path, "Expected a string.")
            return None
        if bad_characters(value):
            self.errors.add(path, "Null characters and lone surrogates are not allowed.")
            return None
        if not blank and not value.strip():
            self.errors.add(path, "This field may not be blank.")
            return None
        if max_length is not None and len(value) > max_length:
            self.errors.add(path, f"Ensure this field has no more than {max_length} characters.")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.errors.add(path, "Expected true or false.")
            return None
        return value

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """(path, item) of each element of a list."""
        if not isinstance(value, list):
            self.errors.add(path, "Expected a list.")
            return []
        return [(join_path(path, i), item) for i, item in enumerate(value)]

    def strings(self, value: Any, path: str) -> list[tuple[str, str]]:
        """(path, string) of each element of a list of strings; a string listed twice
        (case-insensitively) is an error at its second place."""
        seen: dict[str, str] = {}
        result = []
        for item_path, item in self.items(value, path):
            text = self.string(item, item_path)
            if text is None:
                continue
            first = seen.get(_fold(text))
            if first is not None:
                self.errors.add(item_path, f"Listed more than once (also at {first}).")
                continue
            seen[_fold(text)] = item_path
            result.append((item_path, text))
        return result
