"""`Project.features_version`: what cached feature indexes are keyed by (docs/PERFORMANCE.md).
Existing projects share one first value; a value is only ever compared with the same
project's."""

import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0002_tag_label_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='features_version',
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
    ]
