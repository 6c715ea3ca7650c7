"""Admin for what the SDKs store: identities and their traits (read-only: the SDKs write
them) and server-side keys (read-only here: created, revoked and deleted through the API by
environment admins, where the key is shown once and every change is audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sdk.models import Identity, ServerKey, Trait
from tagwarden.admin.base import ReadOnlyAdmin, ReadOnlyInline


class TraitInline(ReadOnlyInline):
    model = Trait
    readonly_fields = ("trait_key", "value", "updated_at")
    fields = readonly_fields


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    organisation_lookup = "environment__project__organisation"
    list_display = ["identifier", "environment", "created_at"]
    list_filter = [("environment__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["environment"]
    search_fields = ["identifier"]
    inlines = [TraitInline]


@admin.register(ServerKey)
class ServerKeyAdmin(ReadOnlyAdmin):
    organisation_lookup = "environment__project__organisation"
    list_display = ["name", "display_prefix", "environment", "created", "revoked"]
    list_filter = ["revoked", ("environment__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["environment"]
    search_fields = ["name", "prefix"]
    fields = ["name", "display_prefix", "environment", "created", "revoked"]
    readonly_fields = ["name", "display_prefix", "environment", "created", "revoked"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("environment")
