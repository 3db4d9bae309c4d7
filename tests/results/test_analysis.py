"""The arithmetic behind the answer: percentiles, spread, the recommendation, the gates, the search,
the server's timing histograms. Pure functions; the end-to-end checks are in measure/test_measurement."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from poolbench.measure.stats import merge_histograms, merge_timing, percentile, percentiles
from poolbench.results import analysis
from poolbench.server.wsgi import Timing, bucket
from tests.conftest import assert_refused


@dataclass
class T:
    """A finished trial's fields, as the analysis reads them from Trial rows."""

    pool_size: int
    rps: float
    index: int = 1
    latency_p99_ms: float | None = 10.0
    failures: int = 0
    requests: int = 1000
    failure_pct: float = 0.0
    status: str = "ok"
    mode: str = "pool"
    workers: int = 1
    threads: int = 16
    load_bound: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"pool {self.pool_size}"


def test_percentiles_come_from_the_merged_histogram_not_an_average_of_percentiles():
    fast = {"10": 99, "500": 1}  # one endpoint: p99 = 10 ms
    slow = {"10": 50, "500": 50}  # another: p99 = 500 ms
    merged = merge_histograms([fast, slow])
    assert merged == {10: 149, 500: 51}
    assert percentile(merged, 0.99) == 500
    assert percentile(merged, 0.50) == 10
    # Averaging the endpoints' p99s would say 255 ms, a time no request took.
    assert (percentile(fast, 0.99) + percentile(slow, 0.99)) / 2 == 255
    p = percentiles({str(ms): 1 for ms in range(1, 1001)})
    assert p == {"p50": 500, "p90": 900, "p95": 950, "p99": 990, "p999": 999}


def test_by_size_gives_the_median_and_spread_of_repeats():
    trials = [
        T(4, 100.0, 1),
        T(8, 200.0, 2),
        T(4, 110.0, 3),
        T(8, 190.0, 4),
        T(4, 90.0, 5),
        T(8, 50.0, 6, status="error"),
    ]
    s4, s8 = analysis.by_size(trials)
    assert (s4.size, s4.trials, s4.rps, s4.rps_min, s4.rps_max) == (4, 3, 100.0, 90.0, 110.0)
    assert s4.rps_cv == pytest.approx(8.165 / 100, abs=1e-4)  # population stdev / mean
    assert (s8.trials, s8.rps, s8.indexes) == (2, 195.0, [2, 4])  # the error trial is left out
    assert analysis.by_size([T(4, 100.0)])[0].rps_cv is None


def test_recommend_smallest_size_within_tolerance_without_failures_or_worse_p99():
    rows = analysis.by_size(
        [
            T(2, 50.0, latency_p99_ms=40.0),
            T(4, 96.0, latency_p99_ms=12.0),  # within 5% of the best, p99 fine
            T(8, 100.0, latency_p99_ms=11.5),
            T(16, 99.0, latency_p99_ms=12.0),
        ]
    )
    size, why = analysis.recommend(rows, 0.05)
    assert size == 4
    assert why == (
        "Size 4 is the smallest that reached 96 req/s, within 5% of the best (100 req/s at size 8), "
        "with no failures and a p99 no worse than the best's. The answer rests on one sample per size "
        "(--repeat 1): a size's throughput moves between runs, so run --repeat 3 or more to tell the "
        "sizes apart."
    )
    # Above 100 ms Locust rounds to 10 ms: one step over the best's p99 + 5% is not "worse".
    slow = [T(4, 97.0, latency_p99_ms=320.0), T(8, 100.0, latency_p99_ms=300.0)]
    assert analysis.recommend(analysis.by_size(slow), 0.05)[0] == 4
    slower = [T(4, 97.0, latency_p99_ms=330.0), T(8, 100.0, latency_p99_ms=300.0)]
    assert analysis.recommend(analysis.by_size(slower), 0.05)[0] == 8
    # Failures or a worse p99 rule a size out.
    assert analysis.recommend(analysis.by_size([T(4, 99.0, failures=3), T(8, 100.0)]), 0.05)[0] == 8
    assert analysis.recommend(analysis.by_size([T(4, 99.0, latency_p99_ms=30), T(8, 100.0)]), 0.05)[0] == 8
    size, why = analysis.recommend(analysis.by_size([T(4, 60.0), T(8, 100.0, load_bound=True)]), 0.05)
    assert size == 8 and why.endswith(
        "But 1 of its 1 trial(s) were load-generator bound, so the server may do better than measured."
    )


def test_formula_is_cores_times_two_plus_spindles_split_over_workers():
    f = analysis.formula(4, "the database runs on this machine", 1, workers=2)
    assert (f["connections"], f["per_worker"]) == (9, 5)
    assert analysis.formula_text(f) == (
        "Formula starting point (HikariCP: cores x 2 + effective spindles): 4 x 2 + 1 = 9 connections "
        "= pool size 5 per worker x 2 workers (the database runs on this machine)."
    )


