"""End to end, in Chromium: log in to the admin as an organisation admin, create a role with a
tagged grant, see the rejection of a tagged key that does not support tags, open the
permission matrix (screenshot) and follow a cell to its explanation."""

from __future__ import annotations

from typing import Any

import pytest

from organisations.models import Role
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from permissions.models import Grant
from tests import factories as f
from tests.support.browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def acme(db: Any) -> dict[str, Any]:
    organisation = f.OrganisationFactory(name="Acme")
    project = f.ProjectFactory(organisation=organisation, name="Shop")
    environment = f.EnvironmentFactory(project=project, name="production")
    beta = f.TagFactory(project=project, label="beta", color="#2e7d32")
    f.TagFactory(project=project, label="payments", is_restricted=True, color="#c62828")
    for i in range(6):
        f.FeatureFactory(project=project, name=f"flag_{i}", tags=[beta] if i % 2 else [])
    admin = f.member(organisation, admin=True, username="alice", is_staff=True)
    members = [f.member(organisation, username=f"member{i}") for i in range(4)]
    return {
        "organisation": organisation,
        "project": project,
        "environment": environment,
        "beta": beta,
        "admin": admin,
        "members": members,
    }


def choose_autocomplete(page: Any, field: str, text: str) -> None:
    """Pick `text` in the admin's select2 autocomplete for `field`."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", text)
    page.click(f".select2-results__option:has-text('{text}')")


def test_create_role_with_tagged_grant__unsupported_tagged_key_rejected(
    page: Any, live_server: Any, acme: dict[str, Any], tmp_path: Any
) -> None:
    log_in(page, live_server, "alice")

    # Create the role.
    page.goto(f"{live_server.url}/admin/organisations/role/add/")
    choose_autocomplete(page, "organisation", "Acme")
    page.fill("#id_name", "Beta testers")
    page.fill("#id_description", "May flip beta flags in production")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=was added successfully")
    role = Role.objects.get(name="Beta testers")

    # An environment grant tagging VIEW_ENVIRONMENT, which does not support tags: refused.
    row = "select[name$='-0-environment']"
    page.select_option(row, label="Shop / production")
    page.select_option(f"select[name$='-0-tags__{VIEW_ENVIRONMENT}']", label="Shop: beta")
    page.select_option(f"select[name$='-0-tags__{UPDATE_FEATURE_STATE}']", label="Shop: beta")
    page.click("input[name=_continue]")
    error = page.wait_for_selector("ul.errorlist >> text=VIEW_ENVIRONMENT does not support tags.")
    assert error.is_visible()
    assert page.is_visible("text=Please correct the error below.")
    page.screenshot(path=str(tmp_path / "rejected.png"), full_page=True)
    assert not Grant.objects.filter(role=role, environment=acme["environment"]).exists()

    # Untag it, grant it on every feature, keep UPDATE_FEATURE_STATE tagged beta: saved.
    page.select_option(f"select[name$='-0-tags__{VIEW_ENVIRONMENT}']", [])
    page.check(f"input[name$='-0-key__{VIEW_ENVIRONMENT}']")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=was changed successfully")
    grant = Grant.objects.get(role=role, environment=acme["environment"])
    entries = {e.key: [t.label for t in e.tags.all()] for e in grant.entries.all()}
    assert entries == {VIEW_ENVIRONMENT: [], UPDATE_FEATURE_STATE: ["beta"]}
    # The saved tags show on the page.
    selected = page.eval_on_selector(
        f"select[name$='-0-tags__{UPDATE_FEATURE_STATE}']",
        "el => Array.from(el.selectedOptions).map(o => o.textContent)",
    )
    assert selected == ["Shop: beta"]


def test_permission_matrix__renders_and_explains_a_cell(
    page: Any, live_server: Any, acme: dict[str, Any], tmp_path: Any
) -> None:
    role = f.RoleFactory(organisation=acme["organisation"], name="Beta testers")
    f.RoleAssignmentFactory(role=role, user=acme["members"][0])
    f.grant(role, acme["environment"], {UPDATE_FEATURE_STATE: [acme["beta"]]})
    log_in(page, live_server, "alice")

    # From the environment's change page to its matrix.
    page.goto(f"{live_server.url}/admin/environments/environment/{acme['environment'].pk}/change/")
    page.click("text=Permission matrix")
    page.wait_for_selector("#pm")
    assert page.locator("#pm thead th.pm-f").count() == 6
    assert page.locator("#pm tbody tr").count() == 5  # alice and four members
    shot = tmp_path / "matrix.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000

    # member0 holds UPDATE_FEATURE_STATE on the beta flags only (odd ones).
    member = acme["members"][0]
    cells = page.locator(f"#pm tr[data-u='{member.pk}'] td")
    assert cells.count() == 6
    texts = [cells.nth(i).inner_text() for i in range(6)]
    assert [t.startswith("U") for t in texts] == [False, True, False, True, False, True]

    # Hover: a tooltip listing the keys; click: the explanation of that cell.
    cell = cells.nth(1)
    cell.hover()
    title = cell.get_attribute("title")
    assert title is not None and f"\u2713 {UPDATE_FEATURE_STATE}" in title
    cell.click()
    page.wait_for_selector(f"#key-{UPDATE_FEATURE_STATE}")
    section = page.locator(f"#key-{UPDATE_FEATURE_STATE}")
    assert "Allowed" in section.inner_text()
    assert "Beta testers" in section.inner_text()
    page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)


def test_scoped_staff__does_not_see_other_organisations(
    page: Any, live_server: Any, acme: dict[str, Any]
) -> None:
    f.RoleFactory(organisation=f.OrganisationFactory(name="Rival"), name="Rival role")
    f.RoleFactory(organisation=acme["organisation"], name="Acme role")
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/admin/organisations/role/")
    body = page.inner_text("#result_list")
    assert "Acme role" in body
    assert "Rival role" not in body
