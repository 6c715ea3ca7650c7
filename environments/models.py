"""Environments of a project."""

from __future__ import annotations

import secrets

from django.core.validators import MinValueValidator
from django.db import models

from projects.models import Project


def generate_environment_api_key() -> str:
    return secrets.token_urlsafe(16)


class Environment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=200)
    api_key = models.CharField(
        max_length=64, unique=True, default=generate_environment_api_key, editable=False
    )
    # null: change requests are off. n >= 0: every feature-state and segment-override
    # write goes through a change request with at least n approvals.
    minimum_change_request_approvals = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def change_requests_enabled(self) -> bool:
        return self.minimum_change_request_approvals is not None
