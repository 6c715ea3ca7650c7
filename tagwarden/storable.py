"""What the databases can store as sent (docs/API.md, Conventions: "No input gives a 500").

Pure functions, shared by the API's parsers and fields (`tagwarden.api.base`) and the admin's
forms, so that every way in refuses the same values:

- integers outside the 64-bit signed range (SQLite cannot bind them; PostgreSQL's bigint
  cannot hold them);
- strings, anywhere inside a value (object keys and nested strings included), holding
  `\\u0000` (PostgreSQL's text and jsonb cannot store it) or a lone surrogate such as
  `\\ud800` (not encodable as UTF-8: SQLite would store it, and every read after would fail);
- a JSON `value` or segment `rules` whose compact UTF-8 encoding exceeds `MAX_JSON_BYTES`.
"""

from __future__ import annotations

import json
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: the largest value of an `integer` column on PostgreSQL (PositiveIntegerField, ...)
INT32_MAX = 2**31 - 1
MAX_JSON_BYTES = 64 * 1024


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a null character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains a lone surrogate (\\u{ord(text[error.start]):04x})"
    return None


def _join(path: str, key: object) -> str:
    return f"{path}[{key!r}]"


def unstorable(value: Any, path: str = "") -> str | None:
    """Why `value` cannot be stored as sent, naming where inside it (`at ['a'][0]: a null
    character (\\u0000)`), or None when it can be. `repr` keeps the named path printable."""
    where = f"at {path}: " if path else ""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{where}an integer outside the 64-bit signed range"
        return None
    if isinstance(value, str):
        problem = _string_problem(value)
        return f"{where}{problem}" if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := _string_problem(key)):
                return f"at {_join(path, key)}: a key that {problem}"
            if problem := unstorable(item, _join(path, key)):
                return problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if problem := unstorable(item, _join(path, index)):
                return problem
        return None
    return None


def json_too_large(value: Any) -> str | None:
    """Why `value` is too large to store as a JSON `value` or `rules`, or None."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_JSON_BYTES:
        return f"Encodes to {size} bytes; at most {MAX_JSON_BYTES} (64 KiB) are allowed."
    return None
