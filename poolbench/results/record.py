"""What a trial measured, put into its row: Locust's figures, the pool's own counters, what the
database saw, the CPU of each party, and notes on the window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from poolbench.measure import stats
from poolbench.measure.samplers import DatabaseConnections, ProcessCPU
from poolbench.models import Trial
from poolbench.results import analysis
from poolbench.results.rate import record_rate
from poolbench.sweep.server import ServerError, TrialServer
from poolbench.wire import SPLIT_PARTS, TIMING_PARTS

if TYPE_CHECKING:
    from poolbench.sweep.plan import TrialSpec
    from poolbench.sweep.run import SweepOptions

# Trial columns of the CPU sampler's roles: mean cores in the measured window.
CPU_COLUMNS = {"load": "load_cores", "server": "server_cores", "database": "database_cores"}


def record_measurements(
    trial: Trial,
    spec: TrialSpec,
    output: dict[str, Any],
    server: TrialServer,
    db_sampler: DatabaseConnections | None,
    cpu: ProcessCPU | None,
    options: SweepOptions,
) -> None:
    """Put what Locust, the server, the database and the CPU sampler saw into the trial.

    The samplers are stopped already (``TrialRun.stop_sampling``, once, before this runs)."""
    for name, value in stats.summarize(output).items():
        setattr(trial, name, value)
    try:
        record_server(trial, server.stats(load_ended=output.get("measure_end")))
    except ServerError as exc:
        # The server died (or stopped answering) during the trial: Locust's figures, the database's
        # and the CPU's are still what was measured, so they are recorded; the caller marks the
        # trial an error, and it counts toward no recommendation.
        missing: ServerError | None = exc
        trial.notes.append(f"the trial server's statistics are missing ({exc}): Locust's figures are kept")
    else:
        missing = None
    trial.split_coverage = split_coverage(trial)
    if db_sampler is not None:
        trial.db_stats = db_sampler.result(window=(output.get("measure_start"), output.get("measure_end")))
        trial.peak_connections = trial.db_stats.get("peak_connections")
        trial.mean_connections = trial.db_stats.get("mean_connections")
    if cpu is not None:
        record_cpu(trial, cpu.result(), db_sampler.db_scope if db_sampler else "unknown")
    reasons = analysis.load_bound_reasons(
        # A pool larger than the server's threads is never full, whatever the load: only the
        # connections the threads can hold need users.
        trial.cpu or {}, output, users=options.load.users, connections=spec.usable_connections,
        processes=options.load.processes,
    )  # fmt: skip
    trial.load_bound = bool(reasons)
    trial.cpu = {**(trial.cpu or {}), "load_bound": reasons}  # the reasons, printed under the table
    record_rate(trial, spec, output, options)  # --rate: arrivals, offered or not; --slo verdicts
    if server.started_in:
        trial.server_start_s = round(server.started_in, 3)
    if output.get("measure_start") and output.get("test_start"):
        trial.warmup_s = trial.overhead["warmup_s"] = round(output["measure_start"] - output["test_start"], 3)
    if not output.get("warmup_done") and options.load.warmup:
        trial.notes.append("the warm-up did not end before the load stopped; the window includes it")
    if output.get("distributed"):
        trial.notes.append(f"load from {output.get('workers', 0)} Locust worker process(es)")
    if missing is not None:
        raise missing


def record_server(trial: Trial, pool: dict[str, Any]) -> None:
    """The server's own figures: the pool's counters (summed, and per worker) and the time split."""
    workers = pool.get("workers", {})
    trial.pool_stats.update(
        {
            "total": stats.sum_pool_stats(workers),
            "workers": {pid: w.get("pool", {}) for pid, w in workers.items()},
            "window": stats.pool_window(workers),
        }
    )
    trial.timing = stats.merge_timing(workers)
    for part in (*TIMING_PARTS, *SPLIT_PARTS):
        values = trial.timing.get(part) or {}
        setattr(trial, f"{part}_mean_ms", values.get("mean_ms"))
        setattr(trial, f"{part}_p95_ms", values.get("p95_ms"))


def split_coverage(trial: Trial) -> float | None:
    """The share of Locust's mean latency that the split inside the server covers (queue + time in the
    server, over the client-observed mean); the rest is outside the server: the network, the kernel's
    accept queue, Locust's own scheduling."""
    if not trial.latency_avg_ms or trial.total_mean_ms is None or trial.queue_mean_ms is None:
        return None
    return round((trial.queue_mean_ms + trial.total_mean_ms) / trial.latency_avg_ms, 3)


def record_cpu(trial: Trial, cpu: dict[str, Any], database_scope: str) -> None:
    """The CPU sampler's result (the detail) and each role's mean cores (the columns)."""
    trial.cpu = cpu
    trial.cpu.setdefault("database", {})["scope"] = database_scope
    for role, column in CPU_COLUMNS.items():
        setattr(trial, column, (cpu.get(role) or {}).get("mean_cores"))


def record_partial(
    trial: Trial,
    spec: TrialSpec,
    output: dict[str, Any] | None,
    server: TrialServer,
    db_sampler: DatabaseConnections | None,
    cpu: ProcessCPU | None,
    options: SweepOptions,
) -> None:
    """An interrupted trial keeps what was measured before the interrupt, and says how much that was."""
    if output is None:
        trial.notes.append("interrupted before any load was measured")
        return
    if not output.get("warmup_done") and options.load.warmup:
        trial.notes.append("interrupted during the warm-up: nothing was measured")
        return
    try:
        record_measurements(trial, spec, output, server, db_sampler, cpu, options)
    except (ServerError, OSError, ValueError) as exc:
        # The server may be gone already; Locust's figures are still worth keeping.
        for name, value in stats.summarize(output).items():
            setattr(trial, name, value)
        trial.notes.append(f"the pool statistics could not be read after the interrupt: {exc}")
    measured = trial.duration_s or 0.0
    trial.notes.append(
        f"interrupted after {measured:.1f}s of the {options.load.duration:g}s measured window: "
        "the figures cover that part only"
    )
