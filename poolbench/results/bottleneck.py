"""What limited the site in a sweep, in one line: ``Bottleneck: <resource> - <evidence> - <what to change>``.

The resource is the load generator, the database, the pool, the server's CPU or the host (or none found),
judged in that order on the figures already stored on the trials: the CPU of each party (measure/cpu.py:
Locust, the server's processes, the database, the whole host), the load-bound flag, and the split of the
time inside the server (server/timing.py). It also says whether the pool size matters at all for this
site: whether the sizes' median throughputs differ by more than the sweep's tolerance. Pure functions
over finished trials (or anything with their fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import mean, median
from typing import Any

from poolbench.results import analysis, decision

RESOURCES = ("the load generator", "the database", "the pool", "the server's CPU", "the host", "none found")
# A process held to one core by the GIL runs at about 1.0 core; above this it is treated as saturated.
PROCESS_SATURATED = 0.85
# The host's cores count as all busy above this share (schedulers rarely reach 100% with idle gaps).
HOST_SATURATED = 0.85
# The database is the limit when it used this share of the host's cores, or the most of a full host.
DATABASE_SHARE = 0.5
# Requests waiting in the pool this share of their time in the server: the pool is where they queue.
POOL_WAIT_SHARE = 0.25
# A server process whose requests' own Python came to this many cores is CPU-heavy: its pool waits are
# connections held while threads wait for the GIL or a CPU, not a shortage of connections.
CPU_NEED = 0.3
# Host CPU beyond what the sweep's own processes used, worth naming (other work on the machine).
OTHERS_CORES = 0.3
# On a full host, the database is the limit when it took at least this share of the cores and the most.
DATABASE_SHARE_FULL_HOST = 0.35
# A load-bound Locust that ran less than this (cores) on a full host was starved, not saturated.
LOCUST_BUSY = 0.5


@dataclass
class Figures:
    """Means over a group of trials (one configuration and size)."""

    label: str
    rps: float
    server_cores: float | None
    server_process: float | None  # the busiest server process's demand (running + waiting for a core)
    cpu_need: float | None  # cores of Python per server process: python ms per request x req/s / workers
    database_cores: float | None
    database_scope: str
    load_cores: float | None
    host_cores: float | None
    cpu_count: int | None
    workers: int
    pool_wait_share: float | None
    pool_wait_ms: float | None
    in_server_ms: float | None
    load_bound: int
    load_bound_reason: str
    trials: int


@dataclass
class Diagnosis:
    resource: str
    evidence: str
    change: str

    @property
    def line(self) -> str:
        return f"Bottleneck: {self.resource} - {self.evidence} - {self.change}"


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return mean(kept) if kept else None


def _in_server(t: Any) -> float | None:
    if t.total_mean_ms is None:
        return None
    return (t.queue_mean_ms or 0.0) + t.total_mean_ms


def figures(group: Sequence[Any]) -> Figures:
    """The means of ``group`` (trials of one configuration and size, with data)."""
    cpu = [t.cpu or {} for t in group]
    in_server = _mean(_in_server(t) for t in group)
    pool_wait = _mean(t.pool_wait_mean_ms for t in group)
    reasons = [r for t in group if t.load_bound for r in (t.cpu or {}).get("load_bound", [])]
    return Figures(
        label=group[0].label,
        rps=median(float(t.rps) for t in group),
        server_cores=_mean(t.server_cores for t in group),
        server_process=_mean(
            ((c.get("server") or {}).get("busiest_process") or {}).get("demand_cores") for c in cpu
        ),
        cpu_need=_mean(
            t.python_mean_ms * t.rps / 1000.0 / max(1, t.workers)
            for t in group
            if t.python_mean_ms is not None
        ),
        database_cores=_mean(t.database_cores for t in group),
        database_scope=str((cpu[0].get("database") or {}).get("scope") or "unknown"),
        load_cores=_mean(t.load_cores for t in group),
        host_cores=_mean((c.get("host") or {}).get("mean_cores") for c in cpu),
        cpu_count=next(((c.get("host") or {}).get("cpu_count") for c in cpu if c.get("host")), None),
        workers=group[0].workers,
        pool_wait_share=pool_wait / in_server if pool_wait is not None and in_server else None,
        pool_wait_ms=pool_wait,
        in_server_ms=in_server,
        load_bound=sum(1 for t in group if t.load_bound),
        load_bound_reason=reasons[0] if reasons else "",
        trials=len(group),
    )


def _groups(trials: Iterable[Any]) -> tuple[list[list[Any]], list[analysis.SizeSummary]]:
    """The trials with data of the best configuration (mode, workers x threads), by pool size (smallest
    first), and that configuration's size summaries; a sweep without a pool: the best group alone."""
    ok = [t for t in trials if analysis.has_data(t)]
    summaries = analysis.by_size(ok)
    if not summaries:
        summaries = analysis.without_pool(ok)
    if not summaries:
        return [], []
    best = max(summaries, key=lambda s: s.rps)
    mine = sorted((s for s in summaries if s.config == best.config), key=lambda s: s.size)
    by_index = {t.index: t for t in ok}
    return [[by_index[i] for i in s.indexes] for s in mine], mine


