"""Query expressions the ORM lacks."""

from __future__ import annotations

from typing import Any

from django.db.models import BooleanField, Func, Q


class Likely(Func):
    """A condition that holds for most rows, said so to SQLite's planner: `likely(X)` there,
    `X` itself on other databases.

    SQLite plans without statistics (no `ANALYZE` runs), and then takes an equality on a
    single-column unique index for the cheapest way in, `IS NULL` included: the NULLs of a
    nullable one-to-one column (most rows) looked like a single row. Told that the condition
    is likely, it looks for a better index instead (docs/PERFORMANCE.md, "List page")."""

    function = "likely"
    output_field = BooleanField()

    def __init__(self, condition: Q, **extra: Any) -> None:
        super().__init__(condition, **extra)

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        if connection.vendor == "sqlite":
            return super().as_sql(
                compiler, connection, function, template, arg_joiner, **extra_context
            )
        return compiler.compile(self.get_source_expressions()[0])
