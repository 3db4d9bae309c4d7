"""From trials to an answer: the median and spread per size, the formula's starting point, the
recommended pool size with the reason, load-generator saturation, the CI gates, and the search
that ``--sizes auto`` runs. Pure functions over finished trials (or anything with their fields)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import mean, median, pstdev
from typing import Any

from poolbench.measure.samplers import LOAD_BOUND_CORES


def rounding_step(ms: float) -> float:
    """Locust's resolution at ``ms``: exact (1 ms) below 100 ms, 10 ms below 1 s, 100 ms above. A p99
    "worse" by one step is not worse, so the step is added to the p99 bar on top of the tolerance."""
    return 1.0 if ms < 100 else 10.0 if ms < 1000 else 100.0


@dataclass
class SizeSummary:
    """One configuration (mode, workers x threads, pool size) over its repeats."""

    size: int
    rps: float  # median
    p99_ms: float | None  # median of the trials' p99s
    failures: int
    trials: int
    mode: str = "pool"
    workers: int = 1
    threads: int = 1
    rps_min: float = 0.0
    rps_max: float = 0.0
    rps_cv: float | None = None  # coefficient of variation (population stdev / mean), None for one trial
    failure_pct: float = 0.0
    load_bound: int = 0  # trials flagged as load-generator bound
    indexes: list[int] = field(default_factory=list)
    # The interval of the median (results/decision.py: percentile bootstrap), None for one trial.
    rps_ci_low: float | None = None
    rps_ci_high: float | None = None
    # Per pass of the sweep (Trial.repeat): successful requests/s and p99, for the paired comparison.
    samples_rps: dict[int, float] = field(default_factory=dict)
    samples_p99: dict[int, float] = field(default_factory=dict)

    @property
    def config(self) -> tuple[str, int, int]:
        return (self.mode, self.workers, self.threads)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def by_size(trials: Iterable[Any]) -> list[SizeSummary]:
    """Median requests/s and p99 per pool size (and mode, workers x threads) over the finished pooled
    trials, with the spread of the throughput: min-max and coefficient of variation."""
    groups: dict[tuple[str, int, int, int], list[Any]] = {}
    for t in trials:
        if has_data(t) and t.pool_size:
            groups.setdefault((t.mode, t.workers, t.threads, t.pool_size), []).append(t)
    return [summarize_group(size, group) for (_, _, _, size), group in sorted(groups.items())]


def without_pool(trials: Iterable[Any]) -> list[SizeSummary]:
    """The same figures for the finished trials that have no pool to size (persistent, none): one
    summary per mode and workers x threads, with size 0."""
    groups: dict[tuple[str, int, int], list[Any]] = {}
    for t in trials:
        if has_data(t) and not t.pool_size:
            groups.setdefault((t.mode, t.workers, t.threads), []).append(t)
    return [summarize_group(0, group) for _, group in sorted(groups.items())]


def has_data(trial: Any) -> bool:
    """A finished trial with at least one successful request: the only kind that counts toward a size's
    figures and the recommendation (a trial whose server died, or whose every request failed, does not)."""
    return trial.status == "ok" and (trial.requests or 0) > (trial.failures or 0)


def sizes_without_data(trials: Iterable[Any]) -> dict[tuple[str, int, int], list[int]]:
    """Per configuration (mode, workers, threads): the pool sizes that ran but have no trial with data."""
    ran: dict[tuple[str, int, int], set[int]] = {}
    measured: set[tuple[str, int, int, int]] = set()
    for t in trials:
        if t.pool_size:
            ran.setdefault((t.mode, t.workers, t.threads), set()).add(t.pool_size)
            if has_data(t):
                measured.add((t.mode, t.workers, t.threads, t.pool_size))
    return {
        config: missing
        for config, sizes in ran.items()
        if (missing := sorted(size for size in sizes if (*config, size) not in measured))
    }


def pass_keys(group: Sequence[Any]) -> list[int]:
    """The pass (Trial.repeat) of each trial; their order when a pass holds two trials of a size."""
    keys = [getattr(t, "repeat", None) for t in group]
    return keys if None not in keys and len(set(keys)) == len(keys) else list(range(1, len(group) + 1))


def summarize_group(size: int, group: Sequence[Any]) -> SizeSummary:
    """One configuration's figures over its repeats (``group``: finished trials of one configuration).
    ``Trial.rps`` counts successful requests only (measure/stats.py)."""
    from poolbench.results.decision import median_interval

    rps = [float(t.rps) for t in group]
    p99s = [t.latency_p99_ms for t in group if t.latency_p99_ms is not None]
    requests = sum(t.requests for t in group)
    failures = sum(t.failures for t in group)
    keys = pass_keys(group)
    ci = median_interval(rps)
    return SizeSummary(
        size=size,
        rps=round(median(rps), 2),
        p99_ms=median(p99s) if p99s else None,
        failures=failures,
        trials=len(group),
        mode=group[0].mode,
        workers=group[0].workers,
        threads=group[0].threads,
        rps_min=min(rps),
        rps_max=max(rps),
        rps_cv=round(pstdev(rps) / mean(rps), 4) if len(rps) > 1 and mean(rps) > 0 else None,
        failure_pct=round(100.0 * failures / requests, 3) if requests else 0.0,
        load_bound=sum(1 for t in group if t.load_bound),
        indexes=sorted(t.index for t in group),
        rps_ci_low=None if ci is None else round(ci[0], 2),
        rps_ci_high=None if ci is None else round(ci[1], 2),
        samples_rps=dict(zip(keys, rps, strict=True)),
        samples_p99={
            k: float(t.latency_p99_ms) for k, t in zip(keys, group, strict=True) if t.latency_p99_ms
        },
    )


def formula_size(cores: int | None = None, spindles: int = 0) -> int:
    """HikariCP's starting point: connections = cores * 2 + effective spindle count."""
    return (cores or os.cpu_count() or 1) * 2 + spindles