def pool_clause(summaries: Sequence[analysis.SizeSummary], tolerance: float) -> tuple[bool | None, str]:
    """Whether the pool size matters (None: one size only) and the sentence that says so: it matters when
    some size is significantly slower than the best, by the recommendation's own rule (results/decision.py:
    the paired interval over the passes below 1 and the loss beyond the tolerance), not by comparing
    single medians, which on a noisy machine differ by more than the tolerance by chance."""
    sized = [s for s in summaries if s.size]
    if len(sized) < 2:
        return None, "one pool size was measured, so this sweep cannot say whether the size matters"
    low, high = min(sized, key=lambda s: s.rps), max(sized, key=lambda s: s.rps)
    sizes = f"pool sizes {', '.join(str(s.size) for s in sized)}"
    spread = high.rps / low.rps - 1 if low.rps else float("inf")
    decided = decision.decide(sized, tolerance)
    verdicts = decided.verdicts or {}
    slower = [v for v in verdicts.values() if v.slower]
    if not slower:
        others = [v for v in verdicts.values() if v.size != decided.best]
        paired = any(v.rps is not None and v.rps.low is not None for v in others)
        noise = f"noise {decision.noise_text(others)}" if paired else "one pass per size, so no interval"
        return False, (
            f"{sizes} were not significantly apart ({low.rps:,.0f}-{high.rps:,.0f} req/s, medians "
            f"{spread:.0%} apart, {noise}, tolerance {tolerance:.0%}): the pool size does not matter "
            "for this site"
        )
    worst = min(slower, key=lambda v: v.rps.point if v.rps else 1.0)
    return True, (
        f"the pool size matters: {high.rps:,.0f} req/s at size {high.size} vs {low.rps:,.0f} at size "
        f"{low.size} ({spread:.0%} apart; size {worst.size} significantly slower than the best)"
    )


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def cpu_evidence(f: Figures) -> str:
    host = f"host {_cores(f.host_cores)} of {f.cpu_count or '?'} cores"
    return (
        f"server {_cores(f.server_cores)} cores ({f.workers} worker process{'es' if f.workers > 1 else ''}), "
        f"database {_cores(f.database_cores)}, Locust {_cores(f.load_cores)}, {host}"
    )


def diagnose(trials: Iterable[Any], tolerance: float = 0.05) -> Diagnosis | None:
    """The bottleneck of a sweep's trials; None when no trial has data."""
    groups, summaries = _groups(trials)
    if not groups:
        return None
    best_i = max(range(len(groups)), key=lambda i: summaries[i].rps)
    best, smallest = figures(groups[best_i]), figures(groups[0])
    matters, clause = pool_clause(summaries, tolerance)
    for rule in (_load_generator, _database, _pool, _server_cpu, _host):
        found = rule(best, smallest, matters, clause)
        if found is not None:
            return found
    return Diagnosis(
        "none found",
        f"no party was saturated at {best.label} ({cpu_evidence(best)}); {clause}",
        "raise the load (--users) or lengthen the trials until one resource is at its limit",
    )


def _load_generator(best: Figures, smallest: Figures, matters: bool | None, clause: str) -> Diagnosis | None:
    if best.load_bound * 2 < best.trials or not best.load_bound:
        return None
    if _host_full(best) and (best.load_cores or 0.0) < LOCUST_BUSY:
        return None  # Locust wanted a core but was starved of it: the host's rules judge (below)
    return Diagnosis(
        "the load generator",
        f"{best.load_bound} of {best.trials} trial(s) at {best.label} were load-bound "
        f"({best.load_bound_reason or 'see the trials table'}); {clause}",
        "the figures understate the server: give Locust more processes (--locust-processes), run it on "
        "another machine, or raise --users when there were fewer users than connections",
    )


def _host_full(f: Figures) -> bool:
    return bool(f.host_cores is not None and f.cpu_count and f.host_cores >= HOST_SATURATED * f.cpu_count)


def _database(best: Figures, smallest: Figures, matters: bool | None, clause: str) -> Diagnosis | None:
    db, count = best.database_cores, best.cpu_count
    if db is None or not count or best.database_scope == "unknown":
        return None
    host_full = best.host_cores is not None and best.host_cores >= HOST_SATURATED * count
    largest = db >= max(best.server_cores or 0.0, best.load_cores or 0.0)
    if db < DATABASE_SHARE * count and not (host_full and largest and db >= DATABASE_SHARE_FULL_HOST * count):
        return None
    return Diagnosis(
        "the database",
        f"at {best.label} the database used {db:.2f} of the {count} cores ({cpu_evidence(best)}); {clause}",
        "keep the pool at the smallest size that keeps the database busy (the recommended size; about the "
        "database's cores x 2): more connections only queue inside the database, adding latency, not "
        "throughput; make the queries cheaper or the database bigger",
    )


