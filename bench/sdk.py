#!/usr/bin/env python
"""Benchmark of the endpoints the Flagsmith SDKs call (docs/PERFORMANCE.md "Flags for
applications"): medians of `GET /api/v1/flags/` and `POST /api/v1/identities/` through the
Django test client (real URLconf, middleware, DRF), at 1,000 and 10,000 features.

    python bench/sdk.py                  sizes 1000 and 10000, 30 runs each
    python bench/sdk.py --sizes 200 --runs 5

Each size gets a fresh SQLite file in a temporary folder (or the database DATABASE_URL names,
which must be empty). The environment has the given number of features, 50 segments each
overriding one feature, and the identity sends 20 traits (matching half the segments).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEGMENTS = 50
TRAITS = 20


def worker(size: int, runs: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagwarden.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from environments.models import Environment
    from features.models import Feature, FeatureState, Segment, SegmentOverride
    from organisations.models import Organisation
    from projects.models import Project

    call_command("migrate", verbosity=0)
    organisation = Organisation.objects.create(name="bench-sdk")
    project = Project.objects.create(organisation=organisation, name="bench-sdk")
    environment = Environment.objects.create(project=project, name="production")
    features = Feature.objects.bulk_create(
        [Feature(project=project, name=f"feature_{i:05d}") for i in range(size)]
    )
    FeatureState.objects.bulk_create(
        [
            FeatureState(feature=f, environment=environment, enabled=i % 2 == 0, value=i)
            for i, f in enumerate(features)
        ]
    )
    for i in range(SEGMENTS):
        rule = {"property": f"trait_{i}", "operator": "EQUAL", "value": "yes"}
        segment = Segment.objects.create(
            project=project, name=f"segment_{i}", rules=[{"type": "ALL", "conditions": [rule]}]
        )
        override = SegmentOverride.objects.create(
            feature=features[i], environment=environment, segment=segment, priority=i
        )
        FeatureState.objects.create(
            feature=features[i],
            environment=environment,
            segment_override=override,
            enabled=True,
            value="override",
        )
    client = Client(HTTP_X_ENVIRONMENT_KEY=environment.api_key)
    body = json.dumps(
        {
            "identifier": "bench-identity",
            "traits": [
                {"trait_key": f"trait_{i}", "trait_value": "yes" if i % 2 == 0 else "no"}
                for i in range(TRAITS)
            ],
        }
    )

    def measure(call: Any) -> tuple[float, int]:
        times = []
        queries = 0
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                response = call()
                times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.content[:200]
            queries = len(captured)
        return statistics.median(times), queries

    flags = measure(lambda: client.get("/api/v1/flags/"))
    identities = measure(
        lambda: client.post("/api/v1/identities/", body, content_type="application/json")
    )
    return {
        "features": size,
        "flags_median_s": flags[0],
        "flags_queries": flags[1],
        "identities_median_s": identities[0],
        "identities_queries": identities[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.runs)))
        return
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            env = dict(os.environ)
            env.setdefault("DATABASE_URL", f"sqlite:///{folder}/bench.sqlite3")
            env.setdefault("DJANGO_SETTINGS_MODULE", "tagwarden.settings")
            out = subprocess.run(
                [sys.executable, __file__, "--worker", str(size), "--runs", str(args.runs)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print("| features | GET /flags/ median | queries | POST /identities/ median | queries |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['features']:,} | {row['flags_median_s'] * 1e3:.1f} ms | {row['flags_queries']}"
            f" | {row['identities_median_s'] * 1e3:.1f} ms | {row['identities_queries']} |"
        )


if __name__ == "__main__":
    main()
