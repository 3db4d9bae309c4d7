"""End-to-end sweeps: real gunicorn, real Locust, real PostgreSQL (127.0.0.1:5432) and embedded PostgreSQL."""

from __future__ import annotations

import io
import re
import sqlite3

import pytest
from django.core.management import call_command

from poolbench.models import Sweep, Trial
from tests.conftest import run_manage, stray_processes

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_sweep_against_real_postgresql(no_stray_children):
    out = io.StringIO()
    call_command(
        "poolbench", "--sizes", "2,8", "--duration", "3", "--warmup", "1", "--users", "16",
        "--workers", "1", "--threads", "16", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    sweep = Sweep.objects.get()
    assert sweep.status == Sweep.Status.DONE
    assert sweep.vendor == "postgresql" and not sweep.embedded
    trials = list(sweep.trials.order_by("index"))
    assert [t.pool_size for t in trials] == [2, 8]
    for t in trials:
        assert t.status == Trial.Status.OK
        assert t.requests > 0 and t.rps > 0
        assert t.failures == 0
        assert t.latency_p50_ms <= t.latency_p95_ms <= t.latency_p99_ms <= t.latency_max_ms
        # psycopg_pool's statistics came back from the server, and agree with the size.
        assert t.pool_stats["total"]["pool_max"] == t.pool_size
        assert t.pool_stats["total"]["requests_num"] >= t.requests
        # The database saw the pool's connections, never more than the pool allows.
        assert 1 <= t.db_stats["peak_connections"] <= t.pool_size
    # The table printed one row per size, with the stored throughput.
    for t in trials:
        row = re.search(rf"^{t.index}\s+pool {t.pool_size}\s+1x16\s+([\d,.]+)", text, re.M)
        assert row, text
        assert float(row.group(1).replace(",", "")) == pytest.approx(t.rps, abs=0.06)
    assert f"Sweep #{sweep.pk} on PostgreSQL" in text
    assert "Recommended pool size:" in text


def test_embedded_default_sweep_from_a_fresh_project(tmp_path, no_stray_children):
    """The README's main job: no DATABASE_URL server, an embedded PostgreSQL, results in a SQLite file."""
    results = tmp_path / "results.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{results}"}
    result = run_manage(
        "poolbench", "--sizes", "3,6", "--duration", "2", "--warmup", "1", "--users", "8",
        "--workers", "1", "--threads", "8", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "embedded PostgreSQL" in result.stdout
    assert re.search(r"^1\s+pool 3\s", result.stdout, re.M)
    assert re.search(r"^2\s+pool 6\s", result.stdout, re.M)
    with sqlite3.connect(results) as db:
        sweeps = db.execute("SELECT id, status, embedded, vendor FROM poolbench_sweep").fetchall()
        trials = db.execute(
            'SELECT pool_size, status, requests, rps FROM poolbench_trial ORDER BY "index"'
        ).fetchall()
    assert len(sweeps) == 1 and sweeps[0][1:] == ("done", 1, "postgresql")
    assert [t[0] for t in trials] == [3, 6]
    assert all(t[1] == "ok" and t[2] > 0 and t[3] > 0 for t in trials)
    assert not stray_processes("poolbench-pg-", tag=no_stray_children)


@pytest.mark.django_db(transaction=True)
def test_every_trial_failing_exits_non_zero(no_stray_children):
    from django.core.management import CommandError

    with pytest.raises(CommandError) as info:
        call_command(
            "poolbench", "--sizes", "2", "--duration", "2", "--warmup", "0", "--users", "4",
            "--workers", "1", "--threads", "4", "--locustfile", "tests/locust_all_fail.py",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    sweep = Sweep.objects.get()
    assert str(info.value) == f"Every trial of sweep #{sweep.pk} failed; see the errors above."
    assert sweep.status == Sweep.Status.FAILED
    trial = sweep.trials.get()
    assert trial.requests > 0 and trial.failures == trial.requests
    # A scenario of your own records Locust's own error text, without the per-trial server address.
    assert trial.errors[0]["message"] == "URL /no-such-page/: code=404" and trial.errors[0]["names"] == [
        "/no-such-page/"
    ]


@pytest.mark.django_db(transaction=True)
def test_own_locustfile_with_demo_scenario(no_stray_children):
    out = io.StringIO()
    call_command(
        "poolbench", "--sizes", "3", "--duration", "2", "--warmup", "0", "--users", "4",
        "--workers", "1", "--threads", "4", "--locustfile", "locustfiles/site_pages.py",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    trial = Sweep.objects.get().trials.get()
    names = {e["name"]: e for e in trial.endpoints}
    assert set(names) == {"probe", "admin login"}
    assert names["probe"]["requests"] > names["admin login"]["requests"] > 0
    assert trial.failures == 0
