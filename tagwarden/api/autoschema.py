"""The OpenAPI inspector of every API viewset: an action's summary is the docstring of its
method (the whole docstring, on one line); the description stays the viewset's docstring,
or what `extend_schema` says."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc


class ActionSchema(AutoSchema):
    def _action_method(self) -> Any:
        return getattr(self.view, getattr(self.view, "action", self.method.lower()), None)

    def get_summary(self) -> str | None:
        return " ".join(get_doc(self._action_method()).split()) or None

    def get_description(self) -> str:  # type: ignore[override]
        return get_doc(self.view.__class__)
