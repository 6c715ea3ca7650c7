"""URL routes of a viewset: its collection (`{prefix}/`) and its items (`{prefix}/<id:pk>/`),
named `{name}-list` and `{name}-detail` (docs/ARCHITECTURE.md, "An endpoint")."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

import tagwarden.api.converters  # noqa: F401  (registers <id:...>, <env_key:...>)

#: The methods of a collection and of an item, and the actions they map to.
COLLECTION: dict[str, str] = {"get": "list", "post": "create"}
ITEM: dict[str, str] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
#: An item that is also replaced whole (PUT).
REPLACEABLE_ITEM: dict[str, str] = {
    "get": "retrieve",
    "put": "update",
    "patch": "partial_update",
    "delete": "destroy",
}


def resource_routes(
    prefix: str,
    viewset: Any,
    name: str,
    *,
    item: dict[str, str] = ITEM,
    collection: dict[str, str] = COLLECTION,
    lookup: str = "<id:pk>",
) -> list[URLPattern]:
    """`{prefix}/` with the `collection` actions and `{prefix}/{lookup}/` with the `item`
    actions ("list" and "detail" routes)."""
    return [
        path(f"{prefix}/", viewset.as_view(collection), name=f"{name}-list"),
        path(f"{prefix}/{lookup}/", viewset.as_view(item), name=f"{name}-detail"),
    ]