def formula(cores: int | None, cores_source: str, spindles: int, workers: int) -> dict[str, Any]:
    """The formula's connections in total, and as a pool size per server worker (each has its own pool)."""
    cores = cores or os.cpu_count() or 1
    connections = formula_size(cores, spindles)
    per_worker = max(1, math.ceil(connections / max(1, workers)))
    return {
        "cores": cores,
        "cores_source": cores_source,
        "spindles": spindles,
        "connections": connections,
        "workers": workers,
        "per_worker": per_worker,
    }


def formula_text(f: Mapping[str, Any]) -> str:
    per = f" = pool size {f['per_worker']} per worker x {f['workers']} workers" if f["workers"] > 1 else ""
    return (
        "Formula starting point (HikariCP: cores x 2 + effective spindles): "
        f"{f['cores']} x 2 + {f['spindles']} = {f['connections']} connections{per} ({f['cores_source']})."
    )


def on_plateau(s: SizeSummary, best: SizeSummary, tolerance: float) -> bool:
    """Within the tolerance of the best throughput, no failures, and a p99 no worse than the best's plus
    the tolerance (and one Locust rounding step)."""
    if s.failures or s.rps < best.rps * (1 - tolerance):
        return False
    if best.p99_ms is not None and s.p99_ms is not None:
        return s.p99_ms <= best.p99_ms * (1 + tolerance) + rounding_step(best.p99_ms)
    return True


def best_group(summaries: Sequence[SizeSummary]) -> list[SizeSummary]:
    """The sizes of the configuration (mode, workers x threads) that holds the best throughput."""
    if not summaries:
        return []
    best = max(summaries, key=lambda s: s.rps)
    return sorted((s for s in summaries if s.config == best.config), key=lambda s: s.size)


def recommend(
    summaries: Sequence[SizeSummary],
    tolerance: float = 0.05,
    without_data: Mapping[tuple[str, int, int], Sequence[int]] | None = None,
) -> tuple[int | None, str]:
    """The smallest failure-free size that is neither significantly slower than the best nor of a
    significantly worse p99 (results/decision.py), and the reason. ``without_data``
    (:func:`sizes_without_data`) names the sizes that ran but measured nothing: a claim about the
    smaller sizes never rests on one of them."""
    from poolbench.results.decision import decide

    if not summaries:
        return None, "No pooled trial finished, so there is no size to recommend."
    decision = decide(summaries, tolerance, without_data)
    return decision.size, decision.reason


def load_bound_reasons(
    cpu: Mapping[str, Any], output: Mapping[str, Any], *, users: int, connections: int, processes: int = 1
) -> list[str]:
    """Why the load generator, not the server, may have limited this trial (empty when it did not)."""
    reasons = []
    if output.get("cpu_warning") or output.get("worker_cpu_warning"):
        reasons.append("Locust warned that its CPU use passed 90%")
    top = (cpu.get("load") or {}).get("busiest_process")
    if top and top["demand_cores"] >= LOAD_BOUND_CORES:
        reasons.append(
            f"a Locust process wanted {top['demand_cores']:.2f} of a core (ran {top['cores']:.2f}, "
            "waited for a CPU the rest), so it could not send requests faster; "
            f"use --locust-processes {processes + 1} or run Locust on another machine"
        )
    if users < connections:
        reasons.append(
            f"only {users} users for up to {connections} database connections: the pool could never be full; "
            "raise --users"
        )
    return reasons


