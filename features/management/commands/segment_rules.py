"""`manage.py segment_rules`: list the segments whose rules are not in Flagsmith's format
(docs/API.md "Segments and their rules"), with the path of each problem.

Exit status 0 when every segment is valid, 1 otherwise. The data migration
`features/migrations/0003_segment_rules_flagsmith_format.py` converted the rules it could;
these remain, and match no identity until their rules are rewritten (API or admin).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from features.models import Segment
from features.segment_rules import segment_rules_errors


class Command(BaseCommand):
    help = "List segments whose rules are not in Flagsmith's format (exit 1 if any)."

    def handle(self, *args: Any, **options: Any) -> None:
        invalid = 0
        for segment in Segment.objects.order_by("pk"):
            errors = segment_rules_errors(segment.rules)
            if not errors:
                continue
            invalid += 1
            self.stdout.write(
                f"segment {segment.pk} {segment.name!r} (project {segment.project_id}):"
            )
            for path, messages in errors.items():
                for message in messages:
                    self.stdout.write(f"  {path}: {message}")
        if invalid:
            self.stderr.write(f"{invalid} segment(s) have rules not in Flagsmith's format.")
            raise SystemExit(1)
        self.stdout.write("Every segment's rules are in Flagsmith's format.")