def _process_demand(f: Figures) -> float | None:
    """How much of a core the busiest server process wanted (running + waiting for a CPU)."""
    if f.server_process is not None:
        return f.server_process
    return None if f.server_cores is None else f.server_cores / max(1, f.workers)


def _pool(best: Figures, smallest: Figures, matters: bool | None, clause: str) -> Diagnosis | None:
    share = smallest.pool_wait_share
    if share is None or share < POOL_WAIT_SHARE or matters is False:
        return None
    if matters and best.label == smallest.label:
        return None  # the smallest size was the fastest: more connections did not help
    demand = _process_demand(smallest)
    if smallest.cpu_need is not None and smallest.cpu_need >= CPU_NEED:
        # A process busy with Python holds its connections while its threads wait for the GIL: the waits
        # are the CPU's, and a larger pool would only move the queue (issue 13's Wagtail site).
        return None
    change = (
        "a larger pool: the recommended size, the smallest on the plateau"
        if matters
        else "a larger pool: sweep larger --sizes (e.g. 4,8,16) to find where throughput stops rising"
    )
    return Diagnosis(
        "the pool",
        f"at {smallest.label} requests waited {smallest.pool_wait_ms:,.1f} ms of their "
        f"{smallest.in_server_ms:,.1f} ms in the server for a free connection ({share:.0%}), while the "
        f"busiest server process wanted {_cores(demand)} core and the database used "
        f"{_cores(smallest.database_cores)}; {clause}",
        change,
    )


def _server_cpu(best: Figures, smallest: Figures, matters: bool | None, clause: str) -> Diagnosis | None:
    # What it wanted (running + waiting for a CPU), or what its requests' Python alone took if more.
    per_process = max((v for v in (_process_demand(best), best.cpu_need) if v is not None), default=None)
    if per_process is None or per_process < PROCESS_SATURATED:
        return None
    if best.cpu_need is not None and best.cpu_need < CPU_NEED:
        return None  # it wanted a core only because the host made it wait: little Python of its own
    free = None if best.host_cores is None or not best.cpu_count else best.cpu_count - best.host_cores
    others = _others(best)
    caveat = ""
    if _host_full(best):
        if others < OTHERS_CORES:
            return None  # the sweep's own processes fill the machine: adding workers cannot help (the host)
        caveat = (
            f"; the host had no core free: {others:.2f} of its cores went to processes outside this sweep, "
            "so measure again on a quiet machine to see what each worker adds"
        )
    return Diagnosis(
        "the server's CPU",
        f"at {best.label} the busiest server process wanted {per_process:.2f} core and its requests' Python "
        f"came to {_cores(best.cpu_need)} core (a Python process runs on about one core: the GIL), with "
        f"{_cores(free)} core(s) of the host free ({cpu_evidence(best)}); {clause}",
        f"add workers (--workers {best.workers + 1} or more, up to the cores free); more threads or "
        f"connections only move the queue{caveat}",
    )


def _others(f: Figures) -> float:
    """Host cores used by processes outside the sweep (the host's mean minus server, database, Locust)."""
    ours = sum(c or 0.0 for c in (f.server_cores, f.database_cores, f.load_cores))
    return max(0.0, (f.host_cores or 0.0) - ours)


def _host(best: Figures, smallest: Figures, matters: bool | None, clause: str) -> Diagnosis | None:
    if best.host_cores is None or not best.cpu_count or best.host_cores < HOST_SATURATED * best.cpu_count:
        return None
    others = _others(best)
    outside = f"; {others:.2f} of them went to processes outside this sweep" if others >= OTHERS_CORES else ""
    return Diagnosis(
        "the host",
        f"at {best.label} the machine's {best.cpu_count} cores were {best.host_cores / best.cpu_count:.0%} "
        f"busy ({cpu_evidence(best)}){outside}; {clause}",
        "the server, the database and Locust get too few cores"
        + (": measure on a quiet machine, " if outside else ": ")
        + "run Locust (or the database) on another machine, or use a bigger one; these figures are a lower bound",
    )


def record(sweep: Any, trials: Iterable[Any], tolerance: float) -> None:
    """Put the sweep's bottleneck line and resource on its row (not saved)."""
    found = diagnose(trials, tolerance)
    sweep.bottleneck = found.line if found else ""
    sweep.bottleneck_resource = found.resource if found else ""
