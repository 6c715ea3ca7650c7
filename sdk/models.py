"""What the Flagsmith SDKs read and write (docs/API.md "Flags for applications"): identities
and their traits, stored per environment, and server-side environment keys."""

from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from environments.models import Environment

#: What every server-side key starts with; the SDKs require it for local evaluation.
SERVER_KEY_PREFIX = "ser."


class Identity(models.Model):
    """A user of an application, as the SDK names it (`identifier`), in one environment."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="identities"
    )
    identifier = models.CharField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment_id", "identifier"]
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "identifier"], name="identity_unique_identifier"
            ),
        ]

    def __str__(self) -> str:
        return self.identifier


class Trait(models.Model):
    """A trait of an identity: a string, number or boolean (`value`)."""

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="traits")
    trait_key = models.CharField(max_length=200)
    value = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["identity_id", "trait_key"]
        constraints = [
            models.UniqueConstraint(fields=["identity", "trait_key"], name="trait_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.trait_key}={self.value!r}"


class ServerKeyManager(BaseAPIKeyManager):
    def assign_key(self, obj: AbstractAPIKey) -> str:
        key = super().assign_key(obj)
        # The library uses "prefix.hash" as primary key; ours is an integer (ids are integers
        # in the API), so only the prefix and the hash it generated are kept.
        obj.id = None  # type: ignore[assignment]
        return key

    def get_usable_keys(self) -> models.QuerySet[ServerKey]:
        # The key's environment comes with it: one query authenticates and scopes a request.
        return super().get_usable_keys().select_related("environment__project__organisation")


class ServerKey(AbstractAPIKey):
    """A server-side environment key (`ser.` + the library's `prefix.secret`), for local
    evaluation. Only its prefix and its hash (djangorestframework-api-key's) are stored;
    the key is shown once, on creation. Revoking cannot be undone."""

    id = models.BigAutoField(primary_key=True)  # type: ignore[assignment]
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="server_keys"
    )

    objects = ServerKeyManager()  # type: ignore[assignment,misc]

    class Meta(AbstractAPIKey.Meta):
        abstract = False
        ordering = ("-created", "-id")  # type: ignore[assignment]
        verbose_name = "server-side environment key"
        verbose_name_plural = "server-side environment keys"

    @property
    def display_prefix(self) -> str:
        """What identifies the key to people: `ser.` and the library's prefix."""
        return f"{SERVER_KEY_PREFIX}{self.prefix}"

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"
