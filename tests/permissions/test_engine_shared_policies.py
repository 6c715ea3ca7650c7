"""Policies kept across requests under their organisation's stamp (docs/PERMISSIONS.md,
"Policies kept across requests"): every change to what a policy is loaded from gives the
organisation a new stamp in the same transaction, whatever makes it, and a kept policy is
used only under the stamp it was loaded with."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse

from organisations.models import (
    Organisation,
    OrganisationMembership,
    Role,
    RoleAssignment,
    UserGroup,
)
from permissions import engine, triggers
from permissions.catalogue import UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT
from permissions.engine import loader, sharing
from permissions.models import Grant, GrantEntry, GrantEntryTag, PolicyChange
from tests import factories as f
from tests.support.access import fresh, fresh_feature
from tests.support.clients import token_client

# --------------------------------------------------------------------------------------
# The triggers
# --------------------------------------------------------------------------------------


def _tables_of(sql: str) -> set[str]:
    return set(re.findall(r'"(\w+)"', sql))


@pytest.mark.django_db
def test_triggers__watch_every_table_the_policy_query_reads():
    read: set[str] = set()
    for api_key in (False, True):
        for organisation_known in (False, True):
            for scoped, narrowed in ((False, False), (True, False), (True, True)):
                for entries in (False, True):
                    read |= _tables_of(
                        loader._policy_sql(
                            connection.vendor,
                            api_key=api_key,
                            organisation_known=organisation_known,
                            scoped=scoped,
                            entries=entries,
                            narrowed=narrowed and not entries,
                        )
                    )
    # the organisation's own row gives only its id; the stamp is what the triggers write
    unwatched = {Organisation._meta.db_table, PolicyChange._meta.db_table, "projects_project"}
    assert read - unwatched == set(triggers.WATCHED)


@pytest.mark.django_db
def test_triggers__installed_by_the_migrations():
    assert triggers.installed(connection)


@pytest.mark.django_db
def test_triggers__one_dropped__reported_missing():
    on = f" ON {GrantEntryTag._meta.db_table}" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(f"DROP TRIGGER tagwarden_stamp_permissions_grantentrytag_delete{on}")
    assert not triggers.installed(connection)


# --------------------------------------------------------------------------------------
# Every change stamps its organisation, and only it
# --------------------------------------------------------------------------------------


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    env = f.EnvironmentFactory()
    organisation = env.project.organisation
    user = f.member(organisation)
    group = f.UserGroupFactory(organisation=organisation)
    group.users.add(user)
    role = f.RoleFactory(organisation=organisation)
    assignment = RoleAssignment.objects.create(role=role, group=group)
    tag = f.TagFactory(project=env.project)
    grant = f.grant(role, env, {UPDATE_FEATURE_STATE: [tag]})
    other = f.EnvironmentFactory()  # another organisation, which no change here touches
    f.member(other.project.organisation)
    return {
        "env": env,
        "organisation": organisation,
        "user": user,
        "group": group,
        "role": role,
        "assignment": assignment,
        "tag": tag,
        "grant": grant,
        "entry": grant.entries.get(),
        "other": other.project.organisation,
    }


def _second_user(w: dict[str, Any]) -> Any:
    return f.UserFactory()


CHANGES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "membership created": lambda w: f.member(w["organisation"]),
    "membership role changed": lambda w: OrganisationMembership.objects.filter(
        user=w["user"]
    ).update(role="ADMIN"),
    "membership deleted": lambda w: OrganisationMembership.objects.filter(user=w["user"]).delete(),
    "group created": lambda w: f.UserGroupFactory(organisation=w["organisation"]),
    "group renamed": lambda w: UserGroup.objects.filter(pk=w["group"].pk).update(name="renamed"),
    "group deleted": lambda w: UserGroup.objects.filter(pk=w["group"].pk).delete(),
    "user added to a group": lambda w: w["group"].users.add(_second_user(w)),
    "user removed from a group": lambda w: w["group"].users.remove(w["user"]),
    "role created": lambda w: f.RoleFactory(organisation=w["organisation"]),
    "role renamed": lambda w: Role.objects.filter(pk=w["role"].pk).update(name="renamed"),
    "role deleted": lambda w: Role.objects.filter(pk=w["role"].pk).delete(),
    "role assigned": lambda w: RoleAssignment.objects.create(role=w["role"], user=w["user"]),
    "role assignment moved": lambda w: RoleAssignment.objects.filter(pk=w["assignment"].pk).update(
        group=None, user=w["user"]
    ),
    "role unassigned": lambda w: RoleAssignment.objects.filter(pk=w["assignment"].pk).delete(),
    "grant created": lambda w: f.grant(w["user"], w["env"], [VIEW_ENVIRONMENT]),
    "grant admin changed": lambda w: Grant.objects.filter(pk=w["grant"].pk).update(admin=True),
    "grant deleted": lambda w: Grant.objects.filter(pk=w["grant"].pk).delete(),
    "entry created": lambda w: GrantEntry.objects.create(grant=w["grant"], key=VIEW_ENVIRONMENT),
    "entry key changed": lambda w: GrantEntry.objects.filter(pk=w["entry"].pk).update(
        key=VIEW_ENVIRONMENT
    ),
    "entry deleted": lambda w: GrantEntry.objects.filter(pk=w["entry"].pk).delete(),
    "entry tag added": lambda w: GrantEntryTag.objects.create(
        entry=w["entry"], tag=f.TagFactory(project=w["env"].project)
    ),
    "entry tag changed": lambda w: GrantEntryTag.objects.filter(entry=w["entry"]).update(
        tag=f.TagFactory(project=w["env"].project)
    ),
    "entry tag removed": lambda w: GrantEntryTag.objects.filter(entry=w["entry"]).delete(),
    "project deleted (its grants cascade)": lambda w: w["env"].project.delete(),
    "user deleted (memberships and grants cascade)": lambda w: w["user"].delete(),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_change__stamps_its_organisation_only(world: dict[str, Any], change: str):
    organisation, other = world["organisation"], world["other"]
    before, other_before = sharing.read_stamp(organisation.pk), sharing.read_stamp(other.pk)
    assert before is not None and other_before is not None
    CHANGES[change](world)
    after = sharing.read_stamp(organisation.pk)
    assert after is not None and after.isdisjoint(before)  # a new id, never one seen before
    assert sharing.read_stamp(other.pk) == other_before


@pytest.mark.django_db
def test_many_changes__an_organisation_keeps_one_stamp_row():
    env = f.EnvironmentFactory()
    for _ in range(5):
        f.grant(f.member(env.project.organisation), env, [VIEW_ENVIRONMENT])
    assert PolicyChange.objects.filter(organisation_id=env.project.organisation_id).count() == 1


# --------------------------------------------------------------------------------------
# Kept policies (outside any transaction, as requests run)
# --------------------------------------------------------------------------------------


@pytest.fixture
def kept(transactional_db: Any) -> Iterator[None]:
    sharing.forget_shared_policies(check_triggers=True)
    yield
    sharing.forget_shared_policies(check_triggers=True)


def _env_url(env: Any) -> str:
    return f"/api/v1/environments/{env.api_key}/"


def test_kept_policy__grant_deleted_by_a_queryset__next_request_denied(kept: None):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    grant = f.grant(user, env, [VIEW_ENVIRONMENT])
    client = token_client(user)
    assert client.get(_env_url(env)).status_code == 200
    assert sharing._shared  # kept
    Grant.objects.filter(pk=grant.pk).delete()  # no service, no signal: the triggers stamp
    assert client.get(_env_url(env)).status_code == 404


def test_kept_policy__grant_created__next_request_allowed(kept: None):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    client = token_client(user)
    assert client.get(_env_url(env)).status_code == 404
    assert sharing._shared
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert client.get(_env_url(env)).status_code == 200


def test_kept_policy__entry_tag_swapped_by_raw_sql__next_request_denied(kept: None):
    env = f.EnvironmentFactory()
    paid, other = f.TagFactory(project=env.project), f.TagFactory(project=env.project)
    feature = f.FeatureFactory(project=env.project, tags=[paid])
    user = f.member(env.project.organisation)
    role = f.RoleFactory(organisation=env.project.organisation)
    RoleAssignment.objects.create(role=role, user=user)
    f.grant(role, env, {UPDATE_FEATURE_STATE: [paid]})
    assert engine.allowed(fresh(user), UPDATE_FEATURE_STATE, env, feature)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {GrantEntryTag._meta.db_table} SET tag_id = %s WHERE tag_id = %s",
            [other.pk, paid.pk],
        )
    assert not engine.allowed(fresh(user), UPDATE_FEATURE_STATE, env, fresh_feature(feature))


def test_kept_policy__later_request__one_query_the_stamp(kept: None, django_assert_num_queries):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)  # loaded and kept
    later = fresh(user)
    with django_assert_num_queries(1):
        assert engine.allowed(later, VIEW_ENVIRONMENT, env)


def test_kept_policy__superuser_flag_dropped__next_request_not_admin(kept: None):
    env = f.EnvironmentFactory()
    user = f.UserFactory(is_superuser=True)  # no membership: admin as a superuser only
    assert engine.is_admin(fresh(user), env)
    type(user).objects.filter(pk=user.pk).update(is_superuser=False)
    assert not engine.is_admin(fresh(user), env)


def test_kept_policy__superuser_flag_given__next_request_admin(kept: None):
    env = f.EnvironmentFactory()
    user = f.UserFactory()
    assert not engine.is_admin(fresh(user), env)
    type(user).objects.filter(pk=user.pk).update(is_superuser=True)
    assert engine.is_admin(fresh(user), env)


def test_kept_policy__api_key_role_unassigned__next_request_denied(kept: None):
    env = f.EnvironmentFactory()
    key = f.APIKeyFactory(organisation=env.project.organisation)
    role = f.RoleFactory(organisation=env.project.organisation)
    assignment = RoleAssignment.objects.create(role=role, api_key=key)
    f.grant(role, env, [VIEW_ENVIRONMENT])
    client = token_client(key)
    assert client.get(_env_url(env)).status_code == 200
    RoleAssignment.objects.filter(pk=assignment.pk).delete()
    assert client.get(_env_url(env)).status_code == 404


def test_inside_a_transaction__nothing_kept(kept: None):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    f.grant(user, env, [VIEW_ENVIRONMENT])
    with transaction.atomic():
        assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)
    assert not sharing._shared


def test_triggers_missing__nothing_kept_and_logged(
    kept: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(triggers, "trigger_names", lambda: ["tagwarden_stamp_no_such_trigger"])
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)
    assert not sharing._shared
    assert "stamp triggers are missing" in caplog.text


def test_shared_policies_setting_off__nothing_kept(kept: None, settings: Any):
    settings.SHARED_POLICIES = False
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation)
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)
    assert not sharing._shared


# --------------------------------------------------------------------------------------
# Concurrency (PostgreSQL: transactions commit in another order than their stamp ids)
# --------------------------------------------------------------------------------------


def test_revocation_committing_after_a_later_change__kept_policy_not_used(kept: None):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: its stamps commit in their order")
    env = f.EnvironmentFactory()
    organisation = env.project.organisation
    user = f.member(organisation)
    grant = f.grant(user, env, [VIEW_ENVIRONMENT])
    revoking, revoked, other_committed = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def revoke() -> None:  # takes its stamp id first, commits last
        try:
            with transaction.atomic():
                Grant.objects.filter(pk=grant.pk).delete()
                revoking.set()
                assert other_committed.wait(10)
                assert revoked.wait(10)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def other_change() -> None:  # a later stamp id, committed first
        try:
            assert revoking.wait(10)
            f.member(organisation)
            other_committed.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=revoke), threading.Thread(target=other_change)]
    for thread in threads:
        thread.start()
    assert other_committed.wait(10)
    # The revocation is not committed yet: this request is allowed, and keeps its policy.
    assert engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)
    assert sharing._shared
    revoked.set()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert not engine.allowed(fresh(user), VIEW_ENVIRONMENT, env)


def test_kept_policy__admin__environment_grant_deleted__next_page_refused(kept: None, client: Any):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation, is_staff=True)
    grant = f.grant(user, env, [VIEW_ENVIRONMENT])
    client.force_login(user)
    url = reverse("admin:environments_environment_change", args=[env.pk])
    assert client.get(url).status_code == 200
    assert sharing._shared
    Grant.objects.filter(pk=grant.pk).delete()
    assert client.get(url).status_code == 404
    assert (
        env.name
        not in client.get(reverse("admin:environments_environment_changelist")).content.decode()
    )


def test_kept_policy__admin__environment_grant_created__next_page_shown(kept: None, client: Any):
    env = f.EnvironmentFactory()
    user = f.member(env.project.organisation, is_staff=True)
    client.force_login(user)
    url = reverse("admin:environments_environment_change", args=[env.pk])
    assert client.get(url).status_code == 404
    assert sharing._shared
    f.grant(user, env, [VIEW_ENVIRONMENT])
    assert client.get(url).status_code == 200
