"""The benchmark's impact-preview measurement in the report: its query budget (checked by
`--smoke`, like the other budgets), its time target (reported, never a budget), its row."""

from __future__ import annotations

from typing import Any

from bench import run


def _result(impact: dict[str, Any] | None, vendor: str = "sqlite") -> dict[str, Any]:
    timing = {"n": 1, "median": 1e-6, "p95": 1e-6, "mean": 1e-6, "max": 1e-6}
    users = [u for _, u in run.USERS]
    result: dict[str, Any] = {
        "mode": "smoke",
        "database": {"vendor": vendor, "version": "3"},
        "sizes": {"members": 40},
        "seed": 0,
        "generator_seconds": 1.0,
        "runs": run.RUNS["smoke"],
        "problems": [],
        "decision": {
            u: {
                "cold_queries_max": 2,
                "warm_queries_max": 0,
                "kept_queries_max": 1,
                "kept_cpu_median": 1e-6,
                "cold": timing,
                "warm": timing,
            }
            for u in users
        },
        "memory": dict.fromkeys(users, timing),
        "list": {
            u: {
                "engine": {"queries_page_10": 6, "queries_page_100": 6, **timing},
                "naive_ratio": 25.0,
            }
            for u in users
        },
        "patch": {"skipped": "test"},
    }
    if impact is not None:
        result["impact"] = impact
    return result


def _impact(queries: int = 37, median: float = 0.5) -> dict[str, Any]:
    return {
        "role": "role-0005",
        "principals": 653,
        "users": 653,
        "direct_users": 10,
        "groups": 9,
        "grant": 48,
        "environment": "env-1",
        "change": "the tags of its UPDATE_FEATURE_STATE entry removed",
        "queries": queries,
        "gained": 120,
        "lost": 0,
        "principals_changed": 120,
        "features_gained": 5_000,
        "features_lost": 0,
        "cpu_median": median,
        "n": 10,
        "median": median,
        "p95": median,
        "mean": median,
        "max": median,
    }


def _rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in run.evaluate(result) if r["target"].startswith("impact")}


def test_impact_queries_over_the_budget__fail_the_budget() -> None:
    rows = _rows(_result(_impact(queries=run.TARGETS["impact_queries"] + 1)))

    (budget,) = (r for r in rows.values() if r.get("budget"))
    assert budget["met"] is False


def test_impact_queries_within_the_budget__meet_it() -> None:
    rows = _rows(_result(_impact(queries=run.TARGETS["impact_queries"])))

    (budget,) = (r for r in rows.values() if r.get("budget"))
    assert budget["met"] is True


def test_impact_time__slow__a_missed_target_never_a_budget() -> None:
    slow = run.TARGETS["impact_median_s"] + 1

    sqlite = _rows(_result(_impact(median=slow)))
    postgres = _rows(_result(_impact(median=slow), vendor="postgresql"))

    (sqlite_time,) = (r for r in sqlite.values() if not r.get("budget"))
    (postgres_time,) = (r for r in postgres.values() if not r.get("budget"))
    assert sqlite_time["met"] is False and postgres_time["met"] is False
    assert not any(r.get("budget") and r["met"] is False for r in sqlite.values())


def test_impact_not_measured__fails_the_budget() -> None:
    rows = _rows(_result({"skipped": "no role grant in the large project"}))

    assert any(r.get("budget") and r["met"] is False for r in rows.values())


def test_result_without_impact__adds_no_row() -> None:
    assert _rows(_result(None)) == {}


def test_render__shows_the_impact_row_and_its_paragraph() -> None:
    machine = {
        "date": "today",
        "cpu": "cpu",
        "cores": 2,
        "python": "3",
        "django": "5",
        "commit": "abc",
    }

    text = run.render(_result(_impact(median=1.25)), machine)

    assert "| 6. impact preview | 653 principals (role) | 10 | 37 | 1.25 s |" in text
    assert "6. Impact preview: role `role-0005`" in text
    assert "120 changes gained and 0 lost, for 120 principals" in text
    assert "5,000 features newly reached" in text
