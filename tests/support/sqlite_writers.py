"""Two writers on one file-based SQLite database, run in a subprocess by
tests/security/test_concurrency_sqlite.py (pytest's SQLite test database lives in memory,
where locking differs from the embedded default's file).

    python -m tests.support.sqlite_writers DB_PATH ROUNDS [--deferred]

Migrates a fresh database at DB_PATH, creates two users each holding UPDATE_FEATURE_STATE on
its own feature, then PATCHes each user's state ROUNDS times from two threads at once (each
thread with its own connection, like two server processes). Prints the JSON list of status
codes. `--deferred` drops the settings' IMMEDIATE transactions, to show what they prevent.
"""

from __future__ import annotations

import json
import os
import sys
import threading


def main(db_path: str, rounds: int, deferred: bool) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagwarden.test_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    if deferred:
        connections["default"].settings_dict["OPTIONS"].pop("transaction_mode", None)
        connection.close()
    call_command("migrate", verbosity=0)

    from rest_framework.test import APIClient

    from features.models import FeatureState
    from permissions.catalogue import UPDATE_FEATURE_STATE
    from tests import factories as f

    organisation = f.OrganisationFactory()
    project = f.ProjectFactory(organisation=organisation)
    environment = f.EnvironmentFactory(project=project)
    writers = []
    for _ in range(2):
        user = f.member(organisation)
        feature = f.FeatureFactory(project=project)
        f.grant(user, environment, [UPDATE_FEATURE_STATE])
        state = FeatureState.objects.get(
            feature=feature, environment=environment, segment_override__isnull=True
        )
        writers.append((user, state.pk))
    connection.close()

    barrier = threading.Barrier(len(writers))
    statuses: list[int] = []
    lock = threading.Lock()

    def write(user: object, state_id: int) -> None:
        client = APIClient(raise_request_exception=False)  # a 500 is a status, as in production
        client.force_authenticate(user)
        url = f"/api/v1/environments/{environment.api_key}/featurestates/{state_id}/"
        barrier.wait(timeout=60)
        try:
            for n in range(rounds):
                response = client.patch(url, {"enabled": n % 2 == 0, "value": n}, format="json")
                with lock:
                    statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=writer) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(statuses))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "--deferred" in sys.argv[3:])
