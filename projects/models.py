"""Projects and their tags."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from django.db import models

from organisations.models import Organisation
from tagwarden.models import NamedModel

DEFAULT_TAG_COLOR = "#3d4db6"


def tag_label_key(label: str) -> str:
    """What two labels must not share in one project (docs/API.md, "Tags and features"):
    Unicode's canonical caseless match, `NFC(casefold(NFD(label)))`, so "Ärger", "ärger"
    and "A\u0308rger" are one label, and "Straße" is "STRASSE". Computed in Python, not with
    the database's LOWER(), which on SQLite folds ASCII only."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", label).casefold())


class TagLabelKeyField(models.CharField):
    """`tag_label_key(label)`, computed whenever the row is written (creates, bulk creates,
    and saves that write `label`: see `Tag.save`), so no write can skip it."""

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = tag_label_key(model_instance.label)  # type: ignore[attr-defined]
        setattr(model_instance, self.attname, value)
        return value


class Project(NamedModel):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    # A new value whenever the project's features, their tags or a tag's restriction change
    # (features/signals.py), never an old one again: what impact previews key their cached
    # feature indexes by (docs/PERFORMANCE.md, "How the costs follow the work").
    features_version = models.UUIDField(default=uuid.uuid4, editable=False)


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    label = models.CharField(max_length=100)
    #: unique per project; case folding may lengthen a label up to three times
    label_key = TagLabelKeyField(max_length=300, editable=False)
    color = models.CharField(max_length=16, default=DEFAULT_TAG_COLOR)
    description = models.TextField(blank=True, default="")
    # A restricted tag makes its features reachable through non-admin grants only by tagged
    # entries that name it (docs/PERMISSIONS.md).
    is_restricted = models.BooleanField(default=False)

    class Meta:
        ordering = ["label", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "label_key"], name="tag_unique_label_key"),
        ]

    def __str__(self) -> str:
        return self.label

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "label" in update_fields:
            kwargs["update_fields"] = {*update_fields, "label_key"}
        super().save(*args, **kwargs)
