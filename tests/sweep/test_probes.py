"""--probe-cpu-ms and --probe-db-ms (sweep/probes.py, views.py): refused when wrong before anything starts,
and doing what they say against the real databases."""

from __future__ import annotations

import pytest

from poolbench.sweep import probes
from poolbench.sweep.targets import resolve
from poolbench.views import burn_cpu
from tests.conftest import assert_refused

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--probe-cpu-ms", "-1"], "--probe-cpu-ms '-1' must be 0 or more"),
        (
            ["--probe-db-ms", "20000"],
            "--probe-db-ms '20000' is more than 10000 ms per request; give at most 10000",
        ),
        (
            ["--probe-cpu-ms", "5", "--path", "/books/"],
            "--probe-cpu-ms changes poolbench's probe, which --path/--locustfile replace; drop --probe-cpu-ms "
            "or load the probe (no --path, no --locustfile)",
        ),
    ],
)
def test_bad_probe_options_are_refused_before_anything_starts(args, message):
    assert_refused(["--sizes", "2", *args], message)


def test_probe_option_that_is_not_a_number():
    with pytest.raises(Exception) as info:
        probes.parse_probe_ms("five", "--probe-cpu-ms")
    assert "--probe-cpu-ms 'five'" in str(info.value)


def test_burn_cpu_burns_thread_cpu_time():
    import time

    c0 = time.thread_time()
    burn_cpu(20)
    used = (time.thread_time() - c0) * 1000
    assert 20 <= used < 25


@pytest.mark.parametrize(
    "alias",
    [pytest.param("default", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)],
)
@pytest.mark.django_db(transaction=True, databases=["default", "mysql"])
def test_db_probe_calibrates_to_the_asked_time(alias):
    target = resolve(alias, embedded=False)
    found = probes.calibrate(target.harness_connection(), target.vendor, 10.0)
    print(alias, found)
    assert found["units"] > probes.START_UNITS[target.vendor] // 100
    # The database runs on this machine: its own CPU time was measured, not the wall time.
    assert found["measured_by"] == "the database's CPU time" and found["server_pid"]
    assert (
        10.0 * (1 - probes.CALIBRATION_CLOSE) <= found["measured_ms"] <= 10.0 * (1 + probes.CALIBRATION_CLOSE)
    )
    conn = target.harness_connection()
    try:
        pid = probes.server_pid(conn, target.vendor)
        with conn.cursor() as cur:
            sql = probes.DB_WORK_SQL[target.vendor]
            # The least of three runs: CPU time read under load only ever grows (cache and frequency
            # contention from other work; one CI run read 2.56x), never shrinks below the work's own.
            double = min(probes.measure_cpu(cur, sql, found["units"] * 2, pid) for _ in range(3))
            wall = probes.measure(cur, sql, found["units"])
    finally:
        conn.close()
    # Twice the work takes about twice the CPU (the linear scaling holds), and the wall time of one run is
    # at least its CPU time (an independent clock: the CPU read from /proc is not made up).
    assert 1.6 <= double / found["measured_ms"] <= 2.5
    assert wall >= 0.8 * found["measured_ms"]
