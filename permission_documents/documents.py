"""Permissions as code (docs/PERMISSIONS_AS_CODE.md).

The *permissions document* of an organisation names its members, groups, roles, role
assignments, grants and restricted tags, by names, in a stable order. Three operations:

    permissions_document_export(*, organisation)                 -> dict   (a selector)
    permissions_document_plan(*, organisation, document, actor)  -> Plan   (nothing saved)
    permissions_document_apply(*, organisation, document, actor) -> Plan   (one transaction)

Plan and apply go through the same three steps:

1. **Read** the document: check its shape and resolve every name (users by email,
   projects, environments, tags, groups, roles, API keys), collecting *every* error keyed by
   its path in the document (`roles[2].environments[0].permissions.VIEW_ENVIRONMENT`).
   Any error → `DocumentInvalid` (a Django `ValidationError` of `{path: [messages]}`).
2. **Diff** the desired state against the organisation's current state: an ordered list of
   operations, each a `Change` (what the plan shows) and a call of an existing service.
   Deleting a member, a group or a role cascades in its service; the diff accounts for it,
   so what a cascade removes is not listed (nor called) a second time.
3. **Execute** the operations through the services (validation, audit with the actor), under
   `impact.impact_preview` (plan: rolled back) or `impact.impact_apply` (apply). A service
   error comes back as a `DocumentInvalid` keyed by the path of the item being applied, and
   the transaction rolls back.

A document equal to the current state gives no operation: no service call, no audit entry.
The semantics chosen are written down in docs/PERMISSIONS_AS_CODE.md.

The package, in the order of those steps:

    base.py        the public types (`DocumentInvalid`, `Change`, `Plan`) and the messages
                   of a refusal
    yaml_io.py     YAML load and dump (the API's `?format=yaml`, the commands' .yaml files)
    state.py       the internal model: an organisation's `World` and `State` as a document
                   sees them, and how the current state is read from the database
    export.py      `permissions_document_export`
    reader.py      step 1: reading a document, every error keyed by its path
    operations.py  the operations: each calls one existing service
    differ.py      step 2: the diff of the current state into operations
    execute.py     step 3: running the operations; `permissions_document_plan` and
                   `permissions_document_apply`
"""

from __future__ import annotations

from organisations import services as organisation_services  # called by the operations
from permission_documents.base import Change, DocumentInvalid, Plan
from permission_documents.execute import permissions_document_apply, permissions_document_plan
from permission_documents.export import permissions_document_export
from permission_documents.reader import NAME_MAX_LENGTH, TOP_LEVEL_FIELDS
from permission_documents.yaml_io import yaml_dump, yaml_load
from permissions import services as grant_services  # called by the operations
from projects import services as project_services  # called by the operations

__all__ = [
    "NAME_MAX_LENGTH",
    "TOP_LEVEL_FIELDS",
    "Change",
    "DocumentInvalid",
    "Plan",
    "grant_services",
    "organisation_services",
    "permissions_document_apply",
    "permissions_document_export",
    "permissions_document_plan",
    "project_services",
    "yaml_dump",
    "yaml_load",
]
