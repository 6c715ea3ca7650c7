"""Permissions as code, step 3: running the operations through the services, under
`previews.impact_preview` (plan) or `previews.impact_apply` (apply)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from audit.services import Actor
from impact import previews
from impact.changes import Impact
from organisations.models import Organisation
from permission_documents.base import DocumentInvalid, Plan, _messages
from permission_documents.differ import _Differ
from permission_documents.operations import _Context, _Operation
from permission_documents.reader import _DocumentReader
from permission_documents.state import World, _current_state, _load_users
from tagwarden.errors import DomainError

# --------------------------------------------------------------------------------------
# Execution: the operations in order, through the services
# --------------------------------------------------------------------------------------


def _execute(ops: Sequence[_Operation], ctx: _Context) -> None:
    """Run the operations in order; a refusal of a service → `DocumentInvalid` at the path
    of the item being applied (the caller's transaction rolls everything back)."""
    for op in ops:
        try:
            op.run(ctx)
        except (DjangoValidationError, DomainError, DjangoPermissionDenied) as exc:
            raise DocumentInvalid({op.path: _messages(exc)}) from exc
        except (ObjectDoesNotExist, IntegrityError) as exc:
            raise DocumentInvalid(
                {
                    op.path: [
                        "The organisation changed while this document was being applied; "
                        "plan it again."
                    ]
                }
            ) from exc


# --------------------------------------------------------------------------------------
# Plan and apply
# --------------------------------------------------------------------------------------


def _prepare(
    organisation: Organisation, document: Any, actor: Actor
) -> tuple[list[_Operation], _Context]:
    world = World.load(organisation)
    reader = _DocumentReader(world, actor)
    desired = reader.run(document)
    relevant = set(world.memberships) | set(desired.state.members)
    world.users.update(_load_users(relevant - set(world.users)))
    current = _current_state(world, relevant)
    ops = _Differ(world, current, desired).run()
    return ops, _Context(world=world, actor=actor)


def permissions_document_plan(*, organisation: Organisation, document: Any, actor: Actor) -> Plan:
    """The changes `document` would make and their impact; nothing is saved. The changes
    are executed through the services inside a transaction that is rolled back, so a plan
    finds every error an apply would."""
    ops, ctx = _prepare(organisation, document, actor)
    if not ops:
        return Plan(changes=(), impact=Impact())
    result = previews.impact_preview(
        organisation_id=organisation.pk, change=lambda: _execute(ops, ctx)
    )
    return Plan(changes=tuple(op.change for op in ops), impact=result)


def permissions_document_apply(*, organisation: Organisation, document: Any, actor: Actor) -> Plan:
    """Make the organisation match `document`, in one transaction, through the services
    (validation, audit entries with the actor). Nothing is applied when anything is wrong."""
    with transaction.atomic():
        # One document at a time per organisation: a second apply waits, then diffs
        # against what the first one left.
        organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
        ops, ctx = _prepare(organisation, document, actor)
        _, result = previews.impact_apply(
            organisation_id=organisation.pk, change=lambda: _execute(ops, ctx)
        )
    return Plan(changes=tuple(op.change for op in ops), impact=result)
