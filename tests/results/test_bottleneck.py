"""The bottleneck line (results/bottleneck.py) on stored figures: each rule, its order, and what it says
about the pool size. The figures are shaped like real trials on the 2-core test machine (FACTS.md,
'Measured 2026-12-01'); the real-sweep checks are in tests/sweep/test_probe_bottlenecks.py."""

from __future__ import annotations

from poolbench.models import Trial
from poolbench.results.analysis import by_size
from poolbench.results.bottleneck import diagnose, pool_clause


def trial(index, size, rps, *, server=1.0, busiest=None, db=0.08, load=0.3, host=1.4, pool_wait=0.1,
          queue=10.0, total=12.0, load_bound=False, reasons=(), workers=1, scope="local", python=0.5):  # fmt: skip
    cpu = {
        "server": {"mean_cores": server, "busiest_process": {"demand_cores": busiest or server / workers}},
        "database": {"mean_cores": db, "scope": scope},
        "load": {"mean_cores": load},
        "host": {"mean_cores": host, "cpu_count": 2},
        "load_bound": list(reasons),
    }
    return Trial(
        index=index, pool_size=size, mode="pool", workers=workers, threads=32, users=64, status="ok",
        requests=int(rps * 10), failures=0, rps=rps, latency_p99_ms=40.0, server_cores=server,
        database_cores=db, load_cores=load, cpu=cpu, pool_wait_mean_ms=pool_wait, queue_mean_ms=queue,
        total_mean_ms=total, load_bound=load_bound, python_mean_ms=python,
    )  # fmt: skip


def test_default_sweep_is_the_servers_cpu_and_the_size_does_not_matter():
    # The default sweep's figures: one gthread worker at 1.0 core, host 1.4 of 2, database 0.08.
    trials = [trial(1, 5, 1529), trial(2, 10, 1586), trial(3, 16, 1490), trial(4, 200, 1560)]
    found = diagnose(trials, tolerance=0.10)
    assert found.resource == "the server's CPU"
    assert found.line.startswith("Bottleneck: the server's CPU - ")
    assert "the pool size does not matter for this site" in found.line
    assert "add workers (--workers 2" in found.line
    assert "wanted 1.00 core" in found.line


def test_two_workers_that_fill_the_host_are_the_hosts_case_not_add_workers():
    # The default sweep with 2 workers x 32 on 2 cores (make sweep, 2026-12-01): the host 1.83 of 2
    # cores busy, 0.17 free. "Add workers" would be wrong: there is no core for a third one.
    trials = [
        trial(i, size, rps, server=1.25, busiest=5.9, db=0.13, load=0.28, host=1.83, workers=2, python=0.5)
        for i, (size, rps) in enumerate([(5, 1517), (10, 1684), (16, 1600), (200, 1580)], 1)
    ]
    found = diagnose(trials, 0.05)
    assert found.resource == "the host", found.line
    assert "add workers" not in found.line
    assert "cores were 92% busy" in found.line


def test_pool_when_waiting_dominates_and_bigger_sizes_are_faster():
    trials = [
        trial(1, 2, 95, server=0.1, host=0.4, pool_wait=300.0, queue=5.0, total=320.0),
        trial(2, 8, 380, server=0.3, host=0.7, pool_wait=40.0, queue=5.0, total=62.0),
    ]
    found = diagnose(trials, 0.05)
    assert found.resource == "the pool"
    assert "waited 300.0 ms of their 325.0 ms in the server for a free connection (92%)" in found.line
    assert "busiest server process wanted 0.10 core" in found.line
    assert "the pool size matters: 380 req/s at size 8 vs 95 at size 2" in found.line


def test_pool_wait_that_larger_sizes_do_not_cure_is_not_the_pool():
    # The Wagtail case of issue 13: "waiting for a connection" at pool 2, yet pool 8 was no faster; the
    # one process was at a core. More connections only move the queue.
    trials = [
        trial(1, 2, 27, server=0.8, pool_wait=800.0, total=1000.0, python=32.0),
        trial(2, 8, 26.5, server=0.8, busiest=0.95, pool_wait=50.0, total=1000.0, python=33.0),
    ]
    found = diagnose(trials, 0.05)
    assert found.resource == "the server's CPU"


def test_pool_waits_of_a_server_busy_with_python_are_the_cpu_even_on_a_busy_host():
    # The CPU-bound probe (5 ms of Python) on the shared machine: the process wanted 3.2 cores and got 0.7;
    # its threads held connections while waiting for a CPU, so the pool waited, and size 16 was faster.
    trials = [
        trial(1, 4, 90, server=0.7, busiest=3.2, host=1.99, pool_wait=200.0, total=480.0, python=5.7),
        trial(2, 16, 125, server=0.8, busiest=3.3, host=1.99, pool_wait=130.0, total=670.0, python=5.7),
    ]
    found = diagnose(trials, 0.05)
    assert found.resource == "the server's CPU"
    assert "its requests' Python came to 0.71 core" in found.line
    assert "0.81 of its cores went to processes outside this sweep, so measure again" in found.line


