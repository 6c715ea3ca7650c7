"""Permissions as code: the public types every step shares (`DocumentInvalid`, `Change`,
`Plan`), and the messages of a refusal (`_messages`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError

from impact.changes import IMPACT_LIMIT_DEFAULT, Impact
from tagwarden.errors import DomainError

# --------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------


class DocumentInvalid(DjangoValidationError):
    """An invalid document, or one the services refused: `errors` maps paths in the
    document to messages. A `ValidationError`, so the API answers 400 with that dict."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {path: list(msgs) for path, msgs in errors.items()}
        super().__init__(self.errors)


@dataclass(frozen=True)
class Change:
    """One change a document makes. `before`/`after` are in document terms (names)."""

    action: str  # create | update | delete
    object_type: str  # organisation_membership, user_group, role, role_assignment, grant, tag
    name: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "object_type": self.object_type,
            "name": self.name,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class Plan:
    """The changes a document makes (in the order they are applied) and their impact."""

    changes: tuple[Change, ...]
    impact: Impact

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def as_dict(self, impact_limit: int = IMPACT_LIMIT_DEFAULT) -> dict[str, Any]:
        return {
            "changes": [change.as_dict() for change in self.changes],
            "impact": self.impact.as_dict(impact_limit),
        }


# --------------------------------------------------------------------------------------
# The messages of a refusal (of a service, or of its checks run while reading)
# --------------------------------------------------------------------------------------


def _messages(exc: Exception) -> list[str]:
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return [str(m) for messages in exc.message_dict.values() for m in messages]
        return [str(m) for m in exc.messages]
    if isinstance(exc, DomainError):
        return [exc.detail]
    return [str(exc) or "Refused."]
