"""The Universal Scalability Law fitted to throughput against concurrency:

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

sigma is contention (queueing on a shared resource), kappa coherency (the cost of keeping N parties in
step); with kappa > 0 the curve peaks at N* = sqrt((1 - sigma) / kappa). N is the concurrency actually
in use (the connections the database saw, Trial.mean_connections), not the configured pool size: a pool
of 200 behind 21 busy threads has a concurrency of 21. Fitted with scipy.optimize.curve_fit, bounds
lambda > 0, sigma and kappa >= 0. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

MIN_SIZES = 4  # distinct sizes a sweep needs for a fit (three parameters, one degree of freedom left)
POOR_R2 = 0.9  # below this the fit is called poor
# kappa this small puts the peak far past anything measured: "no peak in range" (the data do not bend).
PEAK_RANGE = 4.0  # N* beyond this many times the largest measured concurrency counts as out of range


def usl(n: Any, lam: float, sigma: float, kappa: float) -> Any:
    n = np.asarray(n, dtype=float)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


@dataclass
class USLFit:
    lam: float
    sigma: float
    kappa: float
    r2: float
    points: list[tuple[float, float]]  # (concurrency, req/s) fitted
    sizes: list[int] = field(default_factory=list)  # the pool sizes behind the points

    @property
    def n_star(self) -> float | None:
        """The concurrency of peak throughput; None when the curve does not turn down (kappa 0)."""
        if self.kappa <= 0 or self.sigma >= 1:
            return None
        return math.sqrt((1.0 - self.sigma) / self.kappa)

    @property
    def peak_in_range(self) -> bool:
        top = max(n for n, _ in self.points)
        return self.n_star is not None and self.n_star <= PEAK_RANGE * top

    @property
    def poor(self) -> bool:
        return not math.isfinite(self.r2) or self.r2 < POOR_R2

    def predict(self, n: float) -> float:
        return float(usl(n, self.lam, self.sigma, self.kappa))

    @property
    def peak_rps(self) -> float | None:
        return self.predict(self.n_star) if self.n_star is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lambda": self.lam, "sigma": self.sigma, "kappa": self.kappa, "r2": self.r2,
            "n_star": self.n_star, "peak_rps": self.peak_rps, "peak_in_range": self.peak_in_range,
            "poor": self.poor, "points": self.points, "sizes": self.sizes,
        }  # fmt: skip


def fit(points: Sequence[tuple[float, float]], sizes: Sequence[int] = ()) -> USLFit:
    """Fit the USL to (concurrency, throughput) points; at least MIN_SIZES distinct concurrencies."""
    pts = sorted((float(n), float(x)) for n, x in points if n > 0 and x > 0)
    if len({n for n, _ in pts}) < MIN_SIZES:
        raise ValueError(f"a USL fit needs at least {MIN_SIZES} distinct concurrencies, got {len(pts)}")
    n = np.array([p[0] for p in pts])
    x = np.array([p[1] for p in pts])
    # lambda: throughput per unit of concurrency with no contention, best guessed from the smallest N.
    lam0 = float(x[0] / n[0])
    params, _ = curve_fit(
        usl, n, x, p0=[lam0, 0.01, 0.0001], bounds=([1e-12, 0.0, 0.0], [np.inf, 1.0, np.inf]), maxfev=20000
    )
    residual = float(np.sum((x - usl(n, *params)) ** 2))
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else float("nan"))
    lam, sigma, kappa = (float(v) for v in params)
    return USLFit(lam=lam, sigma=sigma, kappa=kappa, r2=r2, points=pts, sizes=list(sizes))


def curve(f: USLFit, n_max: float | None = None, steps: int = 60) -> list[tuple[float, float]]:
    """Points of the fitted curve from N = 1 to ``n_max`` (default: past the larger of the data and
    N*), for the throughput chart."""
    top = max(n for n, _ in f.points)
    if n_max is None:
        n_max = max(top, min(f.n_star or top, PEAK_RANGE * top)) * 1.1
    grid = np.linspace(1.0, n_max, steps)
    return [(float(a), float(b)) for a, b in zip(grid, usl(grid, f.lam, f.sigma, f.kappa), strict=True)]


def sweep_curve(trials: Iterable[Any], steps: int = 60) -> list[tuple[float, float]]:
    """For the throughput chart: the fitted curve's (connections in use, req/s) points of a sweep's
    closed-loop trials, [] when there is no fit (fewer than MIN_SIZES sizes) or it is poor."""
    try:
        f = sweep_fit(list(trials))
    except (RuntimeError, ValueError):
        return []
    return curve(f, steps=steps) if f is not None and not f.poor else []


def sweep_points(trials: Iterable[Any]) -> tuple[list[tuple[float, float]], list[int]]:
    """Closed-loop, pooled, finished trials of the configuration (mode, workers x threads) with the
    most sizes: per size, (median connections in use, median req/s)."""
    groups: dict[tuple[str, int, int], dict[int, list[Any]]] = {}
    for t in trials:
        if t.status == "ok" and t.pool_size and t.rps and getattr(t, "target_rate", None) is None:
            groups.setdefault((t.mode, t.workers, t.threads), {}).setdefault(t.pool_size, []).append(t)
    if not groups:
        return [], []
    by_size = max(groups.values(), key=len)
    points, sizes = [], []
    for size, group in sorted(by_size.items()):
        used = [t.mean_connections or t.peak_connections for t in group]
        used = [u for u in used if u]
        points.append((median(used) if used else float(size), median(t.rps for t in group)))
        sizes.append(size)
    return points, sizes


def sweep_fit(trials: Iterable[Any]) -> USLFit | None:
    """The sweep's fit, or None with fewer than MIN_SIZES sizes (or concurrencies)."""
    points, sizes = sweep_points(trials)
    if len({n for n, _ in points}) < MIN_SIZES:
        return None
    return fit(points, sizes)


def report_lines(trials: Sequence[Any], predict_at: Sequence[int] = (2, 4, 8, 16, 32, 64)) -> list[str]:
    """What the sweep's summary and poolbench_report print about the fit ([] without one)."""
    points, sizes = sweep_points(trials)
    distinct = len({n for n, _ in points})
    if distinct < MIN_SIZES:
        if len(sizes) >= MIN_SIZES:
            return [f"USL fit: not done: the {len(sizes)} sizes used only {distinct} distinct concurrencies."]
        return []
    f = fit(points, sizes)
    peak = "no peak (kappa 0)" if f.n_star is None else f"N* = {f.n_star:.1f} connections"
    lines = [
        f"USL fit (throughput vs connections in use, {len(points)} sizes): lambda {f.lam:.1f} req/s per "
        f"connection, sigma {f.sigma:.4f}, kappa {f.kappa:.6f}, {peak}, R^2 {f.r2:.3f}."
    ]
    if f.poor:
        lines.append(f"  The fit is poor (R^2 {f.r2:.2f} < {POOR_R2}): do not read a peak into it.")
    elif not f.peak_in_range:
        lines.append(
            "  The data do not bend: no peak within the measured range (kappa ~ 0); more connections "
            "never lowered throughput here."
        )
    elif f.peak_rps is not None:
        lines.append(f"  Predicted peak: {f.peak_rps:,.0f} req/s at about {f.n_star:.0f} connections in use.")
    measured = {round(n) for n, _ in points}
    guesses = [
        f"{n}: {f.predict(n):,.0f}" for n in predict_at if n not in measured and n <= 4 * max(measured)
    ]
    if guesses and not f.poor:
        lines.append("  Predicted req/s at concurrencies not measured: " + ", ".join(guesses) + ".")
    return lines
