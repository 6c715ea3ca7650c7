"""Tag labels unique per project under Unicode case folding (docs/API.md, "Tags and
features"): `label_key` holds `tag_label_key(label)` and replaces the LOWER(label)
constraint, which SQLite applied to ASCII only. Labels that now collide (only possible for
non-ASCII ones, e.g. "Ärger" and "ärger") keep the oldest tag's label; the others get a
" (2)", " (3)", ... suffix, so the constraint can be added."""

from typing import Any

from django.db import migrations, models

import projects.models


def fill_label_keys(apps: Any, schema_editor: Any) -> None:
    Tag = apps.get_model("projects", "Tag")
    taken: set[tuple[int, str]] = set()
    for tag in Tag.objects.order_by("project_id", "id"):
        label = tag.label
        key = projects.models.tag_label_key(label)
        suffix = 2
        while (tag.project_id, key) in taken:
            label = f"{tag.label[: 100 - len(f' ({suffix})')]} ({suffix})"
            key = projects.models.tag_label_key(label)
            suffix += 1
        taken.add((tag.project_id, key))
        Tag.objects.filter(pk=tag.pk).update(label=label, label_key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="tag",
            name="tag_unique_label_ci",
        ),
        migrations.AddField(
            model_name="tag",
            name="label_key",
            field=projects.models.TagLabelKeyField(default="", editable=False, max_length=300),
            preserve_default=False,
        ),
        migrations.RunPython(fill_label_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.UniqueConstraint(
                fields=("project", "label_key"), name="tag_unique_label_key"
            ),
        ),
    ]
