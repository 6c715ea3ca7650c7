"""Writes for the Flagsmith SDKs (docs/API.md "Flags for applications"): identities and
their traits, and server-side environment keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction
from audit.services import Actor, Auditor
from environments.models import Environment
from sdk import selectors
from sdk.models import Identity, ServerKey, Trait
from tagwarden.services import key_rename_or_revoke


@dataclass(frozen=True)
class TraitInput:
    trait_key: str
    #: None removes a stored trait.
    trait_value: Any
    transient: bool = False


@dataclass(frozen=True)
class IdentityFlags:
    identifier: str
    flags: list[dict[str, Any]]
    traits: list[dict[str, Any]]


def identity_identify(
    *,
    environment: Environment,
    identifier: str,
    traits: Sequence[TraitInput] = (),
    transient: bool = False,
) -> IdentityFlags:
    """Store the identity and its traits (unless `transient`; a trait sent `transient` is
    used, never stored; a trait sent with value null is removed) and evaluate its flags.

    Four queries at most whatever the traits and segments (five with the caller's key
    lookup): the stored traits (one read, joined with the identity); then either the
    identity's creation (when new: it has nothing to remove) or the removals (one statement);
    the upserts (one statement); and the flags (`selectors.identity_flags`).
    """
    sent = {t.trait_key: t for t in traits}  # the last of a repeated key wins, as in Flagsmith
    stored: dict[str, Any] = {}
    if not transient:
        with transaction.atomic(savepoint=False):
            identity_id, stored = _stored_traits(environment=environment, identifier=identifier)
            if identity_id is None:
                identity_id = _identity_create(environment=environment, identifier=identifier)
            removed = [k for k, t in sent.items() if t.trait_value is None and k in stored]
            if removed:
                Trait.objects.filter(identity_id=identity_id, trait_key__in=removed).delete()
            changed = [
                Trait(identity_id=identity_id, trait_key=k, value=t.trait_value)
                for k, t in sent.items()
                if not t.transient
                and t.trait_value is not None
                and (
                    k not in stored
                    or stored[k] != t.trait_value
                    or type(stored[k]) is not type(t.trait_value)
                )
            ]
            if changed:
                Trait.objects.bulk_create(
                    changed,
                    update_conflicts=True,
                    unique_fields=["identity", "trait_key"],
                    update_fields=["value", "updated_at"],
                )
    values = dict(stored)
    for key, trait in sent.items():
        if trait.trait_value is None:
            values.pop(key, None)
        else:
            values[key] = trait.trait_value
    flags = selectors.identity_flags(environment=environment, identifier=identifier, traits=values)
    transient_keys = {k for k, t in sent.items() if t.transient or transient}
    return IdentityFlags(
        identifier=identifier,
        flags=flags,
        traits=[
            {"trait_key": key, "trait_value": values[key]}
            | ({"transient": True} if key in transient_keys else {})
            for key in sorted(values)
        ],
    )


def _stored_traits(
    *, environment: Environment, identifier: str
) -> tuple[int | None, dict[str, Any]]:
    """The identity's id (None when new) and its stored traits: one query (a left join)."""
    rows = Identity.objects.filter(environment=environment, identifier=identifier).values_list(
        "pk", "traits__trait_key", "traits__value"
    )
    identity_id: int | None = None
    traits: dict[str, Any] = {}
    for pk, key, value in rows:
        identity_id = pk
        if key is not None:
            traits[key] = value
    return identity_id, traits


def _identity_create(*, environment: Environment, identifier: str) -> int:
    """Create the identity, or take the one a concurrent request just created: one statement
    (an upsert that returns the id)."""
    (identity,) = Identity.objects.bulk_create(
        [Identity(environment=environment, identifier=identifier)],
        update_conflicts=True,
        unique_fields=["environment", "identifier"],
        update_fields=["identifier"],
    )
    return int(identity.pk)


# --------------------------------------------------------------------------------------
# Server-side keys (environment admins; docs/API.md "Flags for applications")
# --------------------------------------------------------------------------------------


def server_key_snapshot(server_key: ServerKey) -> dict[str, Any]:
    return {
        "name": server_key.name,
        "prefix": server_key.display_prefix,
        "revoked": server_key.revoked,
    }


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["This field may not be blank."]})
    if len(name) > 50:
        raise ValidationError({"name": ["Ensure this field has no more than 50 characters."]})
    return name


def server_key_create(
    *, environment: Environment, name: str, actor: Actor
) -> tuple[ServerKey, str]:
    """A new server-side key and the key itself (`ser.`…), which is never stored: only its
    prefix and its hash."""
    name = _check_name(name)
    with transaction.atomic():
        created, key = ServerKey.objects.create_key(environment=environment, name=name)
        server_key = cast(ServerKey, created)
        Auditor.in_environment(environment, actor=actor).record(
            AuditAction.CREATED, server_key, after=server_key_snapshot(server_key)
        )
    return server_key, f"{selectors.SERVER_KEY_PREFIX}{key}"


def server_key_update(
    *, server_key: ServerKey, name: str | None = None, revoked: bool | None = None, actor: Actor
) -> ServerKey:
    """Rename or revoke a key. Revoking cannot be undone (`revoked: false` on a revoked key
    is a 400); a write that changes nothing records nothing."""
    if name is not None:
        name = _check_name(name)
    with transaction.atomic():
        locked = (
            ServerKey.objects.select_for_update()
            .select_related("environment__project")
            .get(pk=server_key.pk)
        )
        before = server_key_snapshot(locked)
        key_rename_or_revoke(
            locked, name=name, revoked=revoked, irrevocable="A revoked key cannot be restored."
        )
        Auditor.in_environment(locked.environment, actor=actor).save(
            locked, fields=["name", "revoked"], before=before, after=server_key_snapshot(locked)
        )
    return locked


def server_key_delete(*, server_key: ServerKey, actor: Actor) -> None:
    with transaction.atomic():
        Auditor.in_environment(server_key.environment, actor=actor).delete(
            server_key, before=server_key_snapshot(server_key)
        )
