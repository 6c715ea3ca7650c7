#!/usr/bin/env python
"""Permission benchmarks at organisation scale (`make bench`, `make bench-smoke`).

    python bench/run.py            full run: generator defaults, many runs, rewrites the marked
                                   section of docs/PERFORMANCE.md
    python bench/run.py --smoke    tiny organisation, few runs (a few seconds); fails (exit 1)
                                   if a query budget is exceeded or a request fails
    options: --seed N, --members N ... (generator sizes), --no-write, --no-http, --keep-db,
             --databases auto|sqlite|postgresql

Databases: always SQLite (a fresh file in a temporary folder); and PostgreSQL too when
DATABASE_URL points at one (used as given: migrated, then filled by the generator, so give it
an empty database, e.g. `scripts/with-postgres.sh make bench`). Each database is measured in
its own child process (`--worker`), which migrates, runs `bench.generate_org`, measures,
and hands its numbers back as JSON; this process prints the tables, writes the document and
checks the budgets.

What is measured (for the users bench-admin, bench-untagged and bench-tagged; the key is
UPDATE_FEATURE_STATE, tag-supported, on the large project's first environment):
 1. one decision, `engine.allowed(user, key, environment, feature)`: cold (a freshly loaded
    user and feature, no policy kept across requests: queries and time), warm (the same
    objects again: time, 0 queries) and kept (a freshly loaded user whose policy an earlier
    request kept: 1 query, the organisation's stamp);
 2. the in-memory decision alone, `Policy.decide(...)`, with the policy and the feature's tags
    already loaded;
 3. GET /api/v1/environments/{api_key}/featurestates/?page_size=100 (my_permissions included)
    through the Django test client: real URLconf, middleware, token authentication, DRF;
 4. the same page decided the naive way (bench/naive.py: `engine.allowed` per feature and
    key, nothing shared between features), through the same stack, and the ratio; 4b the
    same with the policy memoised across features; 4c one page's decisions alone, without
    HTTP, page query or rendering, the engine's way against the naive way;
 5. PATCH /api/v1/environments/{api_key}/featurestates/{id}/ under gunicorn (2 sync workers,
    127.0.0.1, closed loop with 2 client threads, time-bounded), with the real permission
    classes and with AllowAny (bench/urls.py), alternating 1-second slices; the authorisation
    overhead is (mean latency real − mean latency AllowAny) / mean latency real;
 6. an impact preview (`permissions.previews.impact_preview`) of a change to an environment
    grant, in the large project, of the role that reaches the most principals: the tags of
    one of its tagged entries removed (or, without one, one of its entries removed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stats import fmt_time, summary, table  # noqa: E402

DOC = ROOT / "docs" / "PERFORMANCE.md"
START_MARK, END_MARK = "<!-- bench:start -->", "<!-- bench:end -->"
BLOCK_RE = re.compile(r"<!-- bench:db (\w+) -->\n(.*?)<!-- bench:db-end -->", re.S)

ORG_NAME = "Bench organisation"
USERS = (
    ("org admin", "bench-admin"),
    ("untagged grants", "bench-untagged"),
    ("30 roles, tagged", "bench-tagged"),
)
SIZE_OPTIONS = (
    "members",
    "groups",
    "roles",
    "tags",
    "projects",
    "environments_per_project",
    "features",
)
SMOKE_SIZES = {
    "members": 40,
    "groups": 10,
    "roles": 35,
    "tags": 16,
    "projects": 3,
    "environments_per_project": 3,
    "features": 150,
}
RUNS = {
    "full": {
        "cold": 300,
        "warm_per_cold": 10,
        "memory_rounds": 40,
        "list": 30,
        "naive": 6,
        "page_engine": 40,
        "page_naive": 3,
        "http_slices": 8,
        "http_slice_seconds": 1.0,
        "http_warmup": 1.0,
        "impact": 10,
        "matrix": 10,
    },
    "smoke": {
        "cold": 20,
        "warm_per_cold": 5,
        "memory_rounds": 4,
        "list": 3,
        "naive": 0,
        "page_engine": 3,
        "page_naive": 1,
        "http_slices": 1,
        "http_slice_seconds": 0.5,
        "http_warmup": 0.3,
        "impact": 2,
        "matrix": 1,
    },
}
FEATURE_SAMPLE = 500
MATRIX_SIZE = {"full": (200, 500), "smoke": (20, 50)}  # members × features
HTTP_CONCURRENCY = 2
PATCH_STATES = 64

TARGETS = {
    # Budgets (checked by `make bench-smoke` in CI too): query counts, never times.
    "cold_queries": 1,  # the policy query; the feature came with its tags
    "warm_queries": 0,
    # A preview's own queries do not depend on the organisation's size (its snapshots, the
    # emails) plus the grant update's own.
    "impact_queries": 45,
    "patch_queries": 8,
    # Times. On SQLite they are judged on this process's CPU time, which includes SQLite's
    # own work and is not inflated by other jobs on the machine; on PostgreSQL on wall time.
    "cold_median_ms_sqlite": 2.0,
    "memory_median_us": 10.0,
    "floor_ratio": 1.15,
    "list_median_ms_postgres": 50.0,
    "naive_ratio": 20.0,
    "authz_overhead_pct": 15.0,
    "impact_median_s": 0.3,
    "grant_write_median_ms": 100.0,
    "restriction_median_s": 1.5,
    "matrix_median_s": 0.5,
}


# ======================================================================================
# Worker: one database, in its own process
# ======================================================================================


def worker(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()

    from django.core.management import call_command
    from django.db import connection

    from bench.generate_org import generate_org

    mode = "smoke" if args.smoke else "full"
    runs = {**RUNS[mode], "mode": mode}
    sizes = _sizes(args)
    load_before = _load()
    _say("migrate")
    call_command("migrate", interactive=False, verbosity=0)
    _say("generate_org")
    started = time.perf_counter()
    generate_org(seed=args.seed, name=ORG_NAME, verbosity=1, **sizes)
    generator_seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        # Planner statistics for the rows just loaded, as autovacuum gathers them soon after
        # any bulk load in production: without them the planner guesses at every table.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    ctx = _context(args.seed)
    result: dict[str, Any] = {
        "mode": mode,
        "database": _database_info(connection),
        "sizes": sizes,
        "seed": args.seed,
        "generator_seconds": generator_seconds,
        "counts": ctx["counts"],
        "runs": runs,
        "problems": [],
    }
    if args.growth_only:
        result["growth"] = bench_growth(ctx, result["problems"])
        result["load_average"] = {"before": load_before, "after": _load()}
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
        return 0
    _say("decisions")
    result["decision"] = bench_decisions(ctx, runs)
    _say("in-memory decisions")
    result["memory"] = bench_memory(ctx, runs)
    _say("feature-state list (engine and naive)")
    result["list"] = bench_lists(ctx, runs, result["problems"])
    _say("PATCH queries")
    result["patch_queries"] = bench_patch_queries(ctx, result["problems"])
    _say("one page's decisions alone")
    result["page_decisions"] = bench_page_decisions(ctx, runs)
    if args.no_http:
        result["patch"] = {"skipped": "--no-http"}
    else:
        from bench.http_load import gunicorn_available

        if gunicorn_available():
            _say("PATCH under gunicorn")
            result["patch"] = bench_patch(ctx, runs, result["problems"], Path(args.tmp))
        else:
            result["patch"] = {"skipped": "gunicorn is not installed"}
    _say("impact: preview, grant write, tag restriction")
    result["impact"] = bench_impact(ctx, runs, result["problems"])
    _say("permission matrix")
    result["matrix"] = bench_matrix(runs, result["problems"])
    result["load_average"] = {"before": load_before, "after": _load()}
    _say("done")
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


_T0 = time.monotonic()


def _say(what: str) -> None:
    print(f"bench: [{time.monotonic() - _T0:5.1f}s] {what}…", file=sys.stderr, flush=True)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name in SIZE_OPTIONS:
        value = getattr(args, name)
        if value is None and args.smoke:
            value = SMOKE_SIZES[name]
        if value is not None:
            sizes[name] = value
    if not args.smoke:
        from bench.generate_org import DEFAULTS

        sizes = {**DEFAULTS, **sizes}
    return sizes


def _database_info(connection: Any) -> dict[str, Any]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            version = cursor.fetchone()[0]
        else:
            version = "?"
    return {"vendor": connection.vendor, "version": version}


def _context(seed: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from bench.generate_org import LARGE_PROJECT
    from environments.models import Environment
    from features.models import Feature, FeatureState
    from organisations.models import Organisation
    from permissions.models import Grant, GrantEntry
    from projects.models import Project

    User = get_user_model()
    organisation = Organisation.objects.get(name=ORG_NAME)
    project = Project.objects.get(organisation=organisation, name=LARGE_PROJECT)
    environment = (
        Environment.objects.select_related("project").filter(project=project).order_by("id").first()
    )
    assert environment is not None
    users = {username: User.objects.get(username=username) for _, username in USERS}
    tokens = {u: AuthToken.objects.create(user=user)[1] for u, user in users.items()}
    feature_ids = list(
        Feature.objects.filter(project=project).order_by("id").values_list("id", flat=True)
    )
    rng = random.Random(seed)
    sample = rng.sample(feature_ids, min(FEATURE_SAMPLE, len(feature_ids)))
    counts = {
        "members": organisation.memberships.count(),
        "features in the large project": len(feature_ids),
        "default states in its environment": FeatureState.objects.filter(
            environment=environment, segment_override__isnull=True
        ).count(),
        "grants": Grant.objects.filter(organisation=organisation).count(),
        "grant entries": GrantEntry.objects.filter(grant__organisation=organisation).count(),
    }
    return {
        "organisation": organisation,
        "project": project,
        "environment": environment,
        "users": users,
        "tokens": tokens,
        "sample": sample,
        "counts": counts,
    }


def _seconds(ns: list[int]) -> dict[str, Any]:
    return summary([n / 1e9 for n in ns])


def bench_decisions(ctx: dict[str, Any], runs: dict[str, Any]) -> dict[str, Any]:
    """`engine.allowed` cold and warm. Cold: a user and a feature (with its tags, as the
    views load it) freshly loaded from the database, nothing memoised on them; warm: the same
    call again on the same objects."""
    from time import perf_counter_ns, process_time

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from features.models import Feature
    from permissions import engine
    from permissions.catalogue import UPDATE_FEATURE_STATE as KEY

    User = get_user_model()
    environment = ctx["environment"]
    sample = ctx["sample"]
    out: dict[str, Any] = {}
    # A process looks for the stamp triggers once, when it first keeps a policy: not counted.
    engine.allowed(User.objects.get(pk=ctx["users"][USERS[0][1]].pk), KEY, environment, None)
    for _, username in USERS:
        uid = ctx["users"][username].pk
        cold_queries: list[int] = []
        warm_queries: list[int] = []
        kept_queries: list[int] = []
        for fid in sample[:20]:
            user = User.objects.get(pk=uid)
            feature = Feature.objects.prefetch_related("tags").get(pk=fid)
            engine.forget_shared_policies()
            with CaptureQueriesContext(connection) as cold:
                engine.allowed(user, KEY, environment, feature)
            with CaptureQueriesContext(connection) as warm:
                engine.allowed(user, KEY, environment, feature)
            cold_queries.append(len(cold))
            warm_queries.append(len(warm))
            later = User.objects.get(pk=uid)  # a later request, the policy kept
            with CaptureQueriesContext(connection) as kept:
                engine.allowed(later, KEY, environment, feature)
            kept_queries.append(len(kept))
        cold_ns: list[int] = []
        cold_cpu: list[float] = []
        warm_ns: list[int] = []
        kept_cpu: list[float] = []
        granted = 0
        for i in range(runs["cold"]):
            fid = sample[i % len(sample)]
            user = User.objects.get(pk=uid)
            # The feature comes with its tags, as the views load it: the policy query alone.
            feature = Feature.objects.prefetch_related("tags").get(pk=fid)
            engine.forget_shared_policies()  # cold: no policy kept from an earlier request
            c0, t0 = process_time(), perf_counter_ns()
            decision = engine.allowed(user, KEY, environment, feature)
            t1, c1 = perf_counter_ns(), process_time()
            cold_ns.append(t1 - t0)
            cold_cpu.append(c1 - c0)
            granted += decision
            for _ in range(runs["warm_per_cold"]):
                t0 = perf_counter_ns()
                engine.allowed(user, KEY, environment, feature)
                t1 = perf_counter_ns()
                warm_ns.append(t1 - t0)
            # The same decision in a later request (a new user object): the policy kept
            # across requests, under an unchanged stamp.
            fresh = User.objects.get(pk=uid)
            c0 = process_time()
            engine.allowed(fresh, KEY, environment, feature)
            kept_cpu.append(process_time() - c0)
        out[username] = {
            "cold_queries_max": max(cold_queries),
            "warm_queries_max": max(warm_queries),
            "cold": {**_seconds(cold_ns), "cpu_median": summary(cold_cpu)["median"]},
            "warm": _seconds(warm_ns),
            "kept_queries_max": max(kept_queries),
            "kept_cpu_median": summary(kept_cpu)["median"],
            "allowed_share": granted / runs["cold"],
        }
    return out


def bench_memory(ctx: dict[str, Any], runs: dict[str, Any]) -> dict[str, Any]:
    """`Policy.decide` alone: policy and feature tags loaded beforehand."""
    from time import perf_counter_ns

    from features.models import Feature
    from permissions import engine
    from permissions.catalogue import UPDATE_FEATURE_STATE as KEY

    environment = ctx["environment"]
    project_id, environment_id = environment.project_id, environment.pk
    features = list(Feature.objects.filter(pk__in=ctx["sample"]).prefetch_related("tags"))
    feature_tags = [engine.feature_tags(f) for f in features]
    # The cost of reading the clock twice, for reference.
    empty = []
    for _ in range(10_000):
        t0 = perf_counter_ns()
        t1 = perf_counter_ns()
        empty.append(t1 - t0)
    out: dict[str, Any] = {"timer_overhead": _seconds(empty)}
    for _, username in USERS:
        policy = engine.policy_for(ctx["users"][username], ctx["organisation"].pk)
        decide = policy.decide
        ns: list[int] = []
        for _ in range(runs["memory_rounds"]):
            for tags in feature_tags:
                t0 = perf_counter_ns()
                decide(KEY, project_id=project_id, environment_id=environment_id, feature_tags=tags)
                t1 = perf_counter_ns()
                ns.append(t1 - t0)
        out[username] = _seconds(ns)
    return out


def bench_lists(ctx: dict[str, Any], runs: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The real list endpoint and the naive lists, through the test client (full stack).
    Besides wall time, the CPU time of this process (which, on SQLite, includes the database
    work) is recorded: it is not inflated by other processes competing for the cores."""
    from time import perf_counter, process_time

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    environment = ctx["environment"]
    api_key = environment.api_key
    variants = {
        "engine": f"/api/v1/environments/{api_key}/featurestates/",
        "naive": f"/bench/naive/environments/{api_key}/featurestates/",
        "naive_memo": f"/bench/naive-memo/environments/{api_key}/featurestates/",
        "floor": f"/api/v1/environments/{api_key}/featurestates-floor/",
    }
    count = ctx["counts"]["default states in its environment"]
    pages = max(1, min(20, math.ceil(count / 100)))
    out: dict[str, Any] = {"pages_cycled": pages, "url": variants["engine"]}
    for _, username in USERS:
        client = Client(headers={"Authorization": f"Token {ctx['tokens'][username]}"})
        per_user: dict[str, Any] = {}
        first_pages: dict[str, dict[int, list[str]]] = {}
        seconds: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        info: dict[str, dict[str, Any]] = {}
        for variant, url in variants.items():
            # Queries counted in the steady state: the first request of a process counts the
            # environment's default states, the next ones find the count kept
            # (features.workflow.selectors.default_state_count).
            client.get(url, {"page_size": 100})
            with CaptureQueriesContext(connection) as q100:
                t0 = perf_counter()
                response = client.get(url, {"page_size": 100})
                first_seconds = perf_counter() - t0
            if response.status_code != 200:
                problems.append(
                    f"{variant} list for {username}: HTTP {response.status_code} "
                    f"{response.content[:300]!r}"
                )
                per_user[variant] = {"status": response.status_code}
                continue
            queries_100 = len(q100)  # now: later requests reset the connection's query log
            results = response.json().get("results", [])
            if variant == "floor":
                results = [{**r, "my_permissions": []} for r in results]  # it has none
            if len(results) != min(100, count) or any("my_permissions" not in r for r in results):
                problems.append(
                    f"{variant} list for {username}: {len(results)} items (expected "
                    f"{min(100, count)}), my_permissions present: "
                    f"{all('my_permissions' in r for r in results)}"
                )
            first_pages[variant] = {r["id"]: sorted(r.get("my_permissions", [])) for r in results}
            queries_10 = None
            if variant == "engine":  # the constant-queries check
                with CaptureQueriesContext(connection) as q10:
                    client.get(url, {"page_size": 10})
                queries_10 = len(q10)
            info[variant] = {
                "queries_page_100": queries_100,
                "queries_page_10": queries_10,
                "bytes": len(response.content),
            }
            runs_here = runs["list"] if variant in ("engine", "floor") else runs["naive"]
            # With no timed run (smoke), the first request is the only sample.
            seconds[variant] = [] if runs_here else [first_seconds]
            cpu[variant] = []
        # Timed runs, interleaved (the fewer naive runs spread evenly among the engine's), so
        # that a change in the machine's load hits the variants alike and ratios stay fair.
        plan: list[tuple[float, int, str]] = [(i, 0, "engine") for i in range(runs["list"])]
        plan += [(i, 3, "floor") for i in range(runs["list"])]
        for order, variant in enumerate(("naive", "naive_memo"), start=1):
            n = runs["naive"]
            plan += [(j * runs["list"] / n, order, variant) for j in range(n)]
        done: dict[str, int] = dict.fromkeys(variants, 0)
        for _, _, variant in sorted(plan):
            if variant not in info:
                continue
            page_number = 1 + done[variant] % pages
            done[variant] += 1
            c0, t0 = process_time(), perf_counter()
            response = client.get(variants[variant], {"page_size": 100, "page": page_number})
            t1, c1 = perf_counter(), process_time()
            if response.status_code != 200:
                problems.append(f"{variant} list for {username}: HTTP {response.status_code}")
                continue
            seconds[variant].append(t1 - t0)
            cpu[variant].append(c1 - c0)
        for variant, details in info.items():
            per_user[variant] = {
                **details,
                "cpu_median": summary(cpu[variant])["median"],
                **summary(seconds[variant]),
            }
        engine_page, naive_page = first_pages.get("engine"), first_pages.get("naive")
        if engine_page and naive_page:
            common = set(engine_page) & set(naive_page)
            differing = [s for s in common if engine_page[s] != naive_page[s]]
            per_user["compared_items"] = len(common)
            if differing:
                problems.append(
                    f"my_permissions differ between the endpoint and per-feature allowed() for "
                    f"{username} on {len(differing)} of {len(common)} states (e.g. state "
                    f"{differing[0]}: {engine_page[differing[0]]} vs {naive_page[differing[0]]})"
                )
        for naive in ("naive", "naive_memo"):
            if "median" in per_user.get("engine", {}) and "median" in per_user.get(naive, {}):
                per_user[f"{naive}_ratio"] = (
                    per_user[naive]["median"] / per_user["engine"]["median"]
                )
        if "median" in per_user.get("engine", {}) and "median" in per_user.get("floor", {}):
            # engine ÷ floor, on wall time and on this process's CPU time
            per_user["floor_ratio"] = per_user["engine"]["median"] / per_user["floor"]["median"]
            per_user["floor_ratio_cpu"] = (
                per_user["engine"]["cpu_median"] / per_user["floor"]["cpu_median"]
            )
        out[username] = per_user
    return out


