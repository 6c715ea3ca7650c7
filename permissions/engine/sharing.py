"""Policies kept across requests, under their organisation's stamp (docs/PERMISSIONS.md,
"Policies kept across requests").

Database triggers (permissions/triggers.py) give an organisation a new stamp in the
transaction of every change to what its policies are loaded from. A policy is kept with the
stamp read in the same query as its rows, and used again only by a request that reads the same
stamp: the rows are then the ones it was built from. A request pays one small query (the stamp)
instead of the policy query.

Nothing is kept:
- from inside a transaction (`atomic`): it may see its own uncommitted changes, and on SQLite
  a rolled-back stamp id is given again;
- when a trigger is missing (a table rebuilt by a later migration on SQLite drops them), which
  is checked once per process and logged;
- with `SHARED_POLICIES` off.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import connection

from organisations.models import OrganisationAPIKey
from permissions import triggers
from permissions.engine.policy import Policy, Principal, is_superuser
from permissions.models import PolicyChange

logger = logging.getLogger(__name__)

#: An organisation's stamp: the ids of its `PolicyChange` rows.
Stamp = frozenset[int]

#: Policies a process keeps at most (then it forgets them all at once).
SHARED_POLICIES_KEPT = 4096

_shared: dict[tuple[Any, ...], tuple[Stamp, Policy]] = {}
_lock = threading.Lock()
_triggers_checked: dict[str, bool] = {}


def stamp_of(text: str | None) -> Stamp | None:
    """A stamp read as one string of ids (None: the organisation has none yet, keep nothing)."""
    if not text:
        return None
    return frozenset(int(part) for part in text.split(","))


def read_stamp(organisation_id: int) -> Stamp | None:
    """The organisation's stamp now (1 query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {connection.ops.quote_name(PolicyChange._meta.db_table)} "
            "WHERE organisation_id = %s",
            [organisation_id],
        )
        ids = frozenset(row[0] for row in cursor.fetchall())
    return ids or None


def sharing_key(
    principal: Principal,
    organisation_id: int | None,
    project_id: int | None,
    environment_id: int | None,
) -> tuple[Any, ...] | None:
    """What a kept policy is kept under: the principal as it decides (a user's superuser
    standing, an API key's usability and admin flag are read from the principal object of
    this request), and the scope. None: nothing is kept for it."""
    if organisation_id is None or not settings.SHARED_POLICIES:
        return None
    if isinstance(principal, OrganisationAPIKey):
        who: tuple[Any, ...] = (
            "api_key",
            principal.pk,
            principal.organisation_id,
            principal.is_usable,
            principal.is_admin,
        )
    elif getattr(principal, "is_authenticated", False) and getattr(principal, "pk", None):
        who = ("user", principal.pk, is_superuser(principal))
    else:
        return None
    return (who, organisation_id, project_id, environment_id)


def shared_policy(key: tuple[Any, ...], organisation_id: int) -> Policy | None:
    """The policy kept under `key` if the organisation's stamp is still the one it was kept
    with (1 query when one is kept, none otherwise)."""
    kept = _shared.get(key)
    if kept is None:
        return None
    stamp, policy = kept
    return policy if read_stamp(organisation_id) == stamp else None


def share_policy(key: tuple[Any, ...], stamp: Stamp | None, policy: Policy) -> None:
    """Keep `policy`, loaded with `stamp` in the same query (not from inside a transaction)."""
    # The triggers are checked here, once per process: a request that keeps nothing (inside a
    # transaction) never pays for it.
    if stamp is None or connection.in_atomic_block or not _sharing_on():
        return
    with _lock:
        if len(_shared) >= SHARED_POLICIES_KEPT:
            _shared.clear()
        _shared[key] = (stamp, policy)


def forget_shared_policies(*, check_triggers: bool = False) -> None:
    """Drop every kept policy (benchmarks of cold decisions, tests); with `check_triggers`,
    look for the triggers again when a policy is next kept."""
    with _lock:
        _shared.clear()
        if check_triggers:
            _triggers_checked.clear()


def _sharing_on() -> bool:
    alias = connection.settings_dict.get("NAME", "")
    on = _triggers_checked.get(alias)
    if on is None:
        on = _triggers_checked[alias] = triggers.installed(connection)
        if not on:
            logger.error(
                "The policy stamp triggers are missing: no policy is kept across requests "
                "(run `manage.py migrate`; docs/PERMISSIONS.md, 'Policies kept across requests')"
            )
    return on
