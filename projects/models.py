"""Projects and their tags."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from organisations.models import Organisation

DEFAULT_TAG_COLOR = "#3d4db6"


class Project(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    label = models.CharField(max_length=100)
    color = models.CharField(max_length=16, default=DEFAULT_TAG_COLOR)
    description = models.TextField(blank=True, default="")
    # A restricted tag makes its features reachable through non-admin grants only by tagged
    # entries that name it (DESIGN.md §5, Restricted tags).
    is_restricted = models.BooleanField(default=False)

    class Meta:
        ordering = ["label", "id"]
        constraints = [
            models.UniqueConstraint(Lower("label"), "project", name="tag_unique_label_ci"),
        ]

    def __str__(self) -> str:
        return self.label
