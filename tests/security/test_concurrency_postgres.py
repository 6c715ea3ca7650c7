"""Concurrency on PostgreSQL: racing requests settle exactly once, and a revoked grant is
never honoured after its revocation commits.

Each racing thread has its own database connection (Django's are per thread; closed when the
thread ends) and its own API client authenticating for real (`Token`, `Api-Key`), released
together by a barrier. The data is committed (`transaction=True`) so that the threads see it.
SQLite serialises writers on one file lock and cannot show these races: skipped there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditLogEntry
from features.models import ChangeRequest, ChangeRequestStatus, FeatureState
from organisations.models import OrganisationAPIKey, RoleAssignment
from permissions import engine
from permissions.catalogue import (
    APPROVE_CHANGE_REQUEST,
    CREATE_CHANGE_REQUEST,
    CREATE_PROJECT,
    DELETE_FEATURE,
    UPDATE_FEATURE_STATE,
    VIEW_ENVIRONMENT,
)
from permissions.models import Grant, GrantEntryTag
from projects.models import Tag
from tests import factories as f
from tests.factories import MembershipFactory
from tests.support.access import allowed, fresh
from tests.support.clients import token_client
from tests.support.feature_states import default_state

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL row locks (make test-postgres)",
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 8
API = "/api/v1"


def race(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run `work(i)` in `count` threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = work(index)
        except BaseException as error:  # reported by the caller
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


@dataclass
class Setup:
    organisation: Any
    project: Any
    environment: Any
    feature: Any
    admin: Any


@pytest.fixture
def setup() -> Setup:
    organisation = f.OrganisationFactory()
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    return Setup(
        organisation=organisation,
        project=project,
        environment=environment,
        feature=f.FeatureFactory(project=project),
        admin=f.member(organisation, admin=True),
    )


# --------------------------------------------------------------------------------------
# Committing one approved change request
# --------------------------------------------------------------------------------------


def test_commit__eight_threads__applied_exactly_once(setup: Setup) -> None:
    env = setup.environment
    env.minimum_change_request_approvals = 1
    env.save()
    author = f.member(setup.organisation)
    approver = f.member(setup.organisation)
    f.grant(author, env, [CREATE_CHANGE_REQUEST])
    f.grant(approver, env, [APPROVE_CHANGE_REQUEST])
    override = f.SegmentOverrideFactory(feature=setup.feature, environment=env)
    base = f"{API}/environments/{env.api_key}/change-requests/"
    created = token_client(author).post(
        base,
        {
            "title": "flip",
            "changes": [
                {"feature": setup.feature.pk, "enabled": True, "value": "on"},
                {
                    "feature": setup.feature.pk,
                    "segment_override": override.pk,
                    "enabled": True,
                    "value": 7,
                },
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    cr_id = created.data["id"]
    assert token_client(approver).post(f"{base}{cr_id}/approve/").status_code == 200
    states = list(FeatureState.objects.filter(feature=setup.feature, environment=env))
    assert {s.version for s in states} == {1}
    audit_before = AuditLogEntry.objects.count()

    # half the committers are the author, half the approver: both may commit
    clients = [token_client(author if i % 2 else approver) for i in range(THREADS)]
    responses = race(THREADS, lambda i: clients[i].post(f"{base}{cr_id}/commit/"))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (THREADS - 1), [r.content for r in responses]
    assert {r.data["code"] for r in responses if r.status_code == 409} == {"already_committed"}
    change_request = ChangeRequest.objects.get(pk=cr_id)
    assert change_request.status == ChangeRequestStatus.COMMITTED
    for state in FeatureState.objects.filter(pk__in=[s.pk for s in states]):
        assert state.version == 2
        assert state.enabled is True
    assert FeatureState.objects.get(pk=default_state(setup.feature, env).pk).value == "on"
    new = AuditLogEntry.objects.order_by("id")[audit_before:]
    by_type = sorted((e.object_type, e.object_id) for e in new)
    assert by_type == sorted(
        [("feature_state", str(s.pk)) for s in states] + [("change_request", str(cr_id))]
    )


def test_approve__eight_threads_same_approver__one_approval_one_entry(setup: Setup) -> None:
    env = setup.environment
    env.minimum_change_request_approvals = 2
    env.save()
    author = f.member(setup.organisation)
    approver = f.member(setup.organisation)
    f.grant(author, env, [CREATE_CHANGE_REQUEST])
    f.grant(approver, env, [APPROVE_CHANGE_REQUEST])
    base = f"{API}/environments/{env.api_key}/change-requests/"
    created = token_client(author).post(
        base, {"title": "t", "changes": [{"feature": setup.feature.pk, "enabled": True}]}
    )
    cr_id = created.data["id"]
    audit_before = AuditLogEntry.objects.count()

    clients = [token_client(approver) for _ in range(THREADS)]
    responses = race(THREADS, lambda i: clients[i].post(f"{base}{cr_id}/approve/"))

    assert [r.status_code for r in responses] == [200] * THREADS
    assert ChangeRequest.objects.get(pk=cr_id).approvals.count() == 1
    assert AuditLogEntry.objects.count() == audit_before + 1


# --------------------------------------------------------------------------------------
# PATCHing one feature state with the same version
# --------------------------------------------------------------------------------------


def test_patch_state__same_version_eight_threads__one_200_seven_409_stale(setup: Setup) -> None:
    env = setup.environment
    editors = [f.member(setup.organisation) for _ in range(THREADS)]
    for editor in editors:
        f.grant(editor, env, [UPDATE_FEATURE_STATE])
    state = default_state(setup.feature, env)
    url = f"{API}/environments/{env.api_key}/featurestates/{state.pk}/"
    clients = [token_client(editor) for editor in editors]
    audit_before = AuditLogEntry.objects.count()

    responses = race(
        THREADS,
        lambda i: clients[i].patch(
            url, {"enabled": True, "value": f"writer-{i}", "version": 1}, format="json"
        ),
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (THREADS - 1), [r.content for r in responses]
    assert {r.data["code"] for r in responses if r.status_code == 409} == {"stale"}
    (winner,) = [i for i, r in enumerate(responses) if r.status_code == 200]
    state.refresh_from_db()
    assert (state.version, state.enabled, state.value) == (2, True, f"writer-{winner}")
    assert responses[winner].data["version"] == 2
    entries = list(AuditLogEntry.objects.order_by("id")[audit_before:])
    assert [(e.object_type, e.object_id) for e in entries] == [("feature_state", str(state.pk))]
    assert entries[0].actor_user_id == editors[winner].pk


def test_patch_state__without_version_eight_threads__eight_versions(setup: Setup) -> None:
    """Without `version` every write applies, one after the other: no lost update."""
    env = setup.environment
    editor = f.member(setup.organisation)
    f.grant(editor, env, [UPDATE_FEATURE_STATE])
    state = default_state(setup.feature, env)
    url = f"{API}/environments/{env.api_key}/featurestates/{state.pk}/"
    clients = [token_client(editor) for _ in range(THREADS)]

    responses = race(THREADS, lambda i: clients[i].patch(url, {"value": i}, format="json"))

    assert [r.status_code for r in responses] == [200] * THREADS
    state.refresh_from_db()
    assert state.version == 1 + THREADS
    assert sorted(r.data["version"] for r in responses) == list(range(2, 2 + THREADS))
    assert AuditLogEntry.objects.filter(object_type="feature_state").count() == THREADS


# --------------------------------------------------------------------------------------
# Revoking while requests run
# --------------------------------------------------------------------------------------


@dataclass
class Call:
    started: float
    status: int


def _revocations(setup: Setup) -> dict[str, Callable[[], tuple[Any, Callable[[], Any]]]]:
    """Each: () -> (principal, revoke) where revoke() takes the principal's only access to
    UPDATE_FEATURE_STATE in the environment away, through the API, and returns the response."""
    env = setup.environment
    admin_client = token_client(setup.admin)
    org_url = f"{API}/organisations/{setup.organisation.pk}"

    def user_grant() -> tuple[Any, Callable[[], Any]]:
        user = f.member(setup.organisation)
        f.grant(user, env, [UPDATE_FEATURE_STATE, VIEW_ENVIRONMENT])
        grant = Grant.objects.get(user=user)
        url = f"{API}/environments/{env.api_key}/user-permissions/{grant.pk}/"
        return user, lambda: admin_client.delete(url)

    def group_membership() -> tuple[Any, Callable[[], Any]]:
        user = f.member(setup.organisation)
        group = f.UserGroupFactory(organisation=setup.organisation, users=[user])
        f.grant(group, env, [UPDATE_FEATURE_STATE])
        url = f"{org_url}/groups/{group.pk}/"
        return user, lambda: admin_client.put(url, {"name": group.name, "users": []}, format="json")

    def member_removed() -> tuple[Any, Callable[[], Any]]:
        user = f.member(setup.organisation)
        role = f.RoleFactory(organisation=setup.organisation)
        f.grant(role, env, [UPDATE_FEATURE_STATE])
        f.RoleAssignmentFactory(role=role, user=user)
        return user, lambda: admin_client.delete(f"{org_url}/users/{user.pk}/")

    def api_key_revoked() -> tuple[Any, Callable[[], Any]]:
        key = f.APIKeyFactory(organisation=setup.organisation)
        role = f.RoleFactory(organisation=setup.organisation)
        f.grant(role, env, [UPDATE_FEATURE_STATE])
        f.RoleAssignmentFactory(role=role, api_key=key)
        url = f"{org_url}/api-keys/{key.pk}/"
        return key, lambda: admin_client.patch(url, {"revoked": True}, format="json")

    return {
        "user_grant_deleted": user_grant,
        "group_membership_removed": group_membership,
        "member_removed": member_removed,
        "api_key_revoked": api_key_revoked,
    }


@pytest.mark.parametrize(
    "how", ["user_grant_deleted", "group_membership_removed", "member_removed", "api_key_revoked"]
)
def test_revoked_while_requests_run__never_honoured_after_the_commit(
    setup: Setup, how: str
) -> None:
    principal, revoke = _revocations(setup)[how]()
    state = default_state(setup.feature, setup.environment)
    url = f"{API}/environments/{setup.environment.api_key}/featurestates/{state.pk}/"
    workers = THREADS - 1
    clients = [token_client(principal) for _ in range(workers)]
    calls: list[list[Call]] = [[] for _ in range(workers)]
    stop = threading.Event()
    revoked_at: list[float] = []

    def hammer(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            response = clients[i].patch(url, {"value": f"{i}-{n}"}, format="json")
            calls[i].append(Call(started, response.status_code))

    def revoker() -> None:
        # let every worker get some requests through first
        deadline = time.monotonic() + 10
        while min(len(c) for c in calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        response = revoke()
        revoked_at.append(time.monotonic())  # the revocation has committed
        assert response.status_code in (200, 204), response.content
        time.sleep(0.5)  # requests keep running after it
        stop.set()

    race(workers + 1, lambda i: revoker() if i == workers else hammer(i))

    everything = [call for per_worker in calls for call in per_worker]
    before = [c for c in everything if c.started < revoked_at[0]]
    after = [c for c in everything if c.started > revoked_at[0]]
    assert any(c.status == 200 for c in before), "no request got through before the revocation"
    assert len(after) >= workers, "too few requests after the revocation to show anything"
    honoured = [c for c in after if c.status == 200]
    assert not honoured, f"{len(honoured)} of {len(after)} requests after the revocation: 200"
    expected = {401} if isinstance(principal, OrganisationAPIKey) else {403, 404}
    assert {c.status for c in after} <= expected


# --------------------------------------------------------------------------------------
# A member removed while access is written for them (docs/CONCURRENCY.md)
# --------------------------------------------------------------------------------------

ROUNDS = 5


def _no_5xx(responses: list[Any]) -> None:
    assert all(r.status_code < 500 for r in responses), [
        (r.status_code, r.content[:300]) for r in responses
    ]


def test_member_removed_while_grant_role_and_group_written__ends_with_nothing(
    setup: Setup,
) -> None:
    """Member DELETE + project grant POST (admin) + role assignment POST + group PATCH, all
    at once: whichever commits first, the removed member keeps no grant, no role and no
    group; re-added, they hold nothing."""
    org = setup.organisation
    org_url = f"{API}/organisations/{org.pk}"
    role = f.RoleFactory(organisation=org)
    f.grant(role, setup.environment, [UPDATE_FEATURE_STATE])
    group = f.UserGroupFactory(organisation=org)
    f.grant(group, setup.environment, [UPDATE_FEATURE_STATE])
    admin_clients = [token_client(setup.admin) for _ in range(4)]

    for _ in range(ROUNDS):
        user = f.member(org)
        calls: list[Callable[[], Any]] = [
            lambda c=admin_clients[0], u=user: c.delete(f"{org_url}/users/{u.pk}/"),
            lambda c=admin_clients[1], u=user: c.post(
                f"{API}/projects/{setup.project.pk}/user-permissions/",
                {"user": u.pk, "admin": True, "permissions": []},
                format="json",
            ),
            lambda c=admin_clients[2], u=user: c.post(
                f"{org_url}/roles/{role.pk}/users/", {"user": u.pk}, format="json"
            ),
            lambda c=admin_clients[3], u=user: c.patch(
                f"{org_url}/groups/{group.pk}/", {"users": [u.pk]}, format="json"
            ),
        ]

        responses = race(len(calls), lambda i, calls=calls: calls[i]())

        _no_5xx(responses)
        assert responses[0].status_code == 204, responses[0].content
        for response in responses[1:]:
            assert response.status_code in (200, 201, 400), response.content
        assert not Grant.objects.filter(organisation=org, user=user).exists()
        assert not RoleAssignment.objects.filter(role=role, user=user).exists()
        assert not group.users.filter(pk=user.pk).exists()
        MembershipFactory(organisation=org, user=user)
        assert not allowed(user, UPDATE_FEATURE_STATE, setup.environment, setup.feature)
        assert not engine.is_admin(fresh(user), setup.project)


# --------------------------------------------------------------------------------------
# A tag deleted while a grant names it
# --------------------------------------------------------------------------------------


def test_tag_delete_vs_role_grant_naming_it__one_serial_outcome(setup: Setup) -> None:
    org = setup.organisation
    client_a, client_b = token_client(setup.admin), token_client(setup.admin)
    outcomes = set()
    for _ in range(ROUNDS):
        tag = f.TagFactory(project=setup.project)
        role = f.RoleFactory(organisation=org)
        calls = [
            lambda t=tag: client_a.delete(f"{API}/projects/{setup.project.pk}/tags/{t.pk}/"),
            lambda t=tag, r=role: client_b.post(
                f"{API}/organisations/{org.pk}/roles/{r.pk}/projects-permissions/",
                {
                    "project": setup.project.pk,
                    "permissions": [{"permission_key": DELETE_FEATURE, "tags": [t.pk]}],
                },
                format="json",
            ),
        ]

        deleted, granted = race(2, lambda i, calls=calls: calls[i]())

        _no_5xx([deleted, granted])
        if deleted.status_code == 204:  # the delete came first: the grant is refused
            assert granted.status_code == 400, granted.content
            assert not Tag.objects.filter(pk=tag.pk).exists()
            assert not Grant.objects.filter(role=role).exists()
        else:  # the grant came first: the tag is in use
            assert (deleted.status_code, deleted.data["code"]) == (409, "tag_in_use")
            assert granted.status_code == 201, granted.content
            assert GrantEntryTag.objects.filter(tag=tag, entry__grant__role=role).exists()
        outcomes.add(deleted.status_code)
    assert outcomes <= {204, 409}


# --------------------------------------------------------------------------------------
# A feature deleted while a change request touching it is created
# --------------------------------------------------------------------------------------


def test_feature_delete_vs_change_request_create__one_serial_outcome(setup: Setup) -> None:
    env = setup.environment
    env.minimum_change_request_approvals = 0
    env.save()
    author = f.member(setup.organisation)
    f.grant(author, env, [CREATE_CHANGE_REQUEST])
    other = f.FeatureFactory(project=setup.project)
    admin_client, author_client = token_client(setup.admin), token_client(author)
    base = f"{API}/environments/{env.api_key}/change-requests/"
    for _ in range(ROUNDS):
        feature = f.FeatureFactory(project=setup.project)
        calls = [
            lambda ft=feature: admin_client.delete(
                f"{API}/projects/{setup.project.pk}/features/{ft.pk}/"
            ),
            lambda ft=feature: author_client.post(
                base,
                {
                    "title": "both",
                    "changes": [
                        {"feature": ft.pk, "enabled": True},
                        {"feature": other.pk, "enabled": True},
                    ],
                },
                format="json",
            ),
        ]

        deleted, created = race(2, lambda i, calls=calls: calls[i]())

        _no_5xx([deleted, created])
        assert deleted.status_code == 204, deleted.content
        entry = AuditLogEntry.objects.get(
            object_type="feature", action="deleted", object_id=str(feature.pk)
        )
        if created.status_code == 400:  # the delete came first
            assert "changes" in created.data
            assert entry.before["open_change_requests"] == []
        else:  # the change request came first: named by the delete, never committable
            assert created.status_code == 201, created.content
            assert entry.before["open_change_requests"] == [created.data["id"]]
            commit = author_client.post(f"{base}{created.data['id']}/commit/")
            assert (commit.status_code, commit.data["code"]) == (409, "stale")
        assert (
            FeatureState.objects.get(
                feature=other, environment=env, segment_override__isnull=True
            ).version
            == 1
        )


# --------------------------------------------------------------------------------------
# Identical writes at once
# --------------------------------------------------------------------------------------


def test_put_role_organisation_permissions__eight_identical__all_200_one_grant(
    setup: Setup,
) -> None:
    org = setup.organisation
    role = f.RoleFactory(organisation=org)
    url = f"{API}/organisations/{org.pk}/roles/{role.pk}/organisation-permissions/"
    clients = [token_client(setup.admin) for _ in range(THREADS)]
    audit_before = AuditLogEntry.objects.count()

    responses = race(
        THREADS,
        lambda i: clients[i].put(url, {"permissions": [CREATE_PROJECT]}, format="json"),
    )

    assert [r.status_code for r in responses] == [200] * THREADS, [r.content for r in responses]
    (grant,) = Grant.objects.filter(role=role)
    assert list(grant.entries.values_list("key", flat=True)) == [CREATE_PROJECT]
    assert AuditLogEntry.objects.count() == audit_before + 1


def test_role_assignment__eight_identical__one_201_seven_400(setup: Setup) -> None:
    org = setup.organisation
    role = f.RoleFactory(organisation=org)
    user = f.member(org)
    url = f"{API}/organisations/{org.pk}/roles/{role.pk}/users/"
    clients = [token_client(setup.admin) for _ in range(THREADS)]

    responses = race(THREADS, lambda i: clients[i].post(url, {"user": user.pk}, format="json"))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * (THREADS - 1), [r.content for r in responses]
    assert RoleAssignment.objects.filter(role=role, user=user).count() == 1


def test_role_delete_vs_role_assignment__one_serial_outcome(setup: Setup) -> None:
    org = setup.organisation
    client_a, client_b = token_client(setup.admin), token_client(setup.admin)
    user = f.member(org)
    for _ in range(ROUNDS):
        role = f.RoleFactory(organisation=org)
        calls = [
            lambda r=role: client_a.delete(f"{API}/organisations/{org.pk}/roles/{r.pk}/"),
            lambda r=role: client_b.post(
                f"{API}/organisations/{org.pk}/roles/{r.pk}/users/", {"user": user.pk}
            ),
        ]

        deleted, assigned = race(2, lambda i, calls=calls: calls[i]())

        _no_5xx([deleted, assigned])
        assert deleted.status_code == 204, deleted.content
        assert assigned.status_code in (201, 400, 404), assigned.content
        assert not RoleAssignment.objects.filter(role_id=role.pk).exists()
