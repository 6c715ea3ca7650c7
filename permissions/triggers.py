"""The triggers that stamp an organisation's policies (docs/PERMISSIONS.md, "Policies kept
across requests").

A policy is loaded from the rows of the tables in `WATCHED`. Every insert, update or delete
there writes a `PolicyChange` row for each organisation it touches, in the same transaction,
whatever made the change (a service, the admin, a cascade, `QuerySet.update`, raw SQL), and
drops that organisation's older rows. The ids of an organisation's rows are its *stamp*: a
committed change always leaves a new, never reused id among them, so two reads that see the
same stamp saw the same rows.

- SQLite (one writer at a time): a row trigger per table and event; an organisation keeps
  one row.
- PostgreSQL: a statement trigger per table and event, with its transition tables. Older
  rows are dropped with `FOR UPDATE SKIP LOCKED`, so a trigger never waits on another
  transaction; rows of transactions still open are not seen, and stay until a later change
  drops them. Ids come from a sequence and are never reused, even after a rollback.

`install` and `uninstall` are run by the migration; `installed` tells whether every trigger
is in place (the engine shares no policy otherwise, and a test fails). On SQLite, a later
migration that rebuilds a watched table (most column changes do) drops its triggers: such a
migration must run `uninstall` then `install` after its changes.
"""

from __future__ import annotations

from typing import Any

CHANGES = "permissions_policychange"

#: table -> its organisation, as SQL over one of its rows `{row}` (NULL: none found).
WATCHED: dict[str, str] = {
    "organisations_organisationmembership": "{row}.organisation_id",
    "organisations_usergroup": "{row}.organisation_id",
    "organisations_usergroup_users": (
        "(SELECT ug.organisation_id FROM organisations_usergroup ug "
        "WHERE ug.id = {row}.usergroup_id)"
    ),
    "organisations_role": "{row}.organisation_id",
    "organisations_roleassignment": (
        "(SELECT r.organisation_id FROM organisations_role r WHERE r.id = {row}.role_id)"
    ),
    "permissions_grant": "{row}.organisation_id",
    "permissions_grantentry": (
        "(SELECT g.organisation_id FROM permissions_grant g WHERE g.id = {row}.grant_id)"
    ),
    "permissions_grantentrytag": (
        "(SELECT g.organisation_id FROM permissions_grant g "
        "JOIN permissions_grantentry e ON e.grant_id = g.id WHERE e.id = {row}.entry_id)"
    ),
}

_EVENTS = ("insert", "update", "delete")


def trigger_names() -> list[str]:
    return [f"tagwarden_stamp_{table}_{event}" for table in WATCHED for event in _EVENTS]


# --------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------


def _sqlite_stamp(organisation: str) -> str:
    return (
        f"INSERT INTO {CHANGES} (organisation_id) SELECT o FROM (SELECT {organisation} AS o) "
        "WHERE o IS NOT NULL; "
        f"DELETE FROM {CHANGES} WHERE organisation_id = {organisation} "
        f"AND id < (SELECT MAX(c.id) FROM {CHANGES} c WHERE c.organisation_id = {organisation});"
    )


def _sqlite_create() -> list[str]:
    statements = []
    for table, organisation in WATCHED.items():
        for event in _EVENTS:
            rows = {"insert": ["NEW"], "delete": ["OLD"], "update": ["OLD", "NEW"]}[event]
            body = " ".join(_sqlite_stamp(organisation.format(row=row)) for row in rows)
            statements.append(
                f"CREATE TRIGGER tagwarden_stamp_{table}_{event} AFTER {event.upper()} "
                f"ON {table} FOR EACH ROW BEGIN {body} END"
            )
    return statements


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------

_PG_STAMP = f"""
CREATE FUNCTION tagwarden_stamp(organisations bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    written bigint[];
BEGIN
    IF organisations IS NULL OR cardinality(organisations) = 0 THEN
        RETURN;
    END IF;
    WITH inserted AS (
        INSERT INTO {CHANGES} (organisation_id) SELECT unnest(organisations) RETURNING id
    ) SELECT array_agg(id) INTO written FROM inserted;
    DELETE FROM {CHANGES} WHERE id IN (
        SELECT c.id FROM {CHANGES} c
        WHERE c.organisation_id = ANY(organisations) AND c.id <> ALL(written)
        FOR UPDATE SKIP LOCKED
    );
END $$
"""


def _pg_create() -> list[str]:
    statements = [_PG_STAMP]
    for table, organisation in WATCHED.items():
        of_new = f"SELECT {organisation.format(row='n')} AS o FROM new_rows n"
        of_old = f"SELECT {organisation.format(row='n')} AS o FROM old_rows n"
        statements.append(
            f"""
CREATE FUNCTION tagwarden_stamp_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    organisations bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT o) INTO organisations FROM ({of_new}) s WHERE o IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o) INTO organisations FROM ({of_old}) s WHERE o IS NOT NULL;
    ELSE
        SELECT array_agg(DISTINCT o) INTO organisations
        FROM ({of_new} UNION {of_old}) s WHERE o IS NOT NULL;
    END IF;
    PERFORM tagwarden_stamp(organisations);
    RETURN NULL;
END $$
"""
        )
        for event in _EVENTS:
            referencing = {
                "insert": "NEW TABLE AS new_rows",
                "delete": "OLD TABLE AS old_rows",
                "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            }[event]
            statements.append(
                f"CREATE TRIGGER tagwarden_stamp_{table}_{event} AFTER {event.upper()} "
                f"ON {table} REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION tagwarden_stamp_{table}()"
            )
    return statements


# --------------------------------------------------------------------------------------
# Installing and checking
# --------------------------------------------------------------------------------------


def install(schema_editor: Any) -> None:
    connection = schema_editor.connection
    statements = _pg_create() if connection.vendor == "postgresql" else _sqlite_create()
    for statement in statements:
        schema_editor.execute(statement, params=None)
    # Every organisation starts with a stamp.
    schema_editor.execute(
        f"INSERT INTO {CHANGES} (organisation_id) SELECT id FROM organisations_organisation",
        params=None,
    )


def uninstall(schema_editor: Any) -> None:
    connection = schema_editor.connection
    for table in WATCHED:
        for event in _EVENTS:
            name = f"tagwarden_stamp_{table}_{event}"
            on = f" ON {table}" if connection.vendor == "postgresql" else ""
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}{on}", params=None)
        if connection.vendor == "postgresql":
            schema_editor.execute(f"DROP FUNCTION IF EXISTS tagwarden_stamp_{table}()", params=None)
    if connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS tagwarden_stamp(bigint[])", params=None)


def installed(connection: Any) -> bool:
    """Whether every trigger is in place on `connection`'s database (a table rebuilt by a
    later migration on SQLite loses its triggers)."""
    if connection.vendor == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    elif connection.vendor == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        return False
    with connection.cursor() as cursor:
        cursor.execute(sql)
        found = {name for (name,) in cursor.fetchall()}
    return set(trigger_names()) <= found