def test_gates_name_the_threshold_and_the_trial():
    trials = [
        T(4, 300.0, 1, latency_p99_ms=80.0),
        T(4, 250.0, 3, latency_p99_ms=120.0, failure_pct=1.5),
        T(8, 10.0, 2),
    ]
    gates = analysis.Gates(fail_under_rps=260, max_failure_rate=1, max_p99_ms=100)
    assert analysis.check_gates(trials, 4, gates) == [
        "--fail-under-rps 260: trial 3 (pool 4) did 250.0 req/s",
        "--max-failure-rate 1%: trial 3 (pool 4) failed 1.50% of its requests",
        "--max-p99-ms 100: trial 3 (pool 4) had a p99 of 120 ms",
    ]
    assert analysis.check_gates(trials, 4, analysis.Gates(fail_under_rps=200, max_p99_ms=150)) == []
    assert analysis.check_gates(trials, 4, analysis.Gates()) == []


def test_load_bound_reasons():
    cpu = {"load": {"busiest_process": {"pid": 1, "cores": 0.5, "demand_cores": 0.97, "samples": 5}}}
    assert analysis.load_bound_reasons(cpu, {}, users=64, connections=16) == [
        "a Locust process wanted 0.97 of a core (ran 0.50, waited for a CPU the rest), so it could not send "
        "requests faster; use --locust-processes 2 or run Locust on another machine"
    ]
    assert analysis.load_bound_reasons({}, {"cpu_warning": True}, users=4, connections=8) == [
        "Locust warned that its CPU use passed 90%",
        "only 4 users for up to 8 database connections: the pool could never be full; raise --users",
    ]
    idle = {"load": {"busiest_process": {"pid": 1, "cores": 0.3, "demand_cores": 0.35, "samples": 5}}}
    assert analysis.load_bound_reasons(idle, {}, users=64, connections=16) == []


def _search(curve, start: int, max_size: int = 1000, tolerance: float = 0.05) -> list[int]:
    """Run next_auto_size against a throughput curve size -> req/s."""
    measured: list[T] = []
    path = []
    while len(path) < 20:
        size, _why = analysis.next_auto_size(
            analysis.by_size(measured), start=start, tolerance=tolerance, max_size=max_size
        )
        if size is None:
            return path
        path.append(size)
        measured.append(T(size, curve(size), len(path)))
    raise AssertionError(f"the search did not stop: {path}")


def test_auto_search_doubles_then_bisects_to_the_knee():
    knee = lambda n: min(n, 11) * 20.0  # noqa: E731 -- throughput rises until 11 connections
    assert _search(knee, start=4) == [4, 8, 16, 32, 12, 10, 11]
    # Starting on the plateau it halves, then bisects.
    assert _search(knee, start=32) == [32, 64, 16, 8, 12, 10, 11]
    # It never goes above the cap (max_connections).
    assert max(_search(lambda n: n * 10.0, start=4, max_size=20)) == 20


def test_server_timing_histograms_merge_over_workers():
    assert [bucket(x) for x in (0, 0.0123, 1.234, 23.4, 456.0, 1234.0)] == [
        "0",
        "0.012",
        "1.2",
        "23",
        "460",
        "1200",
    ]
    workers = {}
    for pid, waits in (("1", [0.0, 0.0, 0.0, 30.0]), ("2", [0.0] * 4)):
        timing = Timing()
        for wait in waits:
            timing.begin()
            timing.add_acquire(wait / 1000)
            timing.add_db(0.020)
            timing.end()
        workers[pid] = {"timing": {**timing.snapshot(), "window": "measured"}}
    merged = merge_timing(workers)
    assert merged["requests"] == 8 and merged["workers"] == 2 and merged["window"] == "measured"
    assert merged["acquire"]["mean_ms"] == pytest.approx(30 / 8, abs=0.01)
    assert merged["acquire"]["p95_ms"] == 30  # one request in eight waited: the merged p95 shows it
    assert merged["db"]["mean_ms"] == pytest.approx(20, abs=0.01)
    assert merged["share"]["db"] > merged["share"]["acquire"] > 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--fail-under-rps", "lots"],
            "--fail-under-rps 'lots' is not a number; give req/s, e.g. --fail-under-rps 500",
        ),
        (
            ["--max-p99-ms", "0"],
            "--max-p99-ms '0' must be a positive number; give milliseconds, e.g. --max-p99-ms 250",
        ),
        (
            ["--max-failure-rate", "-1"],
            "--max-failure-rate '-1' must be a non-negative number; give percent, e.g. 0.5",
        ),
        (["--max-failure-rate", "150"], "--max-failure-rate '150' is a percent of requests; give 0 to 100"),
        (["--tolerance", "100"], "--tolerance '100' must be below 100 (percent of the best throughput)"),
        (["--spindles", "x"], "--spindles 'x' is not a whole number; give a non-negative integer"),
        (["--db-cores", "0"], "--db-cores '0' must be 1 or more"),
        (
            ["--sizes", "auto", "--mode", "pool,none"],
            "--sizes auto searches one configuration; give a single --mode, --workers and --threads",
        ),
        (
            ["--sizes", "auto", "--mode", "none"],
            "--sizes auto needs a pooled --mode (pool or queuepool), not none",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_runs(args, message):
    assert_refused(args, message)


def test_no_size_meets_the_bar_when_all_fail():
    from poolbench.results.analysis import SizeSummary, recommend

    size, reason = recommend(
        [SizeSummary(size=2, rps=100, p99_ms=50, failures=3, trials=1), SizeSummary(4, 104, 40, 7, 1)]
    )
    assert size is None
    assert reason.startswith("No size met the bar: every size within 5% of the best (104 req/s at size 4)")
    assert reason.endswith("any other error comes from the app itself.")
