"""`manage.py permissions export|plan|apply --organisation NAME [FILE]`: permissions as code
from the shell (docs/PERMISSIONS_AS_CODE.md, "Commands").

    export   write the organisation's document to FILE (YAML for .yaml/.yml, else JSON) or
             to stdout (JSON)
    plan     read a document from FILE (`-` or none: stdin) and print its changes and their
             impact; nothing is saved. Exit 0: no changes; 2: changes; 1: invalid document
    apply    apply it in one transaction. Exit 0: applied (or nothing to do); 1: invalid

Errors of an invalid document go to stderr, one `path: message` per line; nothing is applied.
`--actor EMAIL_OR_USERNAME` names the ADMIN member the changes are made (and audited) as;
without it the changes are the system's (audit actor empty, like `seed_demo`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Actor
from environments.models import Environment
from impact.changes import Impact, ImpactChange
from organisations.models import Organisation
from permission_documents import documents
from permissions import engine
from projects.models import Project

EXIT_INVALID = 1
EXIT_CHANGES = 2
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
# Types whose change `name` does not already say what they are.
TYPE_PREFIXES = {"grant": "grant ", "role_assignment": "assignment "}


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def change_line(change: documents.Change) -> str:
    """One readable line per change: `+ role "Payments" {...}`, `~ ... {...} → {...}`."""
    head = f"{SYMBOLS[change.action]} {TYPE_PREFIXES.get(change.object_type, '')}{change.name}"
    if change.action == "create":
        return f"{head} {_compact(change.after)}"
    if change.action == "update":
        return f"{head}: {_compact(change.before)} → {_compact(change.after)}"
    return head


class Command(BaseCommand):
    help = "Export, plan or apply an organisation's permissions document."

    def add_arguments(self, parser: CommandParser) -> None:
        # Subcommands, so that FILE may follow the options (`plan --organisation X FILE`).
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, summary in (
            ("export", "write the document to FILE or stdout"),
            ("plan", "print the changes and impact of FILE; exit 0 none, 2 changes, 1 invalid"),
            ("apply", "apply FILE in one transaction; exit 0 applied, 1 invalid"),
        ):
            sub = actions.add_parser(name, help=summary)
            sub.add_argument("file", nargs="?", default=None, help="The document; `-`: stdio.")
            sub.add_argument("--organisation", required=True, help="The organisation's name.")
            sub.add_argument(
                "--format",
                choices=["json", "yaml"],
                default=None,
                help="Format of FILE (default: YAML for .yaml/.yml, else JSON).",
            )
            if name != "export":
                sub.add_argument(
                    "--actor",
                    default=None,
                    help="Username or email of an ADMIN member to act (and be audited) as; "
                    "default: the system.",
                )

    def handle(self, *args: Any, **options: Any) -> None:
        organisation = self._organisation(options["organisation"])
        file: str | None = options["file"]
        use_stdio = file in (None, "-")
        fmt = options["format"] or (
            "yaml" if not use_stdio and Path(str(file)).suffix in (".yaml", ".yml") else "json"
        )
        if options["action"] == "export":
            self._export(organisation, None if use_stdio else file, fmt)
            return
        actor = self._actor(options.get("actor"), organisation)
        document = self._read(file, fmt)
        try:
            if options["action"] == "plan":
                plan = documents.permissions_document_plan(
                    organisation=organisation, document=document, actor=actor
                )
            else:
                plan = documents.permissions_document_apply(
                    organisation=organisation, document=document, actor=actor
                )
        except documents.DocumentInvalid as exc:
            self._invalid(exc.errors)
        self._print_plan(organisation, plan, applied=options["action"] == "apply")
        if options["action"] == "plan" and plan.has_changes:
            raise SystemExit(EXIT_CHANGES)

    # -- arguments ------------------------------------------------------------------------
    def _organisation(self, name: str) -> Organisation:
        found = list(Organisation.objects.filter(name=name)[:2])
        if not found:
            raise CommandError(f"No organisation is named {name!r}.")
        if len(found) > 1:
            raise CommandError(f"Several organisations are named {name!r}; rename one first.")
        return found[0]

    def _actor(self, who: str | None, organisation: Organisation) -> Actor:
        if who is None:
            return None
        user_model = get_user_model()
        user = user_model._default_manager.filter(username=who).first()
        if user is None:
            by_email = list(user_model._default_manager.filter(email__iexact=who)[:2])
            if len(by_email) > 1:
                raise CommandError(f"Several users have the email {who!r}; use the username.")
            user = by_email[0] if by_email else None
        if user is None:
            raise CommandError(f"No user has the username or email {who!r}.")
        if not engine.is_admin(user, organisation):
            raise CommandError(
                f"{who!r} is not an ADMIN member of {organisation.name!r}: documents are "
                "applied by organisation admins (or by the system, without --actor)."
            )
        return user

    # -- files ----------------------------------------------------------------------------
    def _read(self, file: str | None, fmt: str) -> Any:
        label = "stdin" if file in (None, "-") else str(file)
        try:
            text = sys.stdin.read() if file in (None, "-") else Path(str(file)).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._invalid({label: [f"Cannot read it: {exc}"]})
        try:
            return documents.yaml_load(text) if fmt == "yaml" else json.loads(text)
        except (yaml.YAMLError, ValueError) as exc:
            self._invalid({label: [f"Invalid {fmt.upper()}: {exc}"]})

    def _export(self, organisation: Organisation, file: str | None, fmt: str) -> None:
        try:
            document = documents.permissions_document_export(organisation=organisation)
        except documents.DocumentInvalid as exc:
            self._invalid(exc.errors, what="The organisation cannot be exported")
        if fmt == "yaml":
            text = documents.yaml_dump(document)
        else:
            text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        if file is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(file).write_text(text, "utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc}") from exc
        self.stderr.write(f"Wrote the document of {organisation.name!r} to {file}.")

    def _invalid(
        self,
        errors: dict[str, list[str]],
        what: str = "The document is invalid; nothing was applied",
    ) -> NoReturn:
        for path, messages in errors.items():
            for message in messages:
                self.stderr.write(f"{path}: {message}")
        self.stderr.write(f"{what}.")
        raise SystemExit(EXIT_INVALID)

    # -- output ---------------------------------------------------------------------------
    def _print_plan(
        self, organisation: Organisation, plan: documents.Plan, *, applied: bool
    ) -> None:
        out = self.stdout
        if not plan.has_changes:
            out.write(f"No changes: {organisation.name!r} already matches the document.")
            return
        for change in plan.changes:
            out.write(change_line(change))
        out.write("")
        out.write(self._impact_text(organisation, plan.impact))
        count = len(plan.changes)
        verb = "Applied" if applied else "Would apply"
        out.write(f"{verb} {count} change{'s' if count != 1 else ''} to {organisation.name!r}.")

    def _impact_text(self, organisation: Organisation, impact: Impact) -> str:
        if not impact:
            return "Impact: nobody gains or loses any permission."
        projects = dict(Project.objects.filter(organisation=organisation).values_list("id", "name"))
        environments = dict(
            Environment.objects.filter(project__organisation=organisation).values_list("id", "name")
        )

        def line(sign: str, change: ImpactChange) -> str:
            who = change.name if change.principal_type == "user" else f"API key {change.name!r}"
            if change.project_id is None:
                where = "the organisation"
            elif change.environment_id is None:
                where = f"project {projects.get(change.project_id, change.project_id)!r}"
            else:
                where = (
                    f"environment {projects.get(change.project_id, change.project_id)!r}/"
                    f"{environments.get(change.environment_id, change.environment_id)!r}"
                )
            count = (
                ""
                if change.features is None
                else f" ({change.features} feature{'s' if change.features != 1 else ''})"
            )
            return f"  {sign} {who}: {change.permission} on {where}{count}"

        lines = [f"Impact: {len(impact.gained)} gained, {len(impact.lost)} lost."]
        lines += [line("+", change) for change in impact.gained]
        lines += [line("-", change) for change in impact.lost]
        return "\n".join(lines)
