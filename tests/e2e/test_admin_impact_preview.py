"""End to end, in Chromium: on a role's page, add a tagged environment grant, press "Preview
impact", see who would gain what (nothing saved, the form still filled in), then Save."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditLogEntry
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from permissions.models import Grant
from tests import factories as f
from tests.support.browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_role_page__preview_impact_then_save(page: Any, live_server: Any, tmp_path: Any) -> None:
    organisation = f.OrganisationFactory(name="Acme")
    project = f.ProjectFactory(organisation=organisation, name="Shop")
    environment = f.EnvironmentFactory(project=project, name="production")
    beta = f.TagFactory(project=project, label="beta")
    for i in range(4):
        f.FeatureFactory(project=project, name=f"flag_{i}", tags=[beta] if i % 2 else [])
    f.member(organisation, admin=True, username="alice", is_staff=True)
    tester = f.member(organisation, username="tester")
    role = f.RoleFactory(organisation=organisation, name="Beta testers")
    f.RoleAssignmentFactory(role=role, user=tester)
    audit_before = AuditLogEntry.objects.count()
    log_in(page, live_server, "alice")

    page.goto(f"{live_server.url}/admin/organisations/role/{role.pk}/change/")
    page.select_option("select[name$='-0-environment']", label="Shop / production")
    page.check(f"input[name$='-0-key__{VIEW_ENVIRONMENT}']")
    page.select_option(f"select[name$='-0-tags__{UPDATE_FEATURE_STATE}']", label="Shop: beta")
    page.click("input[name=_preview_impact] >> nth=-1")

    panel = page.wait_for_selector("#impact-preview")
    text = panel.inner_text()
    assert "Nothing was saved. Review the impact, then Save to apply." in text
    assert "gained (2)" in text.lower()  # captions are upper-cased by the admin CSS
    assert tester.email in text and UPDATE_FEATURE_STATE in text
    page.screenshot(path=str(tmp_path / "impact.png"), full_page=True)
    assert not Grant.objects.filter(role=role, environment=environment).exists()
    assert AuditLogEntry.objects.count() == audit_before
    # The submitted form is still there: Save applies it.
    assert page.is_checked(f"input[name$='-0-key__{VIEW_ENVIRONMENT}']")

    page.click("input[name=_save] >> nth=-1")
    page.wait_for_selector("text=was changed successfully")
    assert page.is_visible("text=Impact: 2 gained, 0 lost (recorded in the audit log).")
    grant = Grant.objects.get(role=role, environment=environment)
    entry = AuditLogEntry.objects.get(object_type="grant", object_id=str(grant.pk))
    assert entry.impact["gained_total"] == 2
