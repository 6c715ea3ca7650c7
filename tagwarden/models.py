"""Model pieces the apps share (abstract: no table of their own)."""

from __future__ import annotations

from typing import Any, TypeVar, overload

from django.db import models

M = TypeVar("M", bound=models.Model)


class NamedModel(models.Model):
    """A row people know by its name, listed by name."""

    name: Any

    class Meta:
        abstract = True
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return str(self.name)


@overload
def optional_fk(
    to: type[M], *, on_delete: Any, related_name: str
) -> models.ForeignKey[M | None, M | None]: ...
@overload
def optional_fk(to: str, *, on_delete: Any, related_name: str) -> models.ForeignKey[Any, Any]: ...
def optional_fk(to: Any, *, on_delete: Any, related_name: str) -> models.ForeignKey[Any, Any]:
    """A foreign key that may be left empty (null in the database, blank in forms)."""
    return models.ForeignKey(
        to, null=True, blank=True, on_delete=on_delete, related_name=related_name
    )


def exactly_one_set(*fields: str) -> models.Q:
    """The condition that exactly one of `fields` is not null."""
    q = models.Q()
    for field in fields:
        q |= models.Q(**{f"{other}__isnull": other != field for other in fields})
    return q


def unique_when_set(owner: str, field: str, *, name: str) -> models.UniqueConstraint:
    """`field` at most once per `owner`, among the rows where it is set."""
    return models.UniqueConstraint(
        fields=[owner, field], condition=models.Q(**{f"{field}__isnull": False}), name=name
    )
