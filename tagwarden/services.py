"""Write steps every app's services share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model

M = TypeVar("M", bound=Model)


class RevocableKey(Protocol):
    """An API key row (an organisation's, or an environment's server-side key)."""

    name: str
    revoked: bool


@contextlib.contextmanager
def unique_write(*, field: str, message: str) -> Iterator[None]:
    """A write (in a savepoint) whose uniqueness was checked just before: a concurrent
    request that won the race between check and write gets the same 400 on `field`, not a
    500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise ValidationError({field: [message]}) from None


def lock_current(obj: M) -> M | None:
    """`obj`'s row as committed now, locked until the transaction ends (`select_for_update`);
    None when it was deleted meanwhile."""
    return type(obj)._default_manager.select_for_update().filter(pk=obj.pk).first()


def key_rename_or_revoke(
    key: RevocableKey, *, name: str | None, revoked: bool | None, irrevocable: str
) -> None:
    """Rename and/or revoke a locked API key. Revoking cannot be undone: `revoked=False` on a
    revoked key is a 400 on `revoked` saying `irrevocable`."""
    if revoked is False and key.revoked:
        raise ValidationError({"revoked": [irrevocable]})
    if name is not None:
        key.name = name
    if revoked:
        key.revoked = True