GROWTH_RUNS = {
    "cold": 60,
    "warm_per_cold": 1,
    "impact": 3,
    "restriction": False,
    "mode": "full",
}


def bench_growth(ctx: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The four growth rows at this organisation's size: a cold decision and a list page for
    bench-tagged, the role grant write end to end and its preview (medians: wall and CPU)."""
    from time import perf_counter, process_time

    from django.test import Client

    decision = bench_decisions(ctx, GROWTH_RUNS)["bench-tagged"]
    client = Client(headers={"Authorization": f"Token {ctx['tokens']['bench-tagged']}"})
    url = f"/api/v1/environments/{ctx['environment'].api_key}/featurestates/"
    client.get(url, {"page_size": 100})
    wall: list[float] = []
    cpu: list[float] = []
    for page in range(1, 11):
        c0, t0 = process_time(), perf_counter()
        response = client.get(url, {"page_size": 100, "page": 1 + page % 3})
        wall.append(perf_counter() - t0)
        cpu.append(process_time() - c0)
        if response.status_code != 200:
            problems.append(f"growth: list HTTP {response.status_code}")
    measured = bench_impact(ctx, GROWTH_RUNS, problems)
    return {
        "members": ctx["counts"]["members"],
        "features": ctx["counts"]["features in the large project"],
        "decision": decision["cold"],
        "list": {"cpu_median": summary(cpu)["median"], **summary(wall)},
        "write": measured.get("write", {}),
        "preview": {k: measured.get(k) for k in ("median", "cpu_median", "principals")},
    }


def bench_patch_queries(ctx: dict[str, Any], problems: list[str]) -> int | None:
    """The queries of one PATCH of a feature state by bench-tagged, through the test client:
    authentication to audit entry."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from permissions import engine
    from permissions.catalogue import UPDATE_FEATURE_STATE

    user, environment = ctx["users"]["bench-tagged"], ctx["environment"]
    state = (
        engine.feature_states_allowed(user, UPDATE_FEATURE_STATE, environment)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if state is None:
        problems.append("PATCH queries: bench-tagged may update no state")
        return None
    client = Client(headers={"Authorization": f"Token {ctx['tokens']['bench-tagged']}"})
    url = f"/api/v1/environments/{environment.api_key}/featurestates/{state}/"
    count = 0
    for enabled in (True, False):
        with CaptureQueriesContext(connection) as captured:
            response = client.patch(url, {"enabled": enabled}, content_type="application/json")
        if response.status_code != 200:
            problems.append(f"PATCH queries: HTTP {response.status_code}")
            return None
        count = len(captured)
    return count


def bench_page_decisions(ctx: dict[str, Any], runs: dict[str, Any]) -> dict[str, Any]:
    """The decisions of one list page alone (every environment key on 100 features), without
    HTTP, SQL for the page, or serialisation: the engine's way (the policy loaded once, the
    features' tags prefetched with the page, `keys_on_feature` in memory) against the naive
    way of bench/naive.py (a cold `allowed` per feature: the principal's grants and the
    feature's tags loaded for each)."""
    from time import perf_counter

    from django.contrib.auth import get_user_model

    from features.models import Feature
    from permissions import engine
    from permissions.catalogue import KEYS_BY_LEVEL, Level

    User = get_user_model()
    environment = ctx["environment"]
    keys = KEYS_BY_LEVEL[Level.ENVIRONMENT]
    page_ids = list(
        Feature.objects.filter(project_id=environment.project_id)
        .order_by("name", "id")
        .values_list("id", flat=True)[:100]
    )
    out: dict[str, Any] = {"features": len(page_ids)}
    for _, username in USERS:
        uid = ctx["users"][username].pk
        engine_s: list[float] = []
        for _ in range(runs["page_engine"]):
            user = User.objects.get(pk=uid)
            features = list(Feature.objects.filter(pk__in=page_ids).prefetch_related("tags"))
            t0 = perf_counter()
            for feature in features:
                engine.keys_on_feature(user, environment, feature)
            engine_s.append(perf_counter() - t0)
        naive_s: list[float] = []
        for _ in range(runs["page_naive"]):
            user = User.objects.get(pk=uid)
            features = list(Feature.objects.filter(pk__in=page_ids))
            t0 = perf_counter()
            for feature in features:
                engine.forget(user)
                [k for k in keys if engine.allowed(user, k, environment, feature)]
            naive_s.append(perf_counter() - t0)
        engine_stats, naive_stats = summary(engine_s), summary(naive_s)
        out[username] = {
            "engine": engine_stats,
            "naive": naive_stats,
            "ratio": naive_stats["median"] / engine_stats["median"],
        }
    return out


def bench_patch(
    ctx: dict[str, Any], runs: dict[str, Any], problems: list[str], tmp: Path
) -> dict[str, Any]:
    """PATCH a feature state under gunicorn, real permission classes vs AllowAny."""
    from django.db import connections

    from bench.http_load import Load, drive, gunicorn, json_request, send
    from features.models import FeatureState
    from permissions import engine
    from permissions.catalogue import UPDATE_FEATURE_STATE

    username = "bench-tagged"
    user = ctx["users"][username]
    environment = ctx["environment"]
    states = list(
        engine.feature_states_allowed(user, UPDATE_FEATURE_STATE, environment)
        .order_by("id")
        .values_list("pk", flat=True)[:PATCH_STATES]
    )
    if not states:
        problems.append(f"no feature state that {username} may update: PATCH not measured")
        return {"skipped": f"{username} may update no state"}
    # A state it may not update: the real server must refuse it and the AllowAny one accept it,
    # which shows that the two servers differ by the permission classes.
    forbidden = (
        FeatureState.objects.filter(environment=environment, segment_override__isnull=True)
        .exclude(pk__in=engine.feature_states_allowed(user, UPDATE_FEATURE_STATE, environment))
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    token = ctx["tokens"][username]
    api_key = environment.api_key
    headers = {"Authorization": f"Token {token}", "Host": "127.0.0.1"}

    def make_request(thread: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
        state = states[(thread + n * HTTP_CONCURRENCY) % len(states)]
        return json_request(
            "PATCH",
            f"/api/v1/environments/{api_key}/featurestates/{state}/",
            {"enabled": n % 2 == 0, "value": f"v{n}"},
            headers,
        )

    connections.close_all()  # the servers write to the same database
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "CONN_MAX_AGE": "60",
        # tagwarden/wsgi.py refuses the development key when DEBUG is off.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-" + os.urandom(16).hex(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    }
    loads = {"engine": Load(), "allowany": Load()}
    slices: dict[str, list[float]] = {"engine": [], "allowany": []}
    checks: dict[str, int] = {}
    with (
        gunicorn(
            env={**base_env, "BENCH_ALLOWANY": "0"}, cwd=ROOT, log_path=tmp / "gunicorn-real.log"
        ) as real,
        gunicorn(
            env={**base_env, "BENCH_ALLOWANY": "1"},
            cwd=ROOT,
            log_path=tmp / "gunicorn-allowany.log",
        ) as allow_any,
    ):
        servers = {"engine": real, "allowany": allow_any}
        if forbidden is not None:
            for name, server in servers.items():
                checks[name] = send(
                    server.port,
                    *json_request(
                        "PATCH",
                        f"/api/v1/environments/{api_key}/featurestates/{forbidden}/",
                        {"value": "forbidden?"},
                        headers,
                    ),
                )
            if checks != {"engine": 403, "allowany": 200}:
                problems.append(
                    f"PATCH of a state {username} may not update: {checks} (expected 403 "
                    "with the real permission classes, 200 with AllowAny)"
                )
        for server in servers.values():  # warm-up: imports, connections, caches
            drive(
                server.port,
                make_request,
                seconds=runs["http_warmup"],
                concurrency=HTTP_CONCURRENCY,
            )
        for _ in range(runs["http_slices"]):
            for name, server in servers.items():
                load = drive(
                    server.port,
                    make_request,
                    seconds=runs["http_slice_seconds"],
                    concurrency=HTTP_CONCURRENCY,
                )
                loads[name].merge(load)
                slices[name].append(summary(load.latencies)["mean"])
        logs = {name: server.log_tail(10) for name, server in servers.items()}
    out: dict[str, Any] = {
        "user": username,
        "states": len(states),
        "concurrency": HTTP_CONCURRENCY,
        "workers": 2,
        "permission_check": checks,
    }
    for name, load in loads.items():
        bad = {code: n for code, n in load.statuses.items() if code != 200}
        if bad or load.errors or not load.ok:
            problems.append(
                f"PATCH ({name}): statuses {load.statuses}, errors {load.errors[:3]}; "
                f"gunicorn log: {logs[name][-500:]}"
            )
        out[name] = {
            "requests": sum(load.statuses.values()),
            "ok": load.ok,
            "statuses": load.statuses,
            "seconds": load.elapsed,
            "requests_per_second": load.requests_per_second,
            **summary(load.latencies),
        }
    real_mean, free_mean = out["engine"]["mean"], out["allowany"]["mean"]
    if real_mean and not math.isnan(real_mean) and not math.isnan(free_mean):
        out["overhead_pct"] = 100 * (real_mean - free_mean) / real_mean
        # The same, slice pair by slice pair: how much the figure moves between slices.
        pairs = [
            100 * (r - f) / r
            for r, f in zip(slices["engine"], slices["allowany"], strict=True)
            if r and not math.isnan(r) and not math.isnan(f)
        ]
        if pairs:
            out["overhead_pct_slices"] = {"min": min(pairs), "max": max(pairs), "n": len(pairs)}
    return out


def bench_impact(ctx: dict[str, Any], runs: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """`impact_preview` of a change to one environment grant, in the large project, of the role
    whose holders (users directly, and the members of its groups) are the most numerous among
    the roles with grants there: the tags of a tagged tag-supported entry removed, else one
    entry removed. Each run is the whole preview: two snapshots, the change (a real
    `grant_update`, rolled back) and the comparison."""
    from time import perf_counter, process_time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from impact import previews
    from permissions.catalogue import TAG_SUPPORTED_KEYS
    from permissions.models import Grant
    from permissions.services import EntryInput, grant_update

    organisation, project = ctx["organisation"], ctx["project"]
    snapshot = previews.snapshot_take(organisation.pk)
    role_ids = sorted(
        set(
            Grant.objects.filter(
                organisation=organisation, project=project, role__isnull=False
            ).values_list("role_id", flat=True)
        )
    )
    if not role_ids:
        problems.append("impact: no role has a grant in the large project")
        return {"skipped": "no role grant in the large project"}
    reach = {role_id: len(snapshot.principals_of(("role", role_id))) for role_id in role_ids}
    role_id = max(role_ids, key=lambda r: (reach[r], -r))
    reached_users = sum(
        1 for kind, _ in snapshot.principals_of(("role", role_id)) if kind == "user"
    )
    assignees = [holder[0] for holder in snapshot.holders_of_role(role_id)]
    # The organisation's snapshot was only needed to pick the role: a server holds no such
    # thing, and every garbage collection during the timed runs would walk it.
    del snapshot
    gc.collect()
    grants = list(
        Grant.objects.filter(role_id=role_id, project=project, environment__isnull=False)
        .select_related("role", "environment", "project")
        .prefetch_related("entries__entry_tags")
        .order_by("id")
    )
    if not grants:
        problems.append(f"impact: role {role_id} has no environment grant in the large project")
        return {"skipped": "no environment grant"}
    entries_of = {
        g.pk: {e.key: tuple(sorted(t.tag_id for t in e.entry_tags.all())) for e in g.entries.all()}
        for g in grants
    }
    tagged = [
        (g, key)
        for g in grants
        for key, tags in sorted(entries_of[g.pk].items())
        if tags and key in TAG_SUPPORTED_KEYS
    ]
    if tagged:
        grant, key = tagged[0]
        entries = {**entries_of[grant.pk], key: ()}
        change_text = f"the tags of its {key} entry removed"
    else:
        grant = next((g for g in grants if entries_of[g.pk]), grants[0])
        entries = dict(entries_of[grant.pk])
        key = sorted(entries)[0] if entries else ""
        entries.pop(key, None)
        change_text = f"its {key} entry removed" if key else "no change (the grant is empty)"
    new_entries = [EntryInput(key=k, tags=tags) for k, tags in sorted(entries.items())]

    def change() -> None:
        grant_update(grant=grant, entries=new_entries, actor=None)

    holder = ("role", role_id)
    with CaptureQueriesContext(connection) as captured:
        first = previews.impact_preview(
            organisation_id=organisation.pk, change=change, grants_of=holder
        )
    preview_queries = len(captured)  # now: the requests below reset the connection's query log
    whole = previews.impact_preview(organisation_id=organisation.pk, change=change)
    if whole != first:
        problems.append("impact: the scoped preview differs from the organisation-wide one")
    seconds: list[float] = []
    cpu: list[float] = []
    for _ in range(runs["impact"]):
        c0, t0 = process_time(), perf_counter()
        result = previews.impact_preview(
            organisation_id=organisation.pk, change=change, grants_of=holder
        )
        t1, c1 = perf_counter(), process_time()
        seconds.append(t1 - t0)
        cpu.append(c1 - c0)
        if result != first:
            problems.append("impact: two previews of the same change differ")
    if not first:
        problems.append(f"impact: nobody gains or loses when {change_text} ({grant})")
    write = _bench_grant_write(ctx, runs, problems, grant, entries_of[grant.pk], entries)
    restriction = (
        _bench_tag_restriction(ctx, runs, problems) if runs.get("restriction", True) else {}
    )
    return {
        "write": write,
        "restriction": restriction,
        "role": grant.role.name if grant.role else str(role_id),
        "principals": reach[role_id],
        "users": reached_users,
        "direct_users": assignees.count("user"),
        "groups": assignees.count("group"),
        "grant": grant.pk,
        "environment": grant.environment.name if grant.environment else "",
        "change": change_text,
        "queries": preview_queries,
        "gained": len(first.gained),
        "lost": len(first.lost),
        "principals_changed": len(
            {(c.principal_type, c.principal_id) for c in (*first.gained, *first.lost)}
        ),
        "features_gained": sum(c.features or 0 for c in first.gained),
        "features_lost": sum(c.features or 0 for c in first.lost),
        "cpu_median": summary(cpu)["median"],
        **summary(seconds),
    }


def _bench_grant_write(
    ctx: dict[str, Any],
    runs: dict[str, Any],
    problems: list[str],
    grant: Any,
    original: dict[str, tuple[int, ...]],
    changed: dict[str, tuple[int, ...]],
) -> dict[str, Any]:
    """PUT of the role's environment grant through the API, end to end (token, view,
    service, audit and its recorded impact), alternating the changed and the original
    entries so that every request changes something."""
    from time import perf_counter, process_time

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"Authorization": f"Token {ctx['tokens']['bench-admin']}"})
    url = (
        f"/api/v1/organisations/{ctx['organisation'].pk}/roles/{grant.role_id}/"
        f"environments-permissions/{grant.pk}/"
    )

    def body(entries: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        return {
            "environment": grant.environment_id,
            "admin": grant.admin,
            "permissions": [
                {"permission_key": key, "tags": list(tags)} for key, tags in sorted(entries.items())
            ],
        }

    seconds: list[float] = []
    cpu: list[float] = []
    queries = 0
    n = max(2, runs["impact"] * 2)
    for i in range(n + 1):
        payload = body(changed if i % 2 == 0 else original)
        # The first one warms the code paths and counts the queries; the timed ones record
        # none (Django's query log quotes every parameter of every query on SQLite).
        with CaptureQueriesContext(connection) if i == 0 else nullcontext() as captured:
            c0, t0 = process_time(), perf_counter()
            response = client.put(url, payload, content_type="application/json")
            t1, c1 = perf_counter(), process_time()
        if response.status_code != 200:
            problems.append(f"grant write: HTTP {response.status_code} {response.content[:300]!r}")
            return {"skipped": f"HTTP {response.status_code}"}
        if i == 0:
            queries = len(captured)
            continue
        seconds.append(t1 - t0)
        cpu.append(c1 - c0)
    return {"queries": queries, "cpu_median": summary(cpu)["median"], **summary(seconds)}


def _bench_tag_restriction(
    ctx: dict[str, Any], runs: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    """`impact_preview` of restricting the unrestricted tag of the large project that is on
    the most features: every member holding a tagged or untagged tag-supported key there is
    reached."""
    from time import perf_counter, process_time

    from django.db.models import Count

    from impact import previews
    from impact.feature_writes import FeatureWrite
    from projects.models import Tag
    from projects.services import tag_update

    tag = (
        Tag.objects.filter(project=ctx["project"], is_restricted=False)
        .annotate(n=Count("features"))
        .order_by("-n", "id")
        .first()
    )
    if tag is None:
        return {"skipped": "no unrestricted tag in the large project"}

    def change() -> None:
        tag_update(tag=Tag.objects.get(pk=tag.pk), is_restricted=True, actor=None)

    # As the API's tag PATCH gives it: only the features carrying the tag can change.
    write = FeatureWrite(project_id=tag.project_id, tag_ids=(tag.pk,))

    seconds: list[float] = []
    cpu: list[float] = []
    result = None
    for _ in range(max(1, runs["impact"] // 3)):
        c0, t0 = process_time(), perf_counter()
        result = previews.impact_preview(
            organisation_id=ctx["organisation"].pk, change=change, features_of=write
        )
        t1, c1 = perf_counter(), process_time()
        seconds.append(t1 - t0)
        cpu.append(c1 - c0)
    assert result is not None
    whole = previews.impact_preview(organisation_id=ctx["organisation"].pk, change=change)
    if whole != result:
        problems.append("tag restriction: the feature-scoped preview differs from the whole one")
    principals = {(c.principal_type, c.principal_id) for c in (*result.gained, *result.lost)}
    if not result:
        problems.append(f"tag restriction: nobody gains or loses when {tag.label} is restricted")
    return {
        "tag": tag.label,
        "features": tag.n,
        "gained": len(result.gained),
        "lost": len(result.lost),
        "principals_changed": len(principals),
        "cpu_median": summary(cpu)["median"],
        **summary(seconds),
    }


def bench_matrix(runs: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The admin's permission matrix of an environment at 200 members × 500 features (the
    organisation of tests/admin/test_matrix.py: members in 10 groups, each with a tagged role
    grant; features with 1 or 2 of 10 tags, 2 of them restricted), as a superuser."""
    from time import perf_counter, process_time

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from environments.models import Environment
    from features.models import Feature
    from organisations.models import (
        MembershipRole,
        Organisation,
        OrganisationMembership,
        Role,
        RoleAssignment,
        UserGroup,
    )
    from permissions.admin.views import MATRIX_KEYS
    from permissions.services import EntryInput, grant_create
    from projects.models import Project, Tag

    members, features = MATRIX_SIZE[runs["mode"]]
    User = get_user_model()
    org = Organisation.objects.create(name="Matrix organisation")
    project = Project.objects.create(organisation=org, name="matrix")
    env = Environment.objects.filter(project=project).first() or Environment.objects.create(
        project=project, name="matrix-env"
    )
    tags = [
        Tag.objects.create(project=project, label=f"m{i}", is_restricted=i % 5 == 0)
        for i in range(10)
    ]
    users = User.objects.bulk_create(
        [User(username=f"matrix-{i}", email=f"matrix-{i}@example.com") for i in range(members)]
    )
    OrganisationMembership.objects.bulk_create(
        [
            OrganisationMembership(
                user=u,
                organisation=org,
                role=MembershipRole.ADMIN if i == 0 else MembershipRole.USER,
            )
            for i, u in enumerate(users)
        ]
    )
    for g in range(10):
        group = UserGroup.objects.create(organisation=org, name=f"matrix-group-{g}")
        group.users.set(users[g::10])
        role = Role.objects.create(organisation=org, name=f"matrix-role-{g}")
        RoleAssignment.objects.create(role=role, group=group)
        grant_create(
            principal=role,
            scope=env,
            entries=[
                EntryInput(MATRIX_KEYS[g % 4], tags=(tags[g].pk,)),
                EntryInput(MATRIX_KEYS[(g + 1) % 4]),
            ],
            actor=None,
        )
    created = Feature.objects.bulk_create(
        [Feature(project=project, name=f"flag_{i:05d}") for i in range(features)]
    )
    through = Feature.tags.through
    through.objects.bulk_create(
        [through(feature_id=ft.pk, tag_id=tags[i % 10].pk) for i, ft in enumerate(created)]
        + [
            through(feature_id=ft.pk, tag_id=tags[(i + 3) % 10].pk)
            for i, ft in enumerate(created)
            if i % 3
        ]
    )
    admin = User.objects.create_superuser("matrix-admin", "matrix-admin@example.com", "bench")
    client = Client()
    client.force_login(admin)
    url = reverse("admin:environments_environment_matrix", args=[env.pk])
    client.get(url + "?q=none")  # warm the code paths
    with CaptureQueriesContext(connection) as captured:  # the timed runs record no query
        client.get(url)
    queries = len(captured)
    seconds: list[float] = []
    cpu: list[float] = []
    for _ in range(runs["matrix"]):
        c0, t0 = process_time(), perf_counter()
        response = client.get(url)
        t1, c1 = perf_counter(), process_time()
        if response.status_code != 200 or response.content.count(b"<td class=m") != (
            members * features
        ):
            problems.append(f"matrix: HTTP {response.status_code}, or not {members} × {features}")
            return {"skipped": "failed"}
        seconds.append(t1 - t0)
        cpu.append(c1 - c0)
    return {
        "members": members,
        "features": features,
        "queries": queries,
        "cpu_median": summary(cpu)["median"],
        **summary(seconds),
    }


# ======================================================================================
# Report
# ======================================================================================


def _t(stats: dict[str, Any], key: str) -> str:
    return fmt_time(stats.get(key, math.nan)) if stats else "–"


def _judged(stats: dict[str, Any], is_sqlite: bool) -> float:
    """The figure a time target is judged on: CPU median on SQLite, wall median otherwise."""
    value = stats.get("cpu_median") if is_sqlite else stats.get("median")
    return math.nan if value is None else float(value)


def _on(is_sqlite: bool) -> str:
    return "CPU" if is_sqlite else "wall"


def evaluate(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, with the measured value and whether it is met."""
    decision, memory, lists = result["decision"], result["memory"], result["list"]
    users = [u for _, u in USERS]
    is_pg = result["database"]["vendor"] == "postgresql"
    is_sqlite = not is_pg
    rows: list[dict[str, Any]] = []
    cold = max(decision[u]["cold_queries_max"] for u in users)
    warm = max(decision[u]["warm_queries_max"] for u in users)
    rows.append(
        {
            "target": f"cold decision ≤ {TARGETS['cold_queries']} query (tags with the feature)",
            "value": f"{cold} (worst user)",
            "met": cold <= TARGETS["cold_queries"],
            "budget": True,
        }
    )
    rows.append(
        {
            "target": "warm decision 0 queries",
            "value": f"{warm} (worst user)",
            "met": warm <= TARGETS["warm_queries"],
            "budget": True,
        }
    )
    cold_ms = max(_judged(decision[u]["cold"], True) for u in users) * 1e3
    cold_wall = max(decision[u]["cold"]["median"] for u in users) * 1e3
    rows.append(
        {
            "target": f"cold decision median ≤ {TARGETS['cold_median_ms_sqlite']:g} ms on SQLite",
            "value": f"{cold_ms:.2f} ms CPU, {cold_wall:.2f} ms wall (worst user)"
            + ("; target is for SQLite" if is_pg else ""),
            "met": cold_ms <= TARGETS["cold_median_ms_sqlite"] if is_sqlite else None,
        }
    )
    constant = all(
        lists[u].get("engine", {}).get("queries_page_10")
        == lists[u].get("engine", {}).get("queries_page_100")
        for u in users
    )
    list_queries = ", ".join(
        str(lists[u].get("engine", {}).get("queries_page_100", "?")) for u in users
    )
    rows.append(
        {
            "target": "list: constant number of queries (page of 10 = page of 100)",
            "value": f"{list_queries} queries",
            "met": constant,
            "budget": True,
        }
    )
    kept_queries = max(decision[u]["kept_queries_max"] for u in users)
    kept_ms = max(decision[u]["kept_cpu_median"] for u in users) * 1e3
    rows.append(
        {
            "target": "decision in a later request, its policy kept: 1 query (the stamp)",
            "value": f"{kept_queries} (worst user), {kept_ms:.2f} ms CPU",
            "met": kept_queries <= 1,
            "budget": True,
        }
    )
    memory_median = max(memory[u]["median"] for u in users) * 1e6
    rows.append(
        {
            "target": f"in-memory decision median ≤ {TARGETS['memory_median_us']:g} µs",
            "value": f"{memory_median:.2f} µs (worst user)",
            "met": memory_median <= TARGETS["memory_median_us"],
        }
    )
    key = "floor_ratio_cpu" if is_sqlite else "floor_ratio"
    floors = [lists[u].get(key) for u in users]
    floor_target = f"list page ≤ {TARGETS['floor_ratio']:g}× the page with no authorisation"
    if all(isinstance(r, float) for r in floors):
        worst = max(floors)  # type: ignore[type-var]
        rows.append(
            {
                "target": floor_target,
                "value": f"{worst:.2f}× {_on(is_sqlite)} (worst user)",
                "met": worst <= TARGETS["floor_ratio"],
            }
        )
    else:
        rows.append({"target": floor_target, "value": "not measured", "met": False})
    medians = [lists[u].get("engine", {}).get("median") for u in users]
    list_target = f"list page median ≤ {TARGETS['list_median_ms_postgres']:g} ms on PostgreSQL"
    if all(isinstance(m, float) and not math.isnan(m) for m in medians):
        list_median = max(medians) * 1e3  # type: ignore[type-var]
        rows.append(
            {
                "target": list_target,
                "value": f"{list_median:.1f} ms wall (worst user)"
                + ("" if is_pg else "; target is for PostgreSQL"),
                "met": (list_median <= TARGETS["list_median_ms_postgres"]) if is_pg else None,
            }
        )
    # The naive way against the engine's, on what differs between them: a page's decisions
    # (4c; the whole pages of 4 share their SQL, HTTP and rendering).
    page = result.get("page_decisions", {})
    ratios = [page[u].get("ratio") for u in users if u in page]
    if ratios and all(isinstance(r, float) for r in ratios):
        ratio = min(ratios)  # type: ignore[type-var]
        rows.append(
            {
                "target": f"a page's decisions, naive ÷ engine ≥ {TARGETS['naive_ratio']:g}×",
                "value": f"{ratio:.1f}× wall (worst user)",
                "met": ratio >= TARGETS["naive_ratio"],
            }
        )
    rows += _evaluate_impact(result)
    matrix = result.get("matrix") or {}
    matrix_target = f"matrix 200 × 500 median ≤ {TARGETS['matrix_median_s']:g} s"
    if "median" in matrix:
        value = _judged(matrix, is_sqlite)
        rows.append(
            {
                "target": matrix_target,
                "value": f"{fmt_time(value)} {_on(is_sqlite)}, {matrix['queries']} queries",
                "met": value <= TARGETS["matrix_median_s"],
            }
        )
    patch = result["patch"]
    patch_queries = result.get("patch_queries")
    if patch_queries is not None:
        rows.append(
            {
                "target": f"PATCH of a feature state ≤ {TARGETS['patch_queries']} queries",
                "value": f"{patch_queries} queries",
                "met": patch_queries <= TARGETS["patch_queries"],
                "budget": True,
            }
        )
    overhead_target = f"authorisation overhead ≤ {TARGETS['authz_overhead_pct']:g}% of PATCH"
    if "overhead_pct" in patch:
        rows.append(
            {
                "target": overhead_target,
                "value": f"{patch['overhead_pct']:.1f}% wall",
                "met": patch["overhead_pct"] <= TARGETS["authz_overhead_pct"],
            }
        )
    else:
        rows.append(
            {
                "target": overhead_target,
                "value": f"not measured ({patch.get('skipped', 'failed')})",
                "met": None,
            }
        )
    return rows


def _evaluate_impact(result: dict[str, Any]) -> list[dict[str, Any]]:
    measured = result.get("impact")
    if measured is None:  # a result from before the measurement existed
        return []
    is_sqlite = result["database"]["vendor"] == "sqlite"
    query_target = f"impact preview ≤ {TARGETS['impact_queries']} queries"
    time_target = f"impact preview (role) median ≤ {TARGETS['impact_median_s']:g} s"
    if "queries" not in measured:
        why = f"not measured ({measured.get('skipped', 'failed')})"
        return [
            {"target": query_target, "value": why, "met": False, "budget": True},
            {"target": time_target, "value": why, "met": False},
        ]
    preview = _judged(measured, is_sqlite)
    rows = [
        {
            "target": query_target,
            "value": f"{measured['queries']} queries ({measured['principals']:,} principals "
            "reached by the role)",
            "met": measured["queries"] <= TARGETS["impact_queries"],
            "budget": True,
        },
        {
            "target": time_target,
            "value": f"{fmt_time(preview)} {_on(is_sqlite)} ({measured['principals']:,} "
            "principals)",
            "met": preview <= TARGETS["impact_median_s"],
        },
    ]
    write = measured.get("write") or {}
    if "median" in write:
        value = _judged(write, is_sqlite)
        rows.append(
            {
                "target": f"role grant write, end to end, median ≤ "
                f"{TARGETS['grant_write_median_ms']:g} ms",
                "value": f"{fmt_time(value)} {_on(is_sqlite)}, {write['queries']} queries",
                "met": value * 1e3 <= TARGETS["grant_write_median_ms"],
            }
        )
    restriction = measured.get("restriction") or {}
    if "median" in restriction:
        value = _judged(restriction, is_sqlite)
        rows.append(
            {
                "target": f"restricting a tag every member reaches, preview median ≤ "
                f"{TARGETS['restriction_median_s']:g} s",
                "value": f"{fmt_time(value)} {_on(is_sqlite)} "
                f"({restriction['principals_changed']:,} principals change)",
                "met": value <= TARGETS["restriction_median_s"],
            }
        )
    return rows


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("**met**" if value else "**not met**")


def render(result: dict[str, Any], machine: dict[str, Any]) -> str:
    db = result["database"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(db["vendor"], db["vendor"])
    sizes = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result["sizes"].items())
    lines = [
        f"### {label} {db['version']}",
        "",
        f"Run {machine['date']} ({result['mode']}) on {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, Django {machine['django']}; commit {machine['commit']}.",
        f"Organisation: seed {result['seed']}, {sizes}; "
        f"generated in **{result['generator_seconds']:.1f} s**.",
    ]
    load = result.get("load_average") or {}
    if load.get("before") is not None:
        lines.append(
            f"1-minute load average {load['before']} before the run and {load['after']} after "
            f"it ({machine['cores']} cores)."
        )
    lines.append("")
    users = [(label_, u) for label_, u in USERS]
    decision, memory, lists, patch = (
        result["decision"],
        result["memory"],
        result["list"],
        result["patch"],
    )
    runs = result["runs"]
    rows: list[list[Any]] = []
    for kind in ("cold", "warm"):
        for who, u in users:
            d = decision[u]
            rows.append(
                [
                    f"1. decision, {kind}",
                    who,
                    d[kind]["n"],
                    d[f"{kind}_queries_max"],
                    _t(d[kind], "median"),
                    _t(d[kind], "p95"),
                    _t(d[kind], "cpu_median") if "cpu_median" in d[kind] else "",
                ]
            )
    for who, u in users:
        m = memory[u]
        rows.append(["2. in-memory decision", who, m["n"], 0, _t(m, "median"), _t(m, "p95"), ""])
    for variant, title in (
        ("floor", "3f. list page, no authorisation (the floor)"),
        ("engine", "3. list page, engine (× the floor, CPU)"),
        ("naive", "4. list page, naive (cold check per feature)"),
        ("naive_memo", "4b. list page, naive with the policy memoised"),
    ):
        for who, u in users:
            s = lists[u].get(variant, {})
            ratio = {
                "engine": lists[u].get("floor_ratio_cpu"),
                "naive": lists[u].get("naive_ratio"),
                "naive_memo": lists[u].get("naive_memo_ratio"),
            }.get(variant)
            rows.append(
                [
                    title,
                    who,
                    s.get("n", "–"),
                    s.get("queries_page_100", "–"),
                    _t(s, "median") + (f" (**{ratio:.1f}×**)" if ratio else ""),
                    _t(s, "p95"),
                    _t(s, "cpu_median"),
                ]
            )
    page = result.get("page_decisions", {})
    for variant, title in (
        ("engine", "4c. the page's decisions alone, engine"),
        ("naive", "4c. the page's decisions alone, naive"),
    ):
        for who, u in users:
            if u not in page:
                continue
            s = page[u][variant]
            extra = f" (**{page[u]['ratio']:.1f}×**)" if variant == "naive" else ""
            queries = 1 if variant == "engine" else 2 * page["features"]
            rows.append([title, who, s["n"], queries, _t(s, "median") + extra, _t(s, "p95"), ""])
    measured = result.get("impact") or {}
    if "queries" in measured:
        rows.append(
            [
                "6. impact preview",
                f"{measured['principals']:,} principals (role)",
                measured["n"],
                measured["queries"],
                _t(measured, "median"),
                _t(measured, "p95"),
                _t(measured, "cpu_median"),
            ]
        )
    write = measured.get("write") or {}
    if "median" in write:
        rows.append(
            [
                "7. role grant write (API PUT, impact recorded)",
                f"{measured['principals']:,} principals (role)",
                write["n"],
                write["queries"],
                _t(write, "median"),
                _t(write, "p95"),
                _t(write, "cpu_median"),
            ]
        )
    restriction = measured.get("restriction") or {}
    if "median" in restriction:
        rows.append(
            [
                f"8. preview: tag `{restriction['tag']}` restricted",
                f"{restriction['principals_changed']:,} principals change",
                restriction["n"],
                "",
                _t(restriction, "median"),
                _t(restriction, "p95"),
                _t(restriction, "cpu_median"),
            ]
        )
    matrix = result.get("matrix") or {}
    if "median" in matrix:
        rows.append(
            [
                f"9. admin matrix {matrix['members']} × {matrix['features']}",
                "superuser",
                matrix["n"],
                matrix["queries"],
                _t(matrix, "median"),
                _t(matrix, "p95"),
                _t(matrix, "cpu_median"),
            ]
        )
    lines.append(
        table(["measurement", "user", "runs", "queries", "median", "p95", "CPU median"], rows)
    )
    lines.append("")
    if "engine" in patch:
        p_rows = []
        for name, title in (("engine", "real permission classes"), ("allowany", "AllowAny")):
            s = patch[name]
            p_rows.append(
                [
                    title,
                    s["ok"],
                    f"{s['requests_per_second']:.0f}",
                    _t(s, "mean"),
                    _t(s, "median"),
                    _t(s, "p95"),
                ]
            )
        lines.append(
            f"5. PATCH feature state under gunicorn ({patch['workers']} sync workers, "
            f"{patch['concurrency']} client threads, user {patch['user']}, "
            f"{runs['http_slices']} × {runs['http_slice_seconds']:g} s per variant, alternating); "
            f"authorisation overhead **{patch.get('overhead_pct', math.nan):.1f}%** of the mean "
            "request time"
            + (
                f" (from {patch['overhead_pct_slices']['min']:.1f}% to "
                f"{patch['overhead_pct_slices']['max']:.1f}% slice by slice)"
                if "overhead_pct_slices" in patch
                else ""
            )
            + ":"
        )
        lines.append("")
        lines.append(
            table(["permission classes", "requests", "req/s", "mean", "median", "p95"], p_rows)
        )
    else:
        lines.append(f"5. PATCH under gunicorn: not measured ({patch.get('skipped')}).")
    lines.append("")
    if "queries" in measured:
        lines.append(
            f"6. Impact preview: role `{measured['role']}`, held by {measured['direct_users']} "
            f"users directly and by {measured['groups']} groups ({measured['principals']:,} "
            f"principals), its grant on the environment `{measured['environment']}` of the large "
            f"project, with {measured['change']}. Over {measured['n']} runs: median "
            f"**{_t(measured, 'median')}**, max {_t(measured, 'max')}, {measured['queries']} "
            f"queries. The preview lists {measured['gained']:,} changes gained and "
            f"{measured['lost']:,} lost, for {measured['principals_changed']:,} principals; "
            f"they count {measured['features_gained']:,} features newly reached and "
            f"{measured['features_lost']:,} no longer reached, principal by principal."
        )
        lines.append("")
    elif measured:
        lines.append(f"6. Impact preview: not measured ({measured.get('skipped', 'failed')}).")
        lines.append("")
    lines.append("Targets:")
    lines.append("")
    lines.append(
        table(
            ["target", "measured", "status"],
            [[r["target"], r["value"], _met(r["met"])] for r in evaluate(result)],
        )
    )
    if result["problems"]:
        lines.append("")
        lines.append("Problems:")
        lines += [f"- {p}" for p in result["problems"]]
    return "\n".join(lines) + "\n"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " with uncommitted changes"
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        import django

        django_version = django.get_version()
    except ImportError:
        django_version = "?"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "django": django_version,
        "commit": commit,
    }


DOC_TEMPLATE = f"""# Performance

{START_MARK}
{END_MARK}
"""


def write_doc(blocks: dict[str, str]) -> None:
    text = DOC.read_text() if DOC.exists() else DOC_TEMPLATE
    if START_MARK not in text or END_MARK not in text:
        text = text.rstrip("\n") + f"\n\n## Latest results\n\n{START_MARK}\n{END_MARK}\n"
    head, rest = text.split(START_MARK, 1)
    inner, tail = rest.split(END_MARK, 1)
    kept = dict(BLOCK_RE.findall(inner))
    kept.update(blocks)
    order = [n for n in ("sqlite", "postgresql") if n in kept] + sorted(
        n for n in kept if n not in ("sqlite", "postgresql")
    )
    body = "".join(
        f"<!-- bench:db {n} -->\n{kept[n].strip()}\n<!-- bench:db-end -->\n\n" for n in order
    )
    DOC.write_text(f"{head}{START_MARK}\n{body}{END_MARK}{tail}")


# ======================================================================================
# Orchestrator
# ======================================================================================


def _is_postgres(url: str) -> bool:
    return url.split(":", 1)[0] in {"postgres", "postgresql", "pgsql", "postgis"}


def _run_growth(
    args: argparse.Namespace, tmp: Path, failed: list[str]
) -> list[tuple[int, dict[str, Any]]]:
    """The growth rows, on SQLite (a fresh file per size): `--growth` multiples of
    `--growth-base` × the generator's defaults, members (and groups) and features scaled
    together."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from bench.generate_org import DEFAULTS

    scales = [int(x) for x in args.growth.split(",") if x.strip()]
    measured: list[tuple[int, dict[str, Any]]] = []
    for scale in scales:
        factor = args.growth_base * scale
        sizes = {
            "members": max(20, round(DEFAULTS["members"] * factor)),
            "groups": max(10, round(DEFAULTS["groups"] * factor)),
            "features": max(50, round(DEFAULTS["features"] * factor)),
        }
        print(f"\n=== growth {scale}× {sizes} ===", file=sys.stderr, flush=True)
        out = tmp / f"growth-{scale}.json"
        child = [sys.executable, str(Path(__file__).resolve()), "--worker", "--growth-only"]
        child += ["--out", str(out), "--tmp", str(tmp), "--seed", str(args.seed)]
        for name, value in sizes.items():
            child += [f"--{name}", str(value)]
        url = f"sqlite:///{tmp / f'growth-{scale}.sqlite3'}"
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        code = subprocess.run(child, cwd=ROOT, env=env).returncode
        if code != 0 or not out.exists():
            failed.append(f"growth {scale}×: the benchmark process failed (exit {code})")
            continue
        result = json.loads(out.read_text())
        failed += [f"growth {scale}×: {p}" for p in result["problems"]]
        measured.append((scale, result["growth"]))
    return measured


def render_growth(
    growth: list[tuple[int, dict[str, Any]]], base: float, machine: dict[str, Any]
) -> str:
    """How each growth row grows with the organisation (SQLite; medians, CPU and wall)."""
    first = growth[0][1]

    def cell(stats: dict[str, Any], baseline: dict[str, Any]) -> str:
        cpu, ref = stats.get("cpu_median"), baseline.get("cpu_median")
        if not cpu or not ref:
            return "–"
        return f"{fmt_time(cpu)} CPU ({cpu / ref:.1f}×), {fmt_time(stats['median'])} wall"

    rows = []
    for scale, g in growth:
        rows.append(
            [
                f"{scale}×",
                f"{g['members']:,}",
                f"{g['features']:,}",
                cell(g["decision"], first["decision"]),
                cell(g["list"], first["list"]),
                cell(g["write"], first["write"]),
                cell(g["preview"], first["preview"]) + f"; {g['preview']['principals']:,} reached",
            ]
        )
    return (
        "\n".join(
            [
                "### Growth (SQLite)",
                "",
                f"Run {machine['date']} on {machine['cpu']}, {machine['cores']} cores; commit "
                f"{machine['commit']}. 1× is {base:g} × the generator's defaults; members, groups "
                "and features are scaled together. Medians; the factor is against 1×, on CPU.",
                "",
                table(
                    [
                        "size",
                        "members",
                        "features (large project)",
                        "cold decision (bench-tagged)",
                        "list page of 100 (bench-tagged)",
                        "role grant write (API)",
                        "preview of that write",
                    ],
                    rows,
                ),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few runs, no document")
    parser.add_argument("--seed", type=int, default=0)
    for name in SIZE_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/PERFORMANCE.md")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn measurement")
    parser.add_argument("--keep-db", action="store_true", help="keep the SQLite file")
    parser.add_argument(
        "--databases",
        default="auto",
        help="auto (SQLite, and PostgreSQL when DATABASE_URL is one), sqlite, postgresql, or "
        "none (with --growth: the growth rows alone)",
    )
    parser.add_argument(
        "--growth",
        default="",
        help="also measure the growth rows at these multiples of the organisation (e.g. "
        "1,4,16), members and features scaled together",
    )
    parser.add_argument(
        "--growth-base",
        type=float,
        default=1.0,
        help="the size of 1× as a fraction of the generator's defaults (e.g. 0.0625 in CI)",
    )
    parser.add_argument("--growth-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    given = os.environ.get("DATABASE_URL", "")
    tmp = Path(tempfile.mkdtemp(prefix="tagwarden-bench-"))
    targets = []
    if args.databases in ("auto", "sqlite"):
        targets.append(("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}"))
    if args.databases in ("auto", "postgresql"):
        if given and _is_postgres(given):
            targets.append(("postgresql", given))
        elif args.databases == "postgresql":
            parser.error("--databases postgresql needs DATABASE_URL pointing at PostgreSQL")
    machine = machine_info()
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    try:
        for name, url in targets:
            print(f"\n=== {name} ===", file=sys.stderr, flush=True)
            out = tmp / f"{name}.json"
            child = [sys.executable, str(Path(__file__).resolve()), "--worker", "--out", str(out)]
            child += ["--tmp", str(tmp), "--seed", str(args.seed)]
            child += ["--smoke"] if args.smoke else []
            child += ["--no-http"] if args.no_http else []
            for size in SIZE_OPTIONS:
                if getattr(args, size) is not None:
                    child += [f"--{size.replace('_', '-')}", str(getattr(args, size))]
            env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
            started = time.monotonic()
            code = subprocess.run(child, cwd=ROOT, env=env).returncode
            if code != 0 or not out.exists():
                failed.append(f"{name}: the benchmark process failed (exit {code})")
                continue
            results[name] = json.loads(out.read_text())
            results[name]["wall_seconds"] = time.monotonic() - started
        growth = _run_growth(args, tmp, failed)
    finally:
        if args.keep_db:
            print(f"bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    blocks = {name: render(result, machine) for name, result in results.items()}
    if growth:
        blocks["growth"] = render_growth(growth, args.growth_base, machine)
    for name, block in blocks.items():
        print(f"\n{block}")
        if name in results:
            print(f"({name}: {results[name]['wall_seconds']:.0f} s in all)")
    for name, result in results.items():
        for row in evaluate(result):
            if row.get("budget") and row["met"] is False:
                failed.append(
                    f"{name}: query budget exceeded: {row['target']} (got {row['value']})"
                )
        failed += [f"{name}: {p}" for p in result["problems"]]
    if blocks and not args.smoke and not args.no_write:
        write_doc(blocks)
        print(f"bench: wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    if failed:
        print("\nbench: FAILED", file=sys.stderr)
        for line in failed:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print("\nbench: OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
