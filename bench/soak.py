#!/usr/bin/env python
"""Soak check (`make soak`; not part of the tests): 8 client threads against one server of 2
gunicorn workers, started as `make serve` starts it, on PostgreSQL, for 60 s.

    scripts/with-postgres.sh .venv/bin/python bench/soak.py [--seconds N] [--clients N]
        [--workers N] [--threads N] [--json FILE]

DATABASE_URL must point at an empty PostgreSQL database (scripts/with-postgres.sh gives one):
the script migrates it, seeds one organisation, starts the server and lets each client loop,
picking at random:

- reads (45 %): the feature-state list, one feature state, the change-request list;
- PATCH of a feature state with the version just read (30 %): 200, or 409 `stale` when another
  client wrote first;
- grant edits (10 %): an environment admin rewrites a bystander's grant;
- change requests (15 %): create one in the change-request environment, then commit it.

It prints throughput and p50/p95/p99 latency (overall and per operation) and fails (exit 1) on
any 5xx or transport error, any lost update (every 200 PATCH's version must be a distinct step
in its state's final version, and the final version must count every 200 PATCH and every
commit), or any successful write without its audit entry. Figures: docs/PERFORMANCE.md, Soak.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve import HOST, call, serve, server_environment  # noqa: E402
from bench.stats import percentile  # noqa: E402

FEATURES = 24


@dataclass
class Seeded:
    direct_env: str  # api_key of the environment with direct writes
    cr_env: str  # api_key of the environment with change requests (0 approvals)
    states: list[int]  # default states of direct_env
    cr_features: list[int]
    cr_states: dict[int, int]  # feature id -> default state id in cr_env
    grants: list[int]  # bystanders' grants on direct_env, one per client (edits always change it)
    client_tokens: list[str]
    admin_token: str
    initial_versions: dict[int, int]


def seed(clients: int) -> Seeded:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    from environments.models import Environment
    from features.models import Feature, FeatureState
    from organisations.models import MembershipRole, Organisation, OrganisationMembership
    from permissions import catalogue as keys
    from permissions.models import Grant, GrantEntry
    from projects.models import Project

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    User = get_user_model()
    organisation = Organisation.objects.create(name="soak")
    project = Project.objects.create(organisation=organisation, name="soak")
    direct = Environment.objects.create(project=project, name="direct")
    with_cr = Environment.objects.create(
        project=project, name="reviewed", minimum_change_request_approvals=0
    )
    features = [Feature.objects.create(project=project, name=f"f{i}") for i in range(FEATURES)]

    def member(name: str, role: str = MembershipRole.USER) -> Any:
        user = User.objects.create_user(username=name, password=secrets.token_urlsafe(12))
        OrganisationMembership.objects.create(user=user, organisation=organisation, role=role)
        return user

    def grant(user: Any, environment: Any, granted: list[str], admin: bool = False) -> Grant:
        g = Grant.objects.create(
            organisation=organisation,
            project=project,
            environment=environment,
            user=user,
            admin=admin,
        )
        GrantEntry.objects.bulk_create(GrantEntry(grant=g, key=key) for key in granted)
        return g

    admin = member("soak-admin", MembershipRole.ADMIN)
    tokens = []
    for n in range(clients):
        user = member(f"soak-client-{n}")
        grant(user, direct, [keys.VIEW_ENVIRONMENT, keys.UPDATE_FEATURE_STATE])
        grant(user, with_cr, [keys.VIEW_ENVIRONMENT, keys.CREATE_CHANGE_REQUEST])
        tokens.append(AuthToken.objects.create(user=user)[1])
    bystander_grants = [
        grant(member(f"soak-bystander-{n}"), direct, [keys.VIEW_ENVIRONMENT]).pk
        for n in range(clients)
    ]
    states = list(
        FeatureState.objects.filter(environment=direct, segment_override__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
    cr_states = dict(
        FeatureState.objects.filter(environment=with_cr, segment_override__isnull=True).values_list(
            "feature_id", "id"
        )
    )
    versions = dict(FeatureState.objects.values_list("id", "version"))
    return Seeded(
        direct_env=direct.api_key,
        cr_env=with_cr.api_key,
        states=states,
        cr_features=[f.pk for f in features],
        cr_states=cr_states,
        grants=bystander_grants,
        client_tokens=tokens,
        admin_token=AuthToken.objects.create(user=admin)[1],
        initial_versions=versions,
    )


@dataclass
class Outcome:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    patched: list[tuple[int, int]] = field(default_factory=list)  # (state, version) of 200s
    committed: list[int] = field(default_factory=list)  # feature ids of committed CRs
    grant_edits: int = 0


class Client:
    def __init__(self, port: int, token: str, outcome: Outcome, lock: threading.Lock) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}"}
        self.outcome = outcome
        self.lock = lock
        self.connection = http.client.HTTPConnection(HOST, port, timeout=60)

    def request(
        self, op: str, method: str, path: str, payload: Any = None, headers: Any = None
    ) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            status, body = call(
                self.port,
                method,
                path,
                payload,
                headers or self.headers,
                connection=self.connection,
            )
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
            with self.lock:
                self.outcome.failures.append(f"{op}: {method} {path}: {error!r}")
            return 0, None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.outcome.latencies[op].append(elapsed)
            self.outcome.statuses[(op, status)] += 1
            if status >= 500:
                self.outcome.failures.append(f"{op}: {method} {path} -> {status} {body}")
        return status, body


def client_loop(
    client: Client,
    admin_headers: dict[str, str],
    data: Seeded,
    grant: int,
    deadline: float,
    rng: random.Random,
) -> None:
    direct = f"/api/v1/environments/{data.direct_env}"
    reviewed = f"/api/v1/environments/{data.cr_env}"
    outcome, lock = client.outcome, client.lock
    can_update = False  # the bystander grant starts with VIEW_ENVIRONMENT only
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.45:
            choice = rng.random()
            if choice < 0.4:
                client.request("read", "GET", f"{direct}/featurestates/?page_size=50")
            elif choice < 0.8:
                client.request("read", "GET", f"{direct}/featurestates/{rng.choice(data.states)}/")
            else:
                client.request("read", "GET", f"{reviewed}/change-requests/?page_size=20")
        elif roll < 0.75:
            state = rng.choice(data.states)
            status, body = client.request("read", "GET", f"{direct}/featurestates/{state}/")
            if status != 200:
                continue
            status, body = client.request(
                "patch",
                "PATCH",
                f"{direct}/featurestates/{state}/",
                {
                    "enabled": rng.random() < 0.5,
                    "value": rng.randrange(10**6),
                    "version": body["version"],
                },
            )
            if status == 200:
                with lock:
                    outcome.patched.append((state, body["version"]))
            elif status != 409:
                with lock:
                    outcome.failures.append(f"patch: unexpected {status} {body}")
        elif roll < 0.85:
            # Only this client edits this grant, and every edit flips a key: each 200 is a
            # real change that must be audited.
            granted = ["VIEW_ENVIRONMENT"] + ([] if can_update else ["UPDATE_FEATURE_STATE"])
            status, body = client.request(
                "grant_edit",
                "PATCH",
                f"{direct}/user-permissions/{grant}/",
                {"permissions": granted},
                admin_headers,
            )
            if status == 200:
                can_update = not can_update
                with lock:
                    outcome.grant_edits += 1
            else:
                with lock:
                    outcome.failures.append(f"grant_edit: unexpected {status} {body}")
        else:
            feature = rng.choice(data.cr_features)
            status, body = client.request(
                "change_request",
                "POST",
                f"{reviewed}/change-requests/",
                {
                    "title": "soak",
                    "changes": [
                        {
                            "feature": feature,
                            "enabled": rng.random() < 0.5,
                            "value": rng.randrange(10**6),
                        }
                    ],
                },
            )
            if status != 201:
                with lock:
                    outcome.failures.append(f"change_request create: unexpected {status} {body}")
                continue
            status, body = client.request(
                "change_request", "POST", f"{reviewed}/change-requests/{body['id']}/commit/"
            )
            if status == 200:
                with lock:
                    outcome.committed.append(feature)
            elif status != 409:
                with lock:
                    outcome.failures.append(f"change_request commit: unexpected {status} {body}")


def check_consistency(data: Seeded, outcome: Outcome, started_at: Any) -> list[str]:
    """Lost updates and missing audit entries, read from the database after the run."""
    from audit.models import AuditLogEntry
    from features.models import FeatureState

    problems: list[str] = []
    final = dict(FeatureState.objects.values_list("id", "version"))
    by_state: dict[int, list[int]] = defaultdict(list)
    for state, version in outcome.patched:
        by_state[state].append(version)
    for state in data.states:
        versions = sorted(by_state.get(state, []))
        expected = list(range(data.initial_versions[state] + 1, final[state] + 1))
        if versions != expected:
            problems.append(
                f"lost update on state {state}: 200 PATCH versions {versions}, final {final[state]}"
            )
    commits = Counter(outcome.committed)
    for feature, state in data.cr_states.items():
        if final[state] - data.initial_versions[state] != commits[feature]:
            problems.append(
                f"lost commit on state {state}: {commits[feature]} commits, "
                f"version {data.initial_versions[state]} -> {final[state]}"
            )

    entries = AuditLogEntry.objects.filter(created_at__gte=started_at)
    state_entries = Counter(
        int(object_id)
        for object_id in entries.filter(object_type="feature_state").values_list(
            "object_id", flat=True
        )
    )
    for state in data.states:
        if state_entries[state] < len(by_state.get(state, [])):
            problems.append(
                f"audit: state {state} has {len(by_state.get(state, []))} 200 PATCHes but "
                f"{state_entries[state]} feature_state entries"
            )
    for feature, state in data.cr_states.items():
        if state_entries[state] < commits[feature]:
            problems.append(
                f"audit: state {state} has {commits[feature]} commits but "
                f"{state_entries[state]} feature_state entries"
            )
    grant_entries = entries.filter(object_type="grant", action="updated").count()
    if grant_entries < outcome.grant_edits:
        kinds = Counter(entries.values_list("object_type", "action"))
        problems.append(
            f"audit: {outcome.grant_edits} grant edits, {grant_entries} entries ({dict(kinds)})"
        )
    created = entries.filter(object_type="change_request", action="created").count()
    attempted = sum(
        n
        for (op, status), n in outcome.statuses.items()
        if op == "change_request" and status == 201
    )
    if created < attempted:
        problems.append(f"audit: {attempted} change requests created, {created} entries")
    return problems


def report(outcome: Outcome, seconds: float) -> dict[str, Any]:
    every = [x for values in outcome.latencies.values() for x in values]

    def stats(values: list[float]) -> dict[str, Any]:
        return {
            "requests": len(values),
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
        }

    return {
        "seconds": round(seconds, 1),
        "throughput_rps": round(len(every) / seconds, 1),
        "all": stats(every),
        "operations": {op: stats(values) for op, values in sorted(outcome.latencies.items())},
        "statuses": {f"{op} {status}": n for (op, status), n in sorted(outcome.statuses.items())},
        "patches_200": len(outcome.patched),
        "commits_200": len(outcome.committed),
        "grant_edits_200": outcome.grant_edits,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("soak: DATABASE_URL must point at PostgreSQL (run under scripts/with-postgres.sh)")
        return 2
    secret_key = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)
    os.environ.update(DJANGO_SETTINGS_MODULE="tagwarden.settings", SECRET_KEY=secret_key)
    import django

    django.setup()
    from django.db import connections
    from django.utils import timezone

    data = seed(args.clients)
    connections.close_all()
    outcome = Outcome()
    lock = threading.Lock()
    env = server_environment(database_url=url, secret_key=secret_key, REQUEST_LOG_LEVEL="WARNING")
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(
            env=env, log_path=Path(tmp) / "gunicorn.log", workers=args.workers, threads=args.threads
        ) as server,
    ):
        print(
            f"soak: {args.clients} clients, {args.workers} workers x {args.threads} threads, "
            f"{args.seconds:.0f} s on PostgreSQL ..."
        )
        started_at = timezone.now()
        started = time.monotonic()
        deadline = started + args.seconds
        admin_headers = {"Authorization": f"Token {data.admin_token}"}
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    Client(server.port, data.client_tokens[n], outcome, lock),
                    admin_headers,
                    data,
                    data.grants[n],
                    deadline,
                    random.Random(args.seed * 1000 + n),
                ),
            )
            for n in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        server_log = server.log_tail(40)

    result = report(outcome, elapsed)
    problems = outcome.failures + check_consistency(data, outcome, started_at)
    result["problems"] = problems
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if problems:
        print(f"soak: FAILED ({len(problems)} problems)\n{server_log}")
        return 1
    print("soak: passed (no 5xx, no lost update, every write audited)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
