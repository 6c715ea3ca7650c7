"""OpenAPI postprocessing for what drf-spectacular cannot say from annotations alone."""

from __future__ import annotations

from typing import Any


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
