"""End to end, in Chromium, on the demo organisation (`manage.py seed_demo`): the admin for
members whose rights are narrowed (docs/ADMIN.md).

`bob` (the payments engineer) signs in without being staff, sees the payments states editable
and the growth states read-only, toggles one, is refused on a stale form, and proposes a
change request in Production; `carol` approves it; `bob` commits it; the audit log shows
both. The screenshots of the states changelist and of the change-request page, as `bob`, are
written to docs/screenshots/ (the README shows them).

The demo's Release approver holds APPROVE_CHANGE_REQUEST untagged, which does not reach the
restricted tag `payments`; `carol` approves through the demo's Payments approver role
(APPROVE_CHANGE_REQUEST tagged `payments` in Production).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from audit.models import AuditLogEntry
from environments.models import Environment
from features.models import ChangeRequest, ChangeRequestStatus, FeatureState
from features.workflow.services import feature_state_update
from organisations.management.commands.seed_demo import DEMO_ORGANISATION, USERS

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORDS = {u.username: u.password for u in USERS}


@pytest.fixture
def demo(db: Any) -> dict[str, Any]:
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    production = Environment.objects.get(
        project__organisation__name=DEMO_ORGANISATION, project__name="Checkout", name="Production"
    )
    staging = Environment.objects.get(project=production.project, name="Staging")
    admin_user = production.project.organisation.memberships.get(user__username="admin").user
    return {"production": production, "staging": staging, "admin": admin_user}


def state(feature: str, environment: Environment) -> FeatureState:
    return FeatureState.objects.get(
        feature__name=feature, environment=environment, segment_override__isnull=True
    )


def sign_in(browser: Any, live_server: Any, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url
    return page


def test_admin_browser__toggle_propose_approve_commit__change_applied(
    browser: Any, live_server: Any, demo: dict[str, Any]
) -> None:
    staging, production = demo["staging"], demo["production"]
    base = f"{live_server.url}/admin/features/featurestate"
    bob = sign_in(browser, live_server, "bob")

    # The states of Staging, with bob's keys on each row.
    bob.goto(f"{base}/?environment__id__exact={staging.pk}")
    bob.wait_for_selector("#result_list")
    apple_row = bob.locator("#result_list tr:has-text('apple_pay')")
    assert "UPDATE_FEATURE_STATE" in apple_row.locator(".tw-keys").get_attribute("title")
    growth_row = bob.locator("#result_list tr:has-text('promo_code_field')")
    assert growth_row.locator(".tw-keys").get_attribute("title") == "no key on this feature"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    bob.screenshot(path=str(SCREENSHOTS / "admin-states-bob.png"), full_page=True)

    # Growth: read-only. Payments: editable; bob toggles it.
    bob.goto(f"{base}/{state('promo_code_field', staging).pk}/change/")
    bob.wait_for_selector("#content-main")
    assert bob.locator("#id_enabled").count() == 0
    apple = state("apple_pay", staging)
    bob.goto(f"{base}/{apple.pk}/change/")
    bob.check("#id_enabled")
    bob.click("input[name=_save]")
    bob.wait_for_selector("text=was changed successfully")
    apple.refresh_from_db()
    assert (apple.enabled, apple.version) == (True, 2)

    # A form opened before someone else's write is refused and changes nothing.
    bob.goto(f"{base}/{apple.pk}/change/")
    feature_state_update(state=apple, enabled=False, actor=demo["admin"])
    bob.fill("#id_value", '"late"')
    bob.click("input[name=_save]")
    bob.wait_for_selector("text=The state changed since you read it")
    apple.refresh_from_db()
    assert (apple.enabled, apple.value, apple.version) == (False, None, 3)

    # Production has change requests on: the same form proposes one.
    bob.goto(f"{base}/{state('apple_pay', production).pk}/change/")
    bob.fill("#id_title", "Turn on Apple Pay")
    bob.check("#id_enabled")
    bob.click("input[name=_save]")
    bob.wait_for_selector("text=proposed")
    change_request = ChangeRequest.objects.get(title="Turn on Apple Pay")
    assert change_request.author_user.username == "bob"
    assert bob.locator("#cr-approvals").inner_text().count("1 more") == 1

    # carol approves.
    carol = sign_in(browser, live_server, "carol")
    carol.goto(f"{live_server.url}/admin/features/changerequest/{change_request.pk}/change/")
    carol.click("#cr-actions input[name=approve]")
    carol.wait_for_selector("text=You approved it.")

    # bob sees the valid approval, and commits.
    bob.goto(f"{live_server.url}/admin/features/changerequest/{change_request.pk}/change/")
    bob.wait_for_selector("#cr-approvals >> text=it can be committed")
    bob.screenshot(path=str(SCREENSHOTS / "admin-change-request-bob.png"), full_page=True)
    bob.click("#cr-actions input[name=commit]")
    bob.wait_for_selector("text=Committed: every change was applied.")
    change_request.refresh_from_db()
    assert change_request.status == ChangeRequestStatus.COMMITTED
    assert state("apple_pay", production).enabled is True

    # The audit log shows both: carol's approval and bob's commit.
    entries = AuditLogEntry.objects.filter(
        object_type="change_request", object_id=str(change_request.pk), action="updated"
    )
    assert {e.actor_name for e in entries} >= {"bob", "carol"}
    admin = sign_in(browser, live_server, "admin")
    admin.goto(
        f"{live_server.url}/admin/audit/auditlogentry/?object_type=change_request"
        f"&q={change_request.pk}"
    )
    table = admin.locator("#result_list").inner_text()
    assert "carol" in table and "bob" in table