@dataclass
class Gates:
    fail_under_rps: float | None = None
    max_failure_rate: float | None = None  # percent of requests
    max_p99_ms: float | None = None
    slo: list[Any] = field(default_factory=list)  # --gate: results.slo.Target, the --slo syntax

    def __bool__(self) -> bool:
        limits = (self.fail_under_rps, self.max_failure_rate, self.max_p99_ms)
        return any(v is not None for v in limits) or bool(self.slo)


def gate_size(summaries: Sequence[SizeSummary], recommended: int | None) -> int | None:
    """The size the gates judge: the recommended one (what you would deploy), else the best one."""
    if recommended is not None:
        return recommended
    group = best_group(summaries)
    return max(group, key=lambda s: s.rps).size if group else None


def check_gates(trials: Iterable[Any], size: int | None, gates: Gates) -> list[str]:
    """One message per breached threshold, naming the trial that breached it (the worst one)."""
    chosen = [t for t in trials if t.status == "ok" and (size is None or t.pool_size == size)]
    if not chosen:
        return ["no finished trial to check the gates against"] if gates else []
    breaches = []
    if gates.fail_under_rps is not None:
        worst = min(chosen, key=lambda t: t.rps)
        if worst.rps < gates.fail_under_rps:
            breaches.append(
                f"--fail-under-rps {gates.fail_under_rps:g}: trial {worst.index} ({worst.label}) did "
                f"{worst.rps:.1f} req/s"
            )
    if gates.max_failure_rate is not None:
        worst = max(chosen, key=lambda t: t.failure_pct)
        if worst.failure_pct > gates.max_failure_rate:
            breaches.append(
                f"--max-failure-rate {gates.max_failure_rate:g}%: trial {worst.index} ({worst.label}) failed "
                f"{worst.failure_pct:.2f}% of its requests"
            )
    if gates.max_p99_ms is not None:
        worst = max(chosen, key=lambda t: t.latency_p99_ms if t.latency_p99_ms is not None else math.inf)
        p99 = worst.latency_p99_ms
        if p99 is None or p99 > gates.max_p99_ms:
            shown = "no response time" if p99 is None else f"a p99 of {p99:g} ms"
            breaches.append(
                f"--max-p99-ms {gates.max_p99_ms:g}: trial {worst.index} ({worst.label}) had {shown}"
            )
    if gates.slo:
        from poolbench.results.slo import gate_breaches

        breaches += gate_breaches(chosen, gates.slo)
    return breaches


def next_auto_size(
    summaries: Sequence[SizeSummary], *, start: int, tolerance: float, max_size: int
) -> tuple[int | None, str]:
    """The next size ``--sizes auto`` measures, and why; (None, why) when the search is done.

    Start at the formula's size; double while the throughput still rises by more than the tolerance;
    halve while the smaller size stays on the plateau; then bisect between the largest size below the
    plateau and the smallest on it.
    """
    measured = {s.size: s for s in summaries}
    if not measured:
        return start, "the formula's starting point"
    sizes = sorted(measured)
    top = measured[sizes[-1]]
    if len(sizes) == 1 or top.rps > measured[sizes[-2]].rps * (1 + tolerance):
        if top.size < max_size and not top.failures:
            nxt = min(top.size * 2, max_size)
            why = (
                "the first step up"
                if len(sizes) == 1
                else f"throughput still rose by more than {tolerance:.0%}"
            )
            return nxt, why
    best = max(summaries, key=lambda s: s.rps)
    plateau = [s for s in sizes if on_plateau(measured[s], best, tolerance)]
    if not plateau:
        return None, "no measured size is on the plateau (failures or a worse p99)"
    hi = plateau[0]
    below = [s for s in sizes if s < hi]
    if not below:
        if hi == 1:
            return None, "size 1 is already on the plateau"
        return max(1, hi // 2), f"size {hi} is on the plateau: try half"
    lo = below[-1]
    if hi - lo <= 1:
        return None, f"size {hi} is on the plateau and {lo} is not"
    return (lo + hi) // 2, f"bisect between {lo} (below the plateau) and {hi} (on it)"
