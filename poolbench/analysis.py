"""From trials to an answer: the best configuration and the recommended pool size, with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any


@dataclass
class SizeSummary:
    size: int
    rps: float
    p99_ms: float | None
    failures: int
    trials: int


def by_size(trials: Iterable[Any]) -> list[SizeSummary]:
    """Median requests/s and p99 per pool size over the finished, pooled trials."""
    groups: dict[int, list[Any]] = {}
    for t in trials:
        if t.status == "ok" and t.pool_size:
            groups.setdefault(t.pool_size, []).append(t)
    out = []
    for size, group in sorted(groups.items()):
        p99s = [t.latency_p99_ms for t in group if t.latency_p99_ms is not None]
        out.append(
            SizeSummary(
                size=size,
                rps=median(t.rps for t in group),
                p99_ms=median(p99s) if p99s else None,
                failures=sum(t.failures for t in group),
                trials=len(group),
            )
        )
    return out


def formula_size(cores: int | None = None, spindles: int = 0) -> int:
    """HikariCP's starting point: connections = cores * 2 + effective spindle count."""
    return (cores or os.cpu_count() or 1) * 2 + spindles


def recommend(summaries: Sequence[SizeSummary], tolerance: float = 0.05) -> tuple[int | None, str]:
    """The smallest size within ``tolerance`` of the best throughput, with no failures and a p99 no
    worse than the best's plus the tolerance; and the reason in one sentence."""
    if not summaries:
        return None, "No pooled trial finished, so there is no size to recommend."
    best = max(summaries, key=lambda s: s.rps)
    for s in sorted(summaries, key=lambda s: s.size):
        if s.failures:
            continue
        if s.rps < best.rps * (1 - tolerance):
            continue
        if best.p99_ms is not None and s.p99_ms is not None and s.p99_ms > best.p99_ms * (1 + tolerance) + 1:
            continue
        if s.size == best.size:
            return s.size, (
                f"Size {s.size} gave the most throughput ({s.rps:.0f} req/s) with no failures, "
                f"and no smaller size came within {tolerance:.0%} of it."
            )
        return s.size, (
            f"Size {s.size} is the smallest that reached {s.rps:.0f} req/s, within {tolerance:.0%} of the best "
            f"({best.rps:.0f} req/s at size {best.size}), with no failures and a p99 no worse than the best's."
        )
    return None, (
        f"No size met the bar: every size within {tolerance:.0%} of the best ({best.rps:.0f} req/s at size "
        f"{best.size}) had failures or a worse p99. Look at the errors and raise --pool-timeout or the sizes."
    )
