"""`manage.py permissions export|plan|apply --organisation NAME [FILE]`: files in JSON or
YAML, a readable plan, and the exit codes (plan: 0 no changes, 2 changes, 1 invalid; apply:
0 applied, 1 invalid)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLogEntry
from organisations.models import Role
from permission_documents import documents
from tests import factories as f
from tests.support.documents_setup import Acme, build_acme

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(db: Any) -> Acme:
    return build_acme()


def run(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the command."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("permissions", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Any:
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def exported(acme: Acme) -> dict[str, Any]:
    return documents.permissions_document_export(organisation=acme.organisation)


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    text = documents.yaml_dump(document) if name.endswith(".yaml") else json.dumps(document)
    path.write_text(text)
    return str(path)


def with_new_role(acme: Acme) -> dict[str, Any]:
    document = exported(acme)
    document["roles"].append({"name": "QA", "description": "Testers"})
    return document


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------


def test_export__stdout__sorted_json_of_the_document(acme: Acme) -> None:
    code, out, _ = run("export", "--organisation", "Acme")

    assert code == 0
    assert json.loads(out) == exported(acme)
    assert out == json.dumps(exported(acme), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", ["acme.yaml", "acme.yml"])
def test_export__yaml_file__yaml_by_extension(acme: Acme, tmp_path: Path, name: str) -> None:
    target = tmp_path / name

    code, _, err = run("export", "--organisation", "Acme", str(target))

    assert code == 0
    assert "Wrote" in err
    text = target.read_text()
    assert not text.lstrip().startswith("{")
    assert documents.yaml_load(text) == exported(acme)


def test_export__json_file(acme: Acme, tmp_path: Path) -> None:
    target = tmp_path / "acme.json"

    run("export", "--organisation", "Acme", str(target))

    assert json.loads(target.read_text()) == exported(acme)


def test_export__unknown_organisation__command_error(acme: Acme) -> None:
    with pytest.raises(CommandError, match="No organisation is named 'Nope'"):
        run("export", "--organisation", "Nope")


def test_export__two_organisations_with_the_name__command_error(acme: Acme) -> None:
    f.OrganisationFactory(name="Acme")

    with pytest.raises(CommandError, match="Several organisations"):
        run("export", "--organisation", "Acme")


# --------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------


def test_plan__exported_file__exit_0_no_changes(acme: Acme, tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", exported(acme))

    code, out, _ = run("plan", "--organisation", "Acme", path)

    assert code == 0
    assert out.startswith("No changes")


def test_plan__changes__exit_2_readable_diff_and_impact_nothing_saved(
    acme: Acme, tmp_path: Path
) -> None:
    document = with_new_role(acme)
    document["roles"][0]["environments"][0]["permissions"]["UPDATE_FEATURE_STATE"] = []
    document["members"] = [m for m in document["members"] if m["email"] != "dave@example.com"]
    document["groups"][1]["members"] = []
    path = write(tmp_path, "acme.json", document)
    entries = AuditLogEntry.objects.count()

    code, out, _ = run("plan", "--organisation", "Acme", path)

    assert code == 2
    lines = out.splitlines()
    assert lines[:3] == [
        '- member "dave@example.com"',
        '+ role "QA" {"name": "QA", "description": "Testers"}',
        '~ grant role "Payments" / environment "Web"/"Production": '
        '{"admin": false, "permissions": {"UPDATE_FEATURE_STATE": ["payments", "ui"], '
        '"VIEW_ENVIRONMENT": []}} → {"admin": false, "permissions": '
        '{"UPDATE_FEATURE_STATE": [], "VIEW_ENVIRONMENT": []}}',
    ]
    assert "Impact: 3 gained, " in out
    assert (
        "  + bob@example.com: UPDATE_FEATURE_STATE on environment 'Web'/'Production' (1 feature)"
        in lines
    )
    assert "  - dave@example.com: VIEW_PROJECT on project 'Web'" in lines
    assert lines[-1] == "Would apply 3 changes to 'Acme'."
    assert AuditLogEntry.objects.count() == entries
    assert not Role.objects.filter(name="QA").exists()


def test_plan__invalid_file__exit_1_path_message_on_stderr(acme: Acme, tmp_path: Path) -> None:
    document = with_new_role(acme)
    document["roles"][0]["environments"][0]["permissions"]["VIEW_ENVIRONMENT"] = ["ui"]
    document["members"].append({"email": "nobody@example.com"})
    path = write(tmp_path, "acme.json", document)

    code, out, err = run("plan", "--organisation", "Acme", path)

    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        'members[4].email: No user has the email "nobody@example.com".',
        "roles[0].environments[0].permissions.VIEW_ENVIRONMENT: VIEW_ENVIRONMENT does not "
        "support tags.",
        "The document is invalid; nothing was applied.",
    ]


def test_plan__unparsable_json__exit_1(acme: Acme, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nope")

    code, _, err = run("plan", "--organisation", "Acme", str(path))

    assert code == 1
    assert err.startswith(f"{path}: Invalid JSON:")


def test_plan__missing_file__exit_1(acme: Acme, tmp_path: Path) -> None:
    code, _, err = run("plan", "--organisation", "Acme", str(tmp_path / "absent.yaml"))

    assert code == 1
    assert "Cannot read it" in err


def test_plan__stdin__json_by_default(acme: Acme, stdin: Any) -> None:
    stdin(json.dumps(with_new_role(acme)))

    code, out, _ = run("plan", "--organisation", "Acme", "-")

    assert code == 2
    assert out.startswith('+ role "QA"')


def test_plan__stdin_without_file_and_format_yaml(acme: Acme, stdin: Any) -> None:
    stdin(documents.yaml_dump(exported(acme)))

    code, _, _ = run("plan", "--organisation", "Acme", "--format", "yaml")

    assert code == 0


# --------------------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------------------


def test_apply__valid_file__exit_0_applied_as_the_system(acme: Acme, tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", with_new_role(acme))

    code, out, _ = run("apply", "--organisation", "Acme", path)

    assert code == 0
    assert out.splitlines()[-1] == "Applied 1 change to 'Acme'."
    role = Role.objects.get(organisation=acme.organisation, name="QA")
    entry = AuditLogEntry.objects.get(object_type="role", object_id=str(role.pk))
    assert (entry.actor_user, entry.actor_type) == (None, "")


def test_apply__twice__second_exit_0_no_changes_no_audit(acme: Acme, tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", with_new_role(acme))
    run("apply", "--organisation", "Acme", path)
    entries = AuditLogEntry.objects.count()

    code, out, _ = run("apply", "--organisation", "Acme", path)

    assert code == 0
    assert out.startswith("No changes")
    assert AuditLogEntry.objects.count() == entries


def test_apply__actor__audited_as_that_admin(acme: Acme, tmp_path: Path) -> None:
    path = write(tmp_path, "acme.json", with_new_role(acme))

    code, _, _ = run("apply", "--organisation", "Acme", "--actor", "ALICE@example.com", path)

    assert code == 0
    assert AuditLogEntry.objects.get(object_type="role").actor_user == acme.alice


def test_apply__actor_not_an_admin__command_error_nothing_applied(
    acme: Acme, tmp_path: Path
) -> None:
    path = write(tmp_path, "acme.json", with_new_role(acme))

    with pytest.raises(CommandError, match="not an ADMIN member"):
        run("apply", "--organisation", "Acme", "--actor", "bob", path)

    assert not Role.objects.filter(name="QA").exists()


def test_apply__unknown_actor__command_error(acme: Acme, tmp_path: Path) -> None:
    path = write(tmp_path, "acme.json", with_new_role(acme))

    with pytest.raises(CommandError, match="No user"):
        run("apply", "--organisation", "Acme", "--actor", "zed", path)


def test_apply__invalid_file__exit_1_nothing_applied(acme: Acme, tmp_path: Path) -> None:
    document = with_new_role(acme)
    document["users"][0]["projects"][0]["permissions"]["VIEW_PROJECT"] = ["ios"]
    path = write(tmp_path, "acme.yaml", document)
    entries = AuditLogEntry.objects.count()

    code, _, err = run("apply", "--organisation", "Acme", path)

    assert code == 1
    assert err.splitlines()[0] == (
        "users[0].projects[0].permissions.VIEW_PROJECT: Only role grants may carry tags; "
        "remove the tags of: VIEW_PROJECT."
    )
    assert AuditLogEntry.objects.count() == entries
    assert not Role.objects.filter(name="QA").exists()
