"""The migrations keep the rows written before them readable: 0004 moves the results that lived in
JSON (trials' db_stats/timing/cpu/overhead, the sweep's options) into the columns of 0003, and back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from poolbench.models import SizeSummary, Sweep

pytestmark = [pytest.mark.postgres]


OLD_OPTIONS = {
    "modes": ["persistent", "pool"],
    "tolerance": 0.05,
    "repeat": 1,
    "by_mode": {
        "pool": {"best_size": 8, "best_rps": 220.5, "recommended_size": 4, "recommendation": "Size 4 ..."},
        "persistent": {"best_rps": 150.25, "failures": 0},
    },
    "by_size": [
        {"size": 4, "rps": 215.0, "p99_ms": 40.0, "failures": 0, "trials": 1, "mode": "pool", "workers": 1,
         "threads": 8, "rps_min": 215.0, "rps_max": 215.0, "rps_cv": None, "failure_pct": 0.0,
         "load_bound": 0, "indexes": [1]},
        {"size": 8, "rps": 220.5, "p99_ms": 41.0, "failures": 0, "trials": 1, "mode": "pool", "workers": 1,
         "threads": 8, "rps_min": 220.5, "rps_max": 220.5, "rps_cv": None, "failure_pct": 0.0,
         "load_bound": 1, "indexes": [2]},
    ],
    "formula": {"cores": 2, "cores_source": "the database runs on this machine", "spindles": 0,
                "connections": 4, "workers": 1, "per_worker": 4},
    "gates": {"fail_under_rps": 1000.0, "max_failure_rate": None, "max_p99_ms": None, "size": 4,
              "breaches": ["--fail-under-rps 1000: trial 1 (pool 4) did 215.0 req/s"]},
}  # fmt: skip
OLD_TRIAL = {
    "db_stats": {"peak_connections": 4, "mean_connections": 3.5, "samples": 20},
    "timing": {"requests": 100, "acquire": {"mean_ms": 0.25, "p95_ms": 1.0, "max_ms": 3.0},
               "db": {"mean_ms": 12.5, "p95_ms": 20.0, "max_ms": 30.0}},
    "cpu": {"load": {"mean_cores": 0.4, "peak_cores": 0.9}, "server": {"mean_cores": 1.25, "peak_cores": 2.0},
            "load_bound": []},
    "overhead": {"server_start_s": 0.625, "warmup_s": 1.5, "stats_s": 0.2},
}  # fmt: skip


def _migrate(executor, target: str) -> None:
    executor.loader.build_graph()
    executor.migrate([("poolbench", target)])


def _latest(executor) -> str:
    """The newest migration: the current models (used to read the rows) need all its columns."""
    executor.loader.build_graph()
    return executor.loader.graph.leaf_nodes("poolbench")[0][1]


def _old_rows(apps) -> int:
    """A sweep written before 0003: its results in options and the trials' JSON."""
    OldSweep, OldTrial = apps.get_model("poolbench", "Sweep"), apps.get_model("poolbench", "Trial")
    when = datetime(2025, 1, 1, tzinfo=UTC)
    sweep = OldSweep.objects.create(started_at=when, status="done", alias="default", vendor="postgresql",
                                    options=OLD_OPTIONS, best_size=8, best_rps=220.5, recommended_size=4)  # fmt: skip
    common = {"sweep": sweep, "started_at": when, "status": "ok", "workers": 1, "threads": 8, "users": 8}
    OldTrial.objects.create(index=1, pool_size=4, rps=215.0, **common, **OLD_TRIAL)
    OldTrial.objects.create(index=2, pool_size=8, rps=220.5, load_bound=True, **common)
    for index, rps in ((3, 150.25), (4, 140.0)):
        OldTrial.objects.create(index=index, mode="persistent", conn_max_age=600, rps=rps, requests=1000,
                                failures=10, latency_p99_ms=50.0, **common)  # fmt: skip
    return sweep.pk


@pytest.mark.django_db(transaction=True)
def test_migration_moves_the_old_json_into_columns_and_back():
    executor = MigrationExecutor(connection)
    try:
        _migrate(executor, "0002_probe_row")
        pk = _old_rows(executor.loader.project_state(("poolbench", "0002_probe_row")).apps)
        _migrate(executor, "0004_results_from_json")
        _migrate(executor, _latest(executor))  # the later ones only add columns
        sweep = Sweep.objects.get(pk=pk)
        t1, t2 = sweep.trials.order_by("index")[:2]
        assert (t1.peak_connections, t1.mean_connections) == (4, 3.5)
        assert (t1.acquire_mean_ms, t1.acquire_p95_ms, t1.db_mean_ms, t1.db_p95_ms) == (0.25, 1.0, 12.5, 20.0)
        assert (t1.app_mean_ms, t1.total_p95_ms) == (None, None)
        assert (t1.load_cores, t1.server_cores, t1.database_cores) == (0.4, 1.25, None)
        assert (t1.server_start_s, t1.warmup_s) == (0.625, 1.5)
        assert t1.db_stats == OLD_TRIAL["db_stats"]  # the detail stays
        assert t2.peak_connections is None and t2.server_start_s is None
        # The sweep: options keep only settings; the results are fields and rows.
        assert sorted(sweep.options) == ["modes", "repeat", "tolerance"]
        assert sweep.formula == OLD_OPTIONS["formula"]
        assert (sweep.gate_size, sweep.gate_fail_under_rps, sweep.gate_passed) == (4, 1000.0, False)
        assert sweep.gate_breaches == OLD_OPTIONS["gates"]["breaches"]
        rows = list(sweep.size_summaries.order_by("position"))
        assert [(r.mode, r.size, r.trials, r.rps, r.load_bound) for r in rows] == [
            ("pool", 4, 1, 215.0, 0), ("pool", 8, 1, 220.5, 1), ("persistent", None, 2, 145.12, 0),
        ]  # fmt: skip
        assert [(r.on_plateau, r.recommended) for r in rows] == [(True, True), (True, False), (False, False)]
        assert rows[2].failure_pct == 1.0 and rows[2].rps_max == 150.25 and rows[2].p99_ms == 50.0
        assert sweep.by_mode() == {
            "pool": {"failures": 0, "recommended_size": 4, "best_size": 8, "best_rps": 220.5},
            "persistent": {"failures": 20, "best_rps": 150.25},
        }
        # And back: the options get their results again.
        _migrate(executor, "0003_results_columns")
        old = executor.loader.project_state(("poolbench", "0003_results_columns")).apps
        options = old.get_model("poolbench", "Sweep").objects.get(pk=pk).options
        assert options["formula"] == OLD_OPTIONS["formula"] and options["gates"] == OLD_OPTIONS["gates"]
        assert [s["size"] for s in options["by_size"]] == [4, 8]
        assert options["by_mode"]["pool"]["recommended_size"] == 4
        assert not SizeSummary.objects.filter(sweep_id=pk).exists()
    finally:
        _migrate(executor, _latest(executor))