def test_a_light_server_made_to_wait_by_a_busy_host_is_not_the_servers_cpu():
    trials = [trial(1, 4, 300, server=0.1, busiest=1.2, host=1.98, pool_wait=1.0, python=0.4)]
    found = diagnose(trials, 0.05)
    assert found.resource == "the host"


def test_a_larger_pool_that_was_slower_is_not_the_pool():
    trials = [
        trial(1, 4, 125, server=0.2, host=0.6, pool_wait=200.0, total=480.0),
        trial(2, 16, 80, server=0.2, host=0.6, pool_wait=130.0, total=670.0),
    ]
    assert diagnose(trials, 0.05).resource != "the pool"


def test_one_size_with_long_pool_waits_is_the_pool():
    found = diagnose([trial(1, 2, 95, server=0.1, host=0.4, pool_wait=300.0, total=320.0)], 0.05)
    assert found.resource == "the pool"
    assert "one pool size was measured" in found.line and "sweep larger --sizes" in found.line


def test_database_when_it_takes_the_cores():
    trials = [
        trial(1, 2, 900, server=0.3, db=1.3, host=1.9),
        trial(2, 16, 880, server=0.3, db=1.4, host=1.95),
    ]
    found = diagnose(trials, 0.05)
    assert found.resource == "the database"
    assert "the database used 1.30 of the 2 cores" in found.line  # at the best size, 2
    assert "more connections only queue inside the database" in found.line


def test_database_not_judged_when_its_cpu_is_not_visible():
    trials = [trial(1, 2, 900, server=0.3, db=None, host=0.9, scope="unknown")]
    assert diagnose(trials, 0.05).resource != "the database"


def test_load_generator_comes_first():
    reason = "a Locust process wanted 0.97 of a core"
    trials = [trial(1, 4, 700, load=0.97, load_bound=True, reasons=[reason], db=1.5)]
    found = diagnose(trials, 0.05)
    assert found.resource == "the load generator" and reason in found.line


def test_a_load_bound_locust_starved_by_a_full_host_is_not_the_load_generator():
    reason = "a Locust process wanted 0.91 of a core (ran 0.06, waited for a CPU the rest)"
    trials = [trial(1, 4, 300, load=0.06, load_bound=True, reasons=[reason], server=0.3, db=0.2, host=2.0)]
    found = diagnose(trials, 0.05)
    assert found.resource == "the host" and "1.44 of them went to processes outside this sweep" in found.line


def test_host_when_processes_are_below_a_core_but_the_machine_is_full():
    # Two workers at 0.8 core each plus Locust: 2.0 of 2 cores. Adding workers cannot help.
    trials = [trial(1, 8, 2200, server=1.6, busiest=0.88, workers=2, load=0.35, db=0.1, host=1.97)]
    found = diagnose(trials, 0.05)
    assert found.resource == "the host"
    assert "98% busy" in found.line


def test_nothing_saturated():
    found = diagnose([trial(1, 8, 50, server=0.1, db=0.01, load=0.02, host=0.3, pool_wait=0.0)], 0.05)
    assert found.resource == "none found" and "--users" in found.line


def test_no_data_no_line():
    failed = trial(1, 4, 0)
    failed.status = "error"
    assert diagnose([failed], 0.05) is None


def _passes(size, values, start):
    out = []
    for k, rps in enumerate(values):
        t = trial(start + k, size, rps)
        t.repeat = k + 1
        out.append(t)
    return out


def test_pool_clause_judges_by_the_recommendations_rule_not_single_medians():
    # Medians 12% apart, but the pass-by-pass ratio swings from 0.72 to 1.2: not significantly apart.
    noisy = _passes(4, [100, 130, 90, 150, 110], 1) + _passes(8, [139, 108, 125, 128, 123], 6)
    matters, text = pool_clause(by_size(noisy), 0.05)
    assert matters is False
    assert "not significantly apart" in text and "the pool size does not matter" in text
    assert "noise +-" in text
    # One pass per size: no interval to quote, and the line says so rather than "noise +-0.0%".
    matters, text = pool_clause(by_size(_passes(4, [100], 1) + _passes(8, [102], 2)), 0.05)
    assert matters is False and "one pass per size, so no interval" in text and "+-0" not in text
    # The same medians, size 4 below size 8 in every pass by 20-25%: significantly slower.
    steady = _passes(4, [100, 104, 98, 101, 99], 1) + _passes(8, [128, 131, 126, 130, 127], 6)
    matters, text = pool_clause(by_size(steady), 0.05)
    assert matters is True
    assert "the pool size matters" in text and "size 4 significantly slower" in text
