"""Write steps every app's services share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction


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
