"""What an impact is: who gains and who loses which key, on which scope and how many features
(docs/PERMISSIONS.md, "Seeing a change before making it"), and how it is summarised for
answers and audit entries."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model

from impact.snapshots import PrincipalRef, PrincipalType


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an impact is worked out: a comparison
    allocates up to a few hundred thousand tuples and sets, none of them in a cycle (reference
    counting frees them), and every collection the allocations trigger would walk everything
    alive in the process, which cost a third of a large preview's time (docs/PERFORMANCE.md,
    "How the costs follow the work"). Left as it was found, whatever happens."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# One change as the comparisons find it: (principal, key, project id, environment id,
# features or None).
RawChange = tuple[PrincipalRef, str, int | None, int | None, int | None]

#: How many changes of each direction an audit entry keeps (the totals are always kept).
AUDIT_SUMMARY_LIMIT = 200
#: How many changes of each direction an IMPACT answer lists by default (`?impact_limit=`),
#: and at most; its `summary` is always complete (docs/PERMISSIONS.md, impact previews).
IMPACT_LIMIT_DEFAULT = 1000
IMPACT_LIMIT_MAX = 10000


# --------------------------------------------------------------------------------------
# Impact
# --------------------------------------------------------------------------------------


class ImpactChange(NamedTuple):
    """One principal gaining or losing one key on one scope (a named tuple: an impact can
    hold a hundred thousand of them)."""

    principal_type: PrincipalType
    principal_id: int
    name: str  # the user's email, or the API key's name
    permission: str
    project_id: int | None
    environment_id: int | None
    features: int | None

    def as_dict(self) -> dict[str, Any]:
        who: dict[str, Any] = (
            {"user": self.principal_id, "email": self.name}
            if self.principal_type == "user"
            else {"api_key": self.principal_id, "email": None, "name": self.name}
        )
        return {
            **who,
            "permission": self.permission,
            "project": self.project_id,
            "environment": self.environment_id,
            "features": self.features,
        }


@dataclass(frozen=True)
class Impact:
    gained: tuple[ImpactChange, ...] = ()
    lost: tuple[ImpactChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.gained or self.lost)

    def as_dict(self, limit: int = IMPACT_LIMIT_DEFAULT) -> dict[str, Any]:
        """IMPACT: at most `limit` changes each way, `truncated` when some were left out, and
        the complete `summary` (how many principals gain or lose each key on each scope)."""
        return {
            "gained": [change.as_dict() for change in self.gained[:limit]],
            "lost": [change.as_dict() for change in self.lost[:limit]],
            "summary": self.counts(),
            "truncated": len(self.gained) > limit or len(self.lost) > limit,
        }

    def counts(self) -> list[dict[str, Any]]:
        """Per key and scope, how many principals gain it and how many lose it."""
        totals: dict[tuple[str, int | None, int | None], list[int]] = defaultdict(lambda: [0, 0])
        for direction, changes in enumerate((self.gained, self.lost)):
            for change in changes:
                totals[(change.permission, change.project_id, change.environment_id)][
                    direction
                ] += 1
        return [
            {
                "permission": permission,
                "project": project,
                "environment": environment,
                "gained": gained,
                "lost": lost,
            }
            for (permission, project, environment), (gained, lost) in sorted(
                totals.items(), key=lambda item: (item[0][1] or 0, item[0][2] or 0, item[0][0])
            )
        ]

    def summary(self, limit: int = AUDIT_SUMMARY_LIMIT) -> dict[str, Any]:
        """What an audit entry keeps: the first `limit` changes each way, and the totals."""
        principals = {(c.principal_type, c.principal_id) for c in (*self.gained, *self.lost)}
        return {
            "gained": [change.as_dict() for change in self.gained[:limit]],
            "lost": [change.as_dict() for change in self.lost[:limit]],
            "gained_total": len(self.gained),
            "lost_total": len(self.lost),
            "principals": len(principals),
            "truncated": len(self.gained) > limit or len(self.lost) > limit,
        }


def impact_of(
    gained: Iterable[RawChange],
    lost: Iterable[RawChange],
    api_key_names: Mapping[int, str],
    *,
    user_emails: Mapping[int, str] | None = None,
    in_order: bool = False,
) -> Impact:
    """The Impact of the changes found, in a stable order (users first, by id, then scope and
    key), each named: a user by its email (from `user_emails` when given, else 1 query), an
    API key by `api_key_names`. `in_order`: the caller found them in that order already
    (nothing to sort)."""
    if in_order:
        gained, lost = list(gained), list(lost)
    else:
        gained, lost = sorted(gained, key=_order), sorted(lost, key=_order)
    principals = {change[0] for change in (*gained, *lost)}
    user_ids = [principal_id for kind, principal_id in principals if kind == "user"]
    names: dict[PrincipalRef, str] = {}
    if user_emails is not None:
        names.update((("user", user_id), user_emails.get(user_id, "")) for user_id in user_ids)
    elif user_ids:
        for user_id, email in (
            get_user_model()._default_manager.filter(pk__in=user_ids).values_list("pk", "email")
        ):
            names[("user", user_id)] = email
    for kind, principal_id in principals:
        if kind == "api_key":
            names[(kind, principal_id)] = api_key_names.get(principal_id, "")
    return Impact(gained=_changes(gained, names), lost=_changes(lost, names))


def _order(change: RawChange) -> tuple[Any, ...]:
    (kind, principal_id), key, project, environment, _ = change
    return (kind != "user", principal_id, project or 0, environment or 0, key)


def _changes(raw: list[RawChange], names: dict[PrincipalRef, str]) -> tuple[ImpactChange, ...]:
    return tuple(
        ImpactChange(kind, principal_id, names.get((kind, principal_id), ""), key, p, e, n)
        for (kind, principal_id), key, p, e, n in raw
    )
