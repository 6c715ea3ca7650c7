"""The benchmark runner's bookkeeping: statistics, budgets and the document's marked section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.stats import percentile, summary


def test_percentile__values_1_to_100__nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([7.0], 95) == 7.0
    assert summary([3, 1, 2])["median"] == 2


def _result(
    cold: int = 1, warm: int = 0, page_10: int = 6, page_100: int = 6, kept: int = 1
) -> dict[str, Any]:
    timing = {"n": 1, "median": 1e-6, "p95": 1e-6, "mean": 1e-6, "max": 1e-6}
    users = [u for _, u in run.USERS]
    return {
        "database": {"vendor": "sqlite", "version": "3"},
        "decision": {
            u: {
                "cold_queries_max": cold,
                "warm_queries_max": warm,
                "kept_queries_max": kept,
                "kept_cpu_median": 1e-6,
                "cold": timing,
                "warm": timing,
            }
            for u in users
        },
        "memory": dict.fromkeys(users, timing),
        "list": {
            u: {
                "engine": {"queries_page_10": page_10, "queries_page_100": page_100, **timing},
                "naive_ratio": 25.0,
            }
            for u in users
        },
        "patch": {"skipped": "test"},
    }


@pytest.mark.parametrize(
    ("kwargs", "broken"),
    [
        ({}, set()),
        ({"cold": 2}, {"cold"}),
        ({"warm": 1}, {"warm"}),
        ({"page_10": 6, "page_100": 105}, {"list"}),
        ({"kept": 2}, {"decision"}),
    ],
)
def test_evaluate__query_counts_over_budget__those_budgets_unmet(
    kwargs: dict[str, int], broken: set[str]
) -> None:
    rows = [r for r in run.evaluate(_result(**kwargs)) if r.get("budget")]
    failed = {r["target"].split()[0].rstrip(":") for r in rows if r["met"] is False}
    assert failed == broken


def test_write_doc__one_database__others_and_prose_kept(tmp_path: Path, monkeypatch: Any) -> None:
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text(
        "# Performance\n\nintro\n\n<!-- bench:start -->\n"
        "<!-- bench:db postgresql -->\nold pg\n<!-- bench:db-end -->\n\n"
        "<!-- bench:db sqlite -->\nold sqlite\n<!-- bench:db-end -->\n"
        "<!-- bench:end -->\n\nclosing note\n"
    )
    monkeypatch.setattr(run, "DOC", doc)
    run.write_doc({"sqlite": "new sqlite\n"})
    text = doc.read_text()
    assert "new sqlite" in text and "old sqlite" not in text
    assert "old pg" in text
    assert text.index("new sqlite") < text.index("old pg")  # SQLite first
    assert text.startswith("# Performance\n\nintro\n")
    assert text.rstrip().endswith("closing note")
