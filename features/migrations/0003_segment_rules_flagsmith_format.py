"""Segment rules follow Flagsmith's rule format (docs/API.md "Segments and their rules").

Free-form rules that are a list of flat conditions are converted (features/
segment_rules_migration.py); the rest are left unchanged and listed here and by
`manage.py segment_rules` (exit 1 while any remain). Such a segment matches no identity until
its rules are rewritten. Reversing keeps the converted rules (they are valid either way).
"""

from django.db import migrations


def convert_segment_rules(apps, schema_editor):
    from features.segment_rules_migration import converted_rules

    Segment = apps.get_model("features", "Segment")
    unconverted = []
    for segment in Segment.objects.order_by("pk").iterator():
        rules = converted_rules(segment.rules)
        if rules is None:
            unconverted.append(segment)
        elif rules is not segment.rules:
            segment.rules = rules
            segment.save(update_fields=["rules"])
    if unconverted:
        print(
            f"\n  {len(unconverted)} segment(s) keep rules that are not in Flagsmith's format "
            "and match no identity until rewritten (`manage.py segment_rules` lists them):"
        )
        for segment in unconverted:
            print(f"    segment {segment.pk} {segment.name!r} (project {segment.project_id})")


class Migration(migrations.Migration):
    dependencies = [("features", "0002_changerequestchange_feature_set_null")]

    operations = [migrations.RunPython(convert_segment_rules, migrations.RunPython.noop)]
